//! `/floatingips` on the wire: reading requests, rendering; the operations
//! (allocation on the external network, association with a port's fixed IP,
//! the quota) are `statera_service::neutron::floatingips`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use statera_service::neutron::floatingips::{self as service, FloatingIpFields, NewFloatingIp};
use statera_service::{Context, ServiceError, ServiceResult};
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    resource::routes::<FloatingIps>()
}

/// `/floatingips` in the shape every Neutron resource shares ([`resource`]).
pub struct FloatingIps;

impl Resource for FloatingIps {
    type Model = FloatingIp;
    type New = NewFloatingIp;
    type Fields = FloatingIpFields;
    const ENVELOPE: &'static str = "floatingip";
    const PLURAL: &'static str = "floatingips";
    const ATTRS: &'static [&'static str] = render::FLOATINGIP_ATTRS;

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::floating_ip_not_found(raw)
    }
    fn render(s: &State, f: &FloatingIp) -> Object {
        render::floating_ip(s, f)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<FloatingIp>>> {
        service::list(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<FloatingIp>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewFloatingIp> {
        let new = NewFloatingIp {
            floating_network_id: required_attribute(
                input.uuid("floating_network_id")?,
                "floating_network_id",
            )?,
            floating_ip_address: input.ip("floating_ip_address")?.value(),
            subnet_id: input.uuid("subnet_id")?.value(),
            port_id: input.uuid("port_id")?.value(),
            fixed_ip_address: input.ip("fixed_ip_address")?.value(),
            description: input.string("description", 255)?.value(),
            tags: crate::octavia::tags(input)?.value(),
            project_id: input.project_id()?,
        };
        fixed_attributes(input)?;
        Ok(new)
    }
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: NewFloatingIp,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<FloatingIpFields> {
        let fields = FloatingIpFields {
            port_id: input.uuid("port_id")?,
            fixed_ip_address: input.ip("fixed_ip_address")?.value(),
            description: input.string("description", 255)?,
            tags: crate::octavia::tags(input)?,
            restated: Vec::new(),
            rejected: None,
        };
        fixed_attributes(input)?;
        Ok(fields)
    }
    /// The floating IP's network, address and project may be restated; they
    /// and unknown attributes are answered once the floating IP is found.
    fn finish_update(
        mut fields: FloatingIpFields,
        mut input: Input,
    ) -> ApiResult<FloatingIpFields> {
        fields.restated = resource::restated(
            &mut input,
            &[
                "floating_network_id",
                "floating_ip_address",
                "project_id",
                "tenant_id",
            ],
        );
        fields.rejected = resource::leftover(input);
        Ok(fields)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: FloatingIpFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// The attributes Statera shows with one fixed value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    only_default(input, "qos_policy_id", |_| false)?;
    only_default(input, "dns_domain", |v| v == "")?;
    only_default(input, "dns_name", |v| v == "")?;
    Ok(())
}
