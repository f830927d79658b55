//! Flavors and availability zones with their profiles, wired once:
//! `/flavors` + `/flavorprofiles` and `/availabilityzones` +
//! `/availabilityzoneprofiles` are the same two resources over two kinds
//! (`statera_service::octavia::profiles`, which holds the operations). A
//! [`Wire`] says what differs on the wire: the envelopes, the collections'
//! keys, the attributes and how an object renders. Both resources take the
//! generic shape of [`resource`]; only the creates are here. The wire only:
//! reading requests (the policy asked first, as Octavia does), rendering.

use super::resource::{self, PathKey, Resource};
use super::*;
use crate::ApiSettings;
use crate::input::{Input, JsonBody, OctaviaJson, Opt};
use crate::list::Object;
use axum::Json;
use axum::extract::State as AxState;
use axum::http::StatusCode;
use axum::routing::post;
use serde_json::{Value, json};
use statera_service::octavia::profiles::{
    self as service, Key, Kind, NewOffering, NewProfile, OfferingFields, ProfileFields,
    invalid_option,
};
use statera_service::{Context, ServiceResult};
use std::marker::PhantomData;

/// One kind (flavors, availability zones) as the wire shows it.
pub trait Wire: Kind {
    /// The offering's envelope (`flavor`), collection key and links key.
    const ENVELOPE: &'static str;
    const PLURAL: &'static str;
    const LINKS: &'static str;
    const ATTRS: &'static [&'static str];
    fn render(o: &Self::Offering) -> Object;

    /// The profile's envelope (`flavorprofile`), collection and links keys.
    const PROFILE_ENVELOPE: &'static str;
    const PROFILE_PLURAL: &'static str;
    const PROFILE_LINKS: &'static str;
    const PROFILE_ATTRS: &'static [&'static str];
    fn render_profile(p: &Self::Profile) -> Object;
}

/// The routes of kind `K`: its offerings at `path` (`/flavors`), its
/// profiles at `profiles_path` (`/flavorprofiles`).
pub fn routes<K: Wire>(path: &str, profiles_path: &str) -> Router<AppState>
where
    Key<K>: PathKey,
{
    resource::routes::<Offerings<K>>(path, post(create::<K>)).merge(
        resource::routes::<Profiles<K>>(profiles_path, post(create_profile::<K>)),
    )
}

/// A required attribute that a PUT may change but not clear (null is
/// `None is not a valid option for <field>`).
pub fn not_null<T>(v: Opt<T>, field: &str) -> ApiResult<Option<T>> {
    match v {
        Opt::Absent => Ok(None),
        Opt::Null => Err(invalid_option("None", field).into()),
        Opt::Set(v) => Ok(Some(v)),
    }
}

// ------------------------------------------------------------- offerings

/// The offerings of kind `K` in the shape every resource shares.
pub struct Offerings<K>(PhantomData<fn() -> K>);

impl<K: Wire> Resource for Offerings<K>
where
    Key<K>: PathKey,
{
    type Model = K::Offering;
    type Fields = OfferingFields;
    const NAME: &'static str = K::NAME;
    const ENVELOPE: &'static str = K::ENVELOPE;
    const PLURAL: &'static str = K::PLURAL;
    const LINKS: &'static str = K::LINKS;
    const ATTRS: &'static [&'static str] = K::ATTRS;

    fn render(_: &State, o: &K::Offering) -> Object {
        K::render(o)
    }
    fn admit(ctx: &Context, action: &str) -> ServiceResult<()> {
        service::authorize::<K>(ctx, action)
    }
    fn input(body: Value) -> ApiResult<Input> {
        Input::from_envelope(body, K::ENVELOPE)
    }
    fn show(ctx: &Context, s: &State, key: Key<K>) -> ServiceResult<Arc<K::Offering>> {
        service::show::<K>(ctx, s, &key)
    }
    fn list(ctx: &Context, s: &State, _: Option<&str>) -> ServiceResult<Vec<Arc<K::Offering>>> {
        service::list::<K>(ctx, s)
    }
    fn parse_update(input: &mut Input) -> ApiResult<OfferingFields> {
        // A zone's name is its key: not an attribute an update states.
        let name = match K::RENAMABLE {
            true => not_null(input.string("name", 255)?, "name")?,
            false => None,
        };
        Ok(OfferingFields {
            name,
            description: input.string("description", 255)?,
            enabled: input.boolean("enabled")?,
        })
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        _: &ApiSettings,
        key: Key<K>,
        f: OfferingFields,
    ) -> ServiceResult<()> {
        service::update::<K>(ctx, txn, &key, f).map(drop)
    }
    fn delete(ctx: &Context, txn: &mut Txn, key: Key<K>, _: &Query) -> ServiceResult<()> {
        service::delete::<K>(ctx, txn, &key)
    }
}

