//! `/networks` on the wire: reading requests, rendering; the operations are
//! `statera_service::neutron::networks`.

use super::resource::{self, Resource};
use super::*;
use crate::ApiSettings;
use statera_service::neutron::networks::{self as service, NetworkFields, NewNetwork};
use statera_service::{Context, ServiceError, ServiceResult};
use std::sync::Arc;

pub fn routes() -> Router<AppState> {
    resource::routes::<Networks>()
}

/// `/networks` in the shape every Neutron resource shares ([`resource`]).
pub struct Networks;

impl Resource for Networks {
    type Model = Network;
    type New = NewNetwork;
    type Fields = NetworkFields;
    const ENVELOPE: &'static str = "network";
    const PLURAL: &'static str = "networks";
    const ATTRS: &'static [&'static str] = render::NETWORK_ATTRS;

    fn missing(raw: &str) -> ServiceError {
        statera_service::neutron::not_found("Network", raw, "NetworkNotFound")
    }
    fn render(s: &State, n: &Network) -> Object {
        render::network(s, n)
    }
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<Network>>> {
        service::list(ctx, s)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Network>> {
        service::show(ctx, s, id)
    }
    fn parse_create(input: &mut Input) -> ApiResult<NewNetwork> {
        let new = NewNetwork {
            name: input.string("name", 255)?.value(),
            description: input.string("description", 255)?.value(),
            admin_state_up: input.boolean("admin_state_up")?.value(),
            shared: input.boolean("shared")?.value(),
            external: input.boolean("router:external")?.value(),
            mtu: input.int("mtu", 68, 65_535)?.value().map(|v| v as u32),
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
        new: NewNetwork,
    ) -> ServiceResult<Uuid> {
        service::create(ctx, txn, settings, new)
    }
    fn parse_update(input: &mut Input) -> ApiResult<NetworkFields> {
        let fields = NetworkFields {
            name: input.string("name", 255)?,
            description: input.string("description", 255)?,
            admin_state_up: input.boolean("admin_state_up")?,
            shared: input.boolean("shared")?,
            external: input.boolean("router:external")?,
            mtu: input.int("mtu", 68, 65_535)?.map(|v| v as u32),
            tags: crate::octavia::tags(input)?,
        };
        fixed_attributes(input)?;
        Ok(fields)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        id: Uuid,
        f: NetworkFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, id, f)
    }
    fn delete(ctx: &Context, txn: &mut Txn, _: &ApiSettings, id: Uuid) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// The attributes Statera shows with one fixed value; a request may only
/// restate that value.
fn fixed_attributes(input: &mut Input) -> ApiResult<()> {
    only_default(input, "port_security_enabled", |v| {
        crate::input::parse_bool(v) == Some(true)
    })?;
    only_default(input, "availability_zone_hints", |v| {
        v.as_array().is_some_and(|a| a.is_empty())
    })?;
    only_default(input, "provider:network_type", |v| v == "local")?;
    only_default(input, "provider:physical_network", |_| false)?;
    only_default(input, "provider:segmentation_id", |_| false)?;
    only_default(input, "qos_policy_id", |_| false)?;
    only_default(input, "is_default", |v| {
        crate::input::parse_bool(v) == Some(false)
    })?;
    Ok(())
}
