//! The built-in Keystone v3 subset (auth mode `builtin`): token issue and
//! validation, discovery and the catalog ([`auth`]), and the identity admin
//! API ([`admin`]). Errors render in Keystone's shape (`Style::Keystone`).

pub mod admin;
pub mod auth;

use crate::AppState;
use axum::Router;

/// Every identity route (mounted at the root: paths start with `/v3`).
pub fn routes() -> Router<AppState> {
    Router::new().merge(auth::routes()).merge(admin::routes())
}
