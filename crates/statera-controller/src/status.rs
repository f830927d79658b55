//! Operating status from what the data plane reports, as Octavia users read it.

use statera_config::{ListenerState, MemberHealth, StatusReport};
use statera_model::*;
use statera_store::{StoreError, Txn};
use std::collections::HashMap;
use uuid::Uuid;

pub use statera_model::status::admin_operating_status;

/// A member's operating status from its health.
pub fn member_status(h: MemberHealth) -> OperatingStatus {
    match h {
        MemberHealth::Up => OperatingStatus::Online,
        MemberHealth::Down => OperatingStatus::Error,
        MemberHealth::Drain => OperatingStatus::Draining,
        MemberHealth::Maint => OperatingStatus::Offline,
        MemberHealth::NoCheck => OperatingStatus::NoMonitor,
    }
}

/// A pool's status from its members': ERROR when no member can take traffic,
/// DEGRADED when some are in ERROR, ONLINE otherwise.
pub fn pool_status(admin_up: bool, members: &[OperatingStatus]) -> OperatingStatus {
    use OperatingStatus as O;
    if !admin_up {
        return O::Offline;
    }
    if members.is_empty() {
        return O::Online;
    }
    let usable = members
        .iter()
        .filter(|m| matches!(m, O::Online | O::NoMonitor | O::Draining))
        .count();
    if usable == 0 && members.contains(&O::Error) {
        O::Error
    } else if members.contains(&O::Error) {
        O::Degraded
    } else {
        O::Online
    }
}

/// Write the operating statuses `r` implies, only where they change.
pub fn apply_report(txn: &mut Txn, r: &StatusReport) -> Result<(), StoreError> {
    let s = txn.state().clone();
    let Some(lb) = s.loadbalancers.get(&r.lb_id) else {
        return Ok(());
    };
    let mut pool_status_by_id: HashMap<Uuid, OperatingStatus> = HashMap::new();
    for pr in &r.pools {
        let Some(pool) = s.pools.get(&pr.id) else {
            continue;
        };
        let mut statuses = Vec::new();
        for mr in &pr.members {
            let Some(m) = s.members.get(&mr.id) else {
                continue;
            };
            let st = member_status(mr.health);
            if !m.backup {
                statuses.push(st);
            }
            if m.operating_status != st && !m.provisioning_status.is_pending() {
                let mut m = (**m).clone();
                m.operating_status = st;
                txn.put(m)?;
            }
        }
        let st = pool_status(pool.admin_state_up, &statuses);
        pool_status_by_id.insert(pool.id, st);
        if pool.operating_status != st && !pool.provisioning_status.is_pending() {
            let mut p = (**pool).clone();
            p.operating_status = st;
            txn.put(p)?;
        }
    }
    let mut listener_statuses = Vec::new();
    for lr in &r.listeners {
        let Some(l) = s.listeners.get(&lr.id) else {
            continue;
        };
        let st = match (lr.state, l.admin_state_up) {
            (_, false) => OperatingStatus::Offline,
            (ListenerState::Open, true) => OperatingStatus::Online,
            (ListenerState::Full, true) => OperatingStatus::Degraded,
            (ListenerState::Down, true) => OperatingStatus::Error,
        };
        listener_statuses.push(st);
        if l.operating_status != st && !l.provisioning_status.is_pending() {
            let mut l = (**l).clone();
            l.operating_status = st;
            txn.put(l)?;
        }
    }
    let lb_status = if !lb.admin_state_up {
        OperatingStatus::Offline
    } else if pool_status_by_id
        .values()
        .any(|p| *p == OperatingStatus::Error)
    {
        OperatingStatus::Error
    } else if pool_status_by_id
        .values()
        .any(|p| *p == OperatingStatus::Degraded)
        || listener_statuses.contains(&OperatingStatus::Degraded)
        // An enabled listener that does not serve (its socket could not be
        // bound): the load balancer serves only in part.
        || listener_statuses.contains(&OperatingStatus::Error)
    {
        OperatingStatus::Degraded
    } else {
        OperatingStatus::Online
    };
    if lb.operating_status != lb_status {
        let mut lb = (**lb).clone();
        lb.operating_status = lb_status;
        txn.put(lb)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use OperatingStatus as O;

    #[test]
    fn pool_status_table() {
        assert_eq!(pool_status(true, &[O::Online, O::Online]), O::Online);
        assert_eq!(pool_status(true, &[O::Online, O::Error]), O::Degraded);
        assert_eq!(pool_status(true, &[O::Error, O::Error]), O::Error);
        assert_eq!(pool_status(true, &[O::NoMonitor]), O::Online);
        assert_eq!(pool_status(false, &[O::Online]), O::Offline);
        assert_eq!(pool_status(true, &[]), O::Online);
    }

    #[test]
    fn member_status_table() {
        assert_eq!(member_status(MemberHealth::Up), O::Online);
        assert_eq!(member_status(MemberHealth::Down), O::Error);
        assert_eq!(member_status(MemberHealth::Drain), O::Draining);
        assert_eq!(member_status(MemberHealth::Maint), O::Offline);
        assert_eq!(member_status(MemberHealth::NoCheck), O::NoMonitor);
    }
}
