//! Roles (global and domain-specific) and implied roles.

use super::*;
use statera_model::identity::Role;

impl Resource for Role {
    const KIND: &'static str = "role";
    const GET: &'static str = "identity:get_role";
    const LIST: &'static str = "identity:list_roles";
}
