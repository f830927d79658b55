//! Networks: list, create, show, update, delete.

use super::quotas::{self, NeutronConfig, QuotaResource};
use super::{authorize, conflict, forbidden, lb_user, network_visible, visible_network};
use crate::auth::Context;
use crate::error::ServiceResult;
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// A network as a create states it (absent attributes take Neutron's defaults).
pub struct NewNetwork {
    /// The project asked for, else the caller's.
    pub project_id: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub admin_state_up: Option<bool>,
    pub shared: Option<bool>,
    pub external: Option<bool>,
    pub mtu: Option<u32>,
    pub tags: Option<Vec<String>>,
}

/// What an update states.
pub struct NetworkFields {
    pub name: Opt<String>,
    pub description: Opt<String>,
    pub admin_state_up: Opt<bool>,
    pub shared: Opt<bool>,
    pub external: Opt<bool>,
    pub mtu: Opt<u32>,
    pub tags: Opt<Vec<String>>,
}

/// Ports Neutron removes by itself when their network goes.
fn auto_deleted(p: &Port) -> bool {
    p.device_owner == "network:dhcp"
}

/// The networks the caller sees.
pub fn list(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<Network>>> {
    Ok(s.list_by_project::<Network>(None)
        .into_iter()
        .filter(|n| network_visible(ctx, n))
        .collect())
}

pub fn show(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Network>> {
    visible_network(ctx, s, id)
}

pub fn create(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    cfg: &(impl NeutronConfig + ?Sized),
    new: NewNetwork,
) -> ServiceResult<Uuid> {
    let project_id = new
        .project_id
        .unwrap_or_else(|| ctx.caller.project().to_string());
    let shared = new.shared.unwrap_or(false);
    let external = new.external.unwrap_or(false);
    authorize(ctx, "create_network", &project_id)?;
    if shared {
        authorize(ctx, "create_network:shared", &project_id)?;
    }
    if external {
        authorize(ctx, "create_network:router:external", &project_id)?;
    }
    quotas::check(cfg, txn, &project_id, QuotaResource::Network, 1)?;
    let n = Network {
        id: Uuid::new_v4(),
        project_id,
        name: new.name.unwrap_or_default(),
        description: new.description.unwrap_or_default(),
        admin_state_up: new.admin_state_up.unwrap_or(true),
        shared,
        external,
        mtu: new.mtu.unwrap_or(1500),
        tags: new.tags.unwrap_or_default(),
        created_at: now(),
        updated_at: None,
    };
    let id = n.id;
    txn.put(n)?;
    Ok(id)
}

pub fn update(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    f: NetworkFields,
) -> ServiceResult<()> {
    let mut n = (*visible_network(ctx, txn, id)?).clone();
    authorize(ctx, "update_network", &n.project_id)?;
    if let Some(v) = f.name.update() {
        n.name = v.unwrap_or_default();
    }
    if let Some(v) = f.description.update() {
        n.description = v.unwrap_or_default();
    }
    if let Some(v) = f.admin_state_up.update() {
        n.admin_state_up = v.unwrap_or(true);
    }
    if let Some(v) = f.shared.update() {
        let v = v.unwrap_or(false);
        if v != n.shared && !ctx.allowed("update_network:shared", &n.project_id) {
            return Err(forbidden("update_network:shared"));
        }
        let foreign = txn
            .children::<Port>(id)
            .iter()
            .any(|p| p.project_id != n.project_id)
            || txn
                .children::<Subnet>(id)
                .iter()
                .any(|x| x.project_id != n.project_id);
        if !v && foreign {
            return Err(conflict(
                "InvalidSharedSetting",
                format!(
                    "Unable to reconfigure sharing settings for network {id}. \
                     Multiple tenants are using it."
                ),
            ));
        }
        n.shared = v;
    }
    if let Some(v) = f.external.update() {
        let v = v.unwrap_or(false);
        if v != n.external && !ctx.allowed("update_network:router:external", &n.project_id) {
            return Err(forbidden("update_network:router:external"));
        }
        let gateways = txn.list_by_project::<Router>(None).iter().any(|r| {
            r.external_gateway
                .as_ref()
                .is_some_and(|g| g.network_id == id)
        }) || txn
            .list_by_project::<FloatingIp>(None)
            .iter()
            .any(|f| f.floating_network_id == id);
        if n.external && !v && gateways {
            return Err(conflict(
                "ExternalNetworkInUse",
                format!(
                    "External network {id} cannot be updated to be made non-external, \
                     since it has existing gateway ports."
                ),
            ));
        }
        n.external = v;
    }
    if let Some(v) = f.mtu.update() {
        n.mtu = v.unwrap_or(1500);
    }
    if let Some(v) = f.tags.update() {
        n.tags = v.unwrap_or_default();
    }
    n.updated_at = Some(now());
    txn.put(n)?;
    Ok(())
}

pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    let n = visible_network(ctx, txn, id)?;
    authorize(ctx, "delete_network", &n.project_id)?;
    let ports = txn.children::<Port>(id);
    if ports.iter().any(|p| !auto_deleted(p)) {
        return Err(conflict(
            "NetworkInUse",
            format!(
                "Unable to complete operation on network {id}. \
                 There are one or more ports still in use on the network."
            ),
        ));
    }
    let subnets = txn.children::<Subnet>(id);
    for sub in &subnets {
        if let Some(user) = lb_user(ctx, txn, sub.id) {
            return Err(conflict(
                "NetworkInUse",
                format!(
                    "Unable to complete operation on network {id}. \
                     Its subnet {} is used by {user}.",
                    sub.id
                ),
            ));
        }
    }
    for p in &ports {
        txn.delete::<Port>(&p.id);
    }
    for sub in &subnets {
        txn.delete::<Subnet>(&sub.id);
    }
    txn.delete::<Network>(&id);
    Ok(())
}
