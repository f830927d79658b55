//! The "fully populated" load balancer create on the wire: reading the
//! `listeners` and `pools` of the request into the service's
//! [`Graph`] (pools are defined once, anywhere in the request, and
//! referenced elsewhere by `{"name": …}`), and rendering what was created
//! for the 201 body. The objects are built, checked and written by
//! `statera_service::octavia::graph`.

use super::*;
use crate::input::Input;
use crate::render;
use serde_json::{Value, json};

pub use statera_service::octavia::graph::{Graph, GraphListener, GraphPolicy, GraphPool};

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

/// The 201 body's nested objects of a fully populated create: the listeners
/// (`listeners`, in the request's order) and every pool of `lb`, full
/// objects without back-references.
pub fn nested(s: &State, lb: &LoadBalancer, listeners: &[Uuid]) -> Nested {
    let new_listeners: Vec<&Arc<Listener>> = listeners
        .iter()
        .filter_map(|id| s.listeners.get(id))
        .collect();
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
    Nested {
        listeners: Value::Array(listeners),
        pools: Value::Array(pools),
    }
}
