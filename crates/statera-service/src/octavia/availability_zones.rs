//! Availability zones (keyed by **name**) and their profiles
//! (`/availabilityzones`, `/availabilityzoneprofiles`): the
//! [`profiles`](super::profiles) operations over [`Zones`]. A zone profile
//! binds a provider to `availability_zone_data`; a zone names a profile.

use super::Providers;
use super::profiles::{Kind, NewOffering, NewProfile, OfferingParts, check_metadata};
use crate::error::{ServiceError, ServiceResult};
use crate::store::StoreRead;
use serde_json::Value;
use statera_model::*;
use uuid::Uuid;

/// Availability zones as a [`Kind`] of offering.
pub struct Zones;

impl Kind for Zones {
    type Offering = AvailabilityZone;
    type Profile = AvailabilityZoneProfile;
    const NAME: &'static str = "Availability Zone";
    const NOUN: &'static str = "availability zone";
    const RULE: &'static str = "availability-zone";
    const PROFILE_ID: &'static str = "availability_zone_profile_id";
    const PROFILE_NAME: &'static str = "Availability Zone Profile";
    const PROFILE_RULE: &'static str = "availability-zone-profile";
    const DATA: &'static str = "availability_zone_data";
    const RENAMABLE: bool = false;

    fn offering(new: NewOffering) -> AvailabilityZone {
        AvailabilityZone {
            name: new.name,
            description: new.description,
            enabled: new.enabled,
            availability_zone_profile_id: new.profile_id,
        }
    }

    fn name(z: &AvailabilityZone) -> &str {
        &z.name
    }

    fn parts(z: &mut AvailabilityZone) -> OfferingParts<'_> {
        OfferingParts {
            name: &mut z.name,
            description: &mut z.description,
            enabled: &mut z.enabled,
        }
    }

    fn chosen_by(lb: &LoadBalancer, name: &String) -> bool {
        lb.availability_zone.as_deref() == Some(name.as_str())
    }

    fn profile(new: NewProfile) -> AvailabilityZoneProfile {
        AvailabilityZoneProfile {
            id: Uuid::new_v4(),
            name: new.name,
            provider_name: new.provider_name,
            availability_zone_data: new.data,
        }
    }

    fn profile_parts(p: &mut AvailabilityZoneProfile) -> (&mut String, &mut String, &mut String) {
        (
            &mut p.name,
            &mut p.provider_name,
            &mut p.availability_zone_data,
        )
    }

    fn check_data<D: Providers + ?Sized>(
        d: &D,
        s: &impl StoreRead,
        provider_name: &str,
        data: &str,
    ) -> ServiceResult<()> {
        check_data(d, s, provider_name, data).map(drop)
    }
}

/// `availability_zone_data` must be accepted by the profile's provider, and
/// the networks it names (`management_network`, `valid_vip_networks`) must
/// exist, as Octavia's amphora driver checks. Returns the parsed data.
///
/// What the keys mean here: `compute_zone` (and `volume_zone`) are labels
/// only — every load balancer runs on this host; `management_network` is
/// checked and otherwise unused — Statera's controller reaches its data
/// planes in process, with no management network; `valid_vip_networks` is
/// enforced: a load balancer created in the zone must have its VIP on one of
/// them ([`super::loadbalancers::check_vip_network`]).
pub fn check_data<D: Providers + ?Sized>(
    d: &D,
    s: &impl StoreRead,
    provider_name: &str,
    data: &str,
) -> ServiceResult<serde_json::Map<String, Value>> {
    let capabilities = d.availability_zone_capabilities(provider_name);
    let obj = check_metadata(Zones::DATA, provider_name, data, capabilities)?;
    let mut networks: Vec<&str> = obj
        .get("valid_vip_networks")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    networks.extend(obj.get("management_network").and_then(Value::as_str));
    for n in networks {
        let known = Uuid::parse_str(n).is_ok_and(|id| s.get::<Network>(&id).is_some());
        if !known {
            return Err(ServiceError::validation(format!("Network {n} not found.")));
        }
    }
    Ok(obj)
}
