//! Bounded resources: the process's descriptor budget, the connection
//! ceilings derived from it, admission against them, and an accept loop that
//! outlives running out of descriptors.
//!
//! One descriptor table serves everything in the process: the API, SQLite,
//! HAProxy control sockets and stderr pipes, health probes, namespace
//! helpers, and every proxied connection. [`FdBudget::plan`] shares it out:
//! a reserve for the API's connections, a reserve for the control plane, the
//! relay's pipes ([`crate::splice::MAX_PIPES`], two descriptors each), and
//! what is left for load balancers at two descriptors per connection (client
//! and member). From that come two ceilings ([`ConnectionLimits`]): all load
//! balancers together may hold the whole data-plane share, one load balancer
//! at most half of it (and never more than the configured per-LB default), so
//! no tenant alone can take the table, nor the API's and control plane's
//! reserve.
//!
//! A connection past a ceiling is accepted and reset at once (a client gets a
//! clear refusal rather than a hang in a full accept queue), counted in its
//! listener's `request_errors` and `refused_connections`, in the engine's
//! total ([`crate::Engine::connections`]), and logged at most once
//! per [`LOG_EVERY`] per load balancer.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// Descriptors one proxied connection costs: the client's and the member's.
pub const FDS_PER_CONNECTION: u64 = 2;
/// Below this many descriptors for load balancers the plan is refused: a
/// server that can hold almost no connection is a misconfiguration to report
/// at start, not to discover under load.
pub const MIN_DATA_PLANE_FDS: u64 = 64;
/// A refusal or an accept failure is logged at most this often (per load
/// balancer, per socket), with the count since the last line.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Connection ceilings of the native engine. `None` is unbounded (what
/// [`Default`] gives, for tests and embedders that do their own accounting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnectionLimits {
    /// Connections of all load balancers together (TCP connections and UDP
    /// sessions).
    pub total: Option<u64>,
    /// Connections of one load balancer over all its listeners. A listener's
    /// own `connection_limit` (Octavia's -1 included) never lets it past this.
    pub per_lb: Option<u64>,
    /// TLS handshakes in progress at once over all load balancers (one may
    /// hold a quarter); `None`: [`MAX_HANDSHAKES`].
    pub handshakes: Option<u64>,
}

/// How the descriptor table is shared out (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdBudget {
    /// The process's descriptor limit (`RLIMIT_NOFILE`, soft).
    pub nofile: u64,
    /// Reserved for the API's connections (its connection limit).
    pub api_connections: u64,
    /// Reserved for the control plane: SQLite, HAProxy control sockets and
    /// stderr pipes, health probes, namespace helpers, logging.
    pub control_reserve: u64,
    /// Reserved for the relay's pipes.
    pub pipe_reserve: u64,
    /// What load balancers get.
    pub connections: ConnectionLimits,
}

impl FdBudget {
    /// Shares out `nofile` descriptors. `api_connections` and
    /// `control_reserve` are taken as given when set, else derived from
    /// `nofile` (1/16 for the API, clamped to 16..=1024; 1/8 for the control
    /// plane, clamped to 64..=4096). `per_lb_default` is the most one load
    /// balancer may hold whatever the budget (Octavia's HAProxy default of
    /// 50,000 is a sensible value).
    ///
    /// Then: data-plane descriptors = nofile − API − control − pipes;
    /// total connections = that / 2; per load balancer = min(per_lb_default,
    /// total / 2).
    pub fn plan(
        nofile: u64,
        api_connections: Option<u64>,
        control_reserve: Option<u64>,
        per_lb_default: u64,
    ) -> Result<FdBudget, String> {
        let api = api_connections.unwrap_or_else(|| (nofile / 16).clamp(16, 1024));
        let control = control_reserve.unwrap_or_else(|| (nofile / 8).clamp(64, 4096));
        let pipes = FDS_PER_CONNECTION * crate::splice::MAX_PIPES as u64;
        let reserved = api + control + pipes;
        let data_plane = nofile.saturating_sub(reserved);
        if data_plane < MIN_DATA_PLANE_FDS {
            return Err(format!(
                "the descriptor limit ({nofile}) leaves {data_plane} descriptors for load balancers \
                 after the reserve ({api} for API connections, {control} for the control plane, \
                 {pipes} for relay pipes); at least {MIN_DATA_PLANE_FDS} are needed: raise the hard \
                 limit (ulimit -Hn) or lower the reserves"
            ));
        }
        let total = data_plane / FDS_PER_CONNECTION;
        let per_lb = per_lb_default.min(total / 2).max(1);
        Ok(FdBudget {
            nofile,
            api_connections: api,
            control_reserve: control,
            pipe_reserve: pipes,
            connections: ConnectionLimits {
                total: Some(total),
                per_lb: Some(per_lb),
                handshakes: None,
            },
        })
    }
}

