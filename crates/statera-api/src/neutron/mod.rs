//! The Neutron subset load balancers stand on: networks, subnets (CIDR,
//! gateway, allocation pools, IPAM) and ports, under `/v2.0` and `/v2` with
//! Neutron's envelopes and `{"NeutronError": …}` errors.

pub mod ipam;

use crate::AppState;
use axum::Router;

/// The Neutron collections this API serves (for error shapes on unknown routes).
pub const COLLECTIONS: &[&str] = &["networks", "subnets", "ports"];

pub fn routes() -> Router<AppState> {
    Router::new()
}
