//! One error type for every route, rendered in the shape the route's clients
//! expect: Octavia's `faultcode/faultstring/debuginfo`, or Neutron's
//! `{"NeutronError": {type, message, detail}}` on Neutron routes.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use statera_store::StoreError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Octavia,
    Neutron,
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    /// Neutron's exception class name (`NetworkNotFound`, `BadRequest`, …).
    pub neutron_type: &'static str,
    pub style: Style,
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
            _ => "ServerError",
        };
        ApiError {
            status,
            message: message.into(),
            neutron_type,
            style: Style::Octavia,
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
    fn from(e: StoreError) -> ApiError {
        tracing::error!(error = %e, "store failure");
        ApiError::internal(format!("The store failed: {e}"))
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
        };
        (self.status, axum::Json(body)).into_response()
    }
}
