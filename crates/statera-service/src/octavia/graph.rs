//! The "fully populated" load balancer create: listeners, pools, members,
//! monitors, L7 policies and rules given in the load balancer's own create,
//! built and checked whole, then written in its transaction (one piece of
//! controller work). The wire reads the request into a [`Graph`]; pools are
//! defined once and referenced by name.

use super::{Deployment, check_monitor_supported, healthmonitors, l7policies, l7rules, listeners};
use super::{members, pools};
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::quota::{QuotaKind, check_quota};
use crate::store::StoreWrite;
use statera_model::*;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

/// A pool of the request, by its (unique) name.
pub struct GraphPool {
    pub name: String,
    pub protocol: PoolProtocol,
    pub fields: pools::PoolFields,
    pub monitor: Option<(HealthMonitorType, healthmonitors::MonitorFields)>,
    pub members: Vec<members::NewMember>,
}

pub struct GraphPolicy {
    pub action: L7PolicyAction,
    pub fields: l7policies::PolicyFields,
    /// A pool of the request, by name.
    pub redirect_pool: Option<String>,
    pub rules: Vec<l7rules::RuleFields>,
}

pub struct GraphListener {
    pub protocol: ListenerProtocol,
    pub port: u16,
    pub fields: listeners::ListenerFields,
    /// A pool of the request, by name.
    pub default_pool: Option<String>,
    pub policies: Vec<GraphPolicy>,
}

/// Everything a fully populated create nests under its load balancer.
pub struct Graph {
    pub pools: Vec<GraphPool>,
    pub listeners: Vec<GraphListener>,
}

/// Create every object of `graph` under `lb` (just put in `txn`), all
/// PENDING_CREATE, after checking them whole (providers, conflicts within
/// the request, quotas); the listeners' ids in the request's order.
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &impl Deployment,
    lb: &LoadBalancer,
    graph: Graph,
) -> ServiceResult<Vec<Uuid>> {
    let s = &*txn;
    let mut pools_by_name: HashMap<String, Pool> = HashMap::new();
    let mut new_pools = Vec::new();
    let mut new_members = Vec::new();
    let mut new_monitors = Vec::new();
    for gp in graph.pools {
        let mut p = pools::new_pool(lb, gp.protocol, LbAlgorithm::RoundRobin);
        p.name = Some(gp.name.clone());
        gp.fields.apply(&mut p)?;
        pools::validate(&p)?;
        super::check_pool_tls_supported(d, lb, &p)?;
        if let Some((kind, fields)) = gp.monitor {
            check_monitor_supported(d, lb, kind)?;
            new_monitors.push(healthmonitors::build(&p, kind, fields)?);
        }
        let has_monitor = new_monitors.iter().any(|h| h.pool_id == p.id);
        let mut seen = HashSet::new();
        for nm in gp.members {
            let m = members::build(d, ctx, s, &p, has_monitor, nm)?;
            if !seen.insert((m.address, m.protocol_port)) {
                return Err(ServiceError::conflict(format!(
                    "Another member on this pool is already using ip {} on protocol_port {}",
                    m.address, m.protocol_port
                )));
            }
            new_members.push(m);
        }
        pools_by_name.insert(gp.name, p.clone());
        new_pools.push(p);
    }
    let mut new_listeners: Vec<Listener> = Vec::new();
    let mut new_policies = Vec::new();
    let mut new_rules = Vec::new();
    for gl in graph.listeners {
        let mut l = listeners::new_listener(lb, gl.protocol, gl.port);
        gl.fields.apply(&mut l)?;
        if let Some(name) = &gl.default_pool {
            l.default_pool_id = pools_by_name.get(name).map(|p| p.id);
        }
        listeners::validate(d, s, lb, &l, &new_pools)?;
        if let Some(other) = new_listeners.iter().find(|o| {
            o.protocol_port == l.protocol_port && o.protocol.family() == l.protocol.family()
        }) {
            return Err(ServiceError::conflict(format!(
                "Another Listener on this Load Balancer is already using protocol {} and protocol_port {}",
                other.protocol, l.protocol_port
            )));
        }
        for (i, gpol) in gl.policies.into_iter().enumerate() {
            let mut p = l7policies::new_policy(&l, gpol.action);
            gpol.fields.apply(&mut p)?;
            if let Some(name) = &gpol.redirect_pool {
                p.redirect_pool_id = pools_by_name.get(name).map(|x| x.id);
                p.action = L7PolicyAction::RedirectToPool;
            }
            p.position = i as u32 + 1;
            l7policies::validate(s, &l, &p, &new_pools)?;
            if gpol.rules.len() > l7rules::MAX_RULES {
                return Err(ServiceError::conflict(format!(
                    "Too many rules on L7 policy {}",
                    p.id
                )));
            }
            for rf in gpol.rules {
                new_rules.push(l7rules::build(&p, rf)?);
            }
            new_policies.push(p);
        }
        new_listeners.push(l);
    }
    for (kind, adding) in [
        (QuotaKind::Listener, new_listeners.len()),
        (QuotaKind::Pool, new_pools.len()),
        (QuotaKind::Member, new_members.len()),
        (QuotaKind::HealthMonitor, new_monitors.len()),
        (QuotaKind::L7Policy, new_policies.len()),
        (QuotaKind::L7Rule, new_rules.len()),
    ] {
        check_quota(d.quota_defaults(), s, &lb.project_id, kind, adding as i64)?;
    }
    let ids = new_listeners.iter().map(|l| l.id).collect();
    for x in new_pools {
        txn.put(x)?;
    }
    for x in new_members {
        txn.put(x)?;
    }
    for x in new_monitors {
        txn.put(x)?;
    }
    for x in new_listeners {
        txn.put(x)?;
    }
    for x in new_policies {
        txn.put(x)?;
    }
    for x in new_rules {
        txn.put(x)?;
    }
    Ok(ids)
}
