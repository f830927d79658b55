//! The wire shape of a Neutron resource, written once: `GET/POST /things`,
//! `GET/PUT/DELETE /things/{id}` read the request (Neutron's envelope, its
//! attribute rules), call the service layer's operation
//! (`statera_service::neutron::<resource>`) and render, in Neutron's error
//! shape whatever fails. A [`Resource`] says what differs: names, reading,
//! rendering, which service functions. Actions beyond CRUD (a router's
//! interfaces) are routes of the resource's own module.

use super::*;
use crate::ApiSettings;
use crate::input::{JsonBody, NeutronJson};
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::routing::get;
use statera_service::{Context, ServiceError, ServiceResult};
use std::sync::Arc;

/// One Neutron collection served by the service layer.
pub trait Resource: Send + Sync + 'static {
    type Model: Send + Sync + 'static;
    /// What a create states (the service's typed input).
    type New: Send;
    /// What an update states.
    type Fields: Send;
    /// The body's envelope (`network`).
    const ENVELOPE: &'static str;
    /// The collection (`networks`; its links key adds `_links`).
    const PLURAL: &'static str;
    /// The collection in paths, where it differs from [`Resource::PLURAL`]
    /// (`security-groups`).
    const PATH: &'static str = Self::PLURAL;
    /// Whether objects change (`PUT /things/{id}`). Without it the route
    /// has no PUT, which answers as any method a route lacks (405
    /// `HTTPMethodNotAllowed`), and `parse_update`/`update` are never called
    /// (see [`not_updatable`]).
    const UPDATABLE: bool = true;
    /// What filters and `fields=` may name.
    const ATTRS: &'static [&'static str];
    /// Query parameters a list accepts and does not filter on.
    const IGNORED: &'static [&'static str] = &[];

    /// The 404 of an id that names nothing (anything not a UUID).
    fn missing(raw: &str) -> ServiceError;
    fn render(s: &State, m: &Self::Model) -> Object;
    fn list(ctx: &Context, s: &State) -> ServiceResult<Vec<Arc<Self::Model>>>;
    /// The listed objects that the resource's own filters in `query` (those
    /// the generic ones cannot express, named in [`Resource::IGNORED`])
    /// select. By default all of them.
    fn select(_query: &Query, items: Vec<Arc<Self::Model>>) -> ApiResult<Vec<Arc<Self::Model>>> {
        Ok(items)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Self::Model>>;
    /// A create's attributes, read the way Neutron does.
    fn parse_create(input: &mut Input) -> ApiResult<Self::New>;
    fn create(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        new: Self::New,
    ) -> ServiceResult<Uuid>;
    /// An update's attributes, read the way Neutron does.
    fn parse_update(input: &mut Input) -> ApiResult<Self::Fields>;
    /// What an update checks after reading its attributes and before the
    /// body's remaining ones are refused ([`Input::finish`]), on object `id`
    /// as the caller sees it in `s` (an immutable attribute restated with its
    /// current value is taken here). By default nothing.
    fn check_update(
        _ctx: &Context,
        _s: &State,
        _settings: &ApiSettings,
        _id: Uuid,
        _fields: &Self::Fields,
        _input: &mut Input,
    ) -> ApiResult<()> {
        Ok(())
    }
    /// The end of an update's reading, once [`Resource::check_update`] has
    /// passed: by default nothing may be left in the body. A resource that
    /// refuses unknown attributes only once the object is found (after its
    /// 404) overrides this and carries that refusal to the service in its
    /// `Fields` ([`restated`], [`leftover`]).
    fn finish_update(fields: Self::Fields, input: Input) -> ApiResult<Self::Fields> {
        input.finish()?;
        Ok(fields)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        fields: Self::Fields,
    ) -> ServiceResult<()>;
    fn delete(ctx: &Context, txn: &mut Txn, settings: &ApiSettings, id: Uuid) -> ServiceResult<()>;
}

