//! Who is asking: the request context every handler receives.
//!
//! For now authentication is `noauth` (any token is accepted, as Octavia's
//! noauth strategy does): the project comes from `X-Project-Id` (or the
//! configured default) and the roles from `X-Roles` (when the header is
//! absent: admin, as in Octavia's noauth mode; when present, exactly the roles
//! it lists, so an empty one gives no rights). Real identity (Keystone tokens) will fill the same
//! context; the policy checks below are the seam for RBAC.

use crate::AppState;
use crate::error::ApiError;
use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

#[derive(Debug, Clone)]
pub struct RequestContext {
    pub project_id: String,
    pub roles: Vec<String>,
    /// Scheme and authority the client used, for links (`http://host:9876`).
    pub base_url: String,
}

impl RequestContext {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r.eq_ignore_ascii_case(role))
    }

    pub fn is_admin(&self) -> bool {
        self.has_role("admin") || self.has_role("load-balancer_admin")
    }

    /// `load-balancer:read` on an object of `project_id`.
    pub fn can_read(&self, project_id: &str) -> bool {
        self.is_admin()
            || self.has_role("load-balancer_global_observer")
            || (project_id == self.project_id
                && [
                    "reader",
                    "member",
                    "load-balancer_observer",
                    "load-balancer_member",
                ]
                .iter()
                .any(|r| self.has_role(r)))
    }

    /// Neutron's read rule on an object of `project_id`: an admin, or a
    /// reading role in that very project. Octavia's global observer role
    /// means nothing to Neutron (it would otherwise let a project see, and
    /// then name, every project's networks, subnets and ports).
    pub fn can_read_neutron(&self, project_id: &str) -> bool {
        self.is_admin() || (project_id == self.project_id && self.can_read(project_id))
    }

    /// `load-balancer:write` on an object of `project_id`.
    pub fn can_write(&self, project_id: &str) -> bool {
        self.is_admin()
            || (project_id == self.project_id
                && (self.has_role("member") || self.has_role("load-balancer_member")))
    }

    /// Whether a list may span every project.
    pub fn can_read_global(&self) -> bool {
        self.is_admin() || self.has_role("load-balancer_global_observer")
    }

    pub fn check_read(&self, project_id: &str) -> Result<(), ApiError> {
        if self.can_read(project_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn check_write(&self, project_id: &str) -> Result<(), ApiError> {
        if self.can_write(project_id) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    pub fn check_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }

    /// Quota administration (`load-balancer:quota-admin`).
    pub fn check_quota_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() || self.has_role("load-balancer_quota_admin") {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The scheme and authority the client addressed, honouring proxy headers.
pub fn base_url(headers: &HeaderMap) -> String {
    let proto = header(headers, "x-forwarded-proto").unwrap_or("http");
    let host = header(headers, "x-forwarded-host")
        .or_else(|| header(headers, "host"))
        .unwrap_or("127.0.0.1:9876");
    format!("{proto}://{host}")
}

impl FromRequestParts<AppState> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let h = &parts.headers;
        let project_id = header(h, "x-project-id")
            .or_else(|| header(h, "x-tenant-id"))
            .map(str::to_string)
            .unwrap_or_else(|| state.settings.default_project_id.clone());
        // A present but empty `X-Roles` means no roles at all: only a request
        // without the header gets the noauth default.
        let roles = match h.get("x-roles") {
            Some(r) => String::from_utf8_lossy(r.as_bytes())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            None => vec![
                "admin".to_string(),
                "member".to_string(),
                "reader".to_string(),
            ],
        };
        Ok(RequestContext {
            project_id,
            roles,
            base_url: base_url(h),
        })
    }
}
