//! `/security-groups` (list, create, show, update, delete) and
//! `/security-group-rules` (list, create, show, delete): Neutron's rule
//! validation (protocols, port ranges, ICMP type/code, CIDR family,
//! duplicates) and the two egress rules every new group gets.
//!
//! Statera does not create a `default` group per project (Neutron does on a
//! project's first request): a port gets exactly the groups it names.

use super::*;
use crate::input::{JsonBody, NeutronJson, Opt};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use ipnet::IpNet;
use std::net::IpAddr;
use std::str::FromStr;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/security-groups", get(list_groups).post(create_group))
        .route(
            "/security-groups/{id}",
            get(show_group).put(update_group).delete(delete_group),
        )
        .route("/security-group-rules", get(list_rules).post(create_rule))
        .route(
            "/security-group-rules/{id}",
            get(show_rule).delete(delete_rule),
        )
}

fn rule_not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Security group rule {id} does not exist"),
    )
    .neutron("SecurityGroupRuleNotFound")
}

fn visible_rule(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<SecurityGroupRule> {
    s.security_group_rules
        .get(&id)
        .filter(|r| rule_visible(ctx, s, r))
        .map(|r| (**r).clone())
        .ok_or_else(|| rule_not_found(id))
}

/// A rule's policy target: its project and its group's
/// (`security_group:project_id`).
fn rule_target(s: &State, r: &SecurityGroupRule) -> Target {
    let mut t = project_target(&r.project_id);
    let owner = s
        .security_groups
        .get(&r.security_group_id)
        .map_or(r.project_id.as_str(), |g| g.project_id.as_str());
    t.insert("security_group:project_id".into(), owner.to_string());
    t
}

/// `get_security_group_rule` (the group's owner reads its rules).
fn rule_visible(ctx: &RequestContext, s: &State, r: &SecurityGroupRule) -> bool {
    ctx.allowed_on("get_security_group_rule", &rule_target(s, r))
}

/// The ports that use group `id`.
pub(crate) fn ports_using(s: &State, id: Uuid) -> impl Iterator<Item = &Port> {
    s.ports
        .iter()
        .filter(move |p| p.security_groups.contains(&id))
        .map(|p| &**p)
}

// ---- rule validation ---------------------------------------------------------------

/// Protocols whose rules may carry a port range.
const PORT_PROTOCOLS: &[u8] = &[6, 17, 33, 132, 136];
/// Protocols whose rules carry an ICMP type (min) and code (max).
const ICMP_PROTOCOLS: &[u8] = &[1, 58];
/// Protocols that only exist over IPv6.
const IPV6_PROTOCOLS: &[u8] = &[41, 43, 44, 58, 59, 60];
/// The names Neutron accepts, for the error message.
const PROTOCOL_NAMES: &[&str] = &[
    "ah",
    "dccp",
    "egp",
    "esp",
    "gre",
    "icmp",
    "icmpv6",
    "igmp",
    "ipip",
    "ipv6-encap",
    "ipv6-frag",
    "ipv6-icmp",
    "ipv6-nonxt",
    "ipv6-opts",
    "ipv6-route",
    "ospf",
    "pgm",
    "rsvp",
    "sctp",
    "tcp",
    "udp",
    "udplite",
    "vrrp",
];

/// The IP protocol number of a rule's protocol (names the model does not
/// know but Neutron does are mapped here).
pub(crate) fn protocol_number(p: &str) -> Option<u8> {
    match p.to_ascii_lowercase().as_str() {
        "dccp" => Some(33),
        "ipip" => Some(4),
        other => SecurityGroupRule::protocol_number(other),
    }
}

/// A protocol as given: a name, a number 0–255 (as a number or a string),
/// or `any`/null for every protocol. Names are kept in lower case, numbers
/// as their decimal string (Neutron's storage).
fn parse_protocol(v: Opt<Value>) -> ApiResult<Option<String>> {
    let raw = match v {
        Opt::Absent | Opt::Null => return Ok(None),
        Opt::Set(Value::String(s)) => s.trim().to_string(),
        Opt::Set(Value::Number(n)) => n.to_string(),
        Opt::Set(other) => other.to_string(),
    };
    let invalid = || {
        ApiError::bad_request(format!(
            "Security group rule protocol {raw} not supported. Only protocol values [{}] \
             and integer representations [0 to 255] are supported.",
            PROTOCOL_NAMES
                .iter()
                .map(|n| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .neutron("SecurityGroupRuleInvalidProtocol")
    };
    if raw.is_empty() || raw.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return match raw.parse::<u16>() {
            Ok(n) if n <= 255 => Ok(Some(n.to_string())),
            _ => Err(invalid()),
        };
    }
    let lower = raw.to_ascii_lowercase();
    if PROTOCOL_NAMES.contains(&lower.as_str()) && protocol_number(&lower).is_some() {
        Ok(Some(lower))
    } else {
        Err(invalid())
    }
}

fn parse_port(input: &mut Input, key: &str) -> ApiResult<Option<u16>> {
    let v = match input.take(key) {
        Opt::Set(v) => v,
        _ => return Ok(None),
    };
    let n = match &v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match n {
        Some(n) if (0..=65_535).contains(&n) => Ok(Some(n as u16)),
        _ => {
            let shown = match &v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Err(
                ApiError::bad_request(format!("Invalid value for port {shown}."))
                    .neutron("SecurityGroupInvalidPortValue"),
            )
        }
    }
}

fn parse_ethertype(v: Opt<String>) -> ApiResult<EtherType> {
    match v {
        Opt::Absent | Opt::Null => Ok(EtherType::IPv4),
        Opt::Set(s) => match s.to_ascii_lowercase().as_str() {
            "ipv4" => Ok(EtherType::IPv4),
            "ipv6" => Ok(EtherType::IPv6),
            _ => Err(ApiError::bad_request(format!(
                "Security group rule for ethertype '{s}' not supported. Allowed values are \
                 ['IPv4', 'IPv6']."
            ))
            .neutron("SecurityGroupRuleInvalidEtherType")),
        },
    }
}

fn parse_direction(v: Opt<String>) -> ApiResult<Direction> {
    match required_attribute(v, "direction")?.as_str() {
        "ingress" => Ok(Direction::Ingress),
        "egress" => Ok(Direction::Egress),
        other => Err(invalid_field(
            "direction",
            format!("'{other}' is not in ['ingress', 'egress']"),
        )),
    }
}

/// `remote_ip_prefix`: a CIDR (host bits kept, as Neutron keeps them) or a
/// bare address (a /32 or /128).
fn parse_prefix(v: Opt<String>) -> ApiResult<Option<IpNet>> {
    let Some(raw) = v.value() else {
        return Ok(None);
    };
    let t = raw.trim();
    if let Ok(net) = IpNet::from_str(t) {
        return Ok(Some(net));
    }
    if let Ok(ip) = IpAddr::from_str(t) {
        return Ok(Some(IpNet::from(ip)));
    }
    Err(invalid_input(format!("'{raw}' is not a valid IP subnet")))
}

fn ethertype_name(e: EtherType) -> &'static str {
    match e {
        EtherType::IPv4 => "IPv4",
        EtherType::IPv6 => "IPv6",
    }
}

/// Neutron's checks of one rule, in Neutron's order.
fn validate_rule(r: &SecurityGroupRule) -> ApiResult<()> {
    let number = r.protocol.as_deref().and_then(protocol_number);
    if let (Some(p), Some(n)) = (&r.protocol, number)
        && r.ethertype == EtherType::IPv4
        && IPV6_PROTOCOLS.contains(&n)
    {
        return Err(
            ApiError::bad_request(format!("Invalid ethertype IPv4 for protocol {p}."))
                .neutron("SecurityGroupEthertypeConflictWithProtocol"),
        );
    }
    if r.remote_ip_prefix.is_some() && r.remote_group_id.is_some() {
        return Err(ApiError::bad_request(
            "Only remote_ip_prefix or remote_group_id may be provided.",
        )
        .neutron("SecurityGroupRemoteGroupAndRemoteIpPrefix"));
    }
    if let Some(net) = r.remote_ip_prefix {
        let v4 = net.addr().is_ipv4();
        if v4 != (r.ethertype == EtherType::IPv4) {
            return Err(ApiError::bad_request(format!(
                "Conflicting value ethertype {} for CIDR {net}",
                ethertype_name(r.ethertype)
            ))
            .neutron("SecurityGroupRuleParameterConflict"));
        }
    }
    let (min, max) = (r.port_range_min, r.port_range_max);
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(n) = number else {
        return Err(
            ApiError::bad_request("Must also specify protocol if port range is given.")
                .neutron("SecurityGroupProtocolRequiredWithPorts"),
        );
    };
    if PORT_PROTOCOLS.contains(&n) {
        if min == Some(0) || max == Some(0) {
            return Err(ApiError::bad_request("Invalid value for port 0.")
                .neutron("SecurityGroupInvalidPortValue"));
        }
        match (min, max) {
            (Some(a), Some(b)) if a <= b => Ok(()),
            _ => Err(ApiError::bad_request(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )
            .neutron("SecurityGroupInvalidPortRange")),
        }
    } else if ICMP_PROTOCOLS.contains(&n) {
        for (attr, field, v) in [
            ("port_range_min", "type", min),
            ("port_range_max", "code", max),
        ] {
            if let Some(v) = v
                && v > 255
            {
                return Err(ApiError::bad_request(format!(
                    "Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."
                ))
                .neutron("SecurityGroupInvalidIcmpValue"));
            }
        }
        if let (None, Some(code)) = (min, max) {
            return Err(ApiError::bad_request(format!(
                "ICMP code (port-range-max) {code} is provided but ICMP type \
                 (port-range-min) is missing."
            ))
            .neutron("SecurityGroupMissingIcmpType"));
        }
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "Invalid protocol {} for port range, only supported for TCP, UDP, UDPLITE, SCTP \
             and DCCP.",
            r.protocol.as_deref().unwrap_or_default()
        ))
        .neutron("SecurityGroupInvalidProtocolForPortRange"))
    }
}

