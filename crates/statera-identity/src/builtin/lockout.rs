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
}

/// The attempts in flight, per user id.
pub(crate) struct Attempts {
    limit: u32,
    duration_s: i64,
    users: Mutex<HashMap<String, Entry>>,
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
            if e.in_flight == 0 && Arc::strong_count(&e.turns) <= 2 {
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
                Some(user) => self.failures(user) + entry.in_flight <= self.limit,
            }
        };
        if !admitted {
            return Err(Refused::Locked);
        }
        Ok(Some(reservation))
    }
}
