//! Reading request bodies the way Octavia's WSME layer does: the object sits in
//! a singular envelope, numbers may come as strings, booleans as
//! `"true"/"yes"/1…`, every attribute the handler did not take is an unknown
//! attribute (400), and every type or range error names its field.

use crate::error::{ApiError, ApiResult, Style};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use ipnet::IpNet;
use serde_json::{Map, Value};
use std::net::IpAddr;
use std::str::FromStr;
use uuid::Uuid;

/// Octavia's request body size limit (oslo sizelimit default).
pub const MAX_BODY_BYTES: usize = 114_688;

/// A JSON request body whose rejection is rendered in the API's own error shape.
pub struct JsonBody<const NEUTRON: bool>(pub Value);
pub type OctaviaJson = JsonBody<false>;
pub type NeutronJson = JsonBody<true>;

impl<S: Send + Sync, const NEUTRON: bool> FromRequest<S> for JsonBody<NEUTRON> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let style = if NEUTRON {
            Style::Neutron
        } else {
            Style::Octavia
        };
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            if status == StatusCode::PAYLOAD_TOO_LARGE {
                crate::styled(ApiError::new(status, "Request Entity Too Large"), style)
            } else {
                ApiError::bad_request(format!("Cannot read the request body: {e}")).in_style(style)
            }
        })?;
        if bytes.len() > MAX_BODY_BYTES {
            return Err(crate::styled(
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large"),
                style,
            ));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| {
            ApiError::bad_request("Request is not in valid JSON format").in_style(style)
        })?;
        Ok(JsonBody(value))
    }
}

pub use statera_service::Opt;