/// What makes two rules the same rule: every match attribute, with a
/// protocol compared by number and an all-addresses prefix equal to none.
/// Direction, ethertype, protocol number, port range, remote prefix, remote group.
type RuleKey = (
    Direction,
    EtherType,
    Option<u8>,
    Option<u16>,
    Option<u16>,
    Option<IpNet>,
    Option<Uuid>,
);

fn rule_key(r: &SecurityGroupRule) -> RuleKey {
    let prefix = r
        .remote_ip_prefix
        .map(|n| n.trunc())
        .filter(|n| n.prefix_len() != 0);
    (
        r.direction,
        r.ethertype,
        r.protocol.as_deref().and_then(protocol_number),
        r.port_range_min,
        r.port_range_max,
        prefix,
        r.remote_group_id,
    )
}

/// The rules every new group gets: all egress traffic, IPv4 and IPv6.
fn default_rules(g: &SecurityGroup) -> Vec<SecurityGroupRule> {
    [EtherType::IPv4, EtherType::IPv6]
        .into_iter()
        .map(|ethertype| SecurityGroupRule {
            id: Uuid::new_v4(),
            project_id: g.project_id.clone(),
            security_group_id: g.id,
            description: String::new(),
            direction: Direction::Egress,
            ethertype,
            protocol: None,
            port_range_min: None,
            port_range_max: None,
            remote_ip_prefix: None,
            remote_group_id: None,
            created_at: g.created_at,
            updated_at: None,
        })
        .collect()
}

