//! Neutron's tag sub-resource, `/<resources>/{id}/tags[/{tag}]`, which the
//! `openstack network|subnet|port|router|floating ip|security group
//! create|set --tag` commands use.

use super::*;
use crate::input::{JsonBody, NeutronJson};
use axum::Json;
use axum::extract::{Path, State as AxState};
use axum::routing::get;
use statera_store::{Record, Txn};

/// A Neutron resource with tags.
pub(crate) trait Tagged: Record<Key = Uuid> {
    const COLLECTION: &'static str;
    /// Neutron's resource name in policy rules (`update_network`, …).
    const SINGULAR: &'static str;
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self>;
    fn not_found(raw: &str) -> ApiError;
    fn project_id(&self) -> &str;
    fn tags_mut(&mut self) -> &mut Vec<String>;
    fn touch(&mut self);
}

impl Tagged for Network {
    const COLLECTION: &'static str = "networks";
    const SINGULAR: &'static str = "network";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_network(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        not_found("Network", raw, "NetworkNotFound")
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

impl Tagged for Subnet {
    const COLLECTION: &'static str = "subnets";
    const SINGULAR: &'static str = "subnet";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_subnet(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        not_found("Subnet", raw, "SubnetNotFound")
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

impl Tagged for Port {
    const COLLECTION: &'static str = "ports";
    const SINGULAR: &'static str = "port";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_port(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        not_found("Port", raw, "PortNotFound")
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

impl Tagged for L3Router {
    const COLLECTION: &'static str = "routers";
    const SINGULAR: &'static str = "router";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_router(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        router_not_found(raw)
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

impl Tagged for FloatingIp {
    const COLLECTION: &'static str = "floatingips";
    const SINGULAR: &'static str = "floatingip";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_floating_ip(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        floating_ip_not_found(raw)
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

impl Tagged for SecurityGroup {
    const COLLECTION: &'static str = "security-groups";
    const SINGULAR: &'static str = "security_group";
    fn visible(ctx: &RequestContext, s: &State, id: Uuid) -> ApiResult<Self> {
        visible_security_group(ctx, s, id)
    }
    fn not_found(raw: &str) -> ApiError {
        security_group_not_found(raw)
    }
    fn project_id(&self) -> &str {
        &self.project_id
    }
    fn tags_mut(&mut self) -> &mut Vec<String> {
        &mut self.tags
    }
    fn touch(&mut self) {
        self.updated_at = Some(now());
    }
}

pub fn routes() -> Router<AppState> {
    fn one_kind<T: Tagged>() -> Router<AppState> {
        let base = format!("/{}/{{id}}/tags", T::COLLECTION);
        Router::new()
            .route(&base, get(list::<T>).put(replace::<T>).delete(clear::<T>))
            .route(
                &format!("{base}/{{tag}}"),
                get(check::<T>).put(add::<T>).delete(remove::<T>),
            )
    }
    Router::new()
        .merge(one_kind::<Network>())
        .merge(one_kind::<Subnet>())
        .merge(one_kind::<Port>())
        .merge(one_kind::<L3Router>())
        .merge(one_kind::<FloatingIp>())
        .merge(one_kind::<SecurityGroup>())
}

fn id_of<T: Tagged>(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw).map_err(|_| T::not_found(raw))
}

fn tag_not_found<T: Tagged>(id: Uuid, tag: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("Tag {tag} could not be found for {} {id}.", T::COLLECTION),
    )
    .neutron("TagNotFound")
}

fn check_tag(tag: &str) -> ApiResult<()> {
    if tag.is_empty() || tag.chars().count() > 255 {
        return Err(invalid_field(
            "tags",
            format!("'{tag}' is not a valid tag (1 to 255 characters)"),
        ));
    }
    Ok(())
}

/// Change the tags of object `id` with `f`; the object's tags after it.
async fn change<T: Tagged>(
    ctx: &RequestContext,
    app: &AppState,
    id: Uuid,
    f: impl FnOnce(&mut Vec<String>) -> ApiResult<()>,
) -> ApiResult<Vec<String>> {
    app.store
        .write(|txn: &mut Txn| {
            let mut o = T::visible(ctx, txn.state(), id)?;
            if !ctx.allowed(&format!("update_{}", T::SINGULAR), o.project_id()) {
                return Err(forbidden(&format!("update_{}:tags", T::COLLECTION)));
            }
            f(o.tags_mut())?;
            let tags = o.tags_mut().clone();
            o.touch();
            txn.put(o)?;
            Ok(tags)
        })
        .await
}

async fn list<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    run(|| {
        let mut o = T::visible(&ctx, &app.store.snapshot(), id_of::<T>(&id)?)?;
        Ok(Json(json!({"tags": o.tags_mut()})))
    })
}

async fn check<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    run(|| {
        let id = id_of::<T>(&id)?;
        let mut o = T::visible(&ctx, &app.store.snapshot(), id)?;
        if o.tags_mut().contains(&tag) {
            Ok(StatusCode::NO_CONTENT)
        } else {
            Err(tag_not_found::<T>(id, &tag))
        }
    })
}

async fn replace<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
    JsonBody(body): NeutronJson,
) -> ApiResult<Json<Value>> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            let mut input = Input::from_value(body, "tags")?;
            let tags = crate::octavia::tags(&mut input)?
                .value()
                .ok_or_else(|| invalid_field("tags", "a list of tags is required"))?;
            input.finish()?;
            for t in &tags {
                check_tag(t)?;
            }
            let mut unique: Vec<String> = Vec::with_capacity(tags.len());
            for t in tags {
                if !unique.contains(&t) {
                    unique.push(t);
                }
            }
            let tags = change::<T>(&ctx, &app, id, |old| {
                *old = unique;
                Ok(())
            })
            .await?;
            Ok(Json(json!({"tags": tags})))
        }
        .await,
    )
}

async fn clear<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            change::<T>(&ctx, &app, id, |old| {
                old.clear();
                Ok(())
            })
            .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}

async fn add<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            check_tag(&tag)?;
            change::<T>(&ctx, &app, id, |old| {
                if !old.contains(&tag) {
                    old.push(tag);
                }
                Ok(())
            })
            .await?;
            Ok(StatusCode::CREATED)
        }
        .await,
    )
}

async fn remove<T: Tagged>(
    ctx: RequestContext,
    AxState(app): AxState<AppState>,
    Path((id, tag)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    neutron(
        async {
            let id = id_of::<T>(&id)?;
            change::<T>(&ctx, &app, id, |old| {
                let before = old.len();
                old.retain(|t| *t != tag);
                if old.len() == before {
                    return Err(tag_not_found::<T>(id, &tag));
                }
                Ok(())
            })
            .await?;
            Ok(StatusCode::NO_CONTENT)
        }
        .await,
    )
}
