//! Statera's domain layer, between the wire (statera-api) and the store.
//!
//! - [`store`]: the narrow interface the service reaches the store through
//!   ([`StoreRead`]: get, children, count by project; [`StoreWrite`]: put,
//!   delete, enqueue work), implemented by the in-memory image and a write
//!   transaction;
//! - [`tree`]: the load-balancer tree walk, written once;
//! - [`lb`]: one change at a time per load balancer (lock, touch parents,
//!   cascade delete marking); [`quota`]: per-project quotas;
//! - [`auth`]: one `authorize(ctx, action, target)` over the deployment's
//!   policy;
//! - [`octavia`]: per-resource operations (`create/update/delete/show/list`)
//!   on typed input ([`Opt`] fields), resource by resource;
//! - [`neutron`]: the Neutron subset's operations; [`identity`]: the built-in
//!   Keystone's admin operations (domains, projects, users, groups, roles,
//!   grants, application credentials, the catalog), with Keystone's messages;
//! - [`error`]: what went wrong, by kind, with Octavia's messages; the wire
//!   layer chooses statuses and shapes.
//!
//! No HTTP, no SQL.

pub mod auth;
pub mod error;
pub mod identity;
pub mod keymanager;
pub mod lb;
pub mod neutron;
pub mod octavia;
pub mod opt;
pub mod quota;
pub mod store;
pub mod tree;

/// An id as a request names it: anything that is not a UUID simply names
/// nothing (404 `<resource> <raw> not found.`).
pub fn parse_id(raw: &str, resource: &str) -> ServiceResult<uuid::Uuid> {
    uuid::Uuid::parse_str(raw).map_err(|_| ServiceError::not_found(resource, raw))
}

pub use auth::{Context, authorize, project_target};
pub use error::{Fault, ServiceError, ServiceResult};
pub use lb::*;
pub use opt::Opt;
pub use quota::{QuotaDefaults, QuotaKind, check_quota, quota_limit, quota_usage};
pub use store::{Owned, StoreRead, StoreWrite};
pub use tree::{LbTree, ListenerTree, PolicyTree, PoolTree, Visitor};
