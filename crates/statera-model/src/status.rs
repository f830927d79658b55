//! The status state machine.
//!
//! The API moves objects *into* PENDING_* (and only when the load balancer
//! and, for members/monitors/rules, the parent are ACTIVE); the controller
//! alone moves them *out*, to ACTIVE on success, ERROR on failure, or removes
//! them when their PENDING_DELETE completes.

use crate::enums::{OperatingStatus, ProvisioningStatus};

/// Whether a load balancer in `status` may have itself or a child changed.
pub fn accepts_changes(status: ProvisioningStatus) -> bool {
    status == ProvisioningStatus::Active
}

/// Whether a load balancer in `status` may be deleted or failed over.
pub fn accepts_delete(status: ProvisioningStatus) -> bool {
    matches!(
        status,
        ProvisioningStatus::Active | ProvisioningStatus::Error
    )
}

/// Where a pending object goes when the controller's work for it succeeded;
/// `None` means the object is removed.
pub fn on_success(status: ProvisioningStatus) -> Option<ProvisioningStatus> {
    match status {
        ProvisioningStatus::PendingDelete | ProvisioningStatus::Deleted => None,
        ProvisioningStatus::Error => Some(ProvisioningStatus::Error),
        _ => Some(ProvisioningStatus::Active),
    }
}

/// Where a pending object goes when the controller's work for it failed.
pub fn on_failure(status: ProvisioningStatus) -> ProvisioningStatus {
    if status.is_pending() {
        ProvisioningStatus::Error
    } else {
        status
    }
}

/// Operating status of objects whose state follows admin_state_up only
/// (health monitors, L7 policies and rules).
pub fn admin_operating_status(admin_state_up: bool) -> OperatingStatus {
    if admin_state_up {
        OperatingStatus::Online
    } else {
        OperatingStatus::Offline
    }
}

/// The objects that carry a provisioning status.
pub trait Provisioned {
    fn provisioning_status(&self) -> ProvisioningStatus;
    fn set_provisioning_status(&mut self, status: ProvisioningStatus);
}

macro_rules! provisioned {
    ($($t:ty),*) => {$(
        impl Provisioned for $t {
            fn provisioning_status(&self) -> ProvisioningStatus {
                self.provisioning_status
            }
            fn set_provisioning_status(&mut self, status: ProvisioningStatus) {
                self.provisioning_status = status;
            }
        }
    )*};
}

use crate::resources::*;
provisioned!(
    LoadBalancer,
    Listener,
    Pool,
    Member,
    HealthMonitor,
    L7Policy,
    L7Rule
);

#[cfg(test)]
mod tests {
    use super::*;
    use ProvisioningStatus as P;

    #[test]
    fn only_active_accepts_changes_and_error_accepts_delete() {
        for s in P::ALL {
            assert_eq!(accepts_changes(*s), *s == P::Active);
            assert_eq!(accepts_delete(*s), matches!(s, P::Active | P::Error));
        }
    }

    #[test]
    fn controller_transitions() {
        assert_eq!(on_success(P::PendingCreate), Some(P::Active));
        assert_eq!(on_success(P::PendingUpdate), Some(P::Active));
        assert_eq!(on_success(P::PendingDelete), None);
        assert_eq!(on_failure(P::PendingCreate), P::Error);
        assert_eq!(on_failure(P::Active), P::Active);
    }
}
