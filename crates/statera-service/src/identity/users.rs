//! Users: create, show, list, update, delete, a user's own password change,
//! a user's groups and projects. The wire hashes passwords (the identity
//! provider's work): the service takes and keeps hashes only.

use super::*;
use statera_model::identity::User;

impl Resource for User {
    const KIND: &'static str = "user";
    const GET: &'static str = "identity:get_user";
    const LIST: &'static str = "identity:list_users";
    fn target(id: &str) -> Target<'_> {
        Target::user(id)
    }
}
