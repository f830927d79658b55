//! The Neutron side's settings as `ApiSettings` carries them (re-exported
//! from `statera_service::neutron::quotas`, where the quota and
//! host-address rules are), and their `NeutronConfig` view.

pub use statera_service::neutron::quotas::{
    HostAddressReader, MAX_FIXED_IPS_PER_PORT, NeutronConfig, NeutronQuotas, NeutronSettings,
};

impl NeutronConfig for crate::ApiSettings {
    fn neutron(&self) -> &NeutronSettings {
        &self.neutron
    }
    fn host_address_space(&self) -> statera_model::addressing::HostAddressSpace {
        self.host_address_space
    }
}
