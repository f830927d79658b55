//! Collection GETs, one implementation for every resource: equality filters on
//! any attribute, the four tag filters, `fields=`, `sort=key:dir` (and the
//! legacy `sort_key`/`sort_dir`), `limit`/`marker`/`page_reverse` with
//! `<plural>_links`.
//!
//! It works on the rendered objects, so a filter or sort key is exactly an
//! attribute the user can see; `<x>_id` also matches membership in a `<x>s`
//! list of `{"id": …}` references (`?loadbalancer_id=` on listeners).

use crate::error::{ApiError, ApiResult};
use crate::input::parse_bool_str;
use serde_json::{Map, Value};
use std::cmp::Ordering;

pub type Object = Map<String, Value>;

/// The query string, as ordered key/value pairs (keys may repeat).
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub pairs: Vec<(String, String)>,
}

impl Query {
    pub fn parse(raw: Option<&str>) -> Query {
        let pairs = raw
            .map(|q| {
                form_urlencoded::parse(q.as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All values of `key`, comma lists split.
    pub fn all(&self, key: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Whether `key` is present and true (`?cascade=True`).
    pub fn flag(&self, key: &str) -> bool {
        self.get(key).and_then(parse_bool_str).unwrap_or(false)
    }

    /// A copy without the pairs whose key is in `keys`.
    fn without(&self, keys: &[&str]) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !keys.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

const PAGING_KEYS: &[&str] = &[
    "limit",
    "marker",
    "sort",
    "sort_key",
    "sort_dir",
    "fields",
    "page_reverse",
];
const TAG_KEYS: &[&str] = &["tags", "tags-any", "not-tags", "not-tags-any"];

/// How the values of a filter key given more than once combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RepeatedFilters {
    /// Every value must match (Octavia: `?tags=a&tags=b` style conjunction).
    #[default]
    All,
    /// Any value may match (Neutron: `?id=a&id=b` is a or b).
    Any,
}

/// How one collection is shown.
pub struct Collection<'a> {
    pub plural: &'a str,
    /// `None` for collections without links (providers, Neutron).
    pub links_key: Option<&'a str>,
    /// Every attribute an object of this collection can have (filters and
    /// sort keys are checked against it even when the collection is empty).
    pub attributes: &'a [&'a str],
    /// Query keys that are not filters (`cascade`, …).
    pub ignored: &'a [&'a str],
    /// Absolute URL of the collection, for links.
    pub url: String,
    pub max_limit: usize,
    /// Whether an unknown filter is an error (Octavia) or ignored.
    pub strict_filters: bool,
}

/// Does rendered `value` equal query text `want`?
fn matches_value(value: &Value, want: &str) -> bool {
    match value {
        Value::String(s) => s == want,
        Value::Bool(b) => parse_bool_str(want) == Some(*b),
        Value::Number(n) => want.parse::<f64>().ok() == n.as_f64(),
        Value::Null => want.is_empty() || want.eq_ignore_ascii_case("none") || want == "null",
        Value::Array(items) => items.iter().any(|i| match i {
            Value::Object(o) => o.get("id").is_some_and(|id| matches_value(id, want)),
            other => matches_value(other, want),
        }),
        Value::Object(_) => false,
    }
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (x, y) => x.to_string().cmp(&y.to_string()),
    }
}

fn tags_of(o: &Object) -> Vec<&str> {
    match o.get("tags") {
        Some(Value::Array(t)) => t.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

impl Collection<'_> {
    fn filter_field<'k>(&self, key: &'k str) -> Option<&'k str> {
        if self.attributes.contains(&key) {
            return Some(key);
        }
        None
    }

    /// The attribute a `<x>_id` filter looks in (`loadbalancer_id` → `loadbalancers`).
    fn reference_list(&self, key: &str) -> Option<String> {
        // Octavia's model spells the load balancer reference `load_balancer_id`
        // (openstacksdk sends it); the API spells it `loadbalancer_id`.
        let key = if key == "load_balancer_id" {
            "loadbalancer_id"
        } else {
            key
        };
        let base = key.strip_suffix("_id")?;
        let plural = format!("{base}s");
        self.attributes.contains(&plural.as_str()).then_some(plural)
    }

