//! The service's one error type: what went wrong, by kind, with the exact
//! message Octavia gives. The wire layer picks the status and the shape
//! (statera-api maps `Invalid` → 400, `NotFound` → 404, …); the service never
//! knows about HTTP.

use statera_model::ProvisioningStatus;
use statera_store::StoreError;
use std::fmt::Display;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request is wrong (400): a field, a combination, a state the
    /// request cannot apply to. Not worth retrying unchanged.
    #[error("{0}")]
    Invalid(String),
    /// The object does not exist, or the caller may not know it does (404).
    #[error("{0}")]
    NotFound(String),
    /// The object clashes with another one (409): a second default pool,
    /// a port already taken. Not worth retrying unchanged.
    #[error("{0}")]
    Conflict(String),
    /// The object's load balancer (or the object) is busy with an earlier
    /// change, `PENDING_*` (409 too, as Octavia answers): the same request
    /// may be sent again once that change is applied.
    #[error("{0}")]
    Busy(String),
    /// The policy or a quota says no (403).
    #[error("{0}")]
    Forbidden(String),
    /// The deployment cannot do this (501: a provider's missing feature).
    #[error("{0}")]
    NotImplemented(String),
    /// A Neutron error: which of the kinds above it is, with Neutron's
    /// exception name (`NetworkNotFound`, `InvalidInput`) for its body.
    #[error("{message}")]
    Neutron {
        fault: Fault,
        exception: &'static str,
        message: String,
    },
    /// Something this host must read for the answer could not be read (503:
    /// its interface addresses); the same request may be sent again.
    #[error("{0}")]
    Unavailable(String),
    /// The deployment is broken in a way no retry fixes (a sealed payload
    /// this node's key cannot open): 500, logged where it happened.
    #[error("{0}")]
    Internal(String),
    /// The store failed (the other side of the boundary): see
    /// [`ServiceError::retry_safe`].
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// The kind of a [`ServiceError::Neutron`], as the variants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Invalid,
    NotFound,
    Conflict,
    Forbidden,
}

impl ServiceError {
    /// Octavia's semantic validation failure (`Validation failure: …`).
    pub fn validation(message: impl Display) -> ServiceError {
        ServiceError::Invalid(format!("Validation failure: {message}"))
    }

    /// Octavia's field error: `Invalid input for field/attribute <f>. Value: '<v>'. <reason>`.
    pub fn invalid_field(field: &str, value: impl Display, reason: impl Display) -> ServiceError {
        ServiceError::Invalid(format!(
            "Invalid input for field/attribute {field}. Value: '{value}'. {reason}"
        ))
    }

    pub fn missing_field(field: &str) -> ServiceError {
        ServiceError::invalid_field(field, "None", "Mandatory field missing.")
    }

    /// `<Resource Name> <id> not found.`
    pub fn not_found(resource: &str, id: impl Display) -> ServiceError {
        ServiceError::NotFound(format!("{resource} {id} not found."))
    }

    pub fn conflict(message: impl Into<String>) -> ServiceError {
        ServiceError::Conflict(message.into())
    }

    /// `<Resource> <id> is immutable and cannot be updated.`, for an object
    /// in `status`: busy (retry-safe) while a change to it is being applied
    /// (`PENDING_CREATE`/`_UPDATE`); a plain conflict otherwise (`ERROR`, or
    /// `PENDING_DELETE`, which no retry gets past).
    pub fn immutable(resource: &str, id: impl Display, status: ProvisioningStatus) -> ServiceError {
        ServiceError::refused_in(
            status,
            format!("{resource} {id} is immutable and cannot be updated."),
        )
    }

    /// A 409 for an object in `status`: [`ServiceError::Busy`] while a change
    /// to it is applied (`PENDING_CREATE`/`_UPDATE`), else a plain conflict.
    pub fn refused_in(status: ProvisioningStatus, message: String) -> ServiceError {
        match status {
            ProvisioningStatus::PendingCreate | ProvisioningStatus::PendingUpdate => {
                ServiceError::Busy(message)
            }
            _ => ServiceError::Conflict(message),
        }
    }

    /// The policy refused (oslo's `PolicyNotAuthorized` message as Octavia renders it).
    pub fn forbidden() -> ServiceError {
        ServiceError::Forbidden("Policy does not allow this request to be performed.".into())
    }

    pub fn not_implemented(message: impl Into<String>) -> ServiceError {
        ServiceError::NotImplemented(message.into())
    }

    /// Whether the same request may simply be sent again later: a busy load
    /// balancer (409 immutable) or a store that could not take the write
    /// (nothing was changed).
    pub fn retry_safe(&self) -> bool {
        match self {
            ServiceError::Store(e) => e.is_unavailable() || e.is_disk_full(),
            ServiceError::Busy(_) | ServiceError::Unavailable(_) => true,
            _ => false,
        }
    }
}
