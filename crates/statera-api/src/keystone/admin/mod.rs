//! The identity admin API: domains, projects, users, groups, roles, role
//! assignments, application credentials, services, endpoints, regions.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
