//! `/listeners`: a port on a load balancer's VIP. The wire only: reading
//! requests (`parse_fields`, `parse_create`), rendering; the operations are
//! `statera_service::octavia::listeners`.

use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use crate::render;
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::http::StatusCode;
use axum::routing::{get, post};
use resource::Resource;
use serde_json::{Map, Value};
use statera_service::octavia::listeners as service;
use statera_service::octavia::listeners::{HeaderValue, TIMEOUT_MAX};
pub use statera_service::octavia::listeners::{
    ListenerFields, NewListener, new_listener, validate,
};
use statera_service::{Context, ServiceResult};

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(resource::routes::<Listeners>("/listeners", post(create)))
        .route("/listeners/{id}/stats", get(stats))
}

/// `/listeners` in the shape every resource shares ([`resource`]).
pub struct Listeners;

impl Resource for Listeners {
    type Model = Listener;
    type Fields = ListenerFields;
    const NAME: &'static str = "Listener";
    const ENVELOPE: &'static str = "listener";
    const PLURAL: &'static str = "listeners";
    const LINKS: &'static str = "listeners_links";
    const ATTRS: &'static [&'static str] = render::LISTENER_ATTRS;
    const LAZY: bool = true;

    fn render(s: &State, l: &Listener) -> Object {
        render::listener(s, l)
    }
    fn summary(_: &State, l: &Listener) -> Object {
        render::listener_summary(l)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<Listener>> {
        service::show(ctx, s, id)
    }
    fn list(ctx: &Context, s: &State, asked: Option<&str>) -> ServiceResult<Vec<Arc<Listener>>> {
        service::list(ctx, s, asked)
    }
    fn parse_update(input: &mut Input) -> ApiResult<ListenerFields> {
        parse_fields(input)
    }
    fn tls_refs(
        s: &State,
        id: &Uuid,
        f: &ListenerFields,
    ) -> Vec<statera_service::keymanager::tls::TlsRef> {
        // An unknown listener: the update's own 404 answers.
        s.listeners
            .get(id)
            .map(|l| crate::certificates::listener_refs(l.protocol, f))
            .unwrap_or_default()
    }
    fn owner(l: &Listener) -> Option<String> {
        Some(l.project_id.clone())
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        f: ListenerFields,
    ) -> ServiceResult<()> {
        service::update(ctx, txn, settings, id, f).map(drop)
    }
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, _: &Query) -> ServiceResult<()> {
        service::delete(ctx, txn, id)
    }
}

fn enum_list<E: std::str::FromStr>(input: &mut Input, key: &str) -> ApiResult<Opt<Vec<E>>> {
    match input.string_list(key, 32)? {
        Opt::Set(items) => {
            if items.is_empty() {
                return Err(ApiError::invalid_field(
                    key,
                    "[]",
                    "Value should not be an empty list",
                ));
            }
            items
                .iter()
                .map(|s| {
                    s.parse::<E>()
                        .map_err(|_| ApiError::invalid_field(key, s, "Invalid value"))
                })
                .collect::<ApiResult<Vec<E>>>()
                .map(Opt::Set)
        }
        Opt::Null => Ok(Opt::Null),
        Opt::Absent => Ok(Opt::Absent),
    }
}

/// `insert_headers` values as WSME reads them: strings of at most 255
/// characters, booleans as `True`/`False`; anything else is kept as written
/// for the service to refuse once it has checked the header names.
fn header_values(h: Map<String, Value>) -> Vec<(String, HeaderValue)> {
    h.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) if s.chars().count() <= 255 => Ok(s),
                Value::Bool(b) => Ok(if b { "True" } else { "False" }.to_string()),
                other => Err(other.to_string()),
            };
            (k, v)
        })
        .collect()
}

/// The mutable attributes of a listener as a request states them.
pub fn parse_fields(input: &mut Input) -> ApiResult<ListenerFields> {
    Ok(ListenerFields {
        name: input.string("name", 255)?,
        description: input.string("description", 255)?,
        admin_state_up: input.boolean("admin_state_up")?,
        connection_limit: input.int("connection_limit", -1, i64::from(i32::MAX))?,
        default_pool_id: input.uuid("default_pool_id")?,
        insert_headers: input.object("insert_headers")?.map(header_values),
        timeout_client_data: input.int("timeout_client_data", 0, TIMEOUT_MAX)?,
        timeout_member_connect: input.int("timeout_member_connect", 0, TIMEOUT_MAX)?,
        timeout_member_data: input.int("timeout_member_data", 0, TIMEOUT_MAX)?,
        timeout_tcp_inspect: input.int("timeout_tcp_inspect", 0, TIMEOUT_MAX)?,
        default_tls_container_ref: input.string("default_tls_container_ref", 255)?,
        sni_container_refs: input.string_list("sni_container_refs", 255)?,
        client_ca_tls_container_ref: input.string("client_ca_tls_container_ref", 255)?,
        client_authentication: input.enumeration(
            "client_authentication",
            ClientAuthentication::ALL,
            |e| e.as_str(),
        )?,
        client_crl_container_ref: input.string("client_crl_container_ref", 255)?,
        allowed_cidrs: input.cidr_list("allowed_cidrs")?,
        tls_ciphers: input.string("tls_ciphers", 2048)?,
        tls_versions: enum_list(input, "tls_versions")?,
        alpn_protocols: enum_list(input, "alpn_protocols")?,
        hsts_max_age: input.int("hsts_max_age", 0, i64::from(i32::MAX))?,
        hsts_include_subdomains: input.boolean("hsts_include_subdomains")?,
        hsts_preload: input.boolean("hsts_preload")?,
        tags: tags(input)?,
    })
}

/// Parse a listener create body (`loadbalancer_id` taken by the caller).
pub fn parse_create(
    input: &mut Input,
) -> ApiResult<(ListenerProtocol, u16, Option<String>, ListenerFields)> {
    let protocol = input
        .enumeration("protocol", ListenerProtocol::ALL, |e| e.as_str())?
        .required("protocol")?;
    let port = input
        .int("protocol_port", 1, 65535)?
        .required("protocol_port")? as u16;
    let project_id = input.project_id()?;
    let fields = parse_fields(input)?;
    Ok((protocol, port, project_id, fields))
}

async fn create(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let mut input = Input::from_root(body, "listener")?;
    let loadbalancer_id = input.uuid("loadbalancer_id")?.required("loadbalancer_id")?;
    let (protocol, protocol_port, _project, fields) = parse_create(&mut input)?;
    input.finish()?;
    let owner =
        (app.store.snapshot().loadbalancers.get(&loadbalancer_id)).map(|lb| lb.project_id.clone());
    crate::certificates::check(
        &app,
        &ctx,
        crate::certificates::listener_refs(protocol, &fields),
        owner,
    )
    .await?;
    let new = NewListener {
        loadbalancer_id,
        protocol,
        protocol_port,
        fields,
    };
    let id = app
        .store
        .write(|txn| service::create(&ctx.service, txn, &*app.settings, new))
        .await?
        .id;
    Ok((
        StatusCode::CREATED,
        Json(resource::rendered::<Listeners>(&app, id)?),
    ))
}

async fn stats(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let s = app.store.snapshot();
    let stats = service::stats(&ctx.service, &*s, path_id(&id, "Listener")?)?;
    Ok(Json(loadbalancers::stats_body(stats.unwrap_or_default())))
}
