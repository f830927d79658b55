//! Provider profiles, written once: `/flavorprofiles` and
//! `/availabilityzoneprofiles` are the same resource over two kinds (a
//! profile binds a provider to provider metadata, JSON text; flavors or
//! zones name it). [`ProfileKind`] says what differs: names, the data
//! attribute, and how the metadata is validated. All of it is admin work.

use super::*;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::{Value, json};
use statera_store::Record;

/// One kind of provider profile.
pub trait ProfileKind: Send + Sync + 'static {
    type Profile: Record<Key = Uuid>;
    /// What names a profile (its parent index is the profile's id): a
    /// profile named by one may not change provider or data, nor go.
    type User: Record;
    /// `Flavor profile`, as messages name it.
    const RESOURCE: &'static str;
    /// The policy rules' middle part (`flavor-profile`).
    const RULE: &'static str;
    /// The body's envelope (`flavorprofile`).
    const ENVELOPE: &'static str;
    /// The collection's key and its links key.
    const PLURAL: &'static str;
    const LINKS: &'static str;
    /// The metadata attribute (`flavor_data`).
    const DATA: &'static str;
    const ATTRS: &'static [&'static str];

    fn render(p: &Self::Profile) -> Object;
    fn new(name: String, provider_name: String, data: String) -> Self::Profile;
    /// name, provider_name, data.
    fn fields(p: &mut Self::Profile) -> (&mut String, &mut String, &mut String);
    /// The provider must accept the metadata (and what it names must exist).
    fn validate(app: &AppState, s: &State, provider_name: &str, data: &str) -> ApiResult<()>;
}

/// The routes of one kind of profile at `path` (`/flavorprofiles`).
pub fn routes<K: ProfileKind>(path: &str) -> Router<AppState> {
    Router::new()
        .route(path, get(list::<K>).post(create::<K>))
        .route(
            &format!("{path}/{{id}}"),
            get(show::<K>).put(update::<K>).delete(delete::<K>),
        )
}

/// A required attribute that a PUT may change but not clear (null is
/// `None is not a valid option for <field>`).
pub fn not_null<T>(v: Opt<T>, field: &str) -> ApiResult<Option<T>> {
    match v {
        Opt::Absent => Ok(None),
        Opt::Null => Err(invalid_option("None", field)),
        Opt::Set(v) => Ok(Some(v)),
    }
}

/// `<value> is not a valid option for <option>` (Octavia's InvalidOption).
pub fn invalid_option(value: impl std::fmt::Display, option: &str) -> ApiError {
    ApiError::bad_request(format!("{value} is not a valid option for {option}"))
}

/// `<Object> <id> is in use and cannot be modified.` (Octavia's ObjectInUse).
pub fn in_use(object: &str, id: impl std::fmt::Display) -> ApiError {
    ApiError::conflict(format!("{object} {id} is in use and cannot be modified."))
}

fn rule<K: ProfileKind>(action: &str) -> String {
    format!("os_load-balancer_api:{}:{action}", K::RULE)
}

fn in_use_by<K: ProfileKind>(s: &State, id: Uuid) -> bool {
    K::User::table(s).children(id).next().is_some()
}

async fn list<K: ProfileKind>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&rule::<K>("get_all"), &ctx.project_id)?;
    let s = app.store.snapshot();
    let items = K::Profile::table(&s).iter().map(|p| K::render(p)).collect();
    app.collection(&ctx, &uri, K::PLURAL, Some(K::LINKS), K::ATTRS)
        .respond(items, &query(&uri))
        .map(Json)
}

async fn show<K: ProfileKind>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&rule::<K>("get_one"), &ctx.project_id)?;
    let s = app.store.snapshot();
    let id = path_id(&id, K::RESOURCE)?;
    let p = K::Profile::table(&s)
        .get(&id)
        .ok_or_else(|| ApiError::not_found(K::RESOURCE, id))?;
    Ok(Json(loadbalancers::one(
        K::ENVELOPE,
        K::render(p),
        &query(&uri),
    )))
}

async fn create<K: ProfileKind>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    ctx.authorize(&rule::<K>("post"), &ctx.project_id)?;
    let mut input = Input::from_envelope(body, K::ENVELOPE)?;
    let name = input.string("name", 255)?.required("name")?;
    let provider_name = input
        .string("provider_name", 255)?
        .required("provider_name")?;
    let data = input.string(K::DATA, 4096)?.required(K::DATA)?;
    input.finish()?;
    let p = K::new(name, provider_name, data);
    let p = app
        .store
        .write(|txn| {
            let mut p = p;
            let (_, provider_name, data) = K::fields(&mut p);
            K::validate(&app, txn.state(), provider_name, data)?;
            txn.put(p.clone())?;
            Ok::<_, ApiError>(p)
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ K::ENVELOPE: K::render(&p) })),
    ))
}

async fn update<K: ProfileKind>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    ctx.authorize(&rule::<K>("put"), &ctx.project_id)?;
    let id = path_id(&id, K::RESOURCE)?;
    let mut input = Input::from_envelope(body, K::ENVELOPE)?;
    let name = not_null(input.string("name", 255)?, "name")?;
    let provider_name = not_null(input.string("provider_name", 255)?, "provider_name")?;
    let data = not_null(input.string(K::DATA, 4096)?, K::DATA)?;
    input.finish()?;
    let p = app
        .store
        .write(|txn| {
            let s = txn.state();
            let mut p = (**K::Profile::table(s)
                .get(&id)
                .ok_or_else(|| ApiError::not_found(K::RESOURCE, id))?)
            .clone();
            let (old_name, old_provider, old_data) = K::fields(&mut p);
            if provider_name.is_some() || data.is_some() {
                if in_use_by::<K>(s, id) {
                    return Err(in_use(K::RESOURCE, id));
                }
                let provider_name = provider_name.unwrap_or_else(|| old_provider.clone());
                let data = data.unwrap_or_else(|| old_data.clone());
                K::validate(&app, s, &provider_name, &data)?;
                *old_provider = provider_name;
                *old_data = data;
            }
            if let Some(name) = name {
                *old_name = name;
            }
            txn.put(p.clone())?;
            Ok::<_, ApiError>(p)
        })
        .await?;
    Ok(Json(json!({ K::ENVELOPE: K::render(&p) })))
}

async fn delete<K: ProfileKind>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    ctx.authorize(&rule::<K>("delete"), &ctx.project_id)?;
    let id = path_id(&id, K::RESOURCE)?;
    app.store
        .write(|txn| {
            let s = txn.state();
            if !K::Profile::table(s).contains(&id) {
                return Err(ApiError::not_found(K::RESOURCE, id));
            }
            if in_use_by::<K>(s, id) {
                return Err(in_use(K::RESOURCE, id));
            }
            txn.delete::<K::Profile>(&id);
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
