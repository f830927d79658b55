//! Flavors and availability zones, written once (Octavia v2.6 and v2.14).
//!
//! Both are the same two resources over two kinds: a *profile* binds a
//! provider to provider metadata (JSON text: `flavor_data`,
//! `availability_zone_data`) that the provider must accept; an *offering* (a
//! flavor, an availability zone) names a profile for users, who pick it when
//! they create a load balancer. [`Kind`] says what differs between the two
//! (names, policy rules, the metadata check, how a load balancer names an
//! offering); the operations here are the same for both. Every operation
//! asks the kind's policy rule on the caller's own project (by default:
//! reading offerings is open to every reader, the rest is admin work).

use super::Providers;
use crate::auth::Context;
use crate::error::{ServiceError, ServiceResult};
use crate::opt::Opt;
use crate::store::{StoreRead, StoreWrite};
use serde_json::Value;
use statera_model::*;
use statera_store::Record;
use std::fmt::Display;
use std::sync::Arc;
use uuid::Uuid;

/// One kind of offering and its profiles.
pub trait Kind: Send + Sync + 'static {
    /// What users pick (its parent index is its profile's id).
    type Offering: Record;
    type Profile: Record<Key = Uuid>;
    /// `Flavor`, as messages name an offering.
    const NAME: &'static str;
    /// `flavor`, as the name conflict's message says it.
    const NOUN: &'static str;
    /// The offerings' policy rules' middle part (`flavor`).
    const RULE: &'static str;
    /// The offering's profile attribute (`flavor_profile_id`).
    const PROFILE_ID: &'static str;
    /// `Flavor profile`, as messages name a profile.
    const PROFILE_NAME: &'static str;
    /// The profiles' policy rules' middle part (`flavor-profile`).
    const PROFILE_RULE: &'static str;
    /// The profile's metadata attribute (`flavor_data`).
    const DATA: &'static str;
    /// Whether an update may rename an offering (a zone's name is its key:
    /// it never changes).
    const RENAMABLE: bool;

    fn offering(new: NewOffering) -> Self::Offering;
    fn name(o: &Self::Offering) -> &str;
    /// The offering's mutable attributes.
    fn parts(o: &mut Self::Offering) -> OfferingParts<'_>;
    /// Whether load balancer `lb` was created with offering `key`.
    fn chosen_by(lb: &LoadBalancer, key: &<Self::Offering as Record>::Key) -> bool;

    fn profile(new: NewProfile) -> Self::Profile;
    /// name, provider_name, data.
    fn profile_parts(p: &mut Self::Profile) -> (&mut String, &mut String, &mut String);
    /// The provider must accept the metadata (and what it names must exist).
    fn check_data<D: Providers + ?Sized>(
        d: &D,
        s: &impl StoreRead,
        provider_name: &str,
        data: &str,
    ) -> ServiceResult<()>;
}

/// The mutable attributes of an offering, in place.
pub struct OfferingParts<'a> {
    pub name: &'a mut String,
    pub description: &'a mut Option<String>,
    pub enabled: &'a mut bool,
}

/// A new offering, as a create states it.
pub struct NewOffering {
    pub name: String,
    pub description: Option<String>,
    pub enabled: bool,
    pub profile_id: Uuid,
}

/// An offering update as a request states it (`name`: a new name, never
/// null; only for a [`Kind::RENAMABLE`] kind).
pub struct OfferingFields {
    pub name: Option<String>,
    pub description: Opt<String>,
    pub enabled: Opt<bool>,
}

/// A new profile, as a create states it.
pub struct NewProfile {
    pub name: String,
    pub provider_name: String,
    pub data: String,
}

/// A profile update as a request states it (none of them nullable).
pub struct ProfileFields {
    pub name: Option<String>,
    pub provider_name: Option<String>,
    pub data: Option<String>,
}

/// The key of an offering of kind `K` (a flavor's id, a zone's name).
pub type Key<K> = <<K as Kind>::Offering as Record>::Key;

/// `<value> is not a valid option for <option>` (Octavia's InvalidOption).
pub fn invalid_option(value: impl Display, option: &str) -> ServiceError {
    ServiceError::Invalid(format!("{value} is not a valid option for {option}"))
}

/// `<Object> <id> is in use and cannot be modified.` (Octavia's ObjectInUse).
pub fn in_use(object: &str, id: impl Display) -> ServiceError {
    ServiceError::conflict(format!("{object} {id} is in use and cannot be modified."))
}

