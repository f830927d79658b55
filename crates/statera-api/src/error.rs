//! One error type for every route, rendered in the shape the route's clients
//! expect: Octavia's `faultcode/faultstring/debuginfo`, or Neutron's
//! `{"NeutronError": {type, message, detail}}` on Neutron routes, or
//! Keystone's `{"error": {code, title, message}}` for authentication failures
//! (as keystonemiddleware answers in front of Octavia and Neutron) and on the
//! identity routes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use statera_service::{Fault, ServiceError};
use statera_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Octavia,
    Neutron,
    Keystone,
    /// Barbican's `{"code", "title", "description"}` (the key manager).
    Barbican,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Neutron's exception class name (`NetworkNotFound`, `BadRequest`, …).
    pub neutron_type: &'static str,
    pub style: Style,
    /// `WWW-Authenticate` for a 401: where to get a token.
    pub www_authenticate: Option<String>,
    /// `Retry-After` (seconds) for a 503 or 429 that a retry will get past.
    pub retry_after_s: Option<u64>,
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        let neutron_type = match status {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::CONFLICT => "Conflict",
            StatusCode::FORBIDDEN => "Forbidden",
            StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
            StatusCode::NOT_IMPLEMENTED => "NotImplemented",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            _ => "ServerError",
        };
        ApiError {
            status,
            message: message.into(),
            neutron_type,
            style: Style::Octavia,
            www_authenticate: None,
            retry_after_s: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    /// Octavia's semantic validation failure (`Validation failure: …`).
    pub fn validation(message: impl std::fmt::Display) -> ApiError {
        ApiError::bad_request(format!("Validation failure: {message}"))
    }

    /// Octavia's field error: `Invalid input for field/attribute <f>. Value: '<v>'. <reason>`.
    pub fn invalid_field(
        field: &str,
        value: impl std::fmt::Display,
        reason: impl std::fmt::Display,
    ) -> ApiError {
        ApiError::bad_request(format!(
            "Invalid input for field/attribute {field}. Value: '{value}'. {reason}"
        ))
    }

    pub fn missing_field(field: &str) -> ApiError {
        ApiError::invalid_field(field, "None", "Mandatory field missing.")
    }

    /// `<Resource Name> <id> not found.`
    pub fn not_found(resource: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, format!("{resource} {id} not found."))
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, message)
    }

    pub fn forbidden() -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "Policy does not allow this request to be performed.",
        )
    }

    /// 401 in Keystone's shape, whatever route was asked (keystonemiddleware
    /// answers before the service sees the request).
    pub fn unauthorized(identity_uri: Option<String>) -> ApiError {
        let mut e = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "The request you have made requires authentication.",
        )
        .in_style(Style::Keystone);
        e.www_authenticate = identity_uri.map(|uri| format!("Keystone uri=\"{uri}\""));
        e
    }

    /// 503 with `Retry-After: 1`: the service is saturated for a moment
    /// and nothing was done, so the same request may be sent again.
    pub fn busy(message: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, message);
        e.retry_after_s = Some(1);
        e
    }

    pub fn not_implemented(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_IMPLEMENTED, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// `Load Balancer <id> is immutable and cannot be updated.`
    pub fn immutable(resource: &str, id: impl std::fmt::Display) -> ApiError {
        ApiError::conflict(format!(
            "{resource} {id} is immutable and cannot be updated."
        ))
    }

    /// Render in Neutron's shape, with Neutron's exception name.
    pub fn neutron(mut self, neutron_type: &'static str) -> ApiError {
        self.style = Style::Neutron;
        self.neutron_type = neutron_type;
        self
    }

    pub fn in_style(mut self, style: Style) -> ApiError {
        self.style = style;
        self
    }
}

