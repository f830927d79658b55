//! The Octavia v2 API: one module per resource. The locking rules (one
//! change at a time per load balancer), quota checks and the cascades come
//! from the service layer (`statera_service`); listing is shared here.

pub mod amphorae;
pub mod availability_zones;
pub mod flavors;
pub mod graph_input;
pub mod healthmonitors;
pub mod l7policies;
pub mod l7rules;
pub mod lb_create;
pub mod listeners;
pub mod loadbalancers;
pub mod members;
pub mod pools;
pub mod profiles;
pub mod providers;
pub mod quotas;
pub mod resource;

use crate::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use crate::list::{Collection, Query};
use axum::Router;
use axum::http::Uri;
use statera_model::*;
pub use statera_service::{
    QuotaKind, check_quota, lock_lb, mark_listener_deleted, mark_policy_deleted, mark_pool_deleted,
    mark_tree_deleted, pool_for_change, touch_listener, touch_pool, touch_updated,
};
use statera_store::{State, Txn};
use std::sync::Arc;
use uuid::Uuid;

/// Every Octavia route, relative to `/v2` (mounted with and without `/lbaas`).
pub fn routes() -> Router<AppState> {
    let lbaas = Router::new()
        .merge(loadbalancers::routes())
        .merge(listeners::routes())
        .merge(pools::routes())
        .merge(members::routes())
        .merge(healthmonitors::routes())
        .merge(l7policies::routes())
        .merge(l7rules::routes())
        .merge(quotas::routes())
        .merge(providers::routes())
        .merge(flavors::routes())
        .merge(availability_zones::routes());
    Router::new()
        .nest("/lbaas", lbaas.clone())
        .merge(lbaas)
        .nest("/octavia", amphorae::routes())
}

/// A path id: anything that is not a UUID simply names nothing (404).
pub fn path_id(raw: &str, resource: &str) -> ApiResult<Uuid> {
    Ok(statera_service::parse_id(raw, resource)?)
}

impl AppState {
    /// A collection at the request's own URL.
    pub fn collection<'a>(
        &self,
        ctx: &RequestContext,
        uri: &Uri,
        plural: &'a str,
        links_key: Option<&'a str>,
        attributes: &'a [&'a str],
    ) -> Collection<'a> {
        Collection {
            plural,
            links_key,
            attributes,
            ignored: &[],
            url: format!("{}{}", ctx.base_url, uri.path()),
            max_limit: self.settings.pagination_max_limit,
            strict_filters: true,
        }
    }
}

/// Parse the raw query of a request.
pub fn query(uri: &Uri) -> Query {
    Query::parse(uri.query())
}

/// A load balancer by id, or 404.
pub fn load_balancer(s: &State, id: Uuid) -> ApiResult<&Arc<LoadBalancer>> {
    s.loadbalancers
        .get(&id)
        .ok_or_else(|| ApiError::not_found("Load Balancer", id))
}

/// Validation of the `tags` attribute (strings of at most 255 characters).
pub fn tags(input: &mut crate::input::Input) -> ApiResult<crate::input::Opt<Vec<String>>> {
    input.string_list("tags", 255)
}
