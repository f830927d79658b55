//! What the Octavia operations need of the Neutron subset: which of its
//! objects a caller may reference.

use crate::auth::Context;
use crate::store::StoreRead;
use statera_model::*;
use uuid::Uuid;

/// Whether the caller may use objects of `project_id` in references of its
/// own requests: Neutron's `admin_or_owner` rule. Unlike reading, Octavia's
/// observer roles give no such right.
pub fn owns(ctx: &Context, project_id: &str) -> bool {
    ctx.allowed("admin_or_owner", project_id)
}

/// The subnet `id` if the caller may use it: its own, or on a network it
/// owns, a shared one or an external one.
pub fn usable_subnet(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<Subnet> {
    s.get::<Subnet>(&id)
        .filter(|x| {
            owns(ctx, &x.project_id)
                || s.get::<Network>(&x.network_id)
                    .is_some_and(|n| owns(ctx, &n.project_id) || n.shared || n.external)
        })
        .map(|x| (*x).clone())
}

/// The security group `id` if the caller may use it (its own).
pub fn usable_security_group(ctx: &Context, s: &impl StoreRead, id: Uuid) -> Option<SecurityGroup> {
    s.get::<SecurityGroup>(&id)
        .filter(|g| owns(ctx, &g.project_id))
        .map(|g| (*g).clone())
}