    /// Filter, sort, page and trim `items` as `query` asks; the response body.
    /// A key given twice must match both values (Octavia).
    pub fn respond(&self, items: Vec<Object>, query: &Query) -> ApiResult<Value> {
        self.respond_with(items, query, RepeatedFilters::All)
    }

    /// As [`Collection::respond`], with `repeated` saying how values of a
    /// filter key given more than once combine (`?id=a&id=b`: Octavia wants
    /// both, Neutron either).
    pub fn respond_with(
        &self,
        items: Vec<Object>,
        query: &Query,
        repeated: RepeatedFilters,
    ) -> ApiResult<Value> {
        let rows = items.into_iter().map(|o| (o, ())).collect();
        self.respond_rows(rows, query, repeated, |o, _| o)
    }

    /// Like [`Collection::respond`], but renders only the page: filtering and
    /// sorting run on `summary(item)` when it has every attribute the query
    /// needs (else on the full `render`), and `render` runs only for the
    /// objects returned. This keeps a 100-item page cheap however many
    /// objects exist.
    pub fn respond_lazy<T>(
        &self,
        items: Vec<T>,
        query: &Query,
        summary: impl Fn(&T) -> Object,
        render: impl Fn(&T) -> Object,
    ) -> ApiResult<Value> {
        let mut needed: Vec<String> = vec!["id".into(), "name".into(), "created_at".into()];
        for (key, _) in &query.pairs {
            if TAG_KEYS.contains(&key.as_str()) {
                needed.push("tags".into());
            } else if !PAGING_KEYS.contains(&key.as_str()) && !self.ignored.contains(&key.as_str())
            {
                needed.push(key.clone());
            }
        }
        for (key, _) in self.sort_keys(query)? {
            needed.push(key);
        }
        let light = items.first().is_none_or(|first| {
            let s = summary(first);
            needed.iter().all(|k| {
                let looked_in = if self.attributes.contains(&k.as_str()) {
                    Some(k.clone())
                } else {
                    self.reference_list(k)
                };
                looked_in.is_none_or(|a| s.contains_key(&a))
            })
        });
        if light {
            let rows = items.into_iter().map(|t| (summary(&t), t)).collect();
            self.respond_rows(rows, query, RepeatedFilters::All, |_, t| render(&t))
        } else {
            let rows = items.into_iter().map(|t| (render(&t), ())).collect();
            self.respond_rows(rows, query, RepeatedFilters::All, |o, _| o)
        }
    }

