//! Flavors and flavor profiles (`/flavors`, `/flavorprofiles`): the
//! [`profiles`](super::profiles) operations over [`Flavors`]. A flavor
//! profile binds a provider to `flavor_data`; a flavor names a profile.

use super::Providers;
use super::profiles::{Kind, NewOffering, NewProfile, OfferingParts, check_metadata};
use crate::error::ServiceResult;
use crate::store::StoreRead;
use statera_model::*;
use uuid::Uuid;

/// Flavors as a [`Kind`] of offering.
pub struct Flavors;

impl Kind for Flavors {
    type Offering = Flavor;
    type Profile = FlavorProfile;
    const NAME: &'static str = "Flavor";
    const NOUN: &'static str = "flavor";
    const RULE: &'static str = "flavor";
    const PROFILE_ID: &'static str = "flavor_profile_id";
    const PROFILE_NAME: &'static str = "Flavor profile";
    const PROFILE_RULE: &'static str = "flavor-profile";
    const DATA: &'static str = "flavor_data";
    const RENAMABLE: bool = true;

    fn offering(new: NewOffering) -> Flavor {
        Flavor {
            id: Uuid::new_v4(),
            name: new.name,
            description: new.description,
            enabled: new.enabled,
            flavor_profile_id: new.profile_id,
        }
    }

    fn name(f: &Flavor) -> &str {
        &f.name
    }

    fn parts(f: &mut Flavor) -> OfferingParts<'_> {
        OfferingParts {
            name: &mut f.name,
            description: &mut f.description,
            enabled: &mut f.enabled,
        }
    }

    fn chosen_by(lb: &LoadBalancer, id: &Uuid) -> bool {
        lb.flavor_id == Some(*id)
    }

    fn profile(new: NewProfile) -> FlavorProfile {
        FlavorProfile {
            id: Uuid::new_v4(),
            name: new.name,
            provider_name: new.provider_name,
            flavor_data: new.data,
        }
    }

    fn profile_parts(p: &mut FlavorProfile) -> (&mut String, &mut String, &mut String) {
        (&mut p.name, &mut p.provider_name, &mut p.flavor_data)
    }

    fn check_data<D: Providers + ?Sized>(
        d: &D,
        _: &impl StoreRead,
        provider_name: &str,
        data: &str,
    ) -> ServiceResult<()> {
        check_data(d, provider_name, data)
    }
}

/// `flavor_data` must be accepted by the profile's provider (checked again
/// when a load balancer is created with the flavor, as Octavia does).
pub fn check_data<D: Providers + ?Sized>(
    d: &D,
    provider_name: &str,
    flavor_data: &str,
) -> ServiceResult<()> {
    let capabilities = d.flavor_capabilities(provider_name);
    check_metadata(Flavors::DATA, provider_name, flavor_data, capabilities).map(drop)
}
