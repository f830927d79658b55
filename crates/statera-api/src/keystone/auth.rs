//! `/v3` discovery and `/v3/auth/*`: tokens, scopes, the catalog.

use crate::AppState;
use axum::Router;

pub fn routes() -> Router<AppState> {
    Router::new()
}