/// The offerings' rule `action` (`get_all`, `post`, …) on the caller's own
/// project: what every operation on offerings asks first (and the wire, as
/// Octavia does, before it reads the request).
pub fn authorize<K: Kind>(ctx: &Context, action: &str) -> ServiceResult<()> {
    rule(ctx, K::RULE, action)
}

/// [`authorize`] for the profiles' rules.
pub fn authorize_profile<K: Kind>(ctx: &Context, action: &str) -> ServiceResult<()> {
    rule(ctx, K::PROFILE_RULE, action)
}

fn rule(ctx: &Context, resource: &str, action: &str) -> ServiceResult<()> {
    super::authorize_own(ctx, resource, action)
}

// ------------------------------------------------------------- offerings

fn name_taken<K: Kind>(s: &impl StoreRead, name: &str, except: Option<&Key<K>>) -> bool {
    s.all::<K::Offering>()
        .iter()
        .any(|o| K::name(o) == name && Some(&o.key()) != except)
}

fn offering<K: Kind>(s: &impl StoreRead, key: &Key<K>) -> ServiceResult<Arc<K::Offering>> {
    s.get::<K::Offering>(key)
        .ok_or_else(|| ServiceError::not_found(K::NAME, key))
}

/// `GET /flavors`: every offering, in key order.
pub fn list<K: Kind>(ctx: &Context, s: &impl StoreRead) -> ServiceResult<Vec<Arc<K::Offering>>> {
    authorize::<K>(ctx, "get_all")?;
    Ok(s.all::<K::Offering>())
}

/// `GET /flavors/{id}`.
pub fn show<K: Kind>(
    ctx: &Context,
    s: &impl StoreRead,
    key: &Key<K>,
) -> ServiceResult<Arc<K::Offering>> {
    authorize::<K>(ctx, "get_one")?;
    offering::<K>(s, key)
}

/// `POST /flavors`: a unique name (409), an existing profile (400).
pub fn create<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    new: NewOffering,
) -> ServiceResult<K::Offering> {
    authorize::<K>(ctx, "post")?;
    if name_taken::<K>(txn, &new.name, None) {
        return Err(ServiceError::conflict(format!(
            "A {} of {} already exists.",
            K::NOUN,
            new.name
        )));
    }
    if txn.get::<K::Profile>(&new.profile_id).is_none() {
        return Err(invalid_option(new.profile_id, K::PROFILE_ID));
    }
    let o = K::offering(new);
    txn.put(o.clone())?;
    Ok(o)
}

/// `PUT /flavors/{id}`: a new name still unique (409); description and
/// `enabled` (null: back to the defaults, none and true).
pub fn update<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    key: &Key<K>,
    fields: OfferingFields,
) -> ServiceResult<K::Offering> {
    authorize::<K>(ctx, "put")?;
    let mut o = (*offering::<K>(txn, key)?).clone();
    debug_assert!(K::RENAMABLE || fields.name.is_none());
    if let Some(name) = fields.name.filter(|_| K::RENAMABLE) {
        if name_taken::<K>(txn, &name, Some(key)) {
            return Err(ServiceError::conflict(format!(
                "A {} of {name} already exists.",
                K::NOUN
            )));
        }
        *K::parts(&mut o).name = name;
    }
    let parts = K::parts(&mut o);
    if let Some(v) = fields.description.update() {
        *parts.description = v;
    }
    if let Some(v) = fields.enabled.update() {
        *parts.enabled = v.unwrap_or(true);
    }
    txn.put(o.clone())?;
    Ok(o)
}

/// `DELETE /flavors/{id}`: refused (409) while a load balancer was created
/// with it.
pub fn delete<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    key: &Key<K>,
) -> ServiceResult<()> {
    authorize::<K>(ctx, "delete")?;
    offering::<K>(txn, key)?;
    if txn
        .list_by_project::<LoadBalancer>(None)
        .iter()
        .any(|lb| K::chosen_by(lb, key))
    {
        return Err(in_use(K::NAME, key));
    }
    txn.delete::<K::Offering>(key);
    Ok(())
}

// -------------------------------------------------------------- profiles

fn profile<K: Kind>(s: &impl StoreRead, id: Uuid) -> ServiceResult<Arc<K::Profile>> {
    s.get::<K::Profile>(&id)
        .ok_or_else(|| ServiceError::not_found(K::PROFILE_NAME, id))
}

