//! Security groups (list, create, show, update, delete) and their rules
//! (list, create, show, delete: Neutron has no update of a rule): Neutron's
//! rule checks (protocols, port ranges, ICMP type/code, CIDR family,
//! duplicates), the two egress rules every new group gets, and the
//! `security_group` / `security_group_rule` quotas.
//!
//! Statera does not create a `default` group per project (Neutron does on a
//! project's first request): a port gets exactly the groups it names.

use super::quotas::{self, NeutronConfig, QuotaResource};
use super::{authorize, conflict, error, forbidden, may_create, visible_security_group};
use crate::auth::{Context, project_target};
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use ipnet::IpNet;
use statera_model::*;
use statera_policy::Target;
use std::fmt::Display;
use std::sync::Arc;
use uuid::Uuid;

/// A security group as a create states it (absent attributes take
/// Neutron's defaults).
pub struct NewSecurityGroup {
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub stateful: Option<bool>,
    pub tags: Option<Vec<String>>,
}

/// What a group's update states.
pub struct SecurityGroupFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub stateful: Opt<bool>,
    pub tags: Opt<Vec<String>>,
}

/// A rule as a create states it, its values already read (see [`protocol`],
/// [`ethertype`]).
pub struct NewRule {
    pub security_group_id: Uuid,
    pub direction: Direction,
    /// IPv4 when not stated.
    pub ethertype: Option<EtherType>,
    /// `None`: every protocol.
    pub protocol: Option<String>,
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    pub remote_ip_prefix: Option<IpNet>,
    pub remote_group_id: Option<Uuid>,
    pub description: Option<String>,
    /// The project asked for (only an admin names another than the group's).
    pub project_id: Option<String>,
}

/// `Security group rule <id> does not exist` (404).
pub fn rule_not_found(id: impl Display) -> ServiceError {
    error(
        Fault::NotFound,
        "SecurityGroupRuleNotFound",
        format!("Security group rule {id} does not exist"),
    )
}

/// A 400 with Neutron's exception name.
fn invalid(exception: &'static str, message: impl Into<String>) -> ServiceError {
    error(Fault::Invalid, exception, message)
}

// ---- visibility and policy -----------------------------------------------------------------

/// A rule's policy target: its project and its group's
/// (`security_group:project_id`).
fn rule_target(s: &impl StoreRead, r: &SecurityGroupRule) -> Target {
    let mut t = project_target(&r.project_id);
    let owner = s
        .get::<SecurityGroup>(&r.security_group_id)
        .map_or_else(|| r.project_id.clone(), |g| g.project_id.clone());
    t.insert("security_group:project_id".into(), owner);
    t
}

/// `get_security_group_rule` (the group's owner reads its rules).
fn rule_visible(ctx: &Context, s: &impl StoreRead, r: &SecurityGroupRule) -> bool {
    ctx.allowed_on("get_security_group_rule", &rule_target(s, r))
}

