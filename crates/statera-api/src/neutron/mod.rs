//! The Neutron subset load balancers stand on: networks, subnets (CIDR,
//! gateway, allocation pools, IPAM), ports, routers (gateways, interfaces,
//! extra routes), floating IPs and security groups, under `/v2.0` and `/v2`
//! with Neutron's envelopes and `{"NeutronError": …}` errors.
//!
//! Every handler runs its body through [`neutron`], so whatever error it
//! returns (input parsing, listing, the store) is rendered in Neutron's shape.
//! Visibility follows Neutron: an object of another project that the caller
//! may not see is 404, never 403; shared and external networks (and their
//! subnets) are visible to every project.

pub mod floatingips;
pub use statera_service::neutron::ipam;
pub mod networks;
pub mod ports;
pub mod quotas;
pub mod render;
pub mod resource;
pub mod routers;
pub mod security_groups;
pub mod subnetpools;
pub mod subnets;
pub mod tags;

use crate::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult, Style};
use crate::input::Input;
use crate::list::{Collection, Object, Query, RepeatedFilters, select_fields};
use axum::Router;
use axum::http::{StatusCode, Uri};
use serde_json::{Value, json};
use statera_model::Router as L3Router;
use statera_model::*;
use statera_store::{State, Txn};
use uuid::Uuid;

/// The Neutron collections this API serves (for error shapes on unknown routes).
pub const COLLECTIONS: &[&str] = &[
    "networks",
    "subnets",
    "ports",
    "routers",
    "floatingips",
    "security-groups",
    "security-group-rules",
    "subnetpools",
    "extensions",
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(networks::routes())
        .merge(subnets::routes())
        .merge(subnetpools::routes())
        .merge(ports::routes())
        .merge(routers::routes())
        .merge(floatingips::routes())
        .merge(security_groups::routes())
        .merge(tags::routes())
        .route("/extensions", axum::routing::get(extensions))
        .route("/extensions/{alias}", axum::routing::get(extension))
}

/// The Neutron API extensions this subset implements: (alias, name, description).
pub const EXTENSIONS: &[(&str, &str, &str)] = &[
    (
        "external-net",
        "Neutron external network",
        "Adds external network attribute to network resource.",
    ),
    (
        "net-mtu",
        "Network MTU",
        "Provides MTU attribute for a network resource.",
    ),
    (
        "project-id",
        "project_id field enabled",
        "Extension that indicates that project_id field is enabled.",
    ),
    (
        "standard-attr-description",
        "standard-attr-description",
        "Extension to add descriptions to standard attributes",
    ),
    (
        "standard-attr-timestamp",
        "Resource timestamps",
        "Adds created_at and updated_at fields to all Neutron resources that have \
         Neutron standard attributes.",
    ),
    (
        "standard-attr-tag",
        "Tag support for resources with standard attribute: subnet, port, network, router, \
         floatingip, security_group",
        "Enables to set tag on resources with standard attribute.",
    ),
    (
        "router",
        "Neutron L3 Router",
        "Router abstraction for basic L3 forwarding between L2 Neutron networks and access \
         to external networks via a NAT gateway.",
    ),
    (
        "ext-gw-mode",
        "Neutron L3 Configurable external gateway mode",
        "Extension of the router abstraction for specifying whether SNAT should occur on \
         the external gateway",
    ),
    (
        "extraroute",
        "Neutron Extra Route",
        "Extra routes configuration for L3 router",
    ),
    (
        "fip-port-details",
        "Floating IP Port Details Extension",
        "Add port_details attribute to Floating IP resource",
    ),
    (
        "security-group",
        "security-group",
        "The security groups extension.",
    ),
    (
        "stateful-security-group",
        "Stateful security group",
        "Indicates if the security group is stateful or not",
    ),
    ("port-security", "Port Security", "Provides port security"),
    ("sorting", "Sorting support", "Enables sort feature."),
    (
        "pagination",
        "Pagination support",
        "Enables pagination feature.",
    ),
];

fn extension_doc(alias: &str, name: &str, description: &str) -> Value {
    json!({"alias": alias, "name": name, "description": description,
           "updated": "2026-01-01T00:00:00-00:00", "links": []})
}

async fn extensions() -> axum::Json<Value> {
    let list: Vec<Value> = EXTENSIONS
        .iter()
        .map(|(a, n, d)| extension_doc(a, n, d))
        .collect();
    axum::Json(json!({ "extensions": list }))
}

async fn extension(
    axum::extract::Path(alias): axum::extract::Path<String>,
) -> ApiResult<axum::Json<Value>> {
    EXTENSIONS
        .iter()
        .find(|(a, _, _)| *a == alias)
        .map(|(a, n, d)| axum::Json(json!({ "extension": extension_doc(a, n, d) })))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                format!("Extension with alias {alias} does not exist"),
            )
            .neutron("HTTPNotFound")
        })
}

/// Render whatever error `r` holds in Neutron's shape (keeping a Neutron
/// exception name already chosen, else the generic one of its status).
pub(crate) fn neutron<T>(r: ApiResult<T>) -> ApiResult<T> {
    r.map_err(neutron_error)
}

