//! Operating status from what the data plane reports, as Octavia users read it.

use statera_config::{ListenerState, MemberHealth, StatusReport};
use statera_model::*;
use statera_store::{State, StoreError, Txn};
use std::collections::{HashMap, HashSet};
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

/// A served pool's status from its members' (backups included), as Octavia
/// reads HAProxy's backend: the backend is UP while some server carries
/// weight (a member ONLINE or NO_MONITOR; a draining member has weight 0, a
/// disabled one none) or when it has no server at all, else DOWN → ERROR; an
/// UP backend with a member in ERROR is DEGRADED. A disabled pool is not in
/// the configuration: OFFLINE.
pub fn pool_status(admin_up: bool, members: &[OperatingStatus]) -> OperatingStatus {
    use OperatingStatus as O;
    if !admin_up {
        return O::Offline;
    }
    if members.is_empty() {
        return O::Online;
    }
    if !members
        .iter()
        .any(|m| matches!(m, O::Online | O::NoMonitor))
    {
        O::Error
    } else if members.contains(&O::Error) {
        O::Degraded
    } else {
        O::Online
    }
}

/// The pools of load balancer `lb` that serve traffic: those an enabled
/// listener reaches (as its default pool or through one of its L7 policies)
/// on an enabled load balancer. Octavia renders only these into HAProxy's
/// configuration, so only these are in an amphora's health message; every
/// other pool of the load balancer is OFFLINE (`heartbeat_udp.py`, the
/// "potential offline pools").
pub fn served_pools(s: &State, lb: &LoadBalancer) -> HashSet<Uuid> {
    let mut served = HashSet::new();
    if !lb.admin_state_up {
        return served;
    }
    for l in s.listeners.children(lb.id) {
        if !l.admin_state_up || l.provisioning_status == ProvisioningStatus::PendingDelete {
            continue;
        }
        served.extend(l.default_pool_id);
        for p in s.l7policies.children(l.id) {
            if p.provisioning_status != ProvisioningStatus::PendingDelete {
                served.extend(p.redirect_pool_id);
            }
        }
    }
    served
}

/// Write the operating statuses `r` implies, only where they change.
pub fn apply_report(txn: &mut Txn, r: &StatusReport) -> Result<(), StoreError> {
    let s = txn.state().clone();
    let Some(lb) = s.loadbalancers.get(&r.lb_id) else {
        return Ok(());
    };
    if r.unserved {
        return unserved(txn, &s, lb);
    }
    let served = served_pools(&s, lb);
    let mut pool_status_by_id: HashMap<Uuid, OperatingStatus> = HashMap::new();
    // Pools no listener serves (or the report leaves out) are OFFLINE.
    for pool in s.pools.children(lb.id) {
        if (served.contains(&pool.id) && r.pools.iter().any(|pr| pr.id == pool.id))
            || pool.operating_status == OperatingStatus::Offline
            || pool.provisioning_status.is_pending()
        {
            continue;
        }
        let mut p = (**pool).clone();
        p.operating_status = OperatingStatus::Offline;
        txn.put(p)?;
    }
    for pr in &r.pools {
        let Some(pool) = s.pools.get(&pr.id) else {
            continue;
        };
        if !served.contains(&pool.id) {
            continue;
        }
        let mut statuses = Vec::new();
        for mr in &pr.members {
            // A report speaks only of its own load balancer's objects (a
            // remote agent's report is not trusted with others').
            let Some(m) = s.members.get(&mr.id).filter(|m| m.pool_id == pool.id) else {
                continue;
            };
            let st = member_status(mr.health);
            statuses.push(st);
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
        let Some(l) = s
            .listeners
            .get(&lr.id)
            .filter(|l| l.loadbalancer_id == r.lb_id)
        else {
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

/// Nothing serves `lb`: its enabled listeners and itself are ERROR (its
/// pools and members keep what was last known of them: nothing checks them
/// now).
fn unserved(txn: &mut Txn, s: &State, lb: &LoadBalancer) -> Result<(), StoreError> {
    for l in s.listeners.children(lb.id) {
        let st = if l.admin_state_up {
            OperatingStatus::Error
        } else {
            OperatingStatus::Offline
        };
        if l.operating_status != st && !l.provisioning_status.is_pending() {
            let mut l = (**l).clone();
            l.operating_status = st;
            txn.put(l)?;
        }
    }
    let st = if lb.admin_state_up {
        OperatingStatus::Error
    } else {
        OperatingStatus::Offline
    };
    if lb.operating_status != st {
        let mut lb = lb.clone();
        lb.operating_status = st;
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
        // HAProxy shows a backend without servers UP.
        assert_eq!(pool_status(true, &[]), O::Online);
        // No server carrying weight: the backend is DOWN.
        assert_eq!(pool_status(true, &[O::Offline]), O::Error);
        assert_eq!(pool_status(true, &[O::Draining, O::Offline]), O::Error);
        assert_eq!(pool_status(true, &[O::Draining, O::Online]), O::Online);
        // A backup serving while the others are down.
        assert_eq!(pool_status(true, &[O::Error, O::Online]), O::Degraded);
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
