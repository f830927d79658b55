//! Neutron's tag sub-resource, `/<resources>/{id}/tags[/{tag}]`, which the
//! `openstack network|subnet|port|router|floating ip|security group
//! create|set --tag` commands use, on the wire; the operations are
//! `statera_service::neutron::tags`.

use super::*;
use crate::input::{JsonBody, NeutronJson};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::routing::get;
use statera_service::neutron::tags::{self as service, Tagged};

pub fn routes() -> Router<AppState> {
    fn one_kind<T: Tagged>() -> Router<AppState> {
        let base = format!("/{}/{{id}}/tags", T::COLLECTION);
        Router::new()
            .route(&base, get(list::<T>).put(replace::<T>).delete(clear::<T>))
            .route(
                &format!("{base}/{{tag}}"),
                get(check::<T>).put(add::<T>).delete(remove::<T>),
            )
    }
    Router::new()
        .merge(one_kind::<Network>())
        .merge(one_kind::<Subnet>())
        .merge(one_kind::<Port>())
        .merge(one_kind::<L3Router>())
        .merge(one_kind::<FloatingIp>())
        .merge(one_kind::<SecurityGroup>())
}

fn id_of<T: Tagged>(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| T::not_found(raw).into())
}

async fn list<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(|| {
        let tags = service::list::<T>(&ctx.service, &*app.store.snapshot(), id_of::<T>(&id)?)?;
        Ok(Json(json!({ "tags": tags })))
    })
}

async fn check<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    run(|| {
        service::check::<T>(&ctx.service, &*app.store.snapshot(), id_of::<T>(&id)?, &tag)?;
        Ok(StatusCode::NO_CONTENT)
    })
}

async fn replace<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            let mut input = Input::from_value(body, "tags")?;
            let tags = crate::octavia::tags(&mut input)?
                .value()
                .ok_or_else(|| invalid_field("tags", "a list of tags is required"))?;
            input.finish()?;
            let tags = app
                .store
                .write(|txn| service::replace::<T>(&ctx.service, txn, id, tags))
                .await?;
            Ok(Json(json!({ "tags": tags })))
        }
        .await,
    )
}

async fn clear<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            app.store
                .write(|txn| service::clear::<T>(&ctx.service, txn, id))
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}

async fn add<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            app.store
                .write(|txn| service::add::<T>(&ctx.service, txn, id, tag))
                .await?;
            Ok(StatusCode::CREATED)
        }
        .await,
    )
}

async fn remove<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            app.store
                .write(|txn| service::remove::<T>(&ctx.service, txn, id, &tag))
                .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}