/// A count with a ceiling, taken and given back without locks.
#[derive(Debug)]
struct Gauge {
    used: AtomicU64,
    max: u64,
}

impl Gauge {
    fn new(max: Option<u64>) -> Gauge {
        Gauge {
            used: AtomicU64::new(0),
            max: max.unwrap_or(u64::MAX),
        }
    }

    fn try_take(&self) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What every load balancer of one engine shares: the process-wide ceiling
/// and the count of refusals.
#[derive(Debug)]
pub struct EngineAdmission {
    limits: ConnectionLimits,
    total: Gauge,
    refused: AtomicU64,
    /// TLS handshakes in progress over the process.
    handshakes: Gauge,
}

/// TLS handshakes in progress at once over the process (one load balancer
/// may hold a quarter). A handshake takes its place once its whole
/// ClientHello is in (a connection that sent nothing, or part of a hello,
/// holds none: its connection slot bounds it) and keeps it until the
/// handshake ends, at most 10 s: a client that starts handshakes and leaves
/// them after the server's answer holds places, not memory without end.
/// This bounds handshakes at once, not per second: the signatures run on
/// the runtime's workers, so a load balancer's handshake rate shares their
/// CPU with every other load balancer's traffic (as in HAProxy's threads).
pub const MAX_HANDSHAKES: u64 = 4096;

impl EngineAdmission {
    pub fn new(limits: ConnectionLimits) -> Arc<EngineAdmission> {
        Arc::new(EngineAdmission {
            limits,
            total: Gauge::new(limits.total),
            refused: AtomicU64::new(0),
            handshakes: Gauge::new(Some(limits.handshakes.unwrap_or(MAX_HANDSHAKES))),
        })
    }

    /// The admission of one load balancer, with its own ceiling.
    pub fn for_lb(self: &Arc<Self>, lb_id: Uuid) -> Arc<LbAdmission> {
        Arc::new(LbAdmission {
            lb_id,
            engine: self.clone(),
            lb: Gauge::new(self.limits.per_lb),
            refused: AtomicU64::new(0),
            log: RateLimit::default(),
            handshakes: Gauge::new(Some(
                (self.limits.handshakes.unwrap_or(MAX_HANDSHAKES) / 4).max(1),
            )),
        })
    }

    /// Connections refused at a ceiling since the engine started.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Connections held now, over all load balancers.
    pub fn in_use(&self) -> u64 {
        self.total.used.load(Ordering::Relaxed)
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The load balancer holds its ceiling.
    LoadBalancerFull(u64),
    /// All load balancers together hold the process's ceiling.
    ProcessFull(u64),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::LoadBalancerFull(n) => {
                write!(f, "the load balancer holds its ceiling of {n} connections")
            }
            Refusal::ProcessFull(n) => write!(
                f,
                "all load balancers together hold the process's ceiling of {n} connections"
            ),
        }
    }
}

/// One load balancer's admission: its ceiling, its refusals.
#[derive(Debug)]
pub struct LbAdmission {
    lb_id: Uuid,
    engine: Arc<EngineAdmission>,
    lb: Gauge,
    refused: AtomicU64,
    log: RateLimit,
    handshakes: Gauge,
}

impl LbAdmission {
    /// A slot for one connection (or UDP session), held until dropped.
    pub fn admit(self: &Arc<Self>) -> Result<Slot, Refusal> {
        if !self.lb.try_take() {
            return Err(Refusal::LoadBalancerFull(self.lb.max));
        }
        if !self.engine.total.try_take() {
            self.lb.give_back();
            return Err(Refusal::ProcessFull(self.engine.total.max));
        }
        Ok(Slot { lb: self.clone() })
    }

