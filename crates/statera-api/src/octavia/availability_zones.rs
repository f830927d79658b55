//! `/availabilityzones` (keyed by **name**) and `/availabilityzoneprofiles`
//! (Octavia v2.14). Same shape as flavors: a profile binds a provider to
//! metadata (`availability_zone_data`, JSON text); a zone names a profile.
//! Reading zones is open to every reader; everything else is admin work.

use super::flavors::{in_use, invalid_option, not_null};
use super::loadbalancers::one;
use super::providers::validate_metadata;
use super::*;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/availabilityzones", get(list).post(create))
        .route(
            "/availabilityzones/{name}",
            get(show).put(update).delete(delete),
        )
        .route(
            "/availabilityzoneprofiles",
            get(list_profiles).post(create_profile),
        )
        .route(
            "/availabilityzoneprofiles/{id}",
            get(show_profile).put(update_profile).delete(delete_profile),
        )
}

pub const AZ_ATTRS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "availability_zone_profile_id",
];

pub fn render_az(z: &AvailabilityZone) -> Object {
    let mut o = Object::new();
    o.insert("name".into(), json!(z.name));
    o.insert(
        "description".into(),
        json!(z.description.clone().unwrap_or_default()),
    );
    o.insert("enabled".into(), json!(z.enabled));
    o.insert(
        "availability_zone_profile_id".into(),
        json!(z.availability_zone_profile_id),
    );
    o
}

pub const AZ_PROFILE_ATTRS: &[&str] = &["id", "name", "provider_name", "availability_zone_data"];

pub fn render_profile(p: &AvailabilityZoneProfile) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(p.id));
    o.insert("name".into(), json!(p.name));
    o.insert("provider_name".into(), json!(p.provider_name));
    o.insert(
        "availability_zone_data".into(),
        json!(p.availability_zone_data),
    );
    o
}

// ------------------------------------------------------ availability zones

const AZ: &str = "Availability Zone";
const AZ_PROFILE: &str = "Availability Zone Profile";

fn zone(s: &State, name: &str) -> ApiResult<Arc<AvailabilityZone>> {
    s.availability_zones
        .get(&name.to_string())
        .cloned()
        .ok_or_else(|| ApiError::not_found(AZ, name))
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone:get_all",
        &ctx.project_id,
    )?;
    let s = app.store.snapshot();
    let items = s.availability_zones.iter().map(|z| render_az(z)).collect();
    app.collection(
        &ctx,
        &uri,
        "availability_zones",
        Some("availability_zones_links"),
        AZ_ATTRS,
    )
    .respond(items, &query(&uri))
    .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(name): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone:get_one",
        &ctx.project_id,
    )?;
    let s = app.store.snapshot();
    let z = zone(&s, &name)?;
    Ok(Json(one("availability_zone", render_az(&z), &query(&uri))))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone:post",
        &ctx.project_id,
    )?;
    let mut input = Input::from_envelope(body, "availability_zone")?;
    let name = input.string("name", 255)?.required("name")?;
    // A zone is addressed by its name in the path: a zone named "" could
    // never be shown, updated or deleted again.
    if name.is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            &name,
            "Value should have a minimum character requirement of 1",
        ));
    }
    let description = input.string("description", 255)?.value();
    let enabled = input.boolean("enabled")?.or(true);
    let profile_id = input
        .uuid("availability_zone_profile_id")?
        .required("availability_zone_profile_id")?;
    input.finish()?;
    let z = app
        .store
        .write(|txn| {
            let s = txn.state();
            if s.availability_zones.contains(&name) {
                return Err(ApiError::conflict(format!(
                    "A availability zone of {name} already exists."
                )));
            }
            if !s.availability_zone_profiles.contains(&profile_id) {
                return Err(invalid_option(profile_id, "availability_zone_profile_id"));
            }
            let z = AvailabilityZone {
                name,
                description,
                enabled,
                availability_zone_profile_id: profile_id,
            };
            txn.put(z.clone())?;
            Ok::<_, ApiError>(z)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"availability_zone": render_az(&z)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(name): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone:put",
        &ctx.project_id,
    )?;
    let mut input = Input::from_envelope(body, "availability_zone")?;
    let description = input.string("description", 255)?.update();
    let enabled = input.boolean("enabled")?.update();
    input.finish()?;
    let z = app
        .store
        .write(|txn| {
            let mut z = (*zone(txn.state(), &name)?).clone();
            if let Some(v) = description {
                z.description = v;
            }
            if let Some(v) = enabled {
                z.enabled = v.unwrap_or(true);
            }
            txn.put(z.clone())?;
            Ok::<_, ApiError>(z)
        })
        .await?;
    Ok(Json(json!({"availability_zone": render_az(&z)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone:delete",
        &ctx.project_id,
    )?;
    app.store
        .write(|txn| {
            let s = txn.state();
            zone(s, &name)?;
            if s.loadbalancers
                .iter()
                .any(|lb| lb.availability_zone.as_deref() == Some(name.as_str()))
            {
                return Err(in_use(AZ, &name));
            }
            txn.delete::<AvailabilityZone>(&name);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// --------------------------------------------- availability zone profiles

fn profile(s: &State, raw: &str) -> ApiResult<Arc<AvailabilityZoneProfile>> {
    let id = path_id(raw, AZ_PROFILE)?;
    s.availability_zone_profiles
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(AZ_PROFILE, id))
}

/// `availability_zone_data` must be accepted by the profile's provider, and
/// the networks it names (`management_network`, `valid_vip_networks`) must
/// exist, as Octavia's amphora driver checks. Returns the parsed data.
///
/// What the keys mean here: `compute_zone` (and `volume_zone`) are labels
/// only — every load balancer runs on this host; `management_network` is
/// checked and otherwise unused — Statera's controller reaches its data
/// planes in process, with no management network; `valid_vip_networks` is
/// enforced: a load balancer created in the zone must have its VIP on one of
/// them ([`check_vip_network`]).
pub fn validate_profile(
    app: &AppState,
    s: &State,
    provider_name: &str,
    data: &str,
) -> ApiResult<serde_json::Map<String, Value>> {
    let obj = validate_metadata(app, "availability_zone_data", provider_name, data, |p| {
        &p.availability_zone_capabilities
    })?;
    let mut networks: Vec<&str> = obj
        .get("valid_vip_networks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    networks.extend(obj.get("management_network").and_then(Value::as_str));
    for n in networks {
        let known = Uuid::parse_str(n).is_ok_and(|id| s.networks.contains(&id));
        if !known {
            return Err(ApiError::validation(format!("Network {n} not found.")));
        }
    }
    Ok(obj)
}

/// A load balancer in zone `az` must have its VIP on one of the zone's
/// `valid_vip_networks` when the zone's profile names any (Octavia's
/// `network_allowed_by_config`).
pub fn check_vip_network(s: &State, az: &AvailabilityZone, vip_network: Uuid) -> ApiResult<()> {
    let Some(profile) = s
        .availability_zone_profiles
        .get(&az.availability_zone_profile_id)
    else {
        return Ok(());
    };
    let data: Value = serde_json::from_str(&profile.availability_zone_data).unwrap_or(Value::Null);
    let Some(valid) = data.get("valid_vip_networks").and_then(Value::as_array) else {
        return Ok(());
    };
    if valid.is_empty()
        || valid
            .iter()
            .filter_map(Value::as_str)
            .any(|n| Uuid::parse_str(n).is_ok_and(|id| id == vip_network))
    {
        return Ok(());
    }
    Err(ApiError::validation(
        "Supplied VIP network_id is not allowed by the configuration of this deployment.",
    ))
}

async fn list_profiles(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone-profile:get_all",
        &ctx.project_id,
    )?;
    let s = app.store.snapshot();
    let items = s
        .availability_zone_profiles
        .iter()
        .map(|p| render_profile(p))
        .collect();
    app.collection(
        &ctx,
        &uri,
        "availability_zone_profiles",
        Some("availability_zone_profile_links"),
        AZ_PROFILE_ATTRS,
    )
    .respond(items, &query(&uri))
    .map(Json)
}

async fn show_profile(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone-profile:get_one",
        &ctx.project_id,
    )?;
    let s = app.store.snapshot();
    let p = profile(&s, &id)?;
    Ok(Json(one(
        "availability_zone_profile",
        render_profile(&p),
        &query(&uri),
    )))
}

async fn create_profile(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone-profile:post",
        &ctx.project_id,
    )?;
    let mut input = Input::from_envelope(body, "availability_zone_profile")?;
    let name = input.string("name", 255)?.required("name")?;
    let provider_name = input
        .string("provider_name", 255)?
        .required("provider_name")?;
    let data = input
        .string("availability_zone_data", 4096)?
        .required("availability_zone_data")?;
    input.finish()?;
    let p = AvailabilityZoneProfile {
        id: Uuid::new_v4(),
        name,
        provider_name,
        availability_zone_data: data,
    };
    app.store
        .write(|txn| {
            validate_profile(
                &app,
                txn.state(),
                &p.provider_name,
                &p.availability_zone_data,
            )?;
            txn.put(p.clone())?;
            Ok::<_, ApiError>(())
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"availability_zone_profile": render_profile(&p)})),
    ))
}

