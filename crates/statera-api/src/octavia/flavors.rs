//! `/flavors` and `/flavorprofiles` (Octavia v2.6).
//!
//! A flavor profile binds a provider to provider metadata (`flavor_data`,
//! JSON text); a flavor names a profile for users. Reading flavors is open
//! to every reader; everything else is admin work. The wire only (names and
//! rendering); the routes are [`super::profiles`], shared with availability
//! zones, and the operations `statera_service::octavia::profiles` over
//! `statera_service::octavia::flavors::Flavors`.

use super::profiles::{self, Wire};
use super::*;
use crate::list::Object;
use serde_json::json;
pub use statera_service::octavia::flavors::Flavors;

pub fn routes() -> Router<AppState> {
    profiles::routes::<Flavors>("/flavors", "/flavorprofiles")
}

pub const FLAVOR_ATTRS: &[&str] = &["id", "name", "description", "enabled", "flavor_profile_id"];

pub fn render_flavor(f: &Flavor) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(f.id));
    o.insert("name".into(), json!(f.name));
    o.insert(
        "description".into(),
        json!(f.description.clone().unwrap_or_default()),
    );
    o.insert("enabled".into(), json!(f.enabled));
    o.insert("flavor_profile_id".into(), json!(f.flavor_profile_id));
    o
}

pub const FLAVOR_PROFILE_ATTRS: &[&str] = &["id", "name", "provider_name", "flavor_data"];

pub fn render_profile(p: &FlavorProfile) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(p.id));
    o.insert("name".into(), json!(p.name));
    o.insert("provider_name".into(), json!(p.provider_name));
    o.insert("flavor_data".into(), json!(p.flavor_data));
    o
}

impl Wire for Flavors {
    const ENVELOPE: &'static str = "flavor";
    const PLURAL: &'static str = "flavors";
    const LINKS: &'static str = "flavors_links";
    const ATTRS: &'static [&'static str] = FLAVOR_ATTRS;
    fn render(f: &Flavor) -> Object {
        render_flavor(f)
    }

    const PROFILE_ENVELOPE: &'static str = "flavorprofile";
    const PROFILE_PLURAL: &'static str = "flavorprofiles";
    const PROFILE_LINKS: &'static str = "flavorprofile_links";
    const PROFILE_ATTRS: &'static [&'static str] = FLAVOR_PROFILE_ATTRS;
    fn render_profile(p: &FlavorProfile) -> Object {
        render_profile(p)
    }
}
