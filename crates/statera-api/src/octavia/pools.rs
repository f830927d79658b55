//! `/pools`: a set of members behind a listener (or an L7 policy). The wire
//! only: reading requests (`parse_fields`, `parse_create`, the
//! `session_persistence` object), rendering; the operations are
//! `statera_service::octavia::pools`.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use crate::render;
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::post;
use resource::Resource;
use serde_json::{Map, Value};
use statera_service::ServiceError;
use statera_service::octavia::pools as service;
pub use statera_service::octavia::pools::{
    NewPool, PoolFields, SessionPersistenceAttributes, SessionPersistenceFields, new_pool, validate,
};
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    resource::routes::<Pools>("/pools", post(create))
}

/// `/pools` in the shape every resource shares ([`resource`]).
pub struct Pools;

impl Resource for Pools {
    type Model = Pool;
    type Fields = PoolFields;
    const NAME: &'static str = "Pool";
    const ENVELOPE: &'static str = "pool";
    const PLURAL: &'static str = "pools";
    const LINKS: &'static str = "pools_links";
    const ATTRS: &'static [&'static str] = render::POOL_ATTRS;
    const LAZY: bool = true;

    fn render(s: &State, p: &Pool) -> Object {
        render::pool(s, p)
    }
    fn summary(_: &State, p: &Pool) -> Object {
        render::pool_summary(p)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Pool>> {
        service::show(ctx, s, id)
    }
    fn list(ctx: &Context, s: &State, asked: Option<&str>) -> ServiceResult<Vec<Arc<Pool>>> {
        service::list(ctx, s, asked)
    }
    fn tls_refs(
        _s: &State,
        _id: &Uuid,
        f: &PoolFields,
    ) -> Vec<statera_service::keymanager::tls::TlsRef> {
        crate::certificates::pool_refs(f)
    }
    fn owner(p: &Pool) -> Option<String> {
        Some(p.project_id.clone())
    }
    fn parse_update(input: &mut Input) -> ApiResult<PoolFields> {
        parse_fields(input)
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        f: PoolFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, settings, id, f).map(drop)
    }
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, _: &Query) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

/// An error of the wire's reading, reported by the service when it applies
/// what was read (always a 400: the message is the wire's, word for word).
fn deferred(e: ApiError) -> ServiceError {
    ServiceError::Invalid(e.message)
}

/// Read a `session_persistence` object; its errors are reported when the
/// service applies it (after the pool is found and the caller authorized).
fn session_persistence(m: Map<String, Value>) -> SessionPersistenceFields {
    let mut i = match Input::from_value(Value::Object(m), "session_persistence") {
        Ok(i) => i,
        Err(e) => {
            return SessionPersistenceFields {
                kind: Err(deferred(e.clone())),
                attributes: Err(deferred(e)),
            };
        }
    };
    let kind = i
        .enumeration("type", SessionPersistenceType::ALL, |e| e.as_str())
        .map(Opt::value)
        .map_err(deferred);
    let attributes = (|| {
        let cookie_name = i.string("cookie_name", 255)?.value();
        let persistence_timeout = i
            .int("persistence_timeout", 0, i64::from(i32::MAX))?
            .value();
        let persistence_granularity = i.string("persistence_granularity", 64)?.value();
        i.finish()?;
        Ok(SessionPersistenceAttributes {
            cookie_name,
            persistence_timeout,
            persistence_granularity,
        })
    })()
    .map_err(deferred);
    SessionPersistenceFields { kind, attributes }
}

/// The mutable attributes of a pool as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<PoolFields> {
    Ok(PoolFields {
        name: input.string("name", 255)?,
        description: input.string("description", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        lb_algorithm: input.enumeration("lb_algorithm", LbAlgorithm::ALL, |e| e.as_str())?,
        session_persistence: input
            .object("session_persistence")?
            .map(session_persistence),
        tls_enabled: input.boolean("tls_enabled")?,
        tls_container_ref: input.string("tls_container_ref", 255)?,
        ca_tls_container_ref: input.string("ca_tls_container_ref", 255)?,
        crl_container_ref: input.string("crl_container_ref", 255)?,
        tls_ciphers: input.string("tls_ciphers", 2048)?,
        tls_versions: input.string_list("tls_versions", 32)?,
        alpn_protocols: input.string_list("alpn_protocols", 32)?,
        tags: tags(input)?,
    })
}

/// Parse a pool create body (ids taken by the caller).
pub fn parse_create(input: &mut Input) -> ApiResult<(PoolProtocol, PoolFields)> {
    let protocol = input
        .enumeration("protocol", PoolProtocol::ALL, |e| e.as_str())?
        .required("protocol")?;
    input.project_id()?;
    let fields = parse_fields(input)?;
    if !fields.has_algorithm() {
        return Err(ApiError::missing_field("lb_algorithm"));
    }
    Ok((protocol, fields))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "pool")?;
    let loadbalancer_id = input.uuid("loadbalancer_id")?.value();
    let listener_id = input.uuid("listener_id")?.value();
    let (protocol, fields) = parse_create(&mut input)?;
    input.finish()?;
    let owner = {
        let snap = app.store.snapshot();
        let lb_id = loadbalancer_id.or_else(|| {
            listener_id.and_then(|l| snap.listeners.get(&l).map(|l| l.loadbalancer_id))
        });
        lb_id.and_then(|id| snap.loadbalancers.get(&id).map(|lb| lb.project_id.clone()))
    };
    crate::certificates::check(&app, &ctx, crate::certificates::pool_refs(&fields), owner).await?;
    let new = NewPool {
        loadbalancer_id,
        listener_id,
        protocol,
        fields,
    };
    let id = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, new))
        .await?
        .id;
    Ok((
        StatusCode::CREATED,
        Json(resource::rendered::<Pools>(&app, id)?),
    ))
}
