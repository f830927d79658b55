//! The catalog's admin side: `/v3/services` (filters `type`, `name`),
//! `/v3/endpoints` (filters `interface`, `service_id`, `region_id`),
//! `/v3/regions` (filter `parent_region_id`; `PUT /v3/regions/{id}` creates
//! with a chosen id). Deleting a service deletes its endpoints; a region
//! with endpoints (its own or its sub-regions') cannot be deleted. The wire
//! only: the operations are `statera_service::identity::catalog`.

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{CatalogEndpoint, CatalogService, Region, new_id};
use statera_service::identity::catalog::{
    self as service, EndpointFields, RegionFields, ServiceFields,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v3/services",
            get(list::<CatalogService>).post(create_service),
        )
        .route(
            "/v3/services/{id}",
            get(show::<CatalogService>)
                .patch(update_service)
                .delete(delete_service),
        )
        .route(
            "/v3/endpoints",
            get(list::<CatalogEndpoint>).post(create_endpoint),
        )
        .route(
            "/v3/endpoints/{id}",
            get(show::<CatalogEndpoint>)
                .patch(update_endpoint)
                .delete(delete_endpoint),
        )
        .route("/v3/regions", get(list::<Region>).post(create_region))
        .route(
            "/v3/regions/{id}",
            get(show::<Region>)
                .put(put_region)
                .patch(update_region)
                .delete(delete_region),
        )
}

/// Keystone's `url_type`: up to 225 characters.
const URL_MAX: usize = 225;
const INTERFACES: &[&str] = &["public", "internal", "admin"];

// ---------------------------------------------------------------- services

impl AdminResource for CatalogService {
    const PLURAL: &'static str = "services";
    const FILTERS: &'static [&'static str] = &["type", "name"];
    fn render(ctx: &RequestContext, s: &Self) -> Value {
        render_service(ctx, s)
    }
    fn sort_key(&self) -> String {
        format!("{}\0{}", self.kind, self.name)
    }
}

pub fn render_service(ctx: &RequestContext, s: &CatalogService) -> Value {
    with_self(
        ctx,
        json!({
            "id": s.id,
            "type": s.kind,
            "name": s.name,
            "description": s.description,
            "enabled": s.enabled,
        }),
        &format!("services/{}", s.id),
    )
}

fn service_type(obj: &Object, required: bool) -> ApiResult<Option<String>> {
    match opt_str(obj, "type", NAME_MAX, false)?.flatten() {
        None if required => Err(invalid("type", "'type' is a required property")),
        Some(t) if t.trim().is_empty() => Err(invalid("type", format!("'{t}' is too short"))),
        t => Ok(t),
    }
}

async fn create_service(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE_SERVICE, Target::default())?;
    let obj = envelope(&body, "service")?;
    only(&obj, &["type", "name", "description", "enabled"])?;
    let s = CatalogService {
        id: new_id(),
        kind: service_type(&obj, true)?.unwrap_or_default(),
        name: opt_str(&obj, "name", NAME_MAX, true)?
            .flatten()
            .unwrap_or_default(),
        description: description_field(&obj)?.unwrap_or_default(),
        enabled: bool_field(&obj, "enabled")?.unwrap_or(true),
    };
    let s = service_write(&state, |txn| service::create_service(&ctx.service, txn, s)).await?;
    Ok(one(
        StatusCode::CREATED,
        "service",
        render_service(&ctx, &s),
    ))
}

async fn update_service(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE_SERVICE, Target::default())?;
    let obj = envelope(&body, "service")?;
    only(&obj, &["type", "name", "description", "enabled"])?;
    let kind = service_type(&obj, false)?;
    let name = opt_str(&obj, "name", NAME_MAX, true)?;
    let description = description_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let f = ServiceFields {
        kind,
        name,
        description,
        enabled,
    };
    let s = service_write(&state, |txn| {
        service::update_service(&ctx.service, txn, &id, f)
    })
    .await?;
    Ok(one(StatusCode::OK, "service", render_service(&ctx, &s)))
}

async fn delete_service(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE_SERVICE, Target::default())?;
    service_write(&state, |txn| {
        service::delete_service(&ctx.service, txn, &id)
    })
    .await?;
    Ok(no_content())
}

// ---------------------------------------------------------------- endpoints

impl AdminResource for CatalogEndpoint {
    const PLURAL: &'static str = "endpoints";
    const FILTERS: &'static [&'static str] = &["interface", "service_id", "region_id"];
    fn render(ctx: &RequestContext, e: &Self) -> Value {
        render_endpoint(ctx, e)
    }
    fn sort_key(&self) -> String {
        format!("{}\0{}", self.service_id, self.interface)
    }
}

pub fn render_endpoint(ctx: &RequestContext, e: &CatalogEndpoint) -> Value {
    with_self(
        ctx,
        json!({
            "id": e.id,
            "interface": e.interface,
            "region_id": e.region_id,
            "region": e.region_id,
            "url": e.url,
            "service_id": e.service_id,
            "enabled": e.enabled,
        }),
        &format!("endpoints/{}", e.id),
    )
}

const ENDPOINT_FIELDS: &[&str] = &[
    "service_id",
    "interface",
    "url",
    "region_id",
    "region",
    "enabled",
];

fn interface_field(obj: &Object, required: bool) -> ApiResult<Option<String>> {
    match opt_str(obj, "interface", 16, false)?.flatten() {
        None if required => Err(invalid("interface", "'interface' is a required property")),
        Some(i) if !INTERFACES.contains(&i.as_str()) => Err(invalid(
            "interface",
            format!("'{i}' is not one of ['admin', 'internal', 'public']"),
        )),
        i => Ok(i),
    }
}

