//! `/availabilityzones` (keyed by **name**) and `/availabilityzoneprofiles`
//! (Octavia v2.14). Same shape as flavors: a profile binds a provider to
//! metadata (`availability_zone_data`, JSON text); a zone names a profile.
//! Reading zones is open to every reader; everything else is admin work. The
//! wire only (names and rendering); the routes are [`super::profiles`],
//! shared with flavors, and the operations
//! `statera_service::octavia::profiles` over
//! `statera_service::octavia::availability_zones::Zones`.

use super::profiles::{self, Wire};
use super::*;
use crate::list::Object;
use serde_json::json;
pub use statera_service::octavia::availability_zones::Zones;

pub fn routes() -> Router<AppState> {
    profiles::routes::<Zones>("/availabilityzones", "/availabilityzoneprofiles")
}

pub const AZ_ATTRS: &[&str] = &[
    "name",
    "description",
    "enabled",
    "availability_zone_profile_id",
];

pub fn render_az(z: &AvailabilityZone) -> Object {
    let mut o = Object::new();
    o.insert("name".into(), json!(z.name));
    o.insert(
        "description".into(),
        json!(z.description.clone().unwrap_or_default()),
    );
    o.insert("enabled".into(), json!(z.enabled));
    o.insert(
        "availability_zone_profile_id".into(),
        json!(z.availability_zone_profile_id),
    );
    o
}

pub const AZ_PROFILE_ATTRS: &[&str] = &["id", "name", "provider_name", "availability_zone_data"];

pub fn render_profile(p: &AvailabilityZoneProfile) -> Object {
    let mut o = Object::new();
    o.insert("id".into(), json!(p.id));
    o.insert("name".into(), json!(p.name));
    o.insert("provider_name".into(), json!(p.provider_name));
    o.insert(
        "availability_zone_data".into(),
        json!(p.availability_zone_data),
    );
    o
}

impl Wire for Zones {
    const ENVELOPE: &'static str = "availability_zone";
    const PLURAL: &'static str = "availability_zones";
    const LINKS: &'static str = "availability_zones_links";
    const ATTRS: &'static [&'static str] = AZ_ATTRS;
    fn render(z: &AvailabilityZone) -> Object {
        render_az(z)
    }

    const PROFILE_ENVELOPE: &'static str = "availability_zone_profile";
    const PROFILE_PLURAL: &'static str = "availability_zone_profiles";
    const PROFILE_LINKS: &'static str = "availability_zone_profile_links";
    const PROFILE_ATTRS: &'static [&'static str] = AZ_PROFILE_ATTRS;
    fn render_profile(p: &AvailabilityZoneProfile) -> Object {
        render_profile(p)
    }
}
