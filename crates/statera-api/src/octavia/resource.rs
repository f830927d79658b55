//! The wire shape of an Octavia resource, written once: `GET /things`,
//! `GET/PUT/DELETE /things/{id}` read the request, call the service layer's
//! operation and render, the same way for every top-level resource whose
//! operations live in `statera_service::octavia`. A [`Resource`] says what
//! differs (names, rendering, which service functions); creation differs too
//! much between resources (parents, populated children) and stays in each
//! resource's module.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson};
use crate::list::Object;
use axum::Json;
use axum::extract::{OriginalUri, Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};
use statera_service::{Context, ServiceResult};
use statera_store::Record;

/// How a path names an object: a UUID (anything else names nothing, 404),
/// or a name as it is (availability zones).
pub trait PathKey: Sized {
    fn from_path(raw: &str, resource: &str) -> ApiResult<Self>;
}

impl PathKey for Uuid {
    fn from_path(raw: &str, resource: &str) -> ApiResult<Uuid> {
        path_id(raw, resource)
    }
}

impl PathKey for String {
    fn from_path(raw: &str, _: &str) -> ApiResult<String> {
        Ok(raw.to_string())
    }
}

/// The key of a [`Resource`]'s objects (a UUID but for availability zones).
pub type Key<R> = <<R as Resource>::Model as Record>::Key;

/// One top-level Octavia resource served by the service layer.
pub trait Resource: Send + Sync + 'static {
    type Model: Record<Key: PathKey>;
    /// What an update states (the service's typed fields).
    type Fields: Send;
    /// `Health Monitor`, as messages name it.
    const NAME: &'static str;
    /// The body's envelope (`healthmonitor`).
    const ENVELOPE: &'static str;
    /// The collection's key (`healthmonitors`; its links key adds `_links`).
    const PLURAL: &'static str;
    const LINKS: &'static str;
    const ATTRS: &'static [&'static str];

    fn render(s: &State, m: &Self::Model) -> Object;
    /// Whether lists filter and sort on [`Resource::summary`] and render
    /// only the page (`Collection::respond_lazy`).
    const LAZY: bool = false;
    /// What a list filters and sorts on when [`Resource::LAZY`].
    fn summary(s: &State, m: &Self::Model) -> Object {
        Self::render(s, m)
    }
    /// A check before the request is read (`action`: the policy's
    /// `get_all`, `get_one`, `put`, `delete`): Octavia asks an admin
    /// resource's rule first, whatever the path and the body say.
    fn admit(_ctx: &Context, _action: &str) -> ServiceResult<()> {
        Ok(())
    }
    /// The update body's envelope (`from_root` refuses other top-level keys
    /// beside it; some resources ignore them).
    fn input(body: Value) -> ApiResult<Input> {
        Input::from_root(body, Self::ENVELOPE)
    }
    fn show(ctx: &Context, s: &State, id: Key<Self>) -> ServiceResult<Arc<Self::Model>>;
    fn list(ctx: &Context, s: &State, asked: Option<&str>) -> ServiceResult<Vec<Arc<Self::Model>>>;
    /// An update's attributes, read the way Octavia's WSME does.
    fn parse_update(input: &mut Input) -> ApiResult<Self::Fields>;
    /// A check of the whole update once every attribute was read.
    fn check_update(_fields: &Self::Fields) -> ApiResult<()> {
        Ok(())
    }
    /// The certificate references the update sets on object `id`, checked
    /// for the caller before the transaction (`crate::certificates`).
    fn tls_refs(
        _s: &State,
        _id: &Key<Self>,
        _fields: &Self::Fields,
    ) -> Vec<statera_service::keymanager::tls::TlsRef> {
        Vec::new()
    }
    /// The project whose load balancer the object belongs to (its
    /// certificate references must be that project's); `None`: the
    /// caller's.
    fn owner(_model: &Self::Model) -> Option<String> {
        None
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Key<Self>,
        fields: Self::Fields,
    ) -> ServiceResult<()>;
    /// The delete (`query`: its flags, as a load balancer's `cascade`).
    fn delete(ctx: &Context, txn: &mut Txn, id: Key<Self>, query: &Query) -> ServiceResult<()>;
}

/// The routes of `R` at `path` (`/healthmonitors`), with its own `create`.
pub fn routes<R: Resource>(path: &str, create: MethodRouter<AppState>) -> Router<AppState> {
    Router::new()
        .route(path, get(list::<R>).merge(create))
        .route(
            &format!("{path}/{{id}}"),
            get(show::<R>).put(update::<R>).delete(delete::<R>),
        )
}

/// `R`'s object `id` as the store has it now, rendered in its envelope.
pub fn rendered<R: Resource>(app: &AppState, id: Key<R>) -> ApiResult<Value> {
    let s = app.store.snapshot();
    let m = R::Model::table(&s)
        .get(&id)
        .ok_or_else(|| ApiError::not_found(R::NAME, id))?;
    Ok(json!({ R::ENVELOPE: R::render(&s, m) }))
}

async fn list<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    R::admit(&ctx.service, "get_all")?;
    let q = query(&uri);
    let s = app.store.snapshot();
    let items = R::list(&ctx.service, &s, q.get("project_id"))?;
    let collection = app.collection(&ctx, &uri, R::PLURAL, Some(R::LINKS), R::ATTRS);
    if R::LAZY {
        collection.respond_lazy(items, &q, |m| R::summary(&s, m), |m| R::render(&s, m))
    } else {
        let items = items.iter().map(|m| R::render(&s, m)).collect();
        collection.respond(items, &q)
    }
    .map(Json)
}

