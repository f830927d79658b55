//! The Keystone subset `noauth` needs: the `openstack` CLI resolves a project
//! name or id through the identity service before `loadbalancer quota
//! set|unset|reset`, and with auth type `none` that service is this endpoint.
//!
//! Under `noauth` projects are whatever callers say they are, so a project
//! id or name is answered as a project of that id and name in the default
//! domain. The same two lookups under `/v3` are routed by
//! [`crate::keystone::admin::projects`], which answers with these under
//! `noauth` and with the built-in Keystone's projects otherwise.

use crate::AppState;
use crate::list::Query;
use axum::Json;
use axum::extract::{OriginalUri, Path, State};
use axum::routing::get;
use axum::{Router, http::StatusCode};
use serde_json::{Value, json};

/// `/projects` and `/projects/{id}`: only under `noauth` (404 in another
/// mode, where projects are the identity service's).
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_route))
        .route("/projects/{id}", get(show_route))
}

fn lab_only(state: &AppState) -> Result<(), (StatusCode, Json<Value>)> {
    if state.auth.mode() == statera_identity::AuthMode::NoAuth {
        Ok(())
    } else {
        Err(error(
            404,
            "Not Found",
            "The resource could not be found.".to_string(),
        ))
    }
}

async fn show_route(
    State(state): State<AppState>,
    id: Path<String>,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    lab_only(&state)?;
    show(id).await
}

async fn list_route(
    State(state): State<AppState>,
    uri: OriginalUri,
) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    lab_only(&state)?;
    Ok(list(uri).await)
}

fn project(id: &str) -> Value {
    json!({
        "id": id,
        "name": id,
        "domain_id": "default",
        "description": "",
        "enabled": true,
        "is_domain": false,
        "parent_id": "default",
        "tags": [],
        "links": {"self": format!("/v3/projects/{id}")},
    })
}

fn error(code: u16, title: &str, message: String) -> (StatusCode, Json<Value>) {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({"error": {"code": code, "title": title, "message": message}})),
    )
}

pub async fn show(Path(id): Path<String>) -> Result<Json<Value>, (StatusCode, Json<Value>)> {
    if id.is_empty() || id.len() > 64 {
        return Err(error(
            404,
            "Not Found",
            format!("Could not find project: {id}."),
        ));
    }
    Ok(Json(json!({"project": project(&id)})))
}

pub async fn list(OriginalUri(uri): OriginalUri) -> Json<Value> {
    let q = Query::parse(uri.query());
    let projects: Vec<Value> = match q.get("name").or_else(|| q.get("id")) {
        Some(name) if !name.is_empty() && name.len() <= 64 => vec![project(name)],
        _ => Vec::new(),
    };
    Json(
        json!({"projects": projects, "links": {"self": uri.path(), "next": null, "previous": null}}),
    )
}
