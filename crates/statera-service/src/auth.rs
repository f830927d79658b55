//! Authorization: one place that asks the deployment's policy whether the
//! caller may do an action (a rule name such as
//! `os_load-balancer_api:loadbalancer:get_one`) on a target.

use crate::error::{ServiceError, ServiceResult};
use statera_model::identity::Caller;
use statera_policy::{Credentials, Enforcer, Target};
use std::sync::Arc;

/// Who is asking, under which policy: what every service operation takes.
#[derive(Debug, Clone)]
pub struct Context {
    pub caller: Caller,
    /// The deployment's effective policy.
    policy: Arc<Enforcer>,
    /// The caller as the policy sees it (computed once per request).
    creds: Credentials,
}

/// A policy target of one project (`{"project_id": …}`, as Octavia builds it).
pub fn project_target(project_id: &str) -> Target {
    let mut t = Target::new();
    t.insert("project_id".into(), project_id.into());
    t.insert("tenant_id".into(), project_id.into());
    t
}

impl Context {
    pub fn new(caller: Caller, policy: Arc<Enforcer>) -> Context {
        let creds = policy.credentials(&caller);
        Context {
            caller,
            policy,
            creds,
        }
    }

    /// Whether the policy rule `rule` allows the caller on an object of
    /// `project_id`.
    pub fn allowed(&self, rule: &str, project_id: &str) -> bool {
        self.allowed_on(rule, &project_target(project_id))
    }

    /// Whether `rule` allows the caller on `target` (Neutron's rules read
    /// more than the project: `network:project_id`, `shared`, …).
    pub fn allowed_on(&self, rule: &str, target: &Target) -> bool {
        debug_assert!(self.policy.knows(rule), "unknown policy rule {rule}");
        self.policy.enforce(rule, target, &self.creds)
    }

    /// [`Context::allowed`], or [`ServiceError::Forbidden`].
    pub fn authorize(&self, rule: &str, project_id: &str) -> ServiceResult<()> {
        authorize(self, rule, &project_target(project_id))
    }

    /// The cloud admin (`context_is_admin`, what oslo calls `is_admin`).
    pub fn is_admin(&self) -> bool {
        self.creds
            .values
            .get("is_admin")
            .is_some_and(|v| v == "True")
    }
}

/// The one authorization check: `action` (a policy rule name) on `target`,
/// or 403 `Policy does not allow this request to be performed.`.
pub fn authorize(ctx: &Context, action: &str, target: &Target) -> ServiceResult<()> {
    if ctx.allowed_on(action, target) {
        Ok(())
    } else {
        Err(ServiceError::forbidden())
    }
}