    /// The one pipeline: filter and sort `rows` on their views, page them,
    /// and turn each returned row into its response object with `finish`.
    fn respond_rows<T>(
        &self,
        mut rows: Vec<(Object, T)>,
        query: &Query,
        repeated: RepeatedFilters,
        finish: impl Fn(Object, T) -> Object,
    ) -> ApiResult<Value> {
        // Filters: (query key, attribute looked in, accepted values).
        let mut filters: Vec<(&str, String, Vec<&str>)> = Vec::new();
        for (key, want) in &query.pairs {
            if PAGING_KEYS.contains(&key.as_str())
                || TAG_KEYS.contains(&key.as_str())
                || self.ignored.contains(&key.as_str())
            {
                continue;
            }
            let target = if let Some(field) = self.filter_field(key) {
                field.to_string()
            } else if let Some(list) = self.reference_list(key) {
                list
            } else if self.strict_filters {
                return Err(ApiError::bad_request(
                    "One or more arguments are either duplicate or invalid",
                ));
            } else {
                continue;
            };
            let same_key = filters.iter_mut().find(|(k, _, _)| *k == key.as_str());
            match (repeated, same_key) {
                (RepeatedFilters::Any, Some((_, _, values))) => values.push(want.as_str()),
                _ => filters.push((key.as_str(), target, vec![want.as_str()])),
            }
        }
        for (_, target, values) in &filters {
            rows.retain(|(o, _)| {
                o.get(target)
                    .is_some_and(|v| values.iter().any(|want| matches_value(v, want)))
            });
        }
        // Tag filters.
        let all = query.all("tags");
        let any = query.all("tags-any");
        let not_all = query.all("not-tags");
        let not_any = query.all("not-tags-any");
        if !(all.is_empty() && any.is_empty() && not_all.is_empty() && not_any.is_empty()) {
            rows.retain(|(o, _)| {
                let t = tags_of(o);
                let has = |x: &String| t.contains(&x.as_str());
                (all.is_empty() || all.iter().all(has))
                    && (any.is_empty() || any.iter().any(has))
                    && (not_all.is_empty() || !not_all.iter().all(has))
                    && (not_any.is_empty() || !not_any.iter().any(has))
            });
        }
        // Sorting, on each row's sort key values taken once.
        let sort = self.sort_keys(query)?;
        let mut keyed: Vec<(Vec<Value>, (Object, T))> = rows
            .into_iter()
            .map(|row| {
                let keys = sort
                    .iter()
                    .map(|(k, _)| row.0.get(k).cloned().unwrap_or(Value::Null))
                    .collect();
                (keys, row)
            })
            .collect();
        keyed.sort_by(|(a, _), (b, _)| {
            for (i, (_, asc)) in sort.iter().enumerate() {
                let ord = compare(&a[i], &b[i]);
                let ord = if *asc { ord } else { ord.reverse() };
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            Ordering::Equal
        });
        let mut items: Vec<(Object, T)> = keyed.into_iter().map(|(_, row)| row).collect();
        // Paging.
        let limit = match query.get("limit") {
            None => self.max_limit,
            Some(l) if l.eq_ignore_ascii_case("infinite") => self.max_limit,
            Some(l) => match l.trim().parse::<i64>() {
                Ok(n) if n < 1 => self.max_limit,
                Ok(n) => (n as usize).min(self.max_limit),
                Err(_) => {
                    return Err(ApiError::bad_request(format!(
                        "Supplied pagination limit '{l}' is not valid."
                    )));
                }
            },
        };
        let reverse = query
            .get("page_reverse")
            .and_then(parse_bool_str)
            .unwrap_or(false);
        let marker = query.get("marker").filter(|m| !m.is_empty());
        let id_key = if self.attributes.contains(&"id") {
            "id"
        } else {
            "name"
        };
        let page: Vec<(Object, T)> = match marker {
            None => items.into_iter().take(limit).collect(),
            Some(m) => {
                let pos = items
                    .iter()
                    .position(|(o, _)| o.get(id_key).and_then(Value::as_str) == Some(m))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "Supplied pagination marker '{m}' is not valid."
                        ))
                    })?;
                if reverse {
                    let start = pos.saturating_sub(limit);
                    items.drain(start..pos).collect()
                } else {
                    items.into_iter().skip(pos + 1).take(limit).collect()
                }
            }
        };
        let mut links = Vec::new();
        if self.links_key.is_some() {
            let id_of = |(o, _): &(Object, T)| {
                o.get(id_key)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            let kept = query.without(&["limit", "marker", "page_reverse"]);
            let link = |marker: String, rel: &str, reverse: bool| {
                let mut s = form_urlencoded::Serializer::new(String::new());
                s.append_pair("limit", &limit.to_string());
                for (k, v) in &kept {
                    s.append_pair(k, v);
                }
                s.append_pair("marker", &marker);
                if reverse {
                    s.append_pair("page_reverse", "True");
                }
                serde_json::json!({"href": format!("{}?{}", self.url, s.finish()), "rel": rel})
            };
            if page.len() == limit
                && let Some(last) = page.last()
            {
                links.push(link(id_of(last), "next", false));
            }
            if marker.is_some()
                && let Some(first) = page.first()
            {
                links.push(link(id_of(first), "previous", true));
            }
        }
        // Field selection.
        let fields = query.all("fields");
        let page: Vec<Value> = page
            .into_iter()
            .map(|(o, t)| {
                let o = finish(o, t);
                Value::Object(if fields.is_empty() {
                    o
                } else {
                    select_fields(o, &fields)
                })
            })
            .collect();
        let mut body = Map::new();
        body.insert(self.plural.to_string(), Value::Array(page));
        if let Some(key) = self.links_key {
            body.insert(key.to_string(), Value::Array(links));
        }
        Ok(Value::Object(body))
    }

    fn sort_keys(&self, query: &Query) -> ApiResult<Vec<(String, bool)>> {
        let mut keys = Vec::new();
        let parse_dir = |d: &str| match d.trim().to_ascii_lowercase().as_str() {
            "asc" => Ok(true),
            "desc" => Ok(false),
            other => Err(ApiError::bad_request(format!(
                "Supplied sort direction '{other}' is not valid."
            ))),
        };
        if let Some(sort) = query.get("sort") {
            for part in sort.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let (key, dir) = part.split_once(':').unwrap_or((part, "asc"));
                keys.push((key.trim().to_string(), parse_dir(dir)?));
            }
        } else {
            let dirs = query.all("sort_dir");
            for (i, key) in query.all("sort_key").into_iter().enumerate() {
                let asc = match dirs.get(i).or(dirs.last()) {
                    Some(d) => parse_dir(d)?,
                    None => true,
                };
                keys.push((key, asc));
            }
        }
        for (key, _) in &keys {
            if !self.attributes.contains(&key.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "Supplied sort key '{key}' is not valid."
                )));
            }
        }
        for tie in ["created_at", "id"] {
            if self.attributes.contains(&tie) && !keys.iter().any(|(k, _)| k == tie) {
                keys.push((tie.to_string(), true));
            }
        }
        if keys.is_empty() && self.attributes.contains(&"name") {
            keys.push(("name".to_string(), true));
        }
        Ok(keys)
    }
}