fn url_field(obj: &Object, required: bool) -> ApiResult<Option<String>> {
    match opt_str(obj, "url", URL_MAX, false)?.flatten() {
        None if required => Err(invalid("url", "'url' is a required property")),
        Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => Err(invalid(
            "url",
            format!("'{u}' does not match '^[a-zA-Z0-9+.-]+:.+'"),
        )),
        u => Ok(u),
    }
}

/// `region_id`, or the legacy `region`: `Some(None)` when set to null.
fn region_field(obj: &Object) -> ApiResult<Option<Option<String>>> {
    match opt_str(obj, "region_id", 255, true)? {
        Some(r) => Ok(Some(r)),
        None => opt_str(obj, "region", 255, true),
    }
}

async fn create_endpoint(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE_ENDPOINT, Target::default())?;
    let obj = envelope(&body, "endpoint")?;
    only(&obj, ENDPOINT_FIELDS)?;
    let service_id = opt_str(&obj, "service_id", 64, false)?
        .flatten()
        .ok_or_else(|| invalid("service_id", "'service_id' is a required property"))?;
    let e = CatalogEndpoint {
        id: new_id(),
        service_id,
        interface: interface_field(&obj, true)?.unwrap_or_default(),
        url: url_field(&obj, true)?.unwrap_or_default(),
        region_id: region_field(&obj)?.flatten(),
        enabled: bool_field(&obj, "enabled")?.unwrap_or(true),
    };
    let e = service_write(&state, |txn| service::create_endpoint(&ctx.service, txn, e)).await?;
    Ok(one(
        StatusCode::CREATED,
        "endpoint",
        render_endpoint(&ctx, &e),
    ))
}

async fn update_endpoint(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE_ENDPOINT, Target::default())?;
    let obj = envelope(&body, "endpoint")?;
    only(&obj, ENDPOINT_FIELDS)?;
    let service_id = opt_str(&obj, "service_id", 64, false)?.flatten();
    let interface = interface_field(&obj, false)?;
    let url = url_field(&obj, false)?;
    let region = region_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let f = EndpointFields {
        service_id,
        interface,
        url,
        region_id: region,
        enabled,
    };
    let e = service_write(&state, |txn| {
        service::update_endpoint(&ctx.service, txn, &id, f)
    })
    .await?;
    Ok(one(StatusCode::OK, "endpoint", render_endpoint(&ctx, &e)))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE_ENDPOINT, Target::default())?;
    service_write(&state, |txn| {
        service::delete_endpoint(&ctx.service, txn, &id)
    })
    .await?;
    Ok(no_content())
}

// ---------------------------------------------------------------- regions

impl AdminResource for Region {
    const PLURAL: &'static str = "regions";
    const FILTERS: &'static [&'static str] = &["parent_region_id"];
    fn render(ctx: &RequestContext, r: &Self) -> Value {
        render_region(ctx, r)
    }
    fn sort_key(&self) -> String {
        self.id.clone()
    }
}

pub fn render_region(ctx: &RequestContext, r: &Region) -> Value {
    with_self(
        ctx,
        json!({
            "id": r.id,
            "description": r.description,
            "parent_region_id": r.parent_region_id,
        }),
        &format!("regions/{}", r.id),
    )
}

fn valid_region_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.chars().count() > 255 || id.contains('/') {
        return Err(invalid("id", format!("'{id}' is not a valid region id")));
    }
    Ok(())
}

async fn store_region(state: &AppState, ctx: &RequestContext, r: Region) -> ApiResult<Region> {
    service_write(state, |txn| service::create_region(&ctx.service, txn, r)).await
}

async fn create_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE_REGION, Target::default())?;
    let obj = envelope(&body, "region")?;
    only(&obj, &["id", "description", "parent_region_id"])?;
    let id = match opt_str(&obj, "id", 255, true)?.flatten() {
        Some(id) => {
            valid_region_id(&id)?;
            id
        }
        None => new_id(),
    };
    let r = Region {
        id,
        description: description_field(&obj)?.unwrap_or_default(),
        parent_region_id: opt_str(&obj, "parent_region_id", 255, true)?.flatten(),
    };
    let r = store_region(&state, &ctx, r).await?;
    Ok(one(StatusCode::CREATED, "region", render_region(&ctx, &r)))
}

async fn put_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::CREATE_REGION, Target::default())?;
    valid_region_id(&id)?;
    let obj = envelope(&body, "region")?;
    only(&obj, &["id", "description", "parent_region_id"])?;
    if let Some(v) = obj.get("id")
        && v.as_str() != Some(id.as_str())
    {
        return Err(bad_request(
            "The region id in the body does not match the one in the path.",
        ));
    }
    let r = Region {
        id,
        description: description_field(&obj)?.unwrap_or_default(),
        parent_region_id: opt_str(&obj, "parent_region_id", 255, true)?.flatten(),
    };
    let r = store_region(&state, &ctx, r).await?;
    Ok(one(StatusCode::CREATED, "region", render_region(&ctx, &r)))
}

async fn update_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    admit(&ctx, service::UPDATE_REGION, Target::default())?;
    let obj = envelope(&body, "region")?;
    only(&obj, &["description", "parent_region_id"])?;
    let description = description_field(&obj)?;
    let parent = opt_str(&obj, "parent_region_id", 255, true)?;
    let f = RegionFields {
        description,
        parent_region_id: parent,
    };
    let r = service_write(&state, |txn| {
        service::update_region(&ctx.service, txn, &id, f)
    })
    .await?;
    Ok(one(StatusCode::OK, "region", render_region(&ctx, &r)))
}

async fn delete_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    admit(&ctx, service::DELETE_REGION, Target::default())?;
    service_write(&state, |txn| service::delete_region(&ctx.service, txn, &id)).await?;
    Ok(no_content())
}