    /// Counts a refusal (the caller counts it in its listener's stats) and
    /// logs it, at most once per [`LOG_EVERY`].
    pub fn refused(&self, addr: SocketAddr, listener: Uuid, refusal: Refusal) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.engine.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(since_last) = self.log.ready() {
            tracing::warn!(
                lb_id = %self.lb_id,
                %listener,
                %addr,
                refused = since_last,
                refused_total = self.refused_total(),
                "connections refused: {refusal}"
            );
        }
    }

    /// Whether a new connection would be refused now (the load balancer's
    /// ceiling or the process's is held).
    pub fn is_full(&self) -> bool {
        let held = |g: &Gauge| g.used.load(Ordering::Relaxed) >= g.max;
        held(&self.lb) || held(&self.engine.total)
    }

    /// Connections of this load balancer refused since it was first served.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// One admitted connection's place under both ceilings.
#[derive(Debug)]
pub struct Slot {
    lb: Arc<LbAdmission>,
}

impl Slot {
    /// Another place under the same ceilings, for one HTTP/2 stream of
    /// this connection: each stream may hold a member connection of its
    /// own, so streams count as connections do (`Err`: none is free).
    pub fn another(&self) -> Result<Slot, Refusal> {
        self.lb.admit()
    }

    /// A place for this connection's TLS handshake under both handshake
    /// ceilings ([`MAX_HANDSHAKES`]), held until dropped; `None` when one
    /// is held.
    pub fn handshake(&self) -> Option<HandshakeSlot> {
        if !self.lb.handshakes.try_take() {
            return None;
        }
        if !self.lb.engine.handshakes.try_take() {
            self.lb.handshakes.give_back();
            return None;
        }
        Some(HandshakeSlot {
            lb: self.lb.clone(),
        })
    }
}

/// One TLS handshake in progress.
#[derive(Debug)]
pub struct HandshakeSlot {
    lb: Arc<LbAdmission>,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.lb.engine.handshakes.give_back();
        self.lb.handshakes.give_back();
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.lb.engine.total.give_back();
        self.lb.lb.give_back();
    }
}

/// "At most once per [`LOG_EVERY`]", counting the events in between.
#[derive(Debug)]
struct RateLimit {
    epoch: Instant,
    /// Milliseconds since `epoch` of the last line, +1 (0: never).
    last: AtomicU64,
    pending: AtomicU64,
}

impl Default for RateLimit {
    fn default() -> Self {
        RateLimit {
            epoch: Instant::now(),
            last: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        }
    }
}

impl RateLimit {
    /// Counts one event; `Some(events since the last line)` when a line is due.
    fn ready(&self) -> Option<u64> {
        self.pending.fetch_add(1, Ordering::Relaxed);
        let now = self.epoch.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now.saturating_sub(last) < LOG_EVERY.as_millis() as u64 {
            return None;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        Some(self.pending.swap(0, Ordering::Relaxed))
    }
}

/// What an accept loop does after a failed `accept`: out of descriptors (or
/// kernel memory) it pauses, doubling from [`AcceptBackoff::FIRST`] to
/// [`AcceptBackoff::MAX`], so it never spins on a connection it cannot take
/// and comes back soon once descriptors are free; a failure that concerns
/// only the connection at hand (reset before it was accepted) is skipped at
/// once. Never fatal. Logged at most once per [`LOG_EVERY`].
#[derive(Debug)]
pub struct AcceptBackoff {
    next: Duration,
    log: RateLimit,
}

impl Default for AcceptBackoff {
    fn default() -> Self {
        AcceptBackoff {
            next: AcceptBackoff::FIRST,
            log: RateLimit::default(),
        }
    }
}

impl AcceptBackoff {
    pub const FIRST: Duration = Duration::from_millis(5);
    pub const MAX: Duration = Duration::from_secs(1);

    /// The pause after `error` (zero: try again at once), logging it when due.
    pub fn failed(&mut self, what: &str, addr: SocketAddr, error: &io::Error) -> Duration {
        use rustix::io::Errno;
        let exhausted = matches!(
            Errno::from_io_error(error),
            Some(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)
        );
        if let Some(count) = self.log.ready() {
            tracing::warn!(%addr, %error, failures = count, "{what}: accept failed");
        }
        if !exhausted {
            return Duration::ZERO;
        }
        let pause = self.next;
        self.next = (self.next * 2).min(AcceptBackoff::MAX);
        pause
    }

