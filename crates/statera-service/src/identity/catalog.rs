//! The catalog: services, endpoints, regions.

use super::*;
use statera_model::identity::{CatalogEndpoint, CatalogService, Region};

impl Resource for CatalogService {
    const KIND: &'static str = "service";
    const GET: &'static str = "identity:get_service";
    const LIST: &'static str = "identity:list_services";
}

impl Resource for CatalogEndpoint {
    const KIND: &'static str = "endpoint";
    const GET: &'static str = "identity:get_endpoint";
    const LIST: &'static str = "identity:list_endpoints";
}

impl Resource for Region {
    const KIND: &'static str = "region";
    const GET: &'static str = "identity:get_region";
    const LIST: &'static str = "identity:list_regions";
}

pub const CREATE_SERVICE: &str = "identity:create_service";
pub const UPDATE_SERVICE: &str = "identity:update_service";
pub const DELETE_SERVICE: &str = "identity:delete_service";
pub const CREATE_ENDPOINT: &str = "identity:create_endpoint";
pub const UPDATE_ENDPOINT: &str = "identity:update_endpoint";
pub const DELETE_ENDPOINT: &str = "identity:delete_endpoint";
pub const CREATE_REGION: &str = "identity:create_region";
pub const UPDATE_REGION: &str = "identity:update_region";
pub const DELETE_REGION: &str = "identity:delete_region";

// ---------------------------------------------------------------- services

/// A service update as a request states it (`name`: `Some(None)` clears it).
#[derive(Debug, Default)]
pub struct ServiceFields {
    pub kind: Option<String>,
    pub name: Option<Option<String>>,
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

pub fn create_service(
    ctx: &Context,
    s: &mut impl StoreWrite,
    svc: CatalogService,
) -> ServiceResult<CatalogService> {
    authorize(ctx, CREATE_SERVICE, Target::default())?;
    s.put(svc.clone())?;
    Ok(svc)
}

pub fn update_service(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: ServiceFields,
) -> ServiceResult<CatalogService> {
    authorize(ctx, UPDATE_SERVICE, Target::default())?;
    let mut svc = fetch::<CatalogService>(s, id)?;
    if let Some(k) = f.kind {
        svc.kind = k;
    }
    if let Some(n) = f.name {
        svc.name = n.unwrap_or_default();
    }
    if let Some(d) = f.description {
        svc.description = d;
    }
    if let Some(e) = f.enabled {
        svc.enabled = e;
    }
    s.put(svc.clone())?;
    Ok(svc)
}

/// The service and its endpoints.
pub fn delete_service(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE_SERVICE, Target::default())?;
    fetch::<CatalogService>(s, id)?;
    let endpoints: Vec<String> = s
        .all::<CatalogEndpoint>()
        .iter()
        .filter(|e| e.service_id == id)
        .map(|e| e.id.clone())
        .collect();
    for e in &endpoints {
        s.delete::<CatalogEndpoint>(e);
    }
    s.delete::<CatalogService>(&id.to_string());
    Ok(())
}

// ---------------------------------------------------------------- endpoints

/// An endpoint update as a request states it (`region_id`: `Some(None)`
/// clears it).
#[derive(Debug, Default)]
pub struct EndpointFields {
    pub service_id: Option<String>,
    pub interface: Option<String>,
    pub url: Option<String>,
    pub region_id: Option<Option<String>>,
    pub enabled: Option<bool>,
}

/// The endpoint's service and region exist.
fn check_endpoint_refs(s: &impl StoreRead, e: &CatalogEndpoint) -> ServiceResult<()> {
    if s.get::<CatalogService>(&e.service_id).is_none() {
        return Err(not_found("service", &e.service_id));
    }
    if let Some(r) = &e.region_id
        && s.get::<Region>(r).is_none()
    {
        return Err(not_found("region", r));
    }
    Ok(())
}

pub fn create_endpoint(
    ctx: &Context,
    s: &mut impl StoreWrite,
    e: CatalogEndpoint,
) -> ServiceResult<CatalogEndpoint> {
    authorize(ctx, CREATE_ENDPOINT, Target::default())?;
    check_endpoint_refs(s, &e)?;
    s.put(e.clone())?;
    Ok(e)
}

