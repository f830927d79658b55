//! `/flavors` and `/flavorprofiles` (Octavia v2.6).
//!
//! A flavor profile binds a provider to provider metadata (`flavor_data`,
//! JSON text); a flavor names a profile for users. Reading flavors is open
//! to every reader; everything else is admin work. The profiles' routes are
//! [`super::profiles`], shared with availability zone profiles.

use super::loadbalancers::one;
use super::profiles::{self, ProfileKind};
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
        .route("/flavors", get(list).post(create))
        .route("/flavors/{id}", get(show).put(update).delete(delete))
        .merge(profiles::routes::<FlavorProfiles>("/flavorprofiles"))
}

pub const FLAVOR_ATTRS: &[&str] = &["id", "name", "description", "enabled", "flavor_profile_id"];

pub fn render_flavor(f: &Flavor) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(f.id));
    o.insert("name".into(), json!(f.name));
    o.insert(
        "description".into(),
        json!(f.description.clone().unwrap_or_default()),
    );
    o.insert("enabled".into(), json!(f.enabled));
    o.insert("flavor_profile_id".into(), json!(f.flavor_profile_id));
    o
}

pub const FLAVOR_PROFILE_ATTRS: &[&str] = &["id", "name", "provider_name", "flavor_data"];

pub fn render_profile(p: &FlavorProfile) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(p.id));
    o.insert("name".into(), json!(p.name));
    o.insert("provider_name".into(), json!(p.provider_name));
    o.insert("flavor_data".into(), json!(p.flavor_data));
    o
}

pub use super::profiles::{in_use, invalid_option, not_null};

// ---------------------------------------------------------------- flavors

fn flavor(s: &State, raw: &str) -> ApiResult<Arc<Flavor>> {
    let id = path_id(raw, "Flavor")?;
    s.flavors
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found("Flavor", id))
}

fn name_taken(s: &State, name: &str, except: Option<Uuid>) -> bool {
    s.flavors
        .iter()
        .any(|f| f.name == name && Some(f.id) != except)
}

async fn list(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:flavor:get_all", &ctx.project_id)?;
    let s = app.store.snapshot();
    let items = s.flavors.iter().map(|f| render_flavor(f)).collect();
    app.collection(&ctx, &uri, "flavors", Some("flavors_links"), FLAVOR_ATTRS)
        .respond(items, &query(&uri))
        .map(Json)
}

async fn show(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:flavor:get_one", &ctx.project_id)?;
    let s = app.store.snapshot();
    let f = flavor(&s, &id)?;
    Ok(Json(one("flavor", render_flavor(&f), &query(&uri))))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.authorize("os_load-balancer_api:flavor:post", &ctx.project_id)?;
    let mut input = Input::from_envelope(body, "flavor")?;
    let name = input.string("name", 255)?.required("name")?;
    let description = input.string("description", 255)?.value();
    let enabled = input.boolean("enabled")?.or(true);
    let flavor_profile_id = input
        .uuid("flavor_profile_id")?
        .required("flavor_profile_id")?;
    input.finish()?;
    let f = app
        .store
        .write(|txn| {
            let s = txn.state();
            if name_taken(s, &name, None) {
                return Err(ApiError::conflict(format!(
                    "A flavor of {name} already exists."
                )));
            }
            if !s.flavor_profiles.contains(&flavor_profile_id) {
                return Err(invalid_option(flavor_profile_id, "flavor_profile_id"));
            }
            let f = Flavor {
                id: Uuid::new_v4(),
                name,
                description,
                enabled,
                flavor_profile_id,
            };
            txn.put(f.clone())?;
            Ok::<_, ApiError>(f)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"flavor": render_flavor(&f)})),
    ))
}

async fn update(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    ctx.authorize("os_load-balancer_api:flavor:put", &ctx.project_id)?;
    let id = path_id(&id, "Flavor")?;
    let mut input = Input::from_envelope(body, "flavor")?;
    let name = not_null(input.string("name", 255)?, "name")?;
    let description = input.string("description", 255)?.update();
    let enabled = input.boolean("enabled")?.update();
    input.finish()?;
    let f = app
        .store
        .write(|txn| {
            let s = txn.state();
            let mut f = (**s
                .flavors
                .get(&id)
                .ok_or_else(|| ApiError::not_found("Flavor", id))?)
            .clone();
            if let Some(name) = name {
                if name_taken(s, &name, Some(id)) {
                    return Err(ApiError::conflict(format!(
                        "A flavor of {name} already exists."
                    )));
                }
                f.name = name;
            }
            if let Some(v) = description {
                f.description = v;
            }
            if let Some(v) = enabled {
                f.enabled = v.unwrap_or(true);
            }
            txn.put(f.clone())?;
            Ok::<_, ApiError>(f)
        })
        .await?;
    Ok(Json(json!({"flavor": render_flavor(&f)})))
}

async fn delete(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize("os_load-balancer_api:flavor:delete", &ctx.project_id)?;
    let id = path_id(&id, "Flavor")?;
    app.store
        .write(|txn| {
            let s = txn.state();
            if !s.flavors.contains(&id) {
                return Err(ApiError::not_found("Flavor", id));
            }
            if s.loadbalancers.iter().any(|lb| lb.flavor_id == Some(id)) {
                return Err(in_use("Flavor", id));
            }
            txn.delete::<Flavor>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

// ------------------------------------------------------- flavor profiles

/// `/flavorprofiles`: [`super::profiles`] over flavor profiles.
pub struct FlavorProfiles;

impl ProfileKind for FlavorProfiles {
    type Profile = FlavorProfile;
    type User = Flavor;
    const RESOURCE: &'static str = "Flavor profile";
    const RULE: &'static str = "flavor-profile";
    const ENVELOPE: &'static str = "flavorprofile";
    const PLURAL: &'static str = "flavorprofiles";
    const LINKS: &'static str = "flavorprofile_links";
    const DATA: &'static str = "flavor_data";
    const ATTRS: &'static [&'static str] = FLAVOR_PROFILE_ATTRS;

    fn render(p: &FlavorProfile) -> Object {
        render_profile(p)
    }

    fn new(name: String, provider_name: String, flavor_data: String) -> FlavorProfile {
        FlavorProfile {
            id: Uuid::new_v4(),
            name,
            provider_name,
            flavor_data,
        }
    }

    fn fields(p: &mut FlavorProfile) -> (&mut String, &mut String, &mut String) {
        (&mut p.name, &mut p.provider_name, &mut p.flavor_data)
    }

    fn validate(app: &AppState, _: &State, provider_name: &str, data: &str) -> ApiResult<()> {
        validate_profile(&app.settings, provider_name, data)
    }
}

/// `flavor_data` must be accepted by the profile's provider (checked again
/// when a load balancer is created with the flavor, as Octavia does).
pub fn validate_profile(
    settings: &crate::ApiSettings,
    provider_name: &str,
    flavor_data: &str,
) -> ApiResult<()> {
    validate_metadata(settings, "flavor_data", provider_name, flavor_data, |p| {
        &p.flavor_capabilities
    })
    .map(drop)
}