/// The routes of `R` at `/<path>`.
pub fn routes<R: Resource>() -> Router<AppState> {
    let path = format!("/{}", R::PATH);
    let item = if R::UPDATABLE {
        get(show::<R>).put(update::<R>).delete(delete::<R>)
    } else {
        get(show::<R>).delete(delete::<R>)
    };
    Router::new()
        .route(&path, get(list::<R>).post(create::<R>))
        .route(&format!("{path}/{{id}}"), item)
}

/// What `parse_update` of a resource without update
/// ([`Resource::UPDATABLE`] false) answers, should it ever be called: what
/// a PUT on its objects answers (with `Fields = Infallible`, its `update`
/// is `match fields {}`).
pub fn not_updatable<T>() -> ApiResult<T> {
    Err(ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "The method specified is not allowed for this resource.",
    )
    .neutron("HTTPMethodNotAllowed"))
}

fn id_of<R: Resource>(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| R::missing(raw).into())
}

/// `R`'s object `id` as the caller sees it now, in its envelope.
fn rendered<R: Resource>(app: &AppState, ctx: &RequestContext, id: Uuid) -> ApiResult<Value> {
    let s = app.store.snapshot();
    let m = R::show(&ctx.service, &s, id)?;
    Ok(json!({ R::ENVELOPE: R::render(&s, &m) }))
}

async fn list<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let items = R::select(&Query::parse(uri.query()), R::list(&ctx.service, &s)?)?
            .iter()
            .map(|m| R::render(&s, m))
            .collect();
        list_body(&app, &ctx, &uri, R::PLURAL, R::ATTRS, R::IGNORED, items).map(Json)
    })
}

async fn show<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    run(|| {
        let s = app.store.snapshot();
        let m = R::show(&ctx.service, &s, id_of::<R>(&id)?)?;
        Ok(Json(one(R::ENVELOPE, R::render(&s, &m), &uri)))
    })
}

async fn create<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): NeutronJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    neutron(
        async {
            let mut input = envelope(body, R::ENVELOPE)?;
            let new = R::parse_create(&mut input)?;
            input.finish()?;
            let id = app
                .store
                .write(|txn| R::create(&ctx.service, txn, &app.settings, new))
                .await?;
            Ok((StatusCode::CREATED, Json(rendered::<R>(&app, &ctx, id)?)))
        }
        .await,
    )
}

async fn update<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(
        async {
            let id = id_of::<R>(&id)?;
            let mut input = envelope(body, R::ENVELOPE)?;
            let fields = R::parse_update(&mut input)?;
            R::check_update(
                &ctx.service,
                &app.store.snapshot(),
                &app.settings,
                id,
                &fields,
                &mut input,
            )?;
            let fields = R::finish_update(fields, input)?;
            app.store
                .write(|txn| R::update(&ctx.service, txn, &app.settings, id, fields))
                .await?;
            rendered::<R>(&app, &ctx, id).map(Json)
        }
        .await,
    )
}

async fn delete<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<R>(&id)?;
            app.store
                .write(|txn| R::delete(&ctx.service, txn, &app.settings, id))
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}

/// The read-only attributes among `keys` that an update's body states, with
/// their value as text when it is a string or an integer (`ip_version: 4`);
/// anything else restates nothing. They may be restated, not changed: the
/// service compares them with the object's (`neutron::check_restated`).
pub(crate) fn restated(
    input: &mut Input,
    keys: &[&'static str],
) -> Vec<(&'static str, Option<String>)> {
    keys.iter()
        .filter_map(|&key| match input.take(key) {
            crate::input::Opt::Absent => None,
            crate::input::Opt::Set(Value::String(v)) => Some((key, Some(v))),
            crate::input::Opt::Set(v) => Some((key, v.as_i64().map(|n| n.to_string()))),
            crate::input::Opt::Null => Some((key, None)),
        })
        .collect()
}

/// The refusal of whatever an update's body still holds (attributes
/// Statera does not know), for a service that gives it once the object is
/// found: Neutron's `HTTPBadRequest` with [`Input::finish`]'s message.
pub(crate) fn leftover(input: Input) -> Option<ServiceError> {
    input.finish().err().map(|e| {
        statera_service::neutron::error(
            statera_service::Fault::Invalid,
            "HTTPBadRequest",
            e.message,
        )
    })
}