// ---- groups -----------------------------------------------------------------------------

async fn list_groups(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = s
            .security_groups
            .iter()
            .filter(|g| ctx.allowed("get_security_group", &g.project_id))
            .map(|g| render::security_group(&s, g))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "security_groups",
            render::SECURITY_GROUP_ATTRS,
            &[],
            items,
        )
        .map(Json)
    })
}

async fn show_group(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let g = visible_security_group(&ctx, &s, path_uuid(&id, security_group_not_found)?)?;
        Ok(Json(one(
            "security_group",
            render::security_group(&s, &g),
            &uri,
        )))
    })
}

async fn create_group(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_group_inner(ctx, app, body).await)
}

async fn create_group_inner(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "security_group")?;
    let name = input.string("name", 255)?.value().unwrap_or_default();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let stateful = input.boolean("stateful")?.or(true);
    let tags = crate::octavia::tags(&mut input)?
        .value()
        .unwrap_or_default();
    let project_id = input
        .project_id()?
        .unwrap_or_else(|| ctx.project_id.clone());
    input.finish()?;
    if !ctx.allowed("create_security_group", &project_id) {
        return Err(forbidden("create_security_group"));
    }
    let g = SecurityGroup {
        id: Uuid::new_v4(),
        project_id,
        name,
        description,
        stateful,
        tags,
        created_at: now(),
        updated_at: None,
    };
    let id = g.id;
    app.store
        .write(|txn| {
            super::quotas::check(
                &app,
                txn.state(),
                &g.project_id,
                super::quotas::Resource::SecurityGroup,
                1,
            )?;
            for r in default_rules(&g) {
                txn.put(r)?;
            }
            txn.put(g)?;
            Ok::<(), ApiError>(())
        })
        .await?;
    let s = app.store.snapshot();
    let g = visible_security_group(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"security_group": render::security_group(&s, &g)})),
    ))
}

