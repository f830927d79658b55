//! `/ports` on the wire: reading requests (fixed IPs, MAC addresses, the
//! attributes Statera does not model), the `fixed_ips` list filter,
//! rendering; the operations are `statera_service::neutron::ports`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use crate::input::Opt;
use statera_service::neutron::ports::{self as service, NewPort, PortFields};
use statera_service::{Context, ServiceError, ServiceResult};
use std::sync::Arc;

pub(crate) use statera_service::neutron::ports::FixedIpRequest;

pub fn routes() -> Router<AppState> {
    resource::routes::<Ports>()
}

/// `/ports` in the shape every Neutron resource shares ([`resource`]).
pub struct Ports;

impl Resource for Ports {
    type Model = Port;
    type New = NewPort;
    type Fields = PortFields;
    const ENVELOPE: &'static str = "port";
    const PLURAL: &'static str = "ports";
    const ATTRS: &'static [&'static str] = render::PORT_ATTRS;
    const IGNORED: &'static [&'static str] = &["fixed_ips"];

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::not_found("Port", raw, "PortNotFound")
    }
    fn render(_: &State, p: &Port) -> Object {
        render::port(p)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<Port>>> {
        service::list(ctx, s)
    }
    fn select(query: &Query, items: Vec<Arc<Port>>) -> ApiResult<Vec<Arc<Port>>> {
        let wanted = FixedIpFilter::parse(query)?;
        Ok(items.into_iter().filter(|p| wanted.matches(p)).collect())
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Port>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewPort> {
        let network_id = required_attribute(input.uuid("network_id")?, "network_id")?;
        let name = input.string("name", 255)?.value();
        let description = input.string("description", 255)?.value();
        let admin_state_up = input.boolean("admin_state_up")?.value();
        let mac_address = match input.string("mac_address", 64)?.value() {
            Some(m) => Some(parse_mac(&m)?),
            None => None,
        };
        let fixed_ips = fixed_ip_list(input, "fixed_ips")?.value();
        let device_owner = input.string("device_owner", 255)?.value();
        let device_id = input.string("device_id", 255)?.value();
        let security_groups = input.uuid_list("security_groups")?.value();
        let port_security_enabled = input.boolean("port_security_enabled")?.value();
        let tags = crate::octavia::tags(input)?.value();
        let project_id = input.project_id()?;
        fixed_attributes(input)?;
        Ok(NewPort {
            network_id,
            project_id,
            name,
            description,
            admin_state_up,
            mac_address,
            fixed_ips,
            device_owner,
            device_id,
            security_groups,
            port_security_enabled,
            tags,
        })
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewPort,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<PortFields> {
        let fields = PortFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            device_owner: input.string("device_owner", 255)?,
            device_id: input.string("device_id", 255)?,
            security_groups: input.uuid_list("security_groups")?,
            port_security_enabled: input.boolean("port_security_enabled")?,
            tags: crate::octavia::tags(input)?,
            fixed_ips: fixed_ip_list(input, "fixed_ips")?,
        };
        fixed_attributes(input)?;
        Ok(fields)
    }
    /// A host address asked for is refused first; then the port must be one
    /// the caller sees, and its immutable attributes may only be restated.
    fn check_update(
        ctx: &Context,
        s: &State,
        settings: &ApiSettings,
        id: Uuid,
        fields: &PortFields,
        input: &mut Input,
    ) -> ApiResult<()> {
        service::check_update_addresses(settings, ctx, fields)?;
        let old = service::show(ctx, s, id)?;
        unchanged(input, "network_id", &old.network_id.to_string())?;
        unchanged(input, "project_id", &old.project_id)?;
        unchanged(input, "tenant_id", &old.project_id)?;
        unchanged(input, "mac_address", &old.mac_address)?;
        Ok(())
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        f: PortFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, settings, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

// ---- MAC addresses --------------------------------------------------------

/// A unicast MAC in `aa:bb:cc:dd:ee:ff` or `aa-bb-…` form, normalised to
/// lower case with colons.
pub(crate) fn parse_mac(raw: &str) -> ApiResult<String> {
    let bad = || invalid_field("mac_address", format!("'{raw}' is not a valid MAC address"));
    let parts: Vec<&str> = raw.trim().split([':', '-']).collect();
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut bytes = [0u8; 6];
    for (b, part) in bytes.iter_mut().zip(&parts) {
        if part.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(part, 16).map_err(|_| bad())?;
    }
    // All zeros, and multicast/broadcast addresses, name no interface.
    if bytes == [0; 6] || bytes[0] & 1 == 1 {
        return Err(bad());
    }
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

// ---- fixed IPs ----------------------------------------------------------------

/// A list of `{subnet_id, ip_address}` entries under `key`.
pub(crate) fn fixed_ip_list(input: &mut Input, key: &str) -> ApiResult<Opt<Vec<FixedIpRequest>>> {
    let items = match input.list(key)? {
        Opt::Set(items) => items,
        Opt::Null => return Ok(Opt::Null),
        Opt::Absent => return Ok(Opt::Absent),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let mut f = Input::from_value(item, key)?;
        let subnet_id = f.uuid("subnet_id")?.value();
        let ip_address = f.ip("ip_address")?.value();
        f.finish()?;
        if subnet_id.is_none() && ip_address.is_none() {
            return Err(invalid_field(
                key,
                "each entry needs a subnet_id or an ip_address",
            ));
        }
        out.push(FixedIpRequest {
            subnet_id,
            ip_address,
        });
    }
    Ok(Opt::Set(out))
}

// ---- request attributes ---------------------------------------------------------

/// The attributes Statera shows with one fixed value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    let empty_list = |v: &Value| v.as_array().is_some_and(|a| a.is_empty());
    only_default(input, "binding:vnic_type", |v| v == "normal")?;
    only_default(input, "binding:host_id", |v| v == "")?;
    only_default(input, "binding:profile", |v| {
        v.as_object().is_some_and(|o| o.is_empty())
    })?;
    only_default(input, "allowed_address_pairs", empty_list)?;
    only_default(input, "extra_dhcp_opts", empty_list)?;
    only_default(input, "qos_policy_id", |_| false)?;
    Ok(())
}

/// An immutable attribute may be restated, not changed.
fn unchanged(input: &mut Input, key: &str, current: &str) -> ApiResult<()> {
    match input.take(key) {
        Opt::Absent => Ok(()),
        Opt::Set(v) if v.as_str().is_some_and(|s| s.eq_ignore_ascii_case(current)) => Ok(()),
        _ => Err(
            ApiError::bad_request(format!("Cannot update read-only attribute {key}"))
                .neutron("HTTPBadRequest"),
        ),
    }
}

// ---- list filter ----------------------------------------------------------------

/// `?fixed_ips=ip_address=…&fixed_ips=subnet_id=…` (what `openstack port
/// list --fixed-ip` sends): values of one kind are alternatives, kinds combine.
#[derive(Default)]
struct FixedIpFilter {
    ips: Vec<String>,
    subnets: Vec<String>,
    ip_substrings: Vec<String>,
}

impl FixedIpFilter {
    fn parse(q: &Query) -> ApiResult<FixedIpFilter> {
        let mut f = FixedIpFilter::default();
        for (k, v) in &q.pairs {
            if k != "fixed_ips" {
                continue;
            }
            match v.split_once('=') {
                Some(("ip_address", x)) => f.ips.push(x.to_string()),
                Some(("subnet_id", x)) => f.subnets.push(x.to_string()),
                Some(("ip_address_substr", x)) => f.ip_substrings.push(x.to_string()),
                _ => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid fixed_ips filter '{v}': expected ip_address=, subnet_id= or \
                         ip_address_substr="
                    ))
                    .neutron("HTTPBadRequest"));
                }
            }
        }
        Ok(f)
    }

    fn matches(&self, p: &Port) -> bool {
        let ips: Vec<String> = p
            .fixed_ips
            .iter()
            .map(|f| f.ip_address.to_string())
            .collect();
        (self.ips.is_empty() || ips.iter().any(|i| self.ips.contains(i)))
            && (self.subnets.is_empty()
                || p.fixed_ips
                    .iter()
                    .any(|f| self.subnets.contains(&f.subnet_id.to_string())))
            && (self.ip_substrings.is_empty()
                || ips
                    .iter()
                    .any(|i| self.ip_substrings.iter().any(|x| i.contains(x.as_str()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses() {
        assert_eq!(parse_mac("FA:16:3E:00:11:22").unwrap(), "fa:16:3e:00:11:22");
        assert_eq!(parse_mac("fa-16-3e-00-11-22").unwrap(), "fa:16:3e:00:11:22");
        for bad in [
            "",
            "fa:16:3e:00:11",
            "fa:16:3e:00:11:22:33",
            "fa:16:3e:00:11:2",
            "fa:16:3e:00:11:zz",
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "ff:ff:ff:ff:ff:ff",
        ] {
            assert!(parse_mac(bad).is_err(), "{bad}");
        }
    }
}
