//! Statera's domain model: the objects of the Octavia v2 API and the Neutron
//! subset load balancers stand on, their closed vocabularies, and the rules of
//! the status state machine.
//!
//! This crate knows nothing about storage, HTTP, async or JSON on the wire:
//! the serde derives here describe how the store keeps an object, not how the
//! API shows it.

pub mod addressing;
pub mod enums;
pub mod identity;
pub mod keymanager;
pub mod resources;
pub mod status;

pub use enums::*;
pub use resources::*;

/// The current time, truncated to whole seconds as Octavia shows timestamps.
pub fn now() -> Timestamp {
    let now = chrono::Utc::now().naive_utc();
    chrono::DurationRound::duration_trunc(now, chrono::TimeDelta::seconds(1)).unwrap_or(now)
}