async fn update_group(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(update_group_inner(ctx, app, id, body).await)
}

async fn update_group_inner(
    ctx: RequestContext,
    app: AppState,
    id: String,
    body: Value,
) -> ApiResult<Json<Value>> {
    let id = path_uuid(&id, security_group_not_found)?;
    let mut input = envelope(body, "security_group")?;
    let name = input.string("name", 255)?.update();
    let description = input.string("description", 255)?.update();
    let stateful = input.boolean("stateful")?.update();
    let tags = crate::octavia::tags(&mut input)?.update();
    input.finish()?;
    app.store
        .write(|txn| {
            let s = txn.state();
            let mut g = visible_security_group(&ctx, s, id)?;
            if !ctx.allowed("update_security_group", &g.project_id) {
                return Err(forbidden("update_security_group"));
            }
            if let Some(v) = name {
                g.name = v.unwrap_or_default();
            }
            if let Some(v) = description {
                g.description = v.unwrap_or_default();
            }
            if let Some(v) = stateful {
                let v = v.unwrap_or(true);
                if v != g.stateful && ports_using(s, id).next().is_some() {
                    return Err(conflict(
                        "SecurityGroupInUse",
                        format!(
                            "Security Group {id} is in use by ports; its stateful attribute \
                             cannot change."
                        ),
                    ));
                }
                g.stateful = v;
            }
            if let Some(v) = tags {
                g.tags = v.unwrap_or_default();
            }
            g.updated_at = Some(now());
            txn.put(g)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let g = visible_security_group(&ctx, &s, id)?;
    Ok(Json(
        json!({"security_group": render::security_group(&s, &g)}),
    ))
}

async fn delete_group(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(delete_group_inner(ctx, app, id).await)
}

async fn delete_group_inner(
    ctx: RequestContext,
    app: AppState,
    id: String,
) -> ApiResult<StatusCode> {
    let id = path_uuid(&id, security_group_not_found)?;
    app.store
        .write(|txn| {
            let s = txn.state().clone();
            let g = visible_security_group(&ctx, &s, id)?;
            if !ctx.allowed("delete_security_group", &g.project_id) {
                return Err(forbidden("delete_security_group"));
            }
            if ports_using(&s, id).next().is_some() {
                return Err(conflict(
                    "SecurityGroupInUse",
                    format!("Security Group {id} in use."),
                ));
            }
            // Its rules go with it, and so do other groups' rules naming it
            // as their remote group (Neutron's cascade).
            for r in s.security_group_rules.iter() {
                if r.security_group_id == id || r.remote_group_id == Some(id) {
                    txn.delete::<SecurityGroupRule>(&r.id);
                }
            }
            txn.delete::<SecurityGroup>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- rules -----------------------------------------------------------------------------

async fn list_rules(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = s
            .security_group_rules
            .iter()
            .filter(|r| rule_visible(&ctx, &s, r))
            .map(|r| render::security_group_rule(r))
            .collect();
        list_body(
            &app,
            &ctx,
            &uri,
            "security_group_rules",
            render::SECURITY_GROUP_RULE_ATTRS,
            &[],
            items,
        )
        .map(Json)
    })
}

async fn show_rule(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let r = visible_rule(&ctx, &s, path_uuid(&id, rule_not_found)?)?;
        Ok(Json(one(
            "security_group_rule",
            render::security_group_rule(&r),
            &uri,
        )))
    })
}

async fn create_rule(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(create_rule_inner(ctx, app, body).await)
}

async fn create_rule_inner(
    ctx: RequestContext,
    app: AppState,
    body: Value,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = envelope(body, "security_group_rule")?;
    let group_id = required_attribute(input.uuid("security_group_id")?, "security_group_id")?;
    let direction = parse_direction(input.string("direction", 16)?)?;
    let ethertype = parse_ethertype(input.string("ethertype", 16)?)?;
    let protocol = parse_protocol(input.take("protocol"))?;
    let port_range_min = parse_port(&mut input, "port_range_min")?;
    let port_range_max = parse_port(&mut input, "port_range_max")?;
    let remote_ip_prefix = parse_prefix(input.string("remote_ip_prefix", 64)?)?;
    let remote_group_id = input.uuid("remote_group_id")?.value();
    let description = input
        .string("description", 255)?
        .value()
        .unwrap_or_default();
    let project_id = input.project_id()?;
    only_default(&mut input, "remote_address_group_id", |_| false)?;
    input.finish()?;
    // As for subnets and ports: the create rule first, as for a rule in the
    // caller's (or the named project's) own group; the group itself next.
    if !super::may_create(
        &ctx,
        "create_security_group_rule",
        project_id.as_deref().unwrap_or(&ctx.project_id),
    ) {
        return Err(forbidden("create_security_group_rule"));
    }
    let id = Uuid::new_v4();
    app.store
        .write(|txn| {
            let s = txn.state();
            let g = visible_security_group(&ctx, s, group_id)?;
            let mut target = project_target(project_id.as_deref().unwrap_or(&g.project_id));
            target.insert("security_group:project_id".into(), g.project_id.clone());
            // Neutron: the group's owner adds rules; only an admin names
            // another project for the rule.
            if !ctx.allowed_on("create_security_group_rule", &target)
                || project_id
                    .as_ref()
                    .is_some_and(|p| *p != g.project_id && !ctx.is_admin())
            {
                return Err(forbidden("create_security_group_rule"));
            }
            let rule = SecurityGroupRule {
                id,
                project_id: g.project_id.clone(),
                security_group_id: group_id,
                description,
                direction,
                ethertype,
                protocol,
                port_range_min,
                port_range_max,
                remote_ip_prefix,
                remote_group_id,
                created_at: now(),
                updated_at: None,
            };
            validate_rule(&rule)?;
            if let Some(remote) = remote_group_id {
                visible_security_group(&ctx, s, remote)?;
            }
            let key = rule_key(&rule);
            if let Some(same) = s
                .security_group_rules
                .children(group_id)
                .find(|r| rule_key(r) == key)
            {
                return Err(conflict(
                    "SecurityGroupRuleExists",
                    format!(
                        "Security group rule already exists. Rule id is {}.",
                        same.id
                    ),
                ));
            }
            super::quotas::check(
                &app,
                s,
                &rule.project_id,
                super::quotas::Resource::SecurityGroupRule,
                1,
            )?;
            txn.put(rule)?;
            Ok(())
        })
        .await?;
    let s = app.store.snapshot();
    let r = visible_rule(&ctx, &s, id)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"security_group_rule": render::security_group_rule(&r)})),
    ))
}

