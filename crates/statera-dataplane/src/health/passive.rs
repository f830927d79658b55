//! Passive health (outlier detection, beyond Octavia): real traffic that
//! fails takes a member out for a while, whatever its monitor says.
//!
//! Each member counts its consecutive failures in real traffic: failed
//! connects (refused, timed out, reset), HTTP requests a fresh connection
//! lost before any answer, answers that did not come in time, and `5xx`
//! answers on HTTP listeners. Any success (an established L4 connection, an
//! HTTP answer below 500) resets the count. At
//! [`PassiveOptions::consecutive_failures`] in a row the member is
//! **ejected**: it takes no new connections for a back-off that starts at
//! [`PassiveOptions::base_ejection`] and doubles with each ejection that
//! follows without a success in between, up to
//! [`PassiveOptions::max_ejection`]. Then it takes traffic again (ramped in
//! like a member coming back up); its first success resets the back-off.
//!
//! Ejection never leaves a pool with nothing: the last member that could
//! take new connections is not ejected, and if every candidate is ejected
//! anyway, selection ignores ejection rather than refuse a client.
//!
//! An ejected member is reported `Down` (the API shows it in ERROR, its
//! pool DEGRADED) for as long as it is ejected, with or without a monitor,
//! so an operator sees why it takes no traffic. Counting happens per member
//! id and survives applies.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// Passive health settings (engine-wide; Octavia has no API for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassiveOptions {
    /// Failures in a row that eject a member; 0 turns passive health off.
    pub consecutive_failures: u32,
    /// The first ejection's length; each following one doubles it.
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

impl Default for PassiveOptions {
    fn default() -> Self {
        PassiveOptions {
            consecutive_failures: 5,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// What one use of a member came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
}

/// One member's passive health.
#[derive(Debug, Default)]
pub struct Passive {
    failures: AtomicU32,
    /// Set by an ejection, cleared by the next success: while clear, the
    /// member is not ejected and selection takes no lock.
    marked: AtomicBool,
    ejection: Mutex<Ejection>,
}

#[derive(Debug, Default)]
struct Ejection {
    until: Option<Instant>,
    /// Ejections since the last success: the next back-off doubles this
    /// many times.
    level: u32,
    /// When the last ejection ended (slow start).
    returned: Option<Instant>,
}

impl Passive {
    fn ejection(&self) -> std::sync::MutexGuard<'_, Ejection> {
        self.ejection.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn is_ejected(&self, now: Instant) -> bool {
        if !self.marked.load(Ordering::Relaxed) {
            return false;
        }
        self.ejection().until.is_some_and(|until| until > now)
    }

    /// When the member last came back from an ejection.
    pub fn returned(&self, now: Instant) -> Option<Instant> {
        let ejection = self.ejection();
        match ejection.until {
            Some(until) if until <= now => Some(until),
            Some(_) => None,
            None => ejection.returned,
        }
    }

    /// Counts `outcome`; true when the member has now failed enough times
    /// in a row to be ejected.
    pub fn record(&self, outcome: Outcome, options: &PassiveOptions, now: Instant) -> bool {
        match outcome {
            Outcome::Success => {
                let failed = self.failures.swap(0, Ordering::Relaxed) != 0;
                if failed || self.marked.load(Ordering::Relaxed) {
                    let mut ejection = self.ejection();
                    ejection.level = 0;
                    match ejection.until {
                        // A straggler from before the ejection: it stays.
                        Some(until) if until > now => {}
                        Some(until) => {
                            ejection.returned = Some(until);
                            ejection.until = None;
                            self.marked.store(false, Ordering::Relaxed);
                        }
                        None => self.marked.store(false, Ordering::Relaxed),
                    }
                }
                false
            }
            Outcome::Failure => {
                if options.consecutive_failures == 0 {
                    return false;
                }
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                failures >= options.consecutive_failures
            }
        }
    }

    /// Ejects the member (unless it already is); returns how long for.
    pub fn eject(&self, options: &PassiveOptions, now: Instant) -> Option<Duration> {
        let mut ejection = self.ejection();
        if ejection.until.is_some_and(|until| until > now) {
            return None;
        }
        if let Some(until) = ejection.until.take() {
            ejection.returned = Some(until);
        }
        let length = options
            .base_ejection
            .saturating_mul(1u32 << ejection.level.min(16))
            .min(options.max_ejection);
        ejection.level = ejection.level.saturating_add(1);
        ejection.until = Some(now + length);
        self.marked.store(true, Ordering::Relaxed);
        self.failures.store(0, Ordering::Relaxed);
        Some(length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> PassiveOptions {
        PassiveOptions {
            consecutive_failures: 3,
            base_ejection: Duration::from_secs(30),
            max_ejection: Duration::from_secs(100),
        }
    }

    #[test]
    fn failures_in_a_row_eject_and_a_success_resets() {
        let p = Passive::default();
        let o = options();
        let now = Instant::now();
        assert!(!p.record(Outcome::Failure, &o, now));
        assert!(!p.record(Outcome::Failure, &o, now));
        assert!(!p.record(Outcome::Success, &o, now));
        assert!(!p.record(Outcome::Failure, &o, now));
        assert!(!p.record(Outcome::Failure, &o, now));
        assert!(p.record(Outcome::Failure, &o, now));
    }

    #[test]
    fn back_off_doubles_up_to_the_cap_and_resets_on_success() {
        let p = Passive::default();
        let o = options();
        let now = Instant::now();
        assert_eq!(p.eject(&o, now), Some(Duration::from_secs(30)));
        assert!(p.is_ejected(now));
        assert_eq!(p.eject(&o, now), None, "already ejected");
        let later = now + Duration::from_secs(31);
        assert!(!p.is_ejected(later));
        assert_eq!(p.returned(later), Some(now + Duration::from_secs(30)));
        assert_eq!(p.eject(&o, later), Some(Duration::from_secs(60)));
        let later = later + Duration::from_secs(61);
        assert_eq!(p.eject(&o, later), Some(Duration::from_secs(100)));
        let later = later + Duration::from_secs(101);
        p.record(Outcome::Success, &o, later);
        assert_eq!(p.eject(&o, later), Some(Duration::from_secs(30)));
    }
}