async fn update_profile(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone-profile:put",
        &ctx.project_id,
    )?;
    let id = path_id(&id, AZ_PROFILE)?;
    let mut input = Input::from_envelope(body, "availability_zone_profile")?;
    let name = not_null(input.string("name", 255)?, "name")?;
    let provider_name = not_null(input.string("provider_name", 255)?, "provider_name")?;
    let data = not_null(
        input.string("availability_zone_data", 4096)?,
        "availability_zone_data",
    )?;
    input.finish()?;
    let p = app
        .store
        .write(|txn| {
            let s = txn.state();
            let mut p = (**s
                .availability_zone_profiles
                .get(&id)
                .ok_or_else(|| ApiError::not_found(AZ_PROFILE, id))?)
            .clone();
            if provider_name.is_some() || data.is_some() {
                if s.availability_zones.children(id).next().is_some() {
                    return Err(in_use(AZ_PROFILE, id));
                }
                let provider_name = provider_name.unwrap_or_else(|| p.provider_name.clone());
                let data = data.unwrap_or_else(|| p.availability_zone_data.clone());
                validate_profile(&app, s, &provider_name, &data)?;
                p.provider_name = provider_name;
                p.availability_zone_data = data;
            }
            if let Some(name) = name {
                p.name = name;
            }
            txn.put(p.clone())?;
            Ok::<_, ApiError>(p)
        })
        .await?;
    Ok(Json(
        json!({"availability_zone_profile": render_profile(&p)}),
    ))
}

async fn delete_profile(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize(
        "os_load-balancer_api:availability-zone-profile:delete",
        &ctx.project_id,
    )?;
    let id = path_id(&id, AZ_PROFILE)?;
    app.store
        .write(|txn| {
            let s = txn.state();
            if !s.availability_zone_profiles.contains(&id) {
                return Err(ApiError::not_found(AZ_PROFILE, id));
            }
            if s.availability_zones.children(id).next().is_some() {
                return Err(in_use(AZ_PROFILE, id));
            }
            txn.delete::<AvailabilityZoneProfile>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
