//! The Octavia API test suite for the core resources: load balancers,
//! listeners, pools, members, health monitors, L7 policies and rules, listing,
//! errors and the status model, checked against the reference of Octavia's
//! real behaviour (shared/reference/octavia-api.md beside the repository). Statuses are
//! settled by the real controller against a fake data plane.
//!
//! One test binary, a module per area, to keep link times down.

mod support;

mod compat;
mod errors;
mod fuzz;
mod healthmonitors;
mod l7;
mod listeners;
mod listing;
mod loadbalancers;
mod members;
mod pools;
mod service;
mod status;
mod wire;