async fn delete_rule(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = path_uuid(&id, rule_not_found)?;
            app.store
                .write(|txn| {
                    let s = txn.state();
                    let r = visible_rule(&ctx, s, id)?;
                    if !ctx.allowed_on("delete_security_group_rule", &rule_target(s, &r)) {
                        return Err(forbidden("delete_security_group_rule"));
                    }
                    txn.delete::<SecurityGroupRule>(&id);
                    Ok(())
                })
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: Option<&str>, min: Option<u16>, max: Option<u16>) -> SecurityGroupRule {
        SecurityGroupRule {
            id: Uuid::new_v4(),
            project_id: "p".into(),
            security_group_id: Uuid::new_v4(),
            description: String::new(),
            direction: Direction::Ingress,
            ethertype: EtherType::IPv4,
            protocol: protocol.map(str::to_string),
            port_range_min: min,
            port_range_max: max,
            remote_ip_prefix: None,
            remote_group_id: None,
            created_at: now(),
            updated_at: None,
        }
    }

    fn kind(r: ApiResult<()>) -> &'static str {
        r.map(|_| "ok").unwrap_or_else(|e| e.neutron_type)
    }

    #[test]
    fn protocols() {
        assert_eq!(parse_protocol(Opt::Absent).unwrap(), None);
        assert_eq!(parse_protocol(Opt::Set(json!("any"))).unwrap(), None);
        assert_eq!(
            parse_protocol(Opt::Set(json!("TCP"))).unwrap().as_deref(),
            Some("tcp")
        );
        assert_eq!(
            parse_protocol(Opt::Set(json!(6))).unwrap().as_deref(),
            Some("6")
        );
        assert_eq!(
            parse_protocol(Opt::Set(json!("255"))).unwrap().as_deref(),
            Some("255")
        );
        for bad in [json!("256"), json!("tcpx"), json!(-1), json!(true)] {
            assert_eq!(
                parse_protocol(Opt::Set(bad.clone()))
                    .unwrap_err()
                    .neutron_type,
                "SecurityGroupRuleInvalidProtocol",
                "{bad}"
            );
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            kind(validate_rule(&rule(Some("tcp"), Some(80), Some(80)))),
            "ok"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("6"), Some(1), Some(65535)))),
            "ok"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("tcp"), Some(90), Some(80)))),
            "SecurityGroupInvalidPortRange"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("udp"), None, Some(80)))),
            "SecurityGroupInvalidPortRange"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("tcp"), Some(0), Some(80)))),
            "SecurityGroupInvalidPortValue"
        );
        assert_eq!(
            kind(validate_rule(&rule(None, Some(80), Some(80)))),
            "SecurityGroupProtocolRequiredWithPorts"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("gre"), Some(80), Some(80)))),
            "SecurityGroupInvalidProtocolForPortRange"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("icmp"), Some(8), Some(0)))),
            "ok"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("icmp"), Some(8), None))),
            "ok"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("icmp"), Some(256), None))),
            "SecurityGroupInvalidIcmpValue"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("icmp"), None, Some(0)))),
            "SecurityGroupMissingIcmpType"
        );
        assert_eq!(
            kind(validate_rule(&rule(Some("ipv6-icmp"), None, None))),
            "SecurityGroupEthertypeConflictWithProtocol"
        );
    }

    #[test]
    fn duplicates_compare_protocol_numbers_and_any_prefix() {
        let a = rule(Some("tcp"), Some(80), Some(80));
        let mut b = rule(Some("6"), Some(80), Some(80));
        b.remote_ip_prefix = Some("0.0.0.0/0".parse().unwrap());
        assert_eq!(rule_key(&a), rule_key(&b));
        b.remote_ip_prefix = Some("10.0.0.5/24".parse().unwrap());
        let mut c = a.clone();
        c.remote_ip_prefix = Some("10.0.0.0/24".parse().unwrap());
        assert_eq!(rule_key(&b), rule_key(&c));
        assert_ne!(rule_key(&a), rule_key(&c));
    }
}