/// Whether an offering names profile `id`.
fn profile_in_use<K: Kind>(s: &impl StoreRead, id: Uuid) -> bool {
    !s.children::<K::Offering>(id).is_empty()
}

/// `GET /flavorprofiles`: every profile, in id order.
pub fn list_profiles<K: Kind>(
    ctx: &Context,
    s: &impl StoreRead,
) -> ServiceResult<Vec<Arc<K::Profile>>> {
    authorize_profile::<K>(ctx, "get_all")?;
    Ok(s.all::<K::Profile>())
}

/// `GET /flavorprofiles/{id}`.
pub fn show_profile<K: Kind>(
    ctx: &Context,
    s: &impl StoreRead,
    id: Uuid,
) -> ServiceResult<Arc<K::Profile>> {
    authorize_profile::<K>(ctx, "get_one")?;
    profile::<K>(s, id)
}

/// `POST /flavorprofiles`: the provider must accept the metadata.
pub fn create_profile<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &(impl Providers + ?Sized),
    new: NewProfile,
) -> ServiceResult<K::Profile> {
    authorize_profile::<K>(ctx, "post")?;
    K::check_data(d, &*txn, &new.provider_name, &new.data)?;
    let p = K::profile(new);
    txn.put(p.clone())?;
    Ok(p)
}

/// `PUT /flavorprofiles/{id}`: a profile an offering names may be renamed
/// but not change provider or metadata (409); the new pair is checked as
/// on create.
pub fn update_profile<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    d: &(impl Providers + ?Sized),
    id: Uuid,
    fields: ProfileFields,
) -> ServiceResult<K::Profile> {
    authorize_profile::<K>(ctx, "put")?;
    let mut p = (*profile::<K>(txn, id)?).clone();
    let (old_name, old_provider, old_data) = K::profile_parts(&mut p);
    if fields.provider_name.is_some() || fields.data.is_some() {
        if profile_in_use::<K>(txn, id) {
            return Err(in_use(K::PROFILE_NAME, id));
        }
        let provider_name = fields.provider_name.unwrap_or_else(|| old_provider.clone());
        let data = fields.data.unwrap_or_else(|| old_data.clone());
        K::check_data(d, &*txn, &provider_name, &data)?;
        *old_provider = provider_name;
        *old_data = data;
    }
    if let Some(name) = fields.name {
        *old_name = name;
    }
    txn.put(p.clone())?;
    Ok(p)
}

/// `DELETE /flavorprofiles/{id}`: refused (409) while an offering names it.
pub fn delete_profile<K: Kind>(
    ctx: &Context,
    txn: &mut impl StoreWrite,
    id: Uuid,
) -> ServiceResult<()> {
    authorize_profile::<K>(ctx, "delete")?;
    profile::<K>(txn, id)?;
    if profile_in_use::<K>(txn, id) {
        return Err(in_use(K::PROFILE_NAME, id));
    }
    txn.delete::<K::Profile>(&id);
    Ok(())
}

// ------------------------------------------------------ provider metadata

/// The `loadbalancer_topology` values Statera builds.
pub const TOPOLOGIES: &[&str] = &["SINGLE"];

/// Check provider metadata (`flavor_data`, `availability_zone_data`) in
/// Octavia's order: the text must parse as JSON (`<data> is not a valid
/// option for <field>`, 400), the provider must be enabled (`capabilities`
/// is `None` when not: 400), and the provider must accept it: a JSON object
/// whose keys are all among its `capabilities`, each value of the type the
/// key takes, and no option Statera does not implement
/// (`loadbalancer_topology: ACTIVE_STANDBY`). What the provider refuses is
/// Octavia's `ProviderUnsupportedOptionError`: 501 `Provider '<p>' does not
/// support a requested option: …`. Returns the parsed object.
pub fn check_metadata(
    field: &str,
    provider: &str,
    data: &str,
    capabilities: Option<&[(String, String)]>,
) -> ServiceResult<serde_json::Map<String, Value>> {
    let parsed: Value = serde_json::from_str(data).map_err(|_| invalid_option(data, field))?;
    let capabilities = capabilities
        .ok_or_else(|| ServiceError::Invalid(format!("Provider '{provider}' is not enabled.")))?;
    let unsupported = |reason: String| {
        ServiceError::not_implemented(format!(
            "Provider '{provider}' does not support a requested option: {reason}"
        ))
    };
    let Value::Object(obj) = parsed else {
        return Err(unsupported(format!("{data} is not of type 'object'")));
    };
    let unknown: Vec<String> = obj
        .keys()
        .filter(|k| !capabilities.iter().any(|(n, _)| n == *k))
        .map(|k| format!("'{k}'"))
        .collect();
    if !unknown.is_empty() {
        let verb = if unknown.len() == 1 { "was" } else { "were" };
        return Err(unsupported(format!(
            "Additional properties are not allowed ({} {verb} unexpected)",
            unknown.join(", ")
        )));
    }
    for (key, value) in &obj {
        check_option(key, value).map_err(|reason| unsupported(format!("{key} {reason}")))?;
    }
    Ok(obj)
}