    /// A connection was accepted: the next failure starts from the shortest pause.
    pub fn succeeded(&mut self) {
        self.next = AcceptBackoff::FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_shares_out_the_table() {
        // 1024 descriptors: 64 for the API, 128 for the control plane, 512
        // for pipes, 320 for load balancers = 160 connections, 80 per LB.
        let b = FdBudget::plan(1024, None, None, 50_000).unwrap();
        assert_eq!(
            (b.api_connections, b.control_reserve, b.pipe_reserve),
            (64, 128, 512)
        );
        assert_eq!(b.connections.total, Some(160));
        assert_eq!(b.connections.per_lb, Some(80));
        // A large table: the per-LB default is the ceiling.
        let b = FdBudget::plan(1 << 20, None, None, 50_000).unwrap();
        assert_eq!((b.api_connections, b.control_reserve), (1024, 4096));
        assert_eq!(b.connections.per_lb, Some(50_000));
        assert_eq!(
            b.connections.total,
            Some(((1 << 20) - 1024 - 4096 - 512) / 2)
        );
        // Explicit reserves are taken as given.
        let b = FdBudget::plan(4096, Some(10), Some(100), 1_000).unwrap();
        assert_eq!(b.connections.total, Some((4096 - 10 - 100 - 512) / 2));
        // 1,737 connections in all: one load balancer gets half, under the default.
        assert_eq!(b.connections.per_lb, Some(868));
        let b = FdBudget::plan(8192, Some(10), Some(100), 1_000).unwrap();
        assert_eq!(b.connections.per_lb, Some(1_000));
        // Too small a table is refused with the numbers.
        let e = FdBudget::plan(256, None, None, 50_000).unwrap_err();
        assert!(e.contains("256") && e.contains("ulimit -Hn"), "{e}");
    }

    #[test]
    fn admission_holds_both_ceilings_and_gives_back() {
        let engine = EngineAdmission::new(ConnectionLimits {
            total: Some(3),
            per_lb: Some(2),
            handshakes: None,
        });
        let (a, b) = (engine.for_lb(Uuid::nil()), engine.for_lb(Uuid::max()));
        let a1 = a.admit().unwrap();
        let _a2 = a.admit().unwrap();
        assert_eq!(a.admit().unwrap_err(), Refusal::LoadBalancerFull(2));
        let _b1 = b.admit().unwrap();
        assert_eq!(b.admit().unwrap_err(), Refusal::ProcessFull(3));
        assert_eq!(engine.in_use(), 3);
        drop(a1);
        assert_eq!(engine.in_use(), 2);
        let _b2 = b.admit().unwrap();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        a.refused(addr, Uuid::nil(), Refusal::LoadBalancerFull(2));
        a.refused(addr, Uuid::nil(), Refusal::LoadBalancerFull(2));
        assert_eq!((a.refused_total(), engine.refused()), (2, 2));
    }

    #[test]
    fn unbounded_by_default() {
        let engine = EngineAdmission::new(ConnectionLimits::default());
        let lb = engine.for_lb(Uuid::nil());
        let slots: Vec<Slot> = (0..10_000).map(|_| lb.admit().unwrap()).collect();
        assert_eq!(engine.in_use(), 10_000);
        drop(slots);
        assert_eq!(engine.in_use(), 0);
    }

    #[test]
    fn backoff_doubles_on_exhaustion_only() {
        let mut b = AcceptBackoff::default();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let emfile = io::Error::from(rustix::io::Errno::MFILE);
        let reset = io::Error::from(io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed("t", addr, &emfile), AcceptBackoff::FIRST);
        assert_eq!(b.failed("t", addr, &emfile), AcceptBackoff::FIRST * 2);
        assert_eq!(b.failed("t", addr, &reset), Duration::ZERO);
        for _ in 0..20 {
            b.failed("t", addr, &emfile);
        }
        assert_eq!(b.failed("t", addr, &emfile), AcceptBackoff::MAX);
        b.succeeded();
        assert_eq!(b.failed("t", addr, &emfile), AcceptBackoff::FIRST);
    }

    #[test]
    fn rate_limit_counts_between_lines() {
        let r = RateLimit::default();
        assert_eq!(r.ready(), Some(1));
        assert_eq!(r.ready(), None);
        // The last line was LOG_EVERY ago: the next event logs the three.
        let r = RateLimit {
            epoch: Instant::now() - LOG_EVERY - Duration::from_millis(10),
            last: AtomicU64::new(1),
            pending: AtomicU64::new(2),
        };
        assert_eq!(r.ready(), Some(3));
        assert_eq!(r.ready(), None);
    }
}