impl From<StoreError> for ApiError {
    /// A write the database refused (disk full, I/O failing) changed nothing
    /// and may be retried: 503. Anything else is a fault of the server: 500.
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure");
        if e.is_disk_full() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot take writes: the disk under the data directory is full. \
                 Nothing was changed; retry when space has been freed.",
            )
        } else if let StoreError::Unavailable { .. } = &e {
            // The reason (logged above) may name the database's user or
            // host: not for the client.
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The database cannot be reached right now. Nothing was changed; retry later.",
            )
        } else if e.is_unavailable() {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("The database cannot take writes right now ({e}). Retry later."),
            )
        } else {
            ApiError::internal(format!("The store failed: {e}"))
        }
    }
}

impl From<ServiceError> for ApiError {
    /// The service's kinds of failure → Octavia's statuses (the message is
    /// the service's, word for word).
    fn from(e: ServiceError) -> ApiError {
        match e {
            ServiceError::Invalid(m) => ApiError::bad_request(m),
            ServiceError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, m),
            ServiceError::Conflict(m) | ServiceError::Busy(m) => ApiError::conflict(m),
            ServiceError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m),
            ServiceError::NotImplemented(m) => ApiError::not_implemented(m),
            ServiceError::Neutron {
                fault,
                exception,
                message,
            } => {
                let status = match fault {
                    Fault::Invalid => StatusCode::BAD_REQUEST,
                    Fault::NotFound => StatusCode::NOT_FOUND,
                    Fault::Conflict => StatusCode::CONFLICT,
                    Fault::Forbidden => StatusCode::FORBIDDEN,
                };
                ApiError::new(status, message).neutron(exception)
            }
            ServiceError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
            ServiceError::Internal(m) => ApiError::internal(m),
            ServiceError::Store(e) => ApiError::from(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = match self.style {
            Style::Octavia => json!({
                "faultcode": if self.status.is_server_error() { "Server" } else { "Client" },
                "faultstring": self.message,
                "debuginfo": null,
            }),
            Style::Neutron => json!({
                "NeutronError": {"type": self.neutron_type, "message": self.message, "detail": ""}
            }),
            Style::Keystone => json!({
                "error": {
                    "code": self.status.as_u16(),
                    "title": self.status.canonical_reason().unwrap_or("Error"),
                    "message": self.message,
                }
            }),
            Style::Barbican => json!({
                "code": self.status.as_u16(),
                "title": self.status.canonical_reason().unwrap_or("Error"),
                "description": self.message,
            }),
        };
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(v) = self
            .www_authenticate
            .and_then(|v| axum::http::HeaderValue::from_str(&v).ok())
        {
            resp.headers_mut()
                .insert(axum::http::header::WWW_AUTHENTICATE, v);
        }
        if let Some(s) = self.retry_after_s {
            resp.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, s.into());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(e: ApiError) -> (StatusCode, serde_json::Value) {
        let resp = e.into_response();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn a_full_disk_is_503_in_octavia_and_neutron_shapes() {
        let full = || StoreError::WriteFailed {
            reason: "database or disk is full".into(),
            disk_full: true,
        };
        let (status, body) = render(ApiError::from(full())).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["faultcode"], "Server");
        assert!(body["debuginfo"].is_null());
        let fault = body["faultstring"].as_str().unwrap();
        assert!(
            fault.contains("disk") && fault.contains("Nothing was changed"),
            "{fault}"
        );

        let neutron: ApiResult<()> = crate::neutron::neutron(Err(ApiError::from(full())));
        let (status, body) = render(neutron.unwrap_err()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["NeutronError"]["type"], "HTTPServiceUnavailable");
        assert!(
            body["NeutronError"]["message"]
                .as_str()
                .unwrap()
                .contains("disk")
        );

        // A write that failed for another reason the database gave is 503 too;
        // a corrupt row is the server's fault: 500.
        let (status, _) = render(ApiError::from(StoreError::Unsettled {
            reason: "cannot open".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let (status, _) = render(ApiError::from(StoreError::Corrupt {
            table: "networks",
            id: "x".into(),
            reason: "bad".into(),
        }))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
}