/// Keep only `fields` of an object (unknown names ignored).
pub fn select_fields(o: Object, fields: &[String]) -> Object {
    o.into_iter()
        .filter(|(k, _)| fields.iter().any(|f| f == k))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn coll() -> Collection<'static> {
        Collection {
            plural: "things",
            links_key: Some("things_links"),
            attributes: &[
                "id",
                "name",
                "admin_state_up",
                "weight",
                "loadbalancers",
                "tags",
                "created_at",
            ],
            ignored: &[],
            url: "http://h/v2/things".into(),
            max_limit: 1000,
            strict_filters: true,
        }
    }

    fn items() -> Vec<Object> {
        (0..5)
            .map(|i| {
                json!({"id": format!("id{i}"), "name": format!("n{}", 4 - i), "admin_state_up": i % 2 == 0,
                       "weight": i, "loadbalancers": [{"id": if i < 2 {"lb1"} else {"lb2"}}],
                       "tags": if i == 1 {json!(["a","b"])} else {json!(["a"])}, "created_at": "2026-01-01T00:00:00"})
                .as_object()
                .unwrap()
                .clone()
            })
            .collect()
    }

    fn ids(v: &Value) -> Vec<String> {
        v["things"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn filters_sort_and_reference_lists() {
        let c = coll();
        let v = c
            .respond(
                items(),
                &Query::parse(Some("admin_state_up=True&sort=weight:desc")),
            )
            .unwrap();
        assert_eq!(ids(&v), ["id4", "id2", "id0"]);
        let v = c
            .respond(items(), &Query::parse(Some("loadbalancer_id=lb1")))
            .unwrap();
        // Default order: created_at, then id (as Octavia); all created_at are equal here.
        assert_eq!(ids(&v), ["id0", "id1"]);
        let alias = c
            .respond(items(), &Query::parse(Some("load_balancer_id=lb1")))
            .unwrap();
        assert_eq!(
            ids(&alias),
            ids(&v),
            "load_balancer_id is Octavia's model spelling"
        );
        let v = c.respond(items(), &Query::parse(Some("tags=a,b"))).unwrap();
        assert_eq!(ids(&v), ["id1"]);
        let v = c
            .respond(
                items(),
                &Query::parse(Some("not-tags-any=b&sort_key=id&sort_dir=asc")),
            )
            .unwrap();
        assert_eq!(ids(&v), ["id0", "id2", "id3", "id4"]);
        assert!(c.respond(items(), &Query::parse(Some("bogus=1"))).is_err());
        assert!(
            c.respond(items(), &Query::parse(Some("sort=bogus")))
                .is_err()
        );
        assert!(
            c.respond(items(), &Query::parse(Some("sort=name:sideways")))
                .is_err()
        );
    }

    #[test]
    fn pagination_links() {
        let c = coll();
        let q = Query::parse(Some("limit=2&sort=id"));
        let v = c.respond(items(), &q).unwrap();
        assert_eq!(ids(&v), ["id0", "id1"]);
        let links = v["things_links"].as_array().unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0]["rel"], "next");
        let href = links[0]["href"].as_str().unwrap();
        assert!(
            href.contains("marker=id1") && href.contains("sort=id"),
            "{href}"
        );
        let v = c
            .respond(items(), &Query::parse(Some("limit=2&sort=id&marker=id3")))
            .unwrap();
        assert_eq!(ids(&v), ["id4"]);
        assert_eq!(v["things_links"].as_array().unwrap().len(), 1); // previous only
        let v = c
            .respond(
                items(),
                &Query::parse(Some("limit=2&sort=id&marker=id3&page_reverse=True")),
            )
            .unwrap();
        assert_eq!(ids(&v), ["id1", "id2"]);
        assert!(
            c.respond(items(), &Query::parse(Some("marker=nope")))
                .is_err()
        );
        assert!(
            c.respond(items(), &Query::parse(Some("limit=abc")))
                .is_err()
        );
    }

    #[test]
    fn field_selection() {
        let v = coll()
            .respond(
                items(),
                &Query::parse(Some("fields=id&fields=weight,nothing")),
            )
            .unwrap();
        let first = v["things"][0].as_object().unwrap();
        assert_eq!(first.len(), 2);
    }

    #[test]
    fn repeated_filter_keys_and_or_or() {
        let c = coll();
        let q = Query::parse(Some("id=id1&id=id3&sort=id"));
        // Octavia: both values must match, which no single object does.
        assert!(ids(&c.respond(items(), &q).unwrap()).is_empty());
        assert!(ids(&c.respond_with(items(), &q, RepeatedFilters::All).unwrap()).is_empty());
        // Neutron: either value.
        let v = c.respond_with(items(), &q, RepeatedFilters::Any).unwrap();
        assert_eq!(ids(&v), ["id1", "id3"]);
        // Different keys still combine with AND.
        let q = Query::parse(Some("id=id1&id=id2&id=id3&admin_state_up=true&sort=id"));
        let v = c.respond_with(items(), &q, RepeatedFilters::Any).unwrap();
        assert_eq!(ids(&v), ["id2"]);
        // Unknown keys: refused when strict, ignored otherwise.
        let q = Query::parse(Some("bogus=1&id=id4"));
        assert!(c.respond_with(items(), &q, RepeatedFilters::Any).is_err());
        let lax = Collection {
            strict_filters: false,
            ..coll()
        };
        let v = lax.respond_with(items(), &q, RepeatedFilters::Any).unwrap();
        assert_eq!(ids(&v), ["id4"]);
    }
    #[test]
    fn lazy_listing_matches_eager_and_renders_only_the_page() {
        use std::cell::Cell;
        let c = coll();
        let rendered = Cell::new(0);
        let summary = |o: &Object| {
            let mut s = Object::new();
            for k in ["id", "name", "created_at", "tags"] {
                s.insert(k.into(), o[k].clone());
            }
            s
        };
        let render = |o: &Object| {
            rendered.set(rendered.get() + 1);
            o.clone()
        };
        for q in [
            "limit=2&sort=id",
            "name=n1",
            "tags=a&limit=3",
            "weight=3",
            "loadbalancer_id=lb2&sort=weight:desc",
        ] {
            let q = Query::parse(Some(q));
            rendered.set(0);
            let lazy = c.respond_lazy(items(), &q, summary, render).unwrap();
            assert_eq!(lazy, c.respond(items(), &q).unwrap(), "{q:?}");
            let page = lazy["things"].as_array().unwrap().len();
            let needs_full = q.get("weight").is_some() || q.get("loadbalancer_id").is_some();
            assert_eq!(rendered.get(), if needs_full { 5 } else { page }, "{q:?}");
        }
    }
}
