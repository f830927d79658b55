//! Lockout that holds under concurrent guesses.
//!
//! A failure is written to the `User` row only after its answer (so that a
//! wrong password answers in the time an unknown user does), and the row is
//! read from a snapshot: on their own, N guesses sent at once would all see
//! the count of before. So each password check first reserves a slot in an
//! in-memory count of the user's attempts in flight; a reservation is refused
//! when the recorded failures plus the attempts in flight reach the limit,
//! and is held until the attempt's failure is written. At most `limit`
//! attempts of one user run at once; more wait their turn (so concurrent
//! logins with the right password are not refused while the user has no
//! failures), then see the failures the earlier ones recorded.
//!
//! A failure the store refuses to record (a full disk) still counts: it is
//! kept in memory ([`Unrecorded`]) and counted like a recorded one while its
//! write is retried, until the write lands or the lockout duration has
//! passed (when it would no longer count anyway). A right password or an
//! administrator's unlock ([`Attempts::clear`]) forgets such failures at once
//! and stops their retries, as it clears the recorded ones.

use statera_model::identity::User;
use statera_store::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The user option that exempts a user from lockout (Keystone's).
pub const IGNORE_LOCKOUT: &str = "ignore_lockout_failure_attempts";

/// Whether `user` is exempt from lockout (`options.ignore_lockout_failure_attempts`).
pub fn ignores_lockout(user: &User) -> bool {
    user.options
        .get(IGNORE_LOCKOUT)
        .is_some_and(|v| v.as_bool() == Some(true))
}

/// Clear `user`'s recorded failures (unlock it). The user admin API calls
/// this when an admin sets `enabled: true` (`PATCH /v3/users/{id}`), as
/// Keystone unlocks a locked user.
pub fn unlock(user: &mut User) {
    user.failed_auth_count = 0;
    user.last_failed_auth_at = None;
}

struct Entry {
    /// At most `limit` attempts of the user at once.
    turns: Arc<Semaphore>,
    in_flight: u32,
    /// Failures the store has not taken yet (being retried).
    unrecorded: u32,
    /// Replaced by a right password or an unlock: the failures unrecorded
    /// under an earlier epoch neither count nor are retried any more.
    /// Unique across entries (from `Attempts::epochs`), so that a guard of
    /// an entry since dropped never matches a new one.
    epoch: u64,
}

impl Entry {
    /// Nothing to remember: no attempt in flight or waiting (`held`: the
    /// strong counts of `turns` that are not waiters), no failure unrecorded.
    fn unused(&self, held: usize) -> bool {
        self.in_flight == 0 && self.unrecorded == 0 && Arc::strong_count(&self.turns) <= held
    }
}

/// The attempts in flight, per user id.
pub(crate) struct Attempts {
    limit: u32,
    duration_s: i64,
    users: Mutex<HashMap<String, Entry>>,
    /// The next entry epoch.
    epochs: std::sync::atomic::AtomicU64,
}

/// Why an attempt was not let in.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Locked in the store, or the failures recorded plus those in flight
    /// reach the limit.
    Locked,
}

/// An attempt's slot; released (and the user's entry dropped when unused)
/// when it goes out of scope.
pub(crate) struct Reservation {
    attempts: Arc<Attempts>,
    user_id: String,
    _turn: OwnedSemaphorePermit,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut users = self.attempts.users.lock().expect("attempts lock");
        if let Some(e) = users.get_mut(&self.user_id) {
            e.in_flight = e.in_flight.saturating_sub(1);
            // Our permit is still held: 2 = the map's and ours, no waiter.
            if e.unused(2) {
                users.remove(&self.user_id);
            }
        }
    }
}

impl Reservation {
    /// The attempt failed and the store did not take its failure: count it
    /// in memory instead (before the slot is given back, so that it is never
    /// uncounted), until the returned guard is dropped.
    pub(crate) fn into_unrecorded(self) -> Unrecorded {
        let epoch = {
            let mut users = self.attempts.users.lock().expect("attempts lock");
            // An entry exists while a turn is held (this reservation's).
            let e = users
                .get_mut(&self.user_id)
                .expect("kept while a turn is held");
            e.unrecorded += 1;
            e.epoch
        };
        Unrecorded {
            attempts: self.attempts.clone(),
            user_id: self.user_id.clone(),
            epoch,
        }
    }
}

