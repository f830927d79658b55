//! `/security-groups` (list, create, show, update, delete) and
//! `/security-group-rules` (list, create, show, delete: no update, as in
//! Neutron) on the wire: reading requests, rendering; the operations (rule
//! checks, the default egress rules, the quotas) are
//! `statera_service::neutron::security_groups`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use crate::input::Opt;
use ipnet::IpNet;
use statera_service::neutron::security_groups::{
    self as service, NewRule, NewSecurityGroup, SecurityGroupFields,
};
use statera_service::{Context, ServiceError, ServiceResult};
use std::convert::Infallible;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(resource::routes::<SecurityGroups>())
        .merge(resource::routes::<SecurityGroupRules>())
}

/// `/security-groups` in the shape every Neutron resource shares ([`resource`]).
pub struct SecurityGroups;

impl Resource for SecurityGroups {
    type Model = SecurityGroup;
    type New = NewSecurityGroup;
    type Fields = SecurityGroupFields;
    const ENVELOPE: &'static str = "security_group";
    const PLURAL: &'static str = "security_groups";
    const PATH: &'static str = "security-groups";
    const ATTRS: &'static [&'static str] = render::SECURITY_GROUP_ATTRS;

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::security_group_not_found(raw)
    }
    fn render(s: &State, g: &SecurityGroup) -> Object {
        render::security_group(s, g)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<SecurityGroup>>> {
        service::list(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<SecurityGroup>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewSecurityGroup> {
        Ok(NewSecurityGroup {
            name: input.string("name", 255)?.value(),
            description: input.string("description", 255)?.value(),
            stateful: input.boolean("stateful")?.value(),
            tags: crate::octavia::tags(input)?.value(),
            project_id: input.project_id()?,
        })
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewSecurityGroup,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<SecurityGroupFields> {
        Ok(SecurityGroupFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            stateful: input.boolean("stateful")?,
            tags: crate::octavia::tags(input)?,
        })
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: SecurityGroupFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// `/security-group-rules`: created and deleted, never updated.
pub struct SecurityGroupRules;

impl Resource for SecurityGroupRules {
    type Model = SecurityGroupRule;
    type New = NewRule;
    type Fields = Infallible;
    const ENVELOPE: &'static str = "security_group_rule";
    const PLURAL: &'static str = "security_group_rules";
    const PATH: &'static str = "security-group-rules";
    const ATTRS: &'static [&'static str] = render::SECURITY_GROUP_RULE_ATTRS;
    const UPDATABLE: bool = false;

    fn missing(raw: &str) -> ServiceError {
        service::rule_not_found(raw)
    }
    fn render(_: &State, r: &SecurityGroupRule) -> Object {
        render::security_group_rule(r)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<SecurityGroupRule>>> {
        service::list_rules(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<SecurityGroupRule>> {
        service::show_rule(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewRule> {
        let security_group_id =
            required_attribute(input.uuid("security_group_id")?, "security_group_id")?;
        let direction = parse_direction(input.string("direction", 16)?)?;
        let ethertype = match input.string("ethertype", 16)?.value() {
            Some(raw) => Some(service::ethertype(&raw)?),
            None => None,
        };
        let protocol = parse_protocol(input.take("protocol"))?;
        let port_range_min = parse_port(input, "port_range_min")?;
        let port_range_max = parse_port(input, "port_range_max")?;
        let remote_ip_prefix = parse_prefix(input.string("remote_ip_prefix", 64)?)?;
        let remote_group_id = input.uuid("remote_group_id")?.value();
        let description = input.string("description", 255)?.value();
        let project_id = input.project_id()?;
        only_default(input, "remote_address_group_id", |_| false)?;
        Ok(NewRule {
            security_group_id,
            direction,
            ethertype,
            protocol,
            port_range_min,
            port_range_max,
            remote_ip_prefix,
            remote_group_id,
            description,
            project_id,
        })
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewRule,
    ) -> ServiceResult<Uuid> {
        service::create_rule(ctx, txn, settings, new)
    }
    fn parse_update(_: &mut Input) -> ApiResult<Infallible> {
        resource::not_updatable()
    }
    fn update(
        _: &Context,
        _: &mut Txn,
        _: &ApiSettings,
        _: Uuid,
        fields: Infallible,
    ) -> ServiceResult<()> {
        match fields {}
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete_rule(ctx, txn, id)
    }
}

// ---- reading a rule ------------------------------------------------------------------------

/// A protocol as given: a name, a number 0–255 (as a number or a string),
/// or `any`/null for every protocol ([`service::protocol`]).
fn parse_protocol(v: Opt<Value>) -> ApiResult<Option<String>> {
    let raw = match v {
        Opt::Absent | Opt::Null => return Ok(None),
        Opt::Set(Value::String(s)) => s.trim().to_string(),
        Opt::Set(Value::Number(n)) => n.to_string(),
        Opt::Set(other) => other.to_string(),
    };
    Ok(service::protocol(&raw)?)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_as_json() {
        assert_eq!(parse_protocol(Opt::Absent).unwrap(), None);
        assert_eq!(parse_protocol(Opt::Null).unwrap(), None);
        assert_eq!(parse_protocol(Opt::Set(json!("any"))).unwrap(), None);
        assert_eq!(
            parse_protocol(Opt::Set(json!(" TCP "))).unwrap().as_deref(),
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
}
