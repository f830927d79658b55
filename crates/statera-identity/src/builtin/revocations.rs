//! Revocations, indexed so that a validation costs the same with 20 000 rows
//! as with none.
//!
//! Almost every row revokes one token by its audit id (`DELETE
//! /v3/auth/tokens`, which any token holder may send): those go in a hash
//! map, looked up by the token's audit chain. The few others (a user's,
//! project's, domain's or application credential's tokens, written by
//! admin operations) are matched one by one. Rows already expired are left
//! out: no token they could match is still valid. The index is rebuilt only
//! when the store's revocations table changed ([`Table::same_as`]).

use super::TokenInfo;
use statera_model::identity::Revocation;
use statera_store::{State, Table};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

struct Index {
    /// The table this index was built from.
    table: Table<Revocation>,
    /// audit id → (latest `issued_before` in microseconds, row id).
    by_audit: HashMap<String, (i64, String)>,
    /// Rows that set anything else.
    other: Vec<Arc<Revocation>>,
}

impl Index {
    fn build(table: &Table<Revocation>) -> Index {
        let now = statera_model::now();
        let mut by_audit: HashMap<String, (i64, String)> = HashMap::new();
        let mut other = Vec::new();
        for r in table.iter().filter(|r| r.expires_at >= now) {
            let only_audit = r.user_id.is_none()
                && r.project_id.is_none()
                && r.domain_id.is_none()
                && r.application_credential_id.is_none();
            match (&r.audit_id, only_audit) {
                (Some(a), true) => {
                    let before = r.issued_before.and_utc().timestamp_micros();
                    let e = by_audit.entry(a.clone()).or_insert((before, r.id.clone()));
                    if before > e.0 {
                        *e = (before, r.id.clone());
                    }
                }
                (None, true) => {} // matches nothing
                _ => other.push(r.clone()),
            }
        }
        Index {
            table: table.clone(),
            by_audit,
            other,
        }
    }
}

/// The revocation index of a [`super::Builtin`].
pub(crate) struct Revocations {
    index: RwLock<Arc<Index>>,
    /// Rows compared (a hash lookup counts one), for tests and metrics.
    comparisons: AtomicU64,
}

impl Revocations {
    pub(crate) fn new() -> Revocations {
        Revocations {
            index: RwLock::new(Arc::new(Index::build(&Table::default()))),
            comparisons: AtomicU64::new(0),
        }
    }

    pub(crate) fn comparisons(&self) -> u64 {
        self.comparisons.load(Ordering::Relaxed)
    }

    fn index(&self, state: &State) -> Arc<Index> {
        {
            let i = self.index.read().expect("revocation index lock");
            if i.table.same_as(&state.revocations) {
                return i.clone();
            }
        }
        let fresh = Arc::new(Index::build(&state.revocations));
        *self.index.write().expect("revocation index lock") = fresh.clone();
        fresh
    }

    /// The id of the revocation that matches `info`, if any: every field it
    /// sets matches the token, and the token was issued at or before its
    /// `issued_before`.
    pub(crate) fn revoked_by(&self, state: &State, info: &TokenInfo) -> Option<String> {
        let index = self.index(state);
        let issued = info.payload.issued_at;
        let audit = info.audit_ids();
        let mut work = audit.len() as u64;
        let hit = audit.iter().find_map(|a| {
            index
                .by_audit
                .get(a)
                .filter(|(before, _)| issued <= *before)
                .map(|(_, id)| id.clone())
        });
        let hit = hit.or_else(|| {
            let scope_project = info.project.as_ref().map(|p| p.id.as_str());
            let domains: Vec<&str> = [
                Some(info.user.domain_id.as_str()),
                info.project.as_ref().map(|p| p.domain_id.as_str()),
                info.domain.as_ref().map(|d| d.id.as_str()),
            ]
            .into_iter()
            .flatten()
            .collect();
            work += index.other.len() as u64;
            index
                .other
                .iter()
                .find(|r| {
                    issued <= r.issued_before.and_utc().timestamp_micros()
                        && r.audit_id.as_ref().is_none_or(|a| audit.contains(a))
                        && r.user_id.as_ref().is_none_or(|u| *u == info.user.id)
                        && r.project_id
                            .as_deref()
                            .is_none_or(|p| Some(p) == scope_project)
                        && r.domain_id.as_deref().is_none_or(|d| domains.contains(&d))
                        && r.application_credential_id.as_deref().is_none_or(|c| {
                            info.payload.application_credential_id.as_deref() == Some(c)
                        })
                })
                .map(|r| r.id.clone())
        });
        self.comparisons.fetch_add(work, Ordering::Relaxed);
        hit
    }
}