/// A failure counted in memory because the store refused it; uncounted
/// (and the user's entry dropped when unused) when dropped.
pub(crate) struct Unrecorded {
    attempts: Arc<Attempts>,
    user_id: String,
    epoch: u64,
}

impl Unrecorded {
    /// A right password or an unlock came since: this failure no longer
    /// counts.
    pub(crate) fn cleared(&self) -> bool {
        let users = self.attempts.users.lock().expect("attempts lock");
        users
            .get(&self.user_id)
            .is_none_or(|e| e.epoch != self.epoch)
    }
}

impl Drop for Unrecorded {
    fn drop(&mut self) {
        let mut users = self.attempts.users.lock().expect("attempts lock");
        if let Some(e) = users.get_mut(&self.user_id) {
            // A clear since zeroed the count this failure was part of.
            if e.epoch == self.epoch {
                e.unrecorded = e.unrecorded.saturating_sub(1);
            }
            // 1 = the map's own reference: no permit held, no waiter.
            if e.unused(1) {
                users.remove(&self.user_id);
            }
        }
    }
}

impl Attempts {
    pub(crate) fn new(limit: u32, duration_s: u64) -> Attempts {
        Attempts {
            limit,
            duration_s: duration_s as i64,
            users: Mutex::new(HashMap::new()),
            epochs: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The failures of `user` that count now (0 once the last is older than
    /// the lockout duration).
    pub(crate) fn failures(&self, user: &User) -> u32 {
        let now = chrono::Utc::now().timestamp();
        match user.last_failed_auth_at {
            Some(t) if t.and_utc().timestamp() + self.duration_s > now => user.failed_auth_count,
            _ => 0,
        }
    }

    fn next_epoch(&self) -> u64 {
        self.epochs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// A right password for `user_id`, or an administrator's unlock: the
    /// failures not yet recorded stop counting and being retried (the
    /// store's count is cleared by the caller).
    pub(crate) fn clear(&self, user_id: &str) {
        let epoch = self.next_epoch();
        let mut users = self.users.lock().expect("attempts lock");
        if let Some(e) = users.get_mut(user_id) {
            e.epoch = epoch;
            e.unrecorded = 0;
        }
    }

    /// Reserve an attempt for `user_id` (`None` when lockout does not apply
    /// to it): wait for a turn, then read the user's row as the store has it
    /// now and count the attempts in flight.
    pub(crate) async fn reserve(
        self: &Arc<Self>,
        store: &Store,
        user_id: &str,
    ) -> Result<Option<Reservation>, Refused> {
        if self.limit == 0 {
            return Ok(None);
        }
        let turns = {
            let mut users = self.users.lock().expect("attempts lock");
            users
                .entry(user_id.to_string())
                .or_insert_with(|| Entry {
                    turns: Arc::new(Semaphore::new(self.limit as usize)),
                    in_flight: 0,
                    unrecorded: 0,
                    epoch: self.next_epoch(),
                })
                .turns
                .clone()
        };
        let turn = turns.acquire_owned().await.expect("never closed");
        let reservation = Reservation {
            attempts: self.clone(),
            user_id: user_id.to_string(),
            _turn: turn,
        };
        let admitted = {
            let mut users = self.users.lock().expect("attempts lock");
            let entry = users.get_mut(user_id).expect("kept while a turn is held");
            entry.in_flight += 1;
            // The row as of now: every failure of an attempt that released
            // its reservation has been written.
            match store.snapshot().users.get(&user_id.to_string()) {
                None => false,
                Some(user) if ignores_lockout(user) => true,
                Some(user) => {
                    self.failures(user) + entry.unrecorded + entry.in_flight <= self.limit
                }
            }
        };
        if !admitted {
            return Err(Refused::Locked);
        }
        Ok(Some(reservation))
    }
}