/// The attributes of one request object, taken one by one by the handler.
pub struct Input {
    obj: Map<String, Value>,
    name: String,
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Input {
    /// The object inside envelope `name` (`{"listener": {...}}`).
    pub fn from_envelope(body: Value, name: &str) -> ApiResult<Input> {
        match body {
            Value::Object(mut top) => match top.remove(name) {
                Some(Value::Object(obj)) => Ok(Input {
                    obj,
                    name: name.to_string(),
                }),
                Some(other) => Err(ApiError::invalid_field(
                    name,
                    show(&other),
                    "Value should be an object.",
                )),
                None => Err(ApiError::missing_field(name)),
            },
            other => Err(ApiError::invalid_field(
                name,
                show(&other),
                "Value should be an object.",
            )),
        }
    }

    /// The object inside envelope `name`, refusing any other top-level key:
    /// WSME checks the root type's attributes like any other object's
    /// (`{"pool": {…}, "extra": 1}` is a 400 in Octavia).
    pub fn from_root(body: Value, name: &str) -> ApiResult<Input> {
        if let Value::Object(top) = &body {
            let extra: Vec<&str> = top
                .keys()
                .map(String::as_str)
                .filter(|k| *k != name)
                .collect();
            if !extra.is_empty() && top.contains_key(name) {
                return Err(ApiError::invalid_field(
                    &format!("{name}_"),
                    &body,
                    format!(
                        "Unknown attribute for argument {name}_: {}",
                        extra.join(", ")
                    ),
                ));
            }
        }
        Input::from_envelope(body, name)
    }

    /// A nested object (a pool inside a fully populated load balancer, …).
    pub fn from_value(value: Value, name: &str) -> ApiResult<Input> {
        match value {
            Value::Object(obj) => Ok(Input {
                obj,
                name: name.to_string(),
            }),
            other => Err(ApiError::invalid_field(
                name,
                show(&other),
                "Value should be an object.",
            )),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.obj.is_empty()
    }

    pub fn has(&self, key: &str) -> bool {
        self.obj.contains_key(key)
    }

    /// The raw value of `key`, removed from the input.
    pub fn take(&mut self, key: &str) -> Opt<Value> {
        match self.obj.remove(key) {
            None => Opt::Absent,
            Some(Value::Null) => Opt::Null,
            Some(v) => Opt::Set(v),
        }
    }

    /// Reject whatever the handler did not take.
    pub fn finish(self) -> ApiResult<()> {
        if self.obj.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = self.obj.keys().map(String::as_str).collect();
        Err(ApiError::invalid_field(
            &self.name,
            Value::Object(self.obj.clone()),
            format!(
                "Unknown attribute for argument {}: {}",
                self.name,
                names.join(", ")
            ),
        ))
    }

    pub fn string(&mut self, key: &str, max_len: usize) -> ApiResult<Opt<String>> {
        match self.take(key) {
            Opt::Set(Value::String(s)) => {
                if s.chars().count() > max_len {
                    Err(ApiError::invalid_field(
                        key,
                        &s,
                        format!("Value should have a maximum character requirement of {max_len}"),
                    ))
                } else {
                    Ok(Opt::Set(s))
                }
            }
            Opt::Set(other) => Err(ApiError::invalid_field(
                key,
                show(&other),
                "Wrong type. Expected 'str'",
            )),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn int(&mut self, key: &str, min: i64, max: i64) -> ApiResult<Opt<i64>> {
        let v = match self.take(key) {
            Opt::Set(v) => v,
            Opt::Null => return Ok(Opt::Null),
            Opt::Absent => return Ok(Opt::Absent),
        };
        let n = match &v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let n = n.ok_or_else(|| ApiError::invalid_field(key, show(&v), "Invalid integer value"))?;
        if n < min {
            return Err(ApiError::invalid_field(
                key,
                n,
                format!("Value should be greater or equal to {min}"),
            ));
        }
        if n > max {
            return Err(ApiError::invalid_field(
                key,
                n,
                format!("Value should be lower or equal to {max}"),
            ));
        }
        Ok(Opt::Set(n))
    }

    pub fn float(&mut self, key: &str) -> ApiResult<Opt<f64>> {
        match self.take(key) {
            Opt::Set(v) => {
                let f = match &v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                f.map(Opt::Set)
                    .ok_or_else(|| ApiError::invalid_field(key, show(&v), "Invalid float value"))
            }
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn boolean(&mut self, key: &str) -> ApiResult<Opt<bool>> {
        match self.take(key) {
            Opt::Set(v) => parse_bool(&v)
                .map(Opt::Set)
                .ok_or_else(|| ApiError::invalid_field(key, show(&v), "Value should be a boolean")),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn uuid(&mut self, key: &str) -> ApiResult<Opt<Uuid>> {
        match self.string_like(key)? {
            Opt::Set(s) => Uuid::parse_str(&s)
                .map(Opt::Set)
                .map_err(|_| ApiError::invalid_field(key, &s, "Value should be UUID format")),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn ip(&mut self, key: &str) -> ApiResult<Opt<IpAddr>> {
        match self.string_like(key)? {
            Opt::Set(s) => IpAddr::from_str(s.trim()).map(Opt::Set).map_err(|_| {
                ApiError::invalid_field(key, &s, "Value should be IPv4 or IPv6 format")
            }),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    /// An address and, when it is not in canonical form, its text as sent
    /// (Octavia keeps member addresses as the request wrote them).
    pub fn ip_as_sent(&mut self, key: &str) -> ApiResult<Opt<(IpAddr, Option<String>)>> {
        match self.string_like(key)? {
            Opt::Set(s) => {
                let text = s.trim();
                let ip = IpAddr::from_str(text).map_err(|_| {
                    ApiError::invalid_field(key, &s, "Value should be IPv4 or IPv6 format")
                })?;
                Ok(Opt::Set((ip, statera_model::as_sent(ip, text))))
            }
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    /// One of a closed set of wire names.
    pub fn enumeration<E: FromStr + Copy>(
        &mut self,
        key: &str,
        all: &[E],
        names: impl Fn(E) -> &'static str,
    ) -> ApiResult<Opt<E>> {
        match self.string_like(key)? {
            Opt::Set(s) => s.parse::<E>().map(Opt::Set).map_err(|_| {
                let allowed: Vec<&str> = all.iter().map(|e| names(*e)).collect();
                ApiError::invalid_field(
                    key,
                    &s,
                    format!("Value should be one of: {}", allowed.join(", ")),
                )
            }),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn string_list(&mut self, key: &str, max_item_len: usize) -> ApiResult<Opt<Vec<String>>> {
        match self.take(key) {
            Opt::Set(Value::Array(items)) => {
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    match item {
                        Value::String(s) if s.chars().count() <= max_item_len => out.push(s),
                        other => {
                            return Err(ApiError::invalid_field(
                                key,
                                show(&other),
                                format!(
                                    "Value should be a string of at most {max_item_len} characters"
                                ),
                            ));
                        }
                    }
                }
                Ok(Opt::Set(out))
            }
            Opt::Set(other) => Err(ApiError::invalid_field(
                key,
                show(&other),
                "Value should be a list",
            )),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn uuid_list(&mut self, key: &str) -> ApiResult<Opt<Vec<Uuid>>> {
        let list = self.string_list(key, 36)?;
        match list {
            Opt::Set(items) => items
                .iter()
                .map(|s| {
                    Uuid::parse_str(s)
                        .map_err(|_| ApiError::invalid_field(key, s, "Value should be UUID format"))
                })
                .collect::<ApiResult<Vec<Uuid>>>()
                .map(Opt::Set),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn cidr_list(&mut self, key: &str) -> ApiResult<Opt<Vec<IpNet>>> {
        match self.string_list(key, 64)? {
            Opt::Set(items) => items
                .iter()
                .map(|s| {
                    parse_cidr(s).ok_or_else(|| {
                        ApiError::invalid_field(key, s, "Value should be IPv4 or IPv6 CIDR format")
                    })
                })
                .collect::<ApiResult<Vec<IpNet>>>()
                .map(Opt::Set),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn object(&mut self, key: &str) -> ApiResult<Opt<Map<String, Value>>> {
        match self.take(key) {
            Opt::Set(Value::Object(m)) => Ok(Opt::Set(m)),
            Opt::Set(other) => Err(ApiError::invalid_field(
                key,
                show(&other),
                "Value should be an object",
            )),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    pub fn list(&mut self, key: &str) -> ApiResult<Opt<Vec<Value>>> {
        match self.take(key) {
            Opt::Set(Value::Array(items)) => Ok(Opt::Set(items)),
            Opt::Set(other) => Err(ApiError::invalid_field(
                key,
                show(&other),
                "Value should be a list",
            )),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }

    /// `project_id`, or its legacy spelling `tenant_id`.
    pub fn project_id(&mut self) -> ApiResult<Option<String>> {
        let p = self.string("project_id", 36)?.value();
        let t = self.string("tenant_id", 36)?.value();
        Ok(p.or(t))
    }

    /// A value given as a string; numbers are accepted and shown as strings.
    fn string_like(&mut self, key: &str) -> ApiResult<Opt<String>> {
        match self.take(key) {
            Opt::Set(Value::String(s)) => Ok(Opt::Set(s)),
            Opt::Set(Value::Number(n)) => Ok(Opt::Set(n.to_string())),
            Opt::Set(other) => Err(ApiError::invalid_field(
                key,
                show(&other),
                "Wrong type. Expected 'str'",
            )),
            Opt::Null => Ok(Opt::Null),
            Opt::Absent => Ok(Opt::Absent),
        }
    }
}

/// WSME's boolean leniency.
pub fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        Value::String(s) => parse_bool_str(s),
        _ => None,
    }
}

pub fn parse_bool_str(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "on" | "1" => Some(true),
        "false" | "f" | "no" | "n" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// A CIDR, normalised to its network (`10.0.0.5/24` → `10.0.0.0/24`); a bare
/// address is a host route.
pub fn parse_cidr(s: &str) -> Option<IpNet> {
    let s = s.trim();
    if let Ok(net) = IpNet::from_str(s) {
        return Some(net.trunc());
    }
    IpAddr::from_str(s).ok().map(IpNet::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_as_strings_and_lenient_booleans() {
        let mut i = Input::from_envelope(
            json!({"x": {"a": "5000", "b": "True", "c": 1, "d": "maybe"}}),
            "x",
        )
        .unwrap();
        assert_eq!(i.int("a", -1, 10_000).unwrap(), Opt::Set(5000));
        assert_eq!(i.boolean("b").unwrap(), Opt::Set(true));
        assert_eq!(i.boolean("c").unwrap(), Opt::Set(true));
        assert!(i.boolean("d").is_err());
        i.finish().unwrap();
    }

    #[test]
    fn unknown_attributes_are_rejected() {
        let mut i = Input::from_envelope(json!({"x": {"name": "a", "bogus": 1}}), "x").unwrap();
        i.string("name", 255).unwrap();
        let e = i.finish().unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("bogus"), "{}", e.message);
    }

    #[test]
    fn ranges_and_missing() {
        let mut i = Input::from_envelope(json!({"x": {"w": 257, "n": null}}), "x").unwrap();
        assert!(i.int("w", 0, 256).is_err());
        assert_eq!(i.int("n", 0, 1).unwrap(), Opt::Null);
        assert!(i.int("m", 0, 1).unwrap().required("m").is_err());
        assert!(Input::from_envelope(json!({"y": {}}), "x").is_err());
    }

    #[test]
    fn cidrs_are_normalised() {
        assert_eq!(
            parse_cidr("10.0.0.5/24").unwrap().to_string(),
            "10.0.0.0/24"
        );
        assert_eq!(parse_cidr("10.0.0.5").unwrap().to_string(), "10.0.0.5/32");
        assert!(parse_cidr("10.0.0.500/24").is_none());
    }
}