/// Whether `value` is one Statera accepts for metadata key `key` (the
/// reason when not, in jsonschema's words as Octavia's drivers give them).
fn check_option(key: &str, value: &Value) -> Result<(), String> {
    let is_string_list = |v: &Value| matches!(v, Value::Array(a) if a.iter().all(Value::is_string));
    match key {
        "loadbalancer_topology" => match value.as_str() {
            Some(t) if TOPOLOGIES.contains(&t) => Ok(()),
            Some("ACTIVE_STANDBY") => Err(format!(
                "'ACTIVE_STANDBY' is not one of {TOPOLOGIES:?}: Statera has no active/standby \
                 topology yet; every load balancer is one data-plane instance (SINGLE)"
            )),
            _ => Err(format!("{value} is not one of {TOPOLOGIES:?}")),
        },
        "valid_vip_networks" if !is_string_list(value) => {
            Err(format!("{value} is not of type 'array' of strings"))
        }
        "agents" if !is_string_list(value) || value.as_array().is_some_and(Vec::is_empty) => Err(
            format!("{value} is not a non-empty array of strings (agent names)"),
        ),
        "compute_zone" | "volume_zone" | "management_network" | "compute_flavor"
        | "amp_image_tag"
            if !value.is_string() =>
        {
            Err(format!("{value} is not of type 'string'"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(keys: &[&str]) -> Vec<(String, String)> {
        keys.iter()
            .map(|k| (k.to_string(), String::new()))
            .collect()
    }

    #[test]
    fn metadata_checks_come_in_octavias_order() {
        let c = caps(&["loadbalancer_topology"]);
        // Not JSON wins over a provider that is not enabled.
        let e = check_metadata("flavor_data", "x", "{", None).unwrap_err();
        assert_eq!(e.to_string(), "{ is not a valid option for flavor_data");
        let e = check_metadata("flavor_data", "x", "{}", None).unwrap_err();
        assert_eq!(e.to_string(), "Provider 'x' is not enabled.");
        let e = check_metadata("flavor_data", "p", "[]", Some(&c)).unwrap_err();
        assert!(matches!(e, ServiceError::NotImplemented(_)));
        let e = check_metadata("flavor_data", "p", r#"{"a": 1, "b": 2}"#, Some(&c)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Provider 'p' does not support a requested option: Additional properties are not \
             allowed ('a', 'b' were unexpected)"
        );
        let ok = r#"{"loadbalancer_topology": "SINGLE"}"#;
        assert!(check_metadata("flavor_data", "p", ok, Some(&c)).is_ok());
        let bad = r#"{"loadbalancer_topology": "ACTIVE_STANDBY"}"#;
        assert!(matches!(
            check_metadata("flavor_data", "p", bad, Some(&c)),
            Err(ServiceError::NotImplemented(_))
        ));
    }

    #[test]
    fn option_types() {
        assert!(check_option("valid_vip_networks", &serde_json::json!(["a"])).is_ok());
        assert!(check_option("valid_vip_networks", &serde_json::json!("a")).is_err());
        assert!(check_option("compute_zone", &serde_json::json!(1)).is_err());
        assert!(check_option("compute_zone", &serde_json::json!("z")).is_ok());
        assert!(check_option("agents", &serde_json::json!(["a-1"])).is_ok());
        assert!(check_option("agents", &serde_json::json!([])).is_err());
        assert!(check_option("agents", &serde_json::json!("a-1")).is_err());
        assert!(check_option("anything_else", &serde_json::json!(1)).is_ok());
    }
}