async fn create<K: Wire>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    service::authorize::<K>(&ctx.service, "post")?;
    let mut input = Input::from_envelope(body, K::ENVELOPE)?;
    let name = input.string("name", 255)?.required("name")?;
    // A zone is addressed by its name in the path: a zone named "" could
    // never be shown, updated or deleted again.
    if !K::RENAMABLE && name.is_empty() {
        return Err(ApiError::invalid_field(
            "name",
            &name,
            "Value should have a minimum character requirement of 1",
        ));
    }
    let new = NewOffering {
        name,
        description: input.string("description", 255)?.value(),
        enabled: input.boolean("enabled")?.or(true),
        profile_id: input.uuid(K::PROFILE_ID)?.required(K::PROFILE_ID)?,
    };
    input.finish()?;
    let o = app
        .store
        .write(|txn| service::create::<K>(&ctx.service, txn, new))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ K::ENVELOPE: K::render(&o) })),
    ))
}

// -------------------------------------------------------------- profiles

/// The profiles of kind `K` in the shape every resource shares.
pub struct Profiles<K>(PhantomData<fn() -> K>);

impl<K: Wire> Resource for Profiles<K> {
    type Model = K::Profile;
    type Fields = ProfileFields;
    const NAME: &'static str = K::PROFILE_NAME;
    const ENVELOPE: &'static str = K::PROFILE_ENVELOPE;
    const PLURAL: &'static str = K::PROFILE_PLURAL;
    const LINKS: &'static str = K::PROFILE_LINKS;
    const ATTRS: &'static [&'static str] = K::PROFILE_ATTRS;

    fn render(_: &State, p: &K::Profile) -> Object {
        K::render_profile(p)
    }
    fn admit(ctx: &Context, action: &str) -> ServiceResult<()> {
        service::authorize_profile::<K>(ctx, action)
    }
    fn input(body: Value) -> ApiResult<Input> {
        Input::from_envelope(body, K::PROFILE_ENVELOPE)
    }
    fn show(ctx: &Context, s: &State, id: Uuid) -> ServiceResult<Arc<K::Profile>> {
        service::show_profile::<K>(ctx, s, id)
    }
    fn list(ctx: &Context, s: &State, _: Option<&str>) -> ServiceResult<Vec<Arc<K::Profile>>> {
        service::list_profiles::<K>(ctx, s)
    }
    fn parse_update(input: &mut Input) -> ApiResult<ProfileFields> {
        Ok(ProfileFields {
            name: not_null(input.string("name", 255)?, "name")?,
            provider_name: not_null(input.string("provider_name", 255)?, "provider_name")?,
            data: not_null(input.string(K::DATA, 4096)?, K::DATA)?,
        })
    }
    fn update(
        ctx: &Context,
        txn: &mut Txn,
        settings: &ApiSettings,
        id: Uuid,
        f: ProfileFields,
    ) -> ServiceResult<()> {
        service::update_profile::<K>(ctx, txn, settings, id, f).map(drop)
    }
    fn delete(ctx: &Context, txn: &mut Txn, id: Uuid, _: &Query) -> ServiceResult<()> {
        service::delete_profile::<K>(ctx, txn, id)
    }
}

async fn create_profile<K: Wire>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    JsonBody(body): OctaviaJson,
) -> ApiResult<(StatusCode, Json<Value>)> {
    service::authorize_profile::<K>(&ctx.service, "post")?;
    let mut input = Input::from_envelope(body, K::PROFILE_ENVELOPE)?;
    let new = NewProfile {
        name: input.string("name", 255)?.required("name")?,
        provider_name: input
            .string("provider_name", 255)?
            .required("provider_name")?,
        data: input.string(K::DATA, 4096)?.required(K::DATA)?,
    };
    input.finish()?;
    let p = app
        .store
        .write(|txn| service::create_profile::<K>(&ctx.service, txn, &*app.settings, new))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ K::PROFILE_ENVELOPE: K::render_profile(&p) })),
    ))
}
