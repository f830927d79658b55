//! The "fully populated" load balancer create: listeners, pools, members,
//! monitors, L7 policies and rules in one request, one transaction, one
//! piece of controller work.
//!
//! Pools are defined once (anywhere in the request) and referenced elsewhere
//! by `{"name": …}`.

use super::*;
use crate::input::Input;
use crate::render;
use serde_json::{Value, json};
use std::collections::HashMap;

struct GraphPool {
    name: String,
    protocol: PoolProtocol,
    fields: pools::PoolFields,
    monitor: Option<(HealthMonitorType, healthmonitors::MonitorFields)>,
    members: Vec<members::NewMember>,
}

struct GraphPolicy {
    action: L7PolicyAction,
    fields: l7policies::PolicyFields,
    redirect_pool: Option<String>,
    rules: Vec<l7rules::RuleFields>,
}

struct GraphListener {
    protocol: ListenerProtocol,
    port: u16,
    fields: listeners::ListenerFields,
    default_pool: Option<String>,
    policies: Vec<GraphPolicy>,
}

pub struct Graph {
    pools: Vec<GraphPool>,
    listeners: Vec<GraphListener>,
}

/// The nested objects of a fully populated create, for the 201 body.
pub struct Nested {
    pub listeners: Value,
    pub pools: Value,
}

/// A pool given inline: a full definition is recorded, a `{"name"}` is a reference.
fn pool_ref(value: Value, defs: &mut Vec<GraphPool>) -> ApiResult<String> {
    let mut input = Input::from_value(value, "pool")?;
    let name = input.string("name", 255)?.value().filter(|n| !n.is_empty());
    let Some(name) = name else {
        return Err(ApiError::validation(
            "Pools must be named when creating a fully populated loadbalancer.",
        ));
    };
    if input.is_empty() {
        return Ok(name);
    }
    defs.push(pool_def(name.clone(), input)?);
    Ok(name)
}

fn pool_def(name: String, mut input: Input) -> ApiResult<GraphPool> {
    for attr in ["protocol", "lb_algorithm"] {
        if !input.has(attr) {
            return Err(ApiError::validation(format!(
                "Pool definition for '{name}' missing required attribute: {attr}"
            )));
        }
    }
    let monitor = match input.take("healthmonitor").value() {
        None => None,
        Some(v) => {
            let mut hi = Input::from_value(v, "healthmonitor")?;
            let m = healthmonitors::parse_create(&mut hi)?;
            hi.finish()?;
            Some(m)
        }
    };
    let mut new_members = Vec::new();
    for v in input.list("members")?.value().unwrap_or_default() {
        let mut mi = Input::from_value(v, "member")?;
        new_members.push(members::parse_create(&mut mi)?);
        mi.finish()?;
    }
    let (protocol, fields) = pools::parse_create(&mut input)?;
    input.finish()?;
    Ok(GraphPool {
        name,
        protocol,
        fields,
        monitor,
        members: new_members,
    })
}

/// Parse the `listeners` and `pools` of a load balancer create; `None` when both are empty.
pub fn parse(listeners: Vec<Value>, pools: Vec<Value>) -> ApiResult<Option<Graph>> {
    if listeners.is_empty() && pools.is_empty() {
        return Ok(None);
    }
    let mut defs = Vec::new();
    for p in pools {
        let mut input = Input::from_value(p, "pool")?;
        let name = input.string("name", 255)?.value().filter(|n| !n.is_empty());
        let Some(name) = name else {
            return Err(ApiError::validation(
                "Pools must be named when creating a fully populated loadbalancer.",
            ));
        };
        defs.push(pool_def(name, input)?);
    }
    let mut graph_listeners = Vec::new();
    for l in listeners {
        let mut input = Input::from_value(l, "listener")?;
        let default_pool = match input.take("default_pool").value() {
            Some(v) => Some(pool_ref(v, &mut defs)?),
            None => None,
        };
        let mut policies = Vec::new();
        for pv in input.list("l7policies")?.value().unwrap_or_default() {
            let mut pi = Input::from_value(pv, "l7policy")?;
            let redirect_pool = match pi.take("redirect_pool").value() {
                Some(v) => Some(pool_ref(v, &mut defs)?),
                None => None,
            };
            let mut rules = Vec::new();
            for rv in pi.list("rules")?.value().unwrap_or_default() {
                let mut ri = Input::from_value(rv, "rule")?;
                rules.push(l7rules::parse_create(&mut ri)?);
                ri.finish()?;
            }
            let action = pi
                .enumeration("action", L7PolicyAction::ALL, |e| e.as_str())?
                .required("action")?;
            pi.project_id()?;
            let fields = l7policies::parse_fields(&mut pi)?;
            pi.finish()?;
            policies.push(GraphPolicy {
                action,
                fields,
                redirect_pool,
                rules,
            });
        }
        let (protocol, port, _project, fields) = listeners::parse_create(&mut input)?;
        input.finish()?;
        graph_listeners.push(GraphListener {
            protocol,
            port,
            fields,
            default_pool,
            policies,
        });
    }
    let mut seen = std::collections::HashSet::new();
    for d in &defs {
        if !seen.insert(d.name.clone()) {
            return Err(ApiError::validation(
                "Pool names must be unique when creating a fully populated loadbalancer.",
            ));
        }
    }
    let referenced = graph_listeners.iter().flat_map(|l| {
        l.default_pool
            .iter()
            .chain(l.policies.iter().filter_map(|p| p.redirect_pool.as_ref()))
    });
    for name in referenced {
        if !seen.contains(name) {
            return Err(ApiError::validation(format!(
                "Pool '{name}' was referenced but no full definition was found."
            )));
        }
    }
    Ok(Some(Graph {
        pools: defs,
        listeners: graph_listeners,
    }))
}

