//! Amphorae (`/octavia/amphorae`): the admin view of the data-plane
//! instances serving load balancers (one row per served load balancer, kept
//! by the controller). Every operation asks the amphora rule of its action
//! on the caller's own project (admin only by default); a row the
//! controller marked DELETED names nothing.

use super::listeners::ListenerStats;
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::lb::lock_lb;
use crate::parse_id;
use crate::store::{StoreRead, StoreWrite};
use statera_model::*;
use std::sync::Arc;
use uuid::Uuid;

/// The amphora rule `action` (`get_all`, `put_failover`, …) on the caller's
/// own project: what every operation asks first (and the wire, before a
/// write, as Octavia asks it before anything else).
pub fn authorize(ctx: &Context, action: &str) -> ServiceResult<()> {
    super::authorize_own(ctx, "amphora", action)
}

/// The live amphora the path names (`raw`: anything but a UUID names
/// nothing), or 404 `Amphora <id> not found.`.
fn find(s: &impl StoreRead, raw: &str) -> ServiceResult<Arc<Amphora>> {
    let id = parse_id(raw, "Amphora")?;
    s.get::<Amphora>(&id)
        .filter(|a| a.status != AmphoraStatus::Deleted)
        .ok_or_else(|| ServiceError::not_found("Amphora", id))
}

/// `GET /amphorae`: every live amphora in id order, with the project of
/// the load balancer it serves (what `?project_id=` filters on), `None`
/// when that load balancer is gone.
pub fn list(
    ctx: &Context,
    s: &impl StoreRead,
) -> ServiceResult<Vec<(Arc<Amphora>, Option<String>)>> {
    authorize(ctx, "get_all")?;
    Ok(s.all::<Amphora>()
        .into_iter()
        .filter(|a| a.status != AmphoraStatus::Deleted)
        .map(|a| {
            let project = s
                .get::<LoadBalancer>(&a.loadbalancer_id)
                .map(|lb| lb.project_id.clone());
            (a, project)
        })
        .collect())
}

/// `GET /amphorae/{id}`.
pub fn show(ctx: &Context, s: &impl StoreRead, raw: &str) -> ServiceResult<Arc<Amphora>> {
    authorize(ctx, "get_one")?;
    find(s, raw)
}

/// `DELETE /amphorae/{id}`: only an amphora in ERROR (409 otherwise).
pub fn delete(ctx: &Context, txn: &mut impl StoreWrite, raw: &str) -> ServiceResult<()> {
    authorize(ctx, "delete")?;
    let a = find(txn, raw)?;
    if a.status != AmphoraStatus::Error {
        return Err(ServiceError::conflict(format!(
            "Amphora {} is immutable and cannot be updated.",
            a.id
        )));
    }
    txn.delete::<Amphora>(&a.id);
    Ok(())
}

/// `PUT /amphorae/{id}/failover`: its load balancer must be ACTIVE (409
/// otherwise); it goes PENDING_UPDATE and the controller is owed a failover
/// (with agents, a move to another one).
pub fn failover(ctx: &Context, txn: &mut impl StoreWrite, raw: &str) -> ServiceResult<()> {
    authorize(ctx, "put_failover")?;
    let a = find(txn, raw)?;
    lock_lb(txn, a.loadbalancer_id, &[])?;
    txn.enqueue_failover(a.loadbalancer_id)?;
    Ok(())
}

/// `PUT /amphorae/{id}/config`: nothing to do beyond checking it exists
/// (the controller reconciles continuously).
pub fn config(ctx: &Context, s: &impl StoreRead, raw: &str) -> ServiceResult<()> {
    authorize(ctx, "put_config")?;
    find(s, raw).map(drop)
}

/// An amphora's statistics: one entry per listener of its load balancer.
pub type AmphoraStats = (Arc<Amphora>, Vec<(Uuid, ListenerStats)>);

/// `GET /amphorae/{id}/stats`: the amphora, and one entry per listener of
/// its load balancer, in id order (zeros for a listener without any yet).
pub fn stats(ctx: &Context, s: &impl StoreRead, raw: &str) -> ServiceResult<AmphoraStats> {
    authorize(ctx, "get_stats")?;
    let a = find(s, raw)?;
    let listeners = s
        .children::<Listener>(a.loadbalancer_id)
        .iter()
        .map(|l| {
            let st = s
                .get::<ListenerStats>(&l.id)
                .map(|x| *x)
                .unwrap_or_default();
            (l.id, st)
        })
        .collect();
    Ok((a, listeners))
}
