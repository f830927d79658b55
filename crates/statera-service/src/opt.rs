//! A field as a request states it, for typed input: the wire layer reads a
//! request into structs of these, the service applies them to the model.

use crate::error::{ServiceError, ServiceResult};

/// A field as the request states it: absent, explicitly null, or a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Opt<T> {
    Absent,
    Null,
    Set(T),
}

impl<T> Opt<T> {
    /// `Some(v)` when a value was given; absent and null both give `None`.
    pub fn value(self) -> Option<T> {
        match self {
            Opt::Set(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_absent(&self) -> bool {
        matches!(self, Opt::Absent)
    }

    pub fn is_set(&self) -> bool {
        matches!(self, Opt::Set(_))
    }

    /// The value, or `default` when absent or null.
    pub fn or(self, default: T) -> T {
        self.value().unwrap_or(default)
    }

    /// For a partial update: `None` when absent (keep the old value),
    /// `Some(None)` when null, `Some(Some(v))` when set.
    pub fn update(self) -> Option<Option<T>> {
        match self {
            Opt::Absent => None,
            Opt::Null => Some(None),
            Opt::Set(v) => Some(Some(v)),
        }
    }

    /// Required on create: absent or null is `Mandatory field missing.`
    pub fn required(self, field: &str) -> ServiceResult<T> {
        self.value()
            .ok_or_else(|| ServiceError::missing_field(field))
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Opt<U> {
        match self {
            Opt::Absent => Opt::Absent,
            Opt::Null => Opt::Null,
            Opt::Set(v) => Opt::Set(f(v)),
        }
    }
}