/// `e` in Neutron's shape: a Neutron exception name already chosen is kept,
/// else webob's exception class of its status.
pub(crate) fn neutron_error(e: ApiError) -> ApiError {
    if e.style == Style::Neutron {
        return e;
    }
    // Neutron names errors raised outside its resource logic after the
    // HTTP status (webob's exception classes).
    let kind = match e.status {
        StatusCode::BAD_REQUEST => "HTTPBadRequest",
        StatusCode::NOT_FOUND => "HTTPNotFound",
        StatusCode::CONFLICT => "HTTPConflict",
        StatusCode::FORBIDDEN => "HTTPForbidden",
        StatusCode::METHOD_NOT_ALLOWED => "HTTPMethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "HTTPRequestEntityTooLarge",
        StatusCode::URI_TOO_LONG => "HTTPRequestURITooLong",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "HTTPRequestHeaderFieldsTooLarge",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "HTTPUnsupportedMediaType",
        StatusCode::LENGTH_REQUIRED => "HTTPLengthRequired",
        StatusCode::REQUEST_TIMEOUT => "HTTPRequestTimeout",
        StatusCode::NOT_IMPLEMENTED => "HTTPNotImplemented",
        StatusCode::SERVICE_UNAVAILABLE => "HTTPServiceUnavailable",
        s if s.is_client_error() => "HTTPClientError",
        _ => "HTTPInternalServerError",
    };
    e.neutron(kind)
}

/// [`neutron`] over a synchronous handler body.
pub(crate) fn run<T>(body: impl FnOnce() -> ApiResult<T>) -> ApiResult<T> {
    neutron(body())
}

use statera_service::neutron as service;

/// Neutron's `InvalidInput` (400): `Invalid input for operation: …`.
pub(crate) fn invalid_input(message: impl std::fmt::Display) -> ApiError {
    service::invalid_input(message).into()
}

/// A 400 about one attribute: `Invalid input for <field>. Reason: …`.
pub(crate) fn invalid_field(field: &str, reason: impl std::fmt::Display) -> ApiError {
    service::invalid_field(field, reason).into()
}

/// The object inside envelope `name`.
pub(crate) fn envelope(body: Value, name: &str) -> ApiResult<Input> {
    if !matches!(&body, Value::Object(o) if o.contains_key(name)) {
        return Err(
            ApiError::bad_request(format!("Unable to find '{name}' in request body"))
                .neutron("HTTPBadRequest"),
        );
    }
    Input::from_envelope(body, name).map_err(|e| e.neutron("HTTPBadRequest"))
}

/// Take an attribute Statera shows but does not model: accepted only when
/// absent, null, or equal to what Statera always shows.
pub(crate) fn only_default(
    input: &mut Input,
    key: &str,
    accepted: impl Fn(&Value) -> bool,
) -> ApiResult<()> {
    match input.take(key).value() {
        Some(v) if !accepted(&v) => Err(invalid_field(
            key,
            format!("Statera does not support the value {v} of {key}"),
        )),
        _ => Ok(()),
    }
}

/// A Neutron list body: repeated filter keys OR'ed, unknown filters and the
/// `ignored` keys (filters the caller applied itself) skipped,
/// `<plural>_links` only when there are links.
pub(crate) fn list_body(
    app: &AppState,
    ctx: &RequestContext,
    uri: &Uri,
    plural: &str,
    attributes: &[&str],
    ignored: &[&str],
    items: Vec<Object>,
) -> ApiResult<Value> {
    let links_key = format!("{plural}_links");
    let coll = Collection {
        plural,
        links_key: Some(&links_key),
        attributes,
        ignored,
        url: format!("{}{}", ctx.base_url, uri.path()),
        max_limit: app.settings.pagination_max_limit,
        strict_filters: false,
    };
    let mut body = coll.respond_with(items, &Query::parse(uri.query()), RepeatedFilters::Any)?;
    if let Value::Object(o) = &mut body
        && o.get(&links_key)
            .and_then(Value::as_array)
            .is_some_and(|l| l.is_empty())
    {
        o.remove(&links_key);
    }
    Ok(body)
}

/// A single-object body, with `fields=` applied.
pub(crate) fn one(envelope: &str, o: Object, uri: &Uri) -> Value {
    let fields = Query::parse(uri.query()).all("fields");
    let o = if fields.is_empty() {
        o
    } else {
        select_fields(o, &fields)
    };
    json!({ envelope: o })
}

/// `Failed to parse request. Required attribute '<field>' not specified` (400).
pub(crate) fn required_attribute<T>(v: crate::input::Opt<T>, field: &str) -> ApiResult<T> {
    v.value().ok_or_else(|| {
        ApiError::bad_request(format!(
            "Failed to parse request. Required attribute '{field}' not specified"
        ))
        .neutron("HTTPBadRequest")
    })
}

/// A path id: anything that is not a UUID names nothing (the 404 of `missing`).
pub(crate) fn path_uuid(raw: &str, missing: impl FnOnce(String) -> ApiError) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| missing(raw.to_string()))
}

pub(crate) fn router_not_found(id: impl std::fmt::Display) -> ApiError {
    service::router_not_found(id).into()
}
