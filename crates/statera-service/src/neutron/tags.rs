//! Neutron's tags of a resource (`/<resources>/{id}/tags[/{tag}]`): list,
//! check, replace, clear, add, remove, for every tagged Neutron resource.
//! Reading them needs the resource visible; changing them needs the
//! resource's update rule (`update_<resource>`), as in Neutron.

use super::{
    error, floating_ip_not_found, forbidden, invalid_field, not_found, router_not_found,
    security_group_not_found, visible_floating_ip, visible_network, visible_port, visible_router,
    visible_security_group, visible_subnet,
};
use crate::auth::Context;
use crate::error::{Fault, ServiceError, ServiceResult};
use crate::store::{Owned, StoreRead, StoreWrite};
use statera_model::Router as L3Router;
use statera_model::*;
use statera_store::Record;
use std::sync::Arc;
use uuid::Uuid;

/// A Neutron resource with tags.
pub trait Tagged: Owned + Record<Key = Uuid> + Clone {
    /// Its collection in paths (`networks`, `security-groups`).
    const COLLECTION: &'static str;
    /// Neutron's resource name in policy rules (`update_network`, …).
    const SINGULAR: &'static str;
    /// The object `id`, visible to the caller, else its 404.
    fn visible(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Self>>;
    /// The 404 of an id that names nothing (anything not a UUID).
    fn not_found(raw: &str) -> ServiceError;
    fn tags(&self) -> &[String];
    fn tags_mut(&mut self) -> &mut Vec<String>;
    fn touch(&mut self);
}

macro_rules! tagged {
    ($t:ty, $collection:literal, $singular:literal, $visible:path, |$raw:ident| $missing:expr) => {
        impl Tagged for $t {
            const COLLECTION: &'static str = $collection;
            const SINGULAR: &'static str = $singular;
            fn visible(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<Self>> {
                $visible(ctx, s, id)
            }
            fn not_found($raw: &str) -> ServiceError {
                $missing
            }
            fn tags(&self) -> &[String] {
                &self.tags
            }
            fn tags_mut(&mut self) -> &mut Vec<String> {
                &mut self.tags
            }
            fn touch(&mut self) {
                self.updated_at = Some(now());
            }
        }
    };
}

tagged!(Network, "networks", "network", visible_network, |raw| {
    not_found("Network", raw, "NetworkNotFound")
});
tagged!(Subnet, "subnets", "subnet", visible_subnet, |raw| {
    not_found("Subnet", raw, "SubnetNotFound")
});
tagged!(Port, "ports", "port", visible_port, |raw| {
    not_found("Port", raw, "PortNotFound")
});
tagged!(L3Router, "routers", "router", visible_router, |raw| {
    router_not_found(raw)
});
tagged!(
    FloatingIp,
    "floatingips",
    "floatingip",
    visible_floating_ip,
    |raw| floating_ip_not_found(raw)
);
tagged!(
    SecurityGroup,
    "security-groups",
    "security_group",
    visible_security_group,
    |raw| security_group_not_found(raw)
);

/// `Tag <tag> could not be found for <collection> <id>.` (404).
fn tag_not_found<T: Tagged>(id: Uuid, tag: &str) -> ServiceError {
    error(
        Fault::NotFound,
        "TagNotFound",
        format!("Tag {tag} could not be found for {} {id}.", T::COLLECTION),
    )
}

/// A tag is 1 to 255 characters.
fn check_tag(tag: &str) -> ServiceResult<()> {
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(invalid_field(
            "tags",
            format!("'{tag}' is not a valid tag (1 to 255 characters)"),
        ));
    }
    Ok(())
}

/// Changes the tags of object `id` with `f`; the object's tags after it.
fn change<T: Tagged>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    f: impl FnOnce(&mut Vec<String>) -> ServiceResult<()>,
) -> ServiceResult<Vec<String>> {
    let mut o = (*T::visible(ctx, txn, id)?).clone();
    if !ctx.allowed(&format!("update_{}", T::SINGULAR), o.project_id()) {
        return Err(forbidden(&format!("update_{}:tags", T::COLLECTION)));
    }
    f(o.tags_mut())?;
    let tags = o.tags().to_vec();
    o.touch();
    txn.put(o)?;
    Ok(tags)
}

/// The tags of object `id`.
pub fn list<T: Tagged>(ctx: &Context, s: &impl StoreRead, id: Uuid) -> ServiceResult<Vec<String>> {
    Ok(T::visible(ctx, s, id)?.tags().to_vec())
}

/// Whether object `id` has `tag` (else 404 `TagNotFound`).
pub fn check<T: Tagged>(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
    tag: &str,
) -> ServiceResult<()> {
    if T::visible(ctx, s, id)?.tags().iter().any(|t| t == tag) {
        Ok(())
    } else {
        Err(tag_not_found::<T>(id, tag))
    }
}

/// Replaces the tags of object `id` with `tags` (repeats kept once, in
/// their first place); the tags after it.
pub fn replace<T: Tagged>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    tags: Vec<String>,
) -> ServiceResult<Vec<String>> {
    for t in &tags {
        check_tag(t)?;
    }
    let mut unique: Vec<String> = Vec::with_capacity(tags.len());
    for t in tags {
        if !unique.contains(&t) {
            unique.push(t);
        }
    }
    change::<T>(ctx, txn, id, |old| {
        *old = unique;
        Ok(())
    })
}

/// Removes every tag of object `id`.
pub fn clear<T: Tagged>(ctx: &Context, txn: &mut impl StoreWrite, id: Uuid) -> ServiceResult<()> {
    change::<T>(ctx, txn, id, |old| {
        old.clear();
        Ok(())
    })
    .map(drop)
}

/// Adds `tag` to object `id` (a no-op when it has it).
pub fn add<T: Tagged>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    tag: String,
) -> ServiceResult<()> {
    check_tag(&tag)?;
    change::<T>(ctx, txn, id, |old| {
        if !old.contains(&tag) {
            old.push(tag);
        }
        Ok(())
    })
    .map(drop)
}

/// Removes `tag` from object `id` (404 `TagNotFound` when it has not it).
pub fn remove<T: Tagged>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
    tag: &str,
) -> ServiceResult<()> {
    change::<T>(ctx, txn, id, |old| {
        let before = old.len();
        old.retain(|t| t != tag);
        if old.len() == before {
            return Err(tag_not_found::<T>(id, tag));
        }
        Ok(())
    })
    .map(drop)
}