async fn show<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    R::admit(&ctx.service, "get_one")?;
    let id = Key::<R>::from_path(&id, R::NAME)?;
    let s = app.store.snapshot();
    let m = R::show(&ctx.service, &s, id)?;
    Ok(Json(loadbalancers::one(
        R::ENVELOPE,
        R::render(&s, &m),
        &query(&uri),
    )))
}

async fn update<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    R::admit(&ctx.service, "put")?;
    let id = Key::<R>::from_path(&id, R::NAME)?;
    let mut input = R::input(body)?;
    let fields = R::parse_update(&mut input)?;
    input.finish()?;
    R::check_update(&fields)?;
    let snap = app.store.snapshot();
    let refs = R::tls_refs(&snap, &id, &fields);
    if !refs.is_empty() {
        // The object must be the caller's to see before its references
        // cost anything (a 404 answers otherwise).
        let shown = R::show(&ctx.service, &snap, id.clone())?;
        crate::certificates::check(&app, &ctx, refs, R::owner(&shown)).await?;
    }
    app.store
        .write(|txn| R::update(&ctx.service, txn, &app.settings, id.clone(), fields))
        .await?;
    rendered::<R>(&app, id).map(Json)
}

async fn delete<R: Resource>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<StatusCode> {
    R::admit(&ctx.service, "delete")?;
    let id = Key::<R>::from_path(&id, R::NAME)?;
    let q = query(&uri);
    app.store
        .write(|txn| R::delete(&ctx.service, txn, id, &q))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One Octavia resource nested under a parent (`/pools/{pool_id}/members`,
/// `/l7policies/{policy_id}/rules`): the same wire shape with the parent's
/// id in every path. Creation stays in the resource's module, as above.
pub trait Child: Send + Sync + 'static {
    type Model: Send + Sync + 'static;
    /// What an update states (the service's typed fields).
    type Fields: Send;
    /// The parent as messages name it (`Pool`, `L7 Policy`).
    const PARENT: &'static str;
    const ENVELOPE: &'static str;
    const PLURAL: &'static str;
    const LINKS: &'static str;
    const ATTRS: &'static [&'static str];
    /// Query parameters a list accepts and does not filter on (the parent's
    /// id, which clients add).
    const IGNORED: &'static [&'static str] = &[];

    fn render(m: &Self::Model) -> Object;
    /// A list item: [`Child::render`], plus what only the list's filters
    /// and sorting see ([`Child::LIST_ONLY`], removed before the answer).
    fn list_item(m: &Self::Model, _parent: Uuid) -> Object {
        Self::render(m)
    }
    const LIST_ONLY: &'static [&'static str] = &[];
    fn list(ctx: &Context, s: &State, parent: Uuid) -> ServiceResult<Vec<Arc<Self::Model>>>;
    fn show(ctx: &Context, s: &State, parent: Uuid, id: &str) -> ServiceResult<Arc<Self::Model>>;
    /// An update's attributes, read the way Octavia's WSME does.
    fn parse_update(input: &mut Input) -> ApiResult<Self::Fields>;
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        parent: Uuid,
        id: &str,
        fields: Self::Fields,
    ) -> ServiceResult<Self::Model>;
    fn delete(ctx: &Context, txn: &mut Txn, parent: Uuid, id: &str) -> ServiceResult<()>;
}

/// The routes of `C` at `path` (`/pools/{pool_id}/members`): `collection`
/// holds its own create (and a batch update, for members).
pub fn child_routes<C: Child>(path: &str, collection: MethodRouter<AppState>) -> Router<AppState> {
    Router::new()
        .route(path, get(child_list::<C>).merge(collection))
        .route(
            &format!("{path}/{{id}}"),
            get(child_show::<C>)
                .put(child_update::<C>)
                .delete(child_delete::<C>),
        )
}

async fn child_list<C: Child>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(parent): Path<String>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let q = query(&uri);
    let parent = path_id(&parent, C::PARENT)?;
    let items = C::list(&ctx.service, &app.store.snapshot(), parent)?
        .iter()
        .map(|m| C::list_item(m, parent))
        .collect();
    let mut c = app.collection(&ctx, &uri, C::PLURAL, Some(C::LINKS), C::ATTRS);
    c.ignored = C::IGNORED;
    let mut body = c.respond(items, &q)?;
    if let Some(Value::Array(items)) = body.get_mut(C::PLURAL) {
        for o in items.iter_mut().filter_map(Value::as_object_mut) {
            for key in C::LIST_ONLY {
                o.remove(*key);
            }
        }
    }
    Ok(Json(body))
}

async fn child_show<C: Child>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((parent, id)): Path<(String, String)>,
    OriginalUri(uri): OriginalUri,
) -> ApiResult<Json<Value>> {
    let parent = path_id(&parent, C::PARENT)?;
    let m = C::show(&ctx.service, &app.store.snapshot(), parent, &id)?;
    Ok(Json(loadbalancers::one(
        C::ENVELOPE,
        C::render(&m),
        &query(&uri),
    )))
}

async fn child_update<C: Child>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((parent, id)): Path<(String, String)>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<Json<Value>> {
    let parent = path_id(&parent, C::PARENT)?;
    let mut input = Input::from_root(body, C::ENVELOPE)?;
    let fields = C::parse_update(&mut input)?;
    input.finish()?;
    let m = app
        .store
        .write(|txn| C::update(&ctx.service, txn, &app.settings, parent, &id, fields))
        .await?;
    Ok(Json(json!({ C::ENVELOPE: C::render(&m) })))
}

async fn child_delete<C: Child>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((parent, id)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    let parent = path_id(&parent, C::PARENT)?;
    app.store
        .write(|txn| C::delete(&ctx.service, txn, parent, &id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
