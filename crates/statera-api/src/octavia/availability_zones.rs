//! `/availabilityzones` (keyed by **name**) and `/availabilityzoneprofiles`
//! (Octavia v2.14). Same shape as flavors: a profile binds a provider to
//! metadata (`availability_zone_data`, JSON text); a zone names a profile.
//! Reading zones is open to every reader; everything else is admin work. The
//! profiles' routes are [`super::profiles`], shared with flavor profiles.

use super::loadbalancers::one;
use super::profiles::{self, ProfileKind, in_use, invalid_option};
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
        .merge(profiles::routes::<ZoneProfiles>(
            "/availabilityzoneprofiles",
        ))
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

/// `/availabilityzoneprofiles`: [`super::profiles`] over zone profiles.
pub struct ZoneProfiles;

impl ProfileKind for ZoneProfiles {
    type Profile = AvailabilityZoneProfile;
    type User = AvailabilityZone;
    const RESOURCE: &'static str = AZ_PROFILE;
    const RULE: &'static str = "availability-zone-profile";
    const ENVELOPE: &'static str = "availability_zone_profile";
    const PLURAL: &'static str = "availability_zone_profiles";
    const LINKS: &'static str = "availability_zone_profile_links";
    const DATA: &'static str = "availability_zone_data";
    const ATTRS: &'static [&'static str] = AZ_PROFILE_ATTRS;

    fn render(p: &AvailabilityZoneProfile) -> Object {
        render_profile(p)
    }

    fn new(name: String, provider_name: String, data: String) -> AvailabilityZoneProfile {
        AvailabilityZoneProfile {
            id: Uuid::new_v4(),
            name,
            provider_name,
            availability_zone_data: data,
        }
    }

    fn fields(p: &mut AvailabilityZoneProfile) -> (&mut String, &mut String, &mut String) {
        (
            &mut p.name,
            &mut p.provider_name,
            &mut p.availability_zone_data,
        )
    }

    fn validate(app: &AppState, s: &State, provider_name: &str, data: &str) -> ApiResult<()> {
        validate_profile(app, s, provider_name, data).map(drop)
    }
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
/// them (`statera_service::octavia::loadbalancers::check_vip_network`).
pub fn validate_profile(
    app: &AppState,
    s: &State,
    provider_name: &str,
    data: &str,
) -> ApiResult<serde_json::Map<String, Value>> {
    let obj = validate_metadata(
        &app.settings,
        "availability_zone_data",
        provider_name,
        data,
        |p| &p.availability_zone_capabilities,
    )?;
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