/// Create every object of `graph` under `lb`, all PENDING_CREATE.
pub fn create(
    app: &AppState,
    ctx: &RequestContext,
    txn: &mut Txn,
    lb: &LoadBalancer,
    graph: Option<Graph>,
) -> ApiResult<Option<Nested>> {
    let Some(graph) = graph else { return Ok(None) };
    let s = txn.state().clone();
    let mut pools_by_name: HashMap<String, Pool> = HashMap::new();
    let mut new_pools = Vec::new();
    let mut new_members = Vec::new();
    let mut new_monitors = Vec::new();
    for gp in graph.pools {
        let mut p = pools::new_pool(lb, gp.protocol, LbAlgorithm::RoundRobin);
        p.name = Some(gp.name.clone());
        gp.fields.apply(&mut p)?;
        pools::validate(&p)?;
        if let Some((kind, fields)) = gp.monitor {
            statera_service::octavia::check_monitor_supported(&*app.settings, lb, kind)?;
            new_monitors.push(healthmonitors::build(&p, kind, fields)?);
        }
        let has_monitor = new_monitors.iter().any(|h| h.pool_id == p.id);
        let mut seen = std::collections::HashSet::new();
        for nm in gp.members {
            let m = members::build(&*app.settings, &ctx.service, &s, &p, has_monitor, nm)?;
            if !seen.insert((m.address, m.protocol_port)) {
                return Err(ApiError::conflict(format!(
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
        listeners::validate(&*app.settings, &s, lb, &l, &new_pools)?;
        if let Some(other) = new_listeners.iter().find(|o| {
            o.protocol_port == l.protocol_port && o.protocol.family() == l.protocol.family()
        }) {
            return Err(ApiError::conflict(format!(
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
            l7policies::validate(&s, &l, &p, &new_pools)?;
            if gpol.rules.len() > l7rules::MAX_RULES {
                return Err(ApiError::conflict(format!(
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
    let project = &lb.project_id;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::Listener,
        new_listeners.len() as i64,
    )?;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::Pool,
        new_pools.len() as i64,
    )?;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::Member,
        new_members.len() as i64,
    )?;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::HealthMonitor,
        new_monitors.len() as i64,
    )?;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::L7Policy,
        new_policies.len() as i64,
    )?;
    check_quota(
        &app.settings.quota_defaults,
        &s,
        project,
        QuotaKind::L7Rule,
        new_rules.len() as i64,
    )?;
    for x in new_pools {
        txn.put(x)?;
    }
    for x in new_members {
        txn.put(x)?;
    }
    for x in new_monitors {
        txn.put(x)?;
    }
    for x in &new_listeners {
        txn.put(x.clone())?;
    }
    for x in new_policies {
        txn.put(x)?;
    }
    for x in new_rules {
        txn.put(x)?;
    }
    // The 201 body nests full objects, without back-references.
    let s = txn.state();
    let listeners: Vec<Value> = new_listeners
        .iter()
        .map(|l| {
            let mut o = render::listener(s, l);
            o.remove("loadbalancers");
            let mut pols: Vec<_> = s.l7policies.children(l.id).collect();
            pols.sort_by_key(|p| p.position);
            let pols: Vec<Value> = pols
                .into_iter()
                .map(|p| {
                    let mut po = render::l7policy(s, p);
                    po.insert(
                        "rules".into(),
                        Value::Array(
                            s.l7rules
                                .children(p.id)
                                .map(|r| Value::Object(render::l7rule(r)))
                                .collect(),
                        ),
                    );
                    Value::Object(po)
                })
                .collect();
            o.insert("l7policies".into(), Value::Array(pols));
            Value::Object(o)
        })
        .collect();
    let pools: Vec<Value> = s
        .pools
        .children(lb.id)
        .map(|p| {
            let mut o = render::pool(s, p);
            o.remove("loadbalancers");
            o.remove("healthmonitor_id");
            o.insert(
                "members".into(),
                Value::Array(
                    s.members
                        .children(p.id)
                        .map(|m| Value::Object(render::member(m)))
                        .collect(),
                ),
            );
            let hm = s.pool_monitor(p.id).map(|h| {
                let mut ho = render::healthmonitor(h);
                ho.remove("pools");
                Value::Object(ho)
            });
            o.insert("healthmonitor".into(), hm.unwrap_or(json!(null)));
            Value::Object(o)
        })
        .collect();
    Ok(Some(Nested {
        listeners: Value::Array(listeners),
        pools: Value::Array(pools),
    }))
}
