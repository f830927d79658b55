//! `/subnetpools`: Statera has no subnet pools (subnets always name their
//! CIDR), but clients look them up (`openstack subnet pool list`, the CLI
//! resolving `--subnet-pool` by name, Terraform data sources), so the
//! collection answers as Neutron's does with none: an empty list (with
//! filters, sorting, paging and `fields=` accepted), and 404
//! `SubnetPoolNotFound` for any id. Creating one is not offered (405).

use super::*;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/subnetpools", get(list))
        .route("/subnetpools/{id}", get(show))
}

/// Neutron's subnet pool attributes (what filters and `fields=` may name).
pub const SUBNETPOOL_ATTRS: &[&str] = &[
    "id",
    "name",
    "tenant_id",
    "project_id",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "is_default",
    "shared",
    "default_quota",
    "address_scope_id",
    "ip_version",
    "description",
    "tags",
    "created_at",
    "updated_at",
    "revision_number",
];

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        list_body(
            &app,
            &ctx,
            &uri,
            "subnetpools",
            SUBNETPOOL_ATTRS,
            &[],
            Vec::new(),
        )
        .map(Json)
    })
}

async fn show(Path(id): Path<String>) -> ApiResult<Json<Value>> {
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Subnet pool {id} could not be found."),
    )
    .neutron("SubnetPoolNotFound"))
}