/// The rule `id`, visible to the caller, else 404 `SecurityGroupRuleNotFound`.
fn visible_rule(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<SecurityGroupRule>> {
    s.get::<SecurityGroupRule>(&id)
        .filter(|r| rule_visible(ctx, s, r))
        .ok_or_else(|| rule_not_found(id))
}

/// Whether a port uses group `id`.
fn in_use(s: &impl StoreRead, id: Uuid) -> bool {
    s.list_by_project::<Port>(None)
        .iter()
        .any(|p| p.security_groups.contains(&id))
}

// ---- rule values ---------------------------------------------------------------------------

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
pub fn protocol_number(p: &str) -> Option<u8> {
    match p.to_ascii_lowercase().as_str() {
        "dccp" => Some(33),
        "ipip" => Some(4),
        other => SecurityGroupRule::protocol_number(other),
    }
}

/// A rule's protocol as given (trimmed; a JSON number as its decimal
/// text): a name, a number 0–255, or empty/`any` for every protocol
/// (`None`). Names are kept in lower case, numbers as their decimal string
/// (Neutron's storage); anything else is 400 `SecurityGroupRuleInvalidProtocol`.
pub fn protocol(raw: &str) -> ServiceResult<Option<String>> {
    let unsupported = || {
        invalid(
            "SecurityGroupRuleInvalidProtocol",
            format!(
                "Security group rule protocol {raw} not supported. Only protocol values [{}] \
                 and integer representations [0 to 255] are supported.",
                PROTOCOL_NAMES
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    if raw.is_empty() || raw.eq_ignore_ascii_case("any") {
        return Ok(None);
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return match raw.parse::<u16>() {
            Ok(n) if n <= 255 => Ok(Some(n.to_string())),
            _ => Err(unsupported()),
        };
    }
    let lower = raw.to_ascii_lowercase();
    if PROTOCOL_NAMES.contains(&lower.as_str()) && protocol_number(&lower).is_some() {
        Ok(Some(lower))
    } else {
        Err(unsupported())
    }
}

/// A rule's ethertype as given (either case), else 400
/// `SecurityGroupRuleInvalidEtherType`.
pub fn ethertype(raw: &str) -> ServiceResult<EtherType> {
    match raw.to_ascii_lowercase().as_str() {
        "ipv4" => Ok(EtherType::IPv4),
        "ipv6" => Ok(EtherType::IPv6),
        _ => Err(invalid(
            "SecurityGroupRuleInvalidEtherType",
            format!(
                "Security group rule for ethertype '{raw}' not supported. Allowed values are \
                 ['IPv4', 'IPv6']."
            ),
        )),
    }
}

fn ethertype_name(e: EtherType) -> &'static str {
    match e {
        EtherType::IPv4 => "IPv4",
        EtherType::IPv6 => "IPv6",
    }
}

/// Neutron's checks of one rule, in Neutron's order.
fn validate_rule(r: &SecurityGroupRule) -> ServiceResult<()> {
    let number = r.protocol.as_deref().and_then(protocol_number);
    if let (Some(p), Some(n)) = (&r.protocol, number)
        && r.ethertype == EtherType::IPv4
        && IPV6_PROTOCOLS.contains(&n)
    {
        return Err(invalid(
            "SecurityGroupEthertypeConflictWithProtocol",
            format!("Invalid ethertype IPv4 for protocol {p}."),
        ));
    }
    if r.remote_ip_prefix.is_some() && r.remote_group_id.is_some() {
        return Err(invalid(
            "SecurityGroupRemoteGroupAndRemoteIpPrefix",
            "Only remote_ip_prefix or remote_group_id may be provided.",
        ));
    }
    if let Some(net) = r.remote_ip_prefix {
        let v4 = net.addr().is_ipv4();
        if v4 != (r.ethertype == EtherType::IPv4) {
            return Err(invalid(
                "SecurityGroupRuleParameterConflict",
                format!(
                    "Conflicting value ethertype {} for CIDR {net}",
                    ethertype_name(r.ethertype)
                ),
            ));
        }
    }
    let (min, max) = (r.port_range_min, r.port_range_max);
    if min.is_none() && max.is_none() {
        return Ok(());
    }
    let Some(n) = number else {
        return Err(invalid(
            "SecurityGroupProtocolRequiredWithPorts",
            "Must also specify protocol if port range is given.",
        ));
    };
    if PORT_PROTOCOLS.contains(&n) {
        if min == Some(0) || max == Some(0) {
            return Err(invalid(
                "SecurityGroupInvalidPortValue",
                "Invalid value for port 0.",
            ));
        }
        match (min, max) {
            (Some(a), Some(b)) if a <= b => Ok(()),
            _ => Err(invalid(
                "SecurityGroupInvalidPortRange",
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
            )),
        }
    } else if ICMP_PROTOCOLS.contains(&n) {
        for (attr, field, v) in [
            ("port_range_min", "type", min),
            ("port_range_max", "code", max),
        ] {
            if let Some(v) = v
                && v > 255
            {
                return Err(invalid(
                    "SecurityGroupInvalidIcmpValue",
                    format!("Invalid value for ICMP {field} ({attr}) {v}. It must be 0 to 255."),
                ));
            }
        }
        if let (None, Some(code)) = (min, max) {
            return Err(invalid(
                "SecurityGroupMissingIcmpType",
                format!(
                    "ICMP code (port-range-max) {code} is provided but ICMP type \
                     (port-range-min) is missing."
                ),
            ));
        }
        Ok(())
    } else {
        Err(invalid(
            "SecurityGroupInvalidProtocolForPortRange",
            format!(
                "Invalid protocol {} for port range, only supported for TCP, UDP, UDPLITE, \
                 SCTP and DCCP.",
                r.protocol.as_deref().unwrap_or_default()
            ),
        ))
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

// ---- groups --------------------------------------------------------------------------------

/// The groups the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<SecurityGroup>>> {
    Ok(s.list_by_project::<SecurityGroup>(None)
        .into_iter()
        .filter(|g| ctx.allowed("get_security_group", &g.project_id))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<SecurityGroup>> {
    visible_security_group(ctx, s, id)
}

/// A new group with its two egress rules (which do not count against the
/// rule quota, as in Neutron).
pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewSecurityGroup,
) -> ServiceResult<Uuid> {
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    authorize(ctx, "create_security_group", &project_id)?;
    quotas::check(cfg, txn, &project_id, QuotaResource::SecurityGroup, 1)?;
    let g = SecurityGroup {
        id: Uuid::new_v4(),
        project_id,
        name: new.name.unwrap_or_default(),
        description: new.description.unwrap_or_default(),
        stateful: new.stateful.unwrap_or(true),
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    let id = g.id;
    for r in default_rules(&g) {
        txn.put(r)?;
    }
    txn.put(g)?;
    Ok(id)
}

pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    f: SecurityGroupFields,
) -> ServiceResult<()> {
    let mut g = (*visible_security_group(ctx, txn, id)?).clone();
    authorize(ctx, "update_security_group", &g.project_id)?;
    if let Some(v) = f.name.update() {
        g.name = v.unwrap_or_default();
    }
    if let Some(v) = f.description.update() {
        g.description = v.unwrap_or_default();
    }
    if let Some(v) = f.stateful.update() {
        let v = v.unwrap_or(true);
        if v != g.stateful && in_use(txn, id) {
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
    if let Some(v) = f.tags.update() {
        g.tags = v.unwrap_or_default();
    }
    g.updated_at = Some(now());
    txn.put(g)?;
    Ok(())
}

/// Deletes group `id` with its rules, and other groups' rules naming it as
/// their remote group (Neutron's cascade); refused while a port uses it.
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let g = visible_security_group(ctx, txn, id)?;
    authorize(ctx, "delete_security_group", &g.project_id)?;
    if in_use(txn, id) {
        return Err(conflict(
            "SecurityGroupInUse",
            format!("Security Group {id} in use."),
        ));
    }
    for r in txn.list_by_project::<SecurityGroupRule>(None) {
        if r.security_group_id == id || r.remote_group_id == Some(id) {
            txn.delete::<SecurityGroupRule>(&r.id);
        }
    }
    txn.delete::<SecurityGroup>(&id);
    Ok(())
}

// ---- rules ---------------------------------------------------------------------------------

/// The rules the caller sees.
pub fn list_rules(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<SecurityGroupRule>>> {
    Ok(s.list_by_project::<SecurityGroupRule>(None)
        .into_iter()
        .filter(|r| rule_visible(ctx, s, r))
        .collect())
}

pub fn show_rule(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<SecurityGroupRule>> {
    visible_rule(ctx, s, id)
}

/// A new rule in its group, in Neutron's order of checks: the create rule
/// as for the caller's (or the named project's) own group, the group, the
/// policy on the group, the rule's values, its remote group, duplicates,
/// the quota.
pub fn create_rule(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewRule,
) -> ServiceResult<Uuid> {
    // As for subnets and ports: the create rule first, as for a rule in the
    // caller's (or the named project's) own group; the group itself next.
    if !may_create(
        ctx,
        "create_security_group_rule",
        new.project_id
            .as_deref()
            .unwrap_or_else(|| ctx.caller.project()),
    ) {
        return Err(forbidden("create_security_group_rule"));
    }
    let group_id = new.security_group_id;
    let g = visible_security_group(ctx, txn, group_id)?;
    let mut target = project_target(new.project_id.as_deref().unwrap_or(&g.project_id));
    target.insert("security_group:project_id".into(), g.project_id.clone());
    // Neutron: the group's owner adds rules; only an admin names another
    // project for the rule.
    if !ctx.allowed_on("create_security_group_rule", &target)
        || new
            .project_id
            .as_ref()
            .is_some_and(|p| *p != g.project_id && !ctx.is_admin())
    {
        return Err(forbidden("create_security_group_rule"));
    }
    let rule = SecurityGroupRule {
        id: Uuid::new_v4(),
        project_id: g.project_id.clone(),
        security_group_id: group_id,
        description: new.description.unwrap_or_default(),
        direction: new.direction,
        ethertype: new.ethertype.unwrap_or(EtherType::IPv4),
        protocol: new.protocol,
        port_range_min: new.port_range_min,
        port_range_max: new.port_range_max,
        remote_ip_prefix: new.remote_ip_prefix,
        remote_group_id: new.remote_group_id,
        created_at: now(),
        updated_at: None,
    };
    validate_rule(&rule)?;
    if let Some(remote) = rule.remote_group_id {
        visible_security_group(ctx, txn, remote)?;
    }
    let key = rule_key(&rule);
    if let Some(same) = txn
        .children::<SecurityGroupRule>(group_id)
        .iter()
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
    quotas::check(
        cfg,
        txn,
        &rule.project_id,
        QuotaResource::SecurityGroupRule,
        1,
    )?;
    let id = rule.id;
    txn.put(rule)?;
    Ok(id)
}

pub fn delete_rule(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let r = visible_rule(ctx, txn, id)?;
    if !ctx.allowed_on("delete_security_group_rule", &rule_target(txn, &r)) {
        return Err(forbidden("delete_security_group_rule"));
    }
    txn.delete::<SecurityGroupRule>(&id);
    Ok(())
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

    fn kind(r: ServiceResult<()>) -> &'static str {
        match r {
            Ok(()) => "ok",
            Err(ServiceError::Neutron { exception, .. }) => exception,
            Err(e) => panic!("not a Neutron error: {e}"),
        }
    }

    #[test]
    fn protocols() {
        assert_eq!(protocol("").unwrap(), None);
        assert_eq!(protocol("any").unwrap(), None);
        assert_eq!(protocol("TCP").unwrap().as_deref(), Some("tcp"));
        assert_eq!(protocol("6").unwrap().as_deref(), Some("6"));
        assert_eq!(protocol("006").unwrap().as_deref(), Some("6"));
        assert_eq!(protocol("255").unwrap().as_deref(), Some("255"));
        for bad in ["256", "tcpx", "-1", "true"] {
            assert_eq!(
                kind(protocol(bad).map(drop)),
                "SecurityGroupRuleInvalidProtocol",
                "{bad}"
            );
        }
    }

    #[test]
    fn ethertypes() {
        assert_eq!(ethertype("IPv6").unwrap(), EtherType::IPv6);
        assert_eq!(ethertype("ipv4").unwrap(), EtherType::IPv4);
        assert_eq!(
            kind(ethertype("IPv5").map(drop)),
            "SecurityGroupRuleInvalidEtherType"
        );
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
