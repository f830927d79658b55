//! The catalog's admin side: `/v3/services` (filters `type`, `name`),
//! `/v3/endpoints` (filters `interface`, `service_id`, `region_id`),
//! `/v3/regions` (filter `parent_region_id`; `PUT /v3/regions/{id}` creates
//! with a chosen id). Deleting a service deletes its endpoints; a region
//! with endpoints (its own or its sub-regions') cannot be deleted.

use super::*;
use axum::extract::{Path, State};
use axum::routing::get;
use bytes::Bytes;
use statera_model::identity::{CatalogEndpoint, CatalogService, Region, new_id};

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
    authorize(&ctx, "identity:create_service", Target::default())?;
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
    let s = write(&state, |txn| {
        txn.put(s.clone())?;
        Ok(s)
    })
    .await?;
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
    authorize(&ctx, "identity:update_service", Target::default())?;
    let obj = envelope(&body, "service")?;
    only(&obj, &["type", "name", "description", "enabled"])?;
    let kind = service_type(&obj, false)?;
    let name = opt_str(&obj, "name", NAME_MAX, true)?;
    let description = description_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let s = write(&state, |txn| {
        let mut s = fetch::<CatalogService>(txn.state(), &id)?;
        if let Some(k) = kind {
            s.kind = k;
        }
        if let Some(n) = name {
            s.name = n.unwrap_or_default();
        }
        if let Some(d) = description {
            s.description = d;
        }
        if let Some(e) = enabled {
            s.enabled = e;
        }
        txn.put(s.clone())?;
        Ok(s)
    })
    .await?;
    Ok(one(StatusCode::OK, "service", render_service(&ctx, &s)))
}

async fn delete_service(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_service", Target::default())?;
    write(&state, |txn| {
        fetch::<CatalogService>(txn.state(), &id)?;
        let endpoints: Vec<String> = txn
            .state()
            .catalog_endpoints
            .iter()
            .filter(|e| e.service_id == id)
            .map(|e| e.id.clone())
            .collect();
        for e in &endpoints {
            txn.delete::<CatalogEndpoint>(e);
        }
        txn.delete::<CatalogService>(&id);
        Ok(())
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

fn check_endpoint_refs(txn: &Txn, e: &CatalogEndpoint) -> ApiResult<()> {
    if !txn.state().catalog_services.contains(&e.service_id) {
        return Err(not_found("service", &e.service_id));
    }
    if let Some(r) = &e.region_id
        && !txn.state().regions.contains(r)
    {
        return Err(not_found("region", r));
    }
    Ok(())
}

async fn create_endpoint(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_endpoint", Target::default())?;
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
    let e = write(&state, |txn| {
        check_endpoint_refs(txn, &e)?;
        txn.put(e.clone())?;
        Ok(e)
    })
    .await?;
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
    authorize(&ctx, "identity:update_endpoint", Target::default())?;
    let obj = envelope(&body, "endpoint")?;
    only(&obj, ENDPOINT_FIELDS)?;
    let service_id = opt_str(&obj, "service_id", 64, false)?.flatten();
    let interface = interface_field(&obj, false)?;
    let url = url_field(&obj, false)?;
    let region = region_field(&obj)?;
    let enabled = bool_field(&obj, "enabled")?;
    let e = write(&state, |txn| {
        let mut e = fetch::<CatalogEndpoint>(txn.state(), &id)?;
        if let Some(s) = service_id {
            e.service_id = s;
        }
        if let Some(i) = interface {
            e.interface = i;
        }
        if let Some(u) = url {
            e.url = u;
        }
        if let Some(r) = region {
            e.region_id = r;
        }
        if let Some(x) = enabled {
            e.enabled = x;
        }
        check_endpoint_refs(txn, &e)?;
        txn.put(e.clone())?;
        Ok(e)
    })
    .await?;
    Ok(one(StatusCode::OK, "endpoint", render_endpoint(&ctx, &e)))
}

async fn delete_endpoint(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_endpoint", Target::default())?;
    write(&state, |txn| {
        fetch::<CatalogEndpoint>(txn.state(), &id)?;
        txn.delete::<CatalogEndpoint>(&id);
        Ok(())
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

/// Whether making `parent` the parent of `id` would close a loop.
fn would_loop(state: &statera_store::State, id: &str, parent: &str) -> bool {
    let mut at = Some(parent.to_string());
    let mut steps = 0;
    while let Some(p) = at {
        if p == id || steps > 1024 {
            return true;
        }
        at = state
            .regions
            .get(&p)
            .and_then(|r| r.parent_region_id.clone());
        steps += 1;
    }
    false
}

async fn store_region(state: &AppState, r: Region) -> ApiResult<Region> {
    write(state, |txn| {
        if txn.state().regions.contains(&r.id) {
            return Err(kerr(
                StatusCode::CONFLICT,
                format!(
                    "Conflict occurred attempting to store region - Duplicate ID, {}.",
                    r.id
                ),
            ));
        }
        if let Some(p) = &r.parent_region_id
            && !txn.state().regions.contains(p)
        {
            return Err(not_found("region", p));
        }
        txn.put(r.clone())?;
        Ok(r)
    })
    .await
}

async fn create_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_region", Target::default())?;
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
    let r = store_region(&state, r).await?;
    Ok(one(StatusCode::CREATED, "region", render_region(&ctx, &r)))
}

async fn put_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:create_region", Target::default())?;
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
    let r = store_region(&state, r).await?;
    Ok(one(StatusCode::CREATED, "region", render_region(&ctx, &r)))
}

async fn update_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:update_region", Target::default())?;
    let obj = envelope(&body, "region")?;
    only(&obj, &["description", "parent_region_id"])?;
    let description = description_field(&obj)?;
    let parent = opt_str(&obj, "parent_region_id", 255, true)?;
    let r = write(&state, |txn| {
        let mut r = fetch::<Region>(txn.state(), &id)?;
        if let Some(d) = description {
            r.description = d;
        }
        if let Some(p) = parent {
            if let Some(p) = &p {
                if !txn.state().regions.contains(p) {
                    return Err(not_found("region", p));
                }
                if would_loop(txn.state(), &id, p) {
                    return Err(bad_request(format!(
                        "The specified parent region {p} would create a circular region hierarchy."
                    )));
                }
            }
            r.parent_region_id = p;
        }
        txn.put(r.clone())?;
        Ok(r)
    })
    .await?;
    Ok(one(StatusCode::OK, "region", render_region(&ctx, &r)))
}

async fn delete_region(
    State(state): State<AppState>,
    ctx: RequestContext,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    authorize(&ctx, "identity:delete_region", Target::default())?;
    write(&state, |txn| {
        fetch::<Region>(txn.state(), &id)?;
        // The region and every region below it.
        let mut doomed = vec![id.clone()];
        let mut i = 0;
        while i < doomed.len() {
            let children: Vec<String> = txn
                .state()
                .regions
                .iter()
                .filter(|r| r.parent_region_id.as_deref() == Some(doomed[i].as_str()))
                .map(|r| r.id.clone())
                .filter(|c| !doomed.contains(c))
                .collect();
            doomed.extend(children);
            i += 1;
        }
        if txn
            .state()
            .catalog_endpoints
            .iter()
            .any(|e| e.region_id.as_ref().is_some_and(|r| doomed.contains(r)))
        {
            return Err(forbidden(format!(
                "Unable to delete region {id} because it or its child regions have associated endpoints."
            )));
        }
        for r in &doomed {
            txn.delete::<Region>(r);
        }
        Ok(())
    })
    .await?;
    Ok(no_content())
}