pub fn update_endpoint(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: EndpointFields,
) -> ServiceResult<CatalogEndpoint> {
    authorize(ctx, UPDATE_ENDPOINT, Target::default())?;
    let mut e = fetch::<CatalogEndpoint>(s, id)?;
    if let Some(x) = f.service_id {
        e.service_id = x;
    }
    if let Some(i) = f.interface {
        e.interface = i;
    }
    if let Some(u) = f.url {
        e.url = u;
    }
    if let Some(r) = f.region_id {
        e.region_id = r;
    }
    if let Some(x) = f.enabled {
        e.enabled = x;
    }
    check_endpoint_refs(s, &e)?;
    s.put(e.clone())?;
    Ok(e)
}

pub fn delete_endpoint(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE_ENDPOINT, Target::default())?;
    fetch::<CatalogEndpoint>(s, id)?;
    s.delete::<CatalogEndpoint>(&id.to_string());
    Ok(())
}

// ---------------------------------------------------------------- regions

/// A region update as a request states it (`parent_region_id`:
/// `Some(None)` makes it a top region).
#[derive(Debug, Default)]
pub struct RegionFields {
    pub description: Option<String>,
    pub parent_region_id: Option<Option<String>>,
}

/// Whether making `parent` the parent of `id` would close a loop.
fn would_loop(s: &impl StoreRead, id: &str, parent: &str) -> bool {
    let mut at = Some(parent.to_string());
    let mut steps = 0;
    while let Some(p) = at {
        if p == id || steps > 1024 {
            return true;
        }
        at = s.get::<Region>(&p).and_then(|r| r.parent_region_id.clone());
        steps += 1;
    }
    false
}

/// A new region (`POST` with an id drawn or chosen, or `PUT` at its id):
/// the id must be free, the parent must exist.
pub fn create_region(ctx: &Context, s: &mut impl StoreWrite, r: Region) -> ServiceResult<Region> {
    authorize(ctx, CREATE_REGION, Target::default())?;
    if s.get::<Region>(&r.id).is_some() {
        return Err(ServiceError::Conflict(format!(
            "Conflict occurred attempting to store region - Duplicate ID, {}.",
            r.id
        )));
    }
    if let Some(p) = &r.parent_region_id
        && s.get::<Region>(p).is_none()
    {
        return Err(not_found("region", p));
    }
    s.put(r.clone())?;
    Ok(r)
}

pub fn update_region(
    ctx: &Context,
    s: &mut impl StoreWrite,
    id: &str,
    f: RegionFields,
) -> ServiceResult<Region> {
    authorize(ctx, UPDATE_REGION, Target::default())?;
    let mut r = fetch::<Region>(s, id)?;
    if let Some(d) = f.description {
        r.description = d;
    }
    if let Some(p) = f.parent_region_id {
        if let Some(p) = &p {
            if s.get::<Region>(p).is_none() {
                return Err(not_found("region", p));
            }
            if would_loop(s, id, p) {
                return Err(bad_request(format!(
                    "The specified parent region {p} would create a circular region hierarchy."
                )));
            }
        }
        r.parent_region_id = p;
    }
    s.put(r.clone())?;
    Ok(r)
}

/// The region and every region below it, unless one of them has endpoints.
pub fn delete_region(ctx: &Context, s: &mut impl StoreWrite, id: &str) -> ServiceResult<()> {
    authorize(ctx, DELETE_REGION, Target::default())?;
    fetch::<Region>(s, id)?;
    let regions = s.all::<Region>();
    let mut doomed = vec![id.to_string()];
    let mut i = 0;
    while i < doomed.len() {
        let children: Vec<String> = regions
            .iter()
            .filter(|r| r.parent_region_id.as_deref() == Some(doomed[i].as_str()))
            .map(|r| r.id.clone())
            .filter(|c| !doomed.contains(c))
            .collect();
        doomed.extend(children);
        i += 1;
    }
    if s.all::<CatalogEndpoint>()
        .iter()
        .any(|e| e.region_id.as_ref().is_some_and(|r| doomed.contains(r)))
    {
        return Err(forbidden(format!(
            "Unable to delete region {id} because it or its child regions have associated \
             endpoints."
        )));
    }
    for r in &doomed {
        s.delete::<Region>(r);
    }
    Ok(())
}
