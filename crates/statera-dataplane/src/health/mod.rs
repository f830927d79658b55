//! Health checking: active probes per distinct endpoint, and passive health
//! from real traffic (`passive.rs`).
//!
//! # Active probes
//!
//! A member of a pool with an enabled health monitor (and itself enabled) is
//! probed at its `monitor_address`/`monitor_port` when set, else at its own
//! address and port. What is probed, and how, is a [`ProbeKey`]: the target
//! endpoint plus every monitor setting that changes the probe or its verdict
//! (kind, HTTP request and expected codes, delay, timeout, rise, fall). The
//! engine keeps **one prober per distinct key** in a [`Registry`] shared by
//! all its load balancers: members of several pools or load balancers that
//! share a key share one probe per delay, and its results fan out to every
//! one of them (each load balancer using a target is told of its
//! transitions and sends a report). A prober survives applies while some
//! config still uses its key (its state is kept), and stops once none does.
//!
//! Probe kinds, one file each behind the small [`Probe`] trait:
//!
//! | Octavia type | file | a probe succeeds when |
//! |---|---|---|
//! | `TCP` | `connect.rs` | a TCP connection is established |
//! | `HTTP` | `http.rs` | the status line of the answer to `http_method url_path HTTP/<http_version>` (1.0 unless set), with `Host: <domain_name>` or else the member's address, is in `expected_codes` |
//! | `HTTPS` | `http.rs` | the same over TLS, certificate not verified (HAProxy's `check-ssl verify none`); SNI is `domain_name` when set |
//! | `TLS-HELLO` | `connect.rs` | a TLS handshake completes (no HTTP, certificate not verified) |
//! | `PING` | `ping.rs` | an ICMP echo is answered |
//! | `UDP-CONNECT` | `udp.rs` | a datagram sent draws no ICMP port unreachable within `timeout` (silence is up, as in Octavia's check) |
//! | `SCTP` | — | never: an apply with an enabled SCTP monitor is refused (`Unsupported`) |
//!
//! **Pools over TLS** are probed as HAProxy checks a `server … ssl` line:
//! at the member's own address and port every kind but `PING` and
//! `UDP-CONNECT` goes over the pool's TLS (`TCP`: the handshake completes;
//! `HTTP` and `HTTPS`: the request goes over it), verified and with the
//! client certificate as the pool's traffic is; at a `monitor_address` or
//! `monitor_port`, `HTTPS` and `TLS-HELLO` use the pool's TLS and `TCP` and
//! `HTTP` go in clear (HAProxy's `check-ssl` then). A pool over TLS whose
//! settings do not build (no listener can serve it) is not probed.
//!
//! Every probe must end within `timeout`; one that does not fails.
//!
//! Timing follows HAProxy's `inter`/`fall`/`rise`: a probe every `delay`
//! seconds (`delay` and `timeout` are at least 1 s), `fall` failed probes in
//! a row (`max_retries_down`) take an up target down, `rise` good probes in a
//! row (`max_retries`) bring a down target back. Each target's first probe
//! comes at an offset within the first `delay` derived from a hash of its key
//! ([`first_offset`]), so thousands of targets sharing one delay are spread
//! over it instead of firing together, and a given target keeps its phase.
//! Each transition sends every subscribed load balancer's report at once, so
//! the control plane sees a member that died at most about
//! `delay × fall + timeout` later.
//!
//! **New targets start up**, as HAProxy starts its servers: a new member
//! takes traffic at once, and is taken out after `fall` failed probes (a dead
//! new member is meanwhile stepped over by the connect retry in the relay
//! and counted by passive health). When a target's settings change it is a
//! new key, but it starts in the state its member's previous target was in,
//! so editing a monitor neither revives a dead member nor drops a live one.
//! A target that comes **back** after being down is ramped in (see
//! [`crate::pool`]: its share of new connections grows linearly over
//! [`HealthOptions::slow_start`], for ROUND_ROBIN and LEAST_CONNECTIONS).
//!
//! A disabled monitor probes nothing: its members report `NoCheck`, as
//! Octavia's HAProxy provider drops the `check` options.

pub mod codes;
mod connect;
mod http;
pub mod passive;
mod ping;
mod udp;

use crate::member_tls::MemberTls;
use crate::snapshot::Reporter;
use crate::sockets::Netns;
use codes::ExpectedCodes;
use connect::{PoolTlsRef, ProbeTls};
use statera_config::{BoxFuture, DataPlaneError, LbConfig, MemberConfig};
use statera_model::{HealthMonitorType, HttpMethod};
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use uuid::Uuid;

pub use passive::PassiveOptions;

/// Health settings of the engine that are not in the Octavia API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthOptions {
    /// How long a member that comes back (after its monitor or passive
    /// health took it out) takes to reach its full share of new connections.
    /// Zero: back at full share at once.
    pub slow_start: Duration,
    /// Passive health (outlier detection) from real traffic.
    pub passive: PassiveOptions,
}

impl Default for HealthOptions {
    fn default() -> Self {
        HealthOptions {
            slow_start: Duration::from_secs(10),
            passive: PassiveOptions::default(),
        }
    }
}

/// One probe kind, built once per distinct set of monitor settings.
pub trait Probe: Send + Sync + std::fmt::Debug {
    /// Probes `target` once; `Err` says why it failed (for the debug log).
    /// Ends within about `timeout`.
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>>;
}

/// Runs `probe` for at most `timeout`; running out of time is a failure.
async fn within<F>(timeout: Duration, probe: F) -> Result<(), String>
where
    F: Future<Output = Result<(), String>>,
{
    match tokio::time::timeout(timeout, probe).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// What is probed and how: the probe kind with its request.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `TCP` and `TLS-HELLO`: the connection is made (with TLS: the
    /// handshake completes).
    Connect(ProbeTls),
    Http(http::HttpCheck),
    Ping,
    UdpConnect,
}

impl ProbeKind {
    fn build(&self) -> Arc<dyn Probe> {
        match self {
            ProbeKind::Connect(tls) => Arc::new(connect::ConnectProbe(tls.clone())),
            ProbeKind::Http(check) => Arc::new(http::HttpProbe::new(check.clone())),
            ProbeKind::Ping => Arc::new(ping::PingProbe::new()),
            ProbeKind::UdpConnect => Arc::new(udp::UdpProbe),
        }
    }
}

/// One distinct probe: one prober runs per key, whoever uses it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProbeKey {
    pub target: SocketAddr,
    /// The namespace probes leave from (two load balancers in different
    /// namespaces may have members at the same address).
    pub netns: Netns,
    pub kind: ProbeKind,
    pub delay: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

/// The probe of every probed member of a config, by member id: built (and
/// `expected_codes` parsed) once per apply.
pub type Plan = HashMap<Uuid, ProbeKey>;

/// The probes `config` asks for, or why it cannot be served: an enabled SCTP
/// monitor (`Unsupported`), malformed `expected_codes` (`Other`).
/// `pool_tls`: the built TLS of the pools over TLS that are served.
pub fn plan(
    config: &LbConfig,
    pool_tls: &HashMap<Uuid, Arc<MemberTls>>,
) -> Result<Plan, DataPlaneError> {
    let mut plan = Plan::new();
    let netns = crate::sockets::netns_of(config);
    for pool in &config.pools {
        let Some(monitor) = pool.health_monitor.as_ref().filter(|m| m.admin_state_up) else {
            continue;
        };
        if monitor.kind == HealthMonitorType::Sctp {
            return Err(DataPlaneError::Unsupported(
                "SCTP health monitors are not supported by the native data plane".into(),
            ));
        }
        let own_tls = match (&pool.tls, pool_tls.get(&pool.id)) {
            (None, _) => None,
            (Some(_), Some(tls)) => Some(PoolTlsRef(tls.clone())),
            // Its TLS did not build: no listener serves it.
            (Some(_), None) => continue,
        };
        let codes = match &monitor.expected_codes {
            Some(text) if monitor.kind.is_http() => ExpectedCodes::parse(text).map_err(|e| {
                DataPlaneError::Other(format!("health monitor {}: {e}", monitor.id))
            })?,
            _ => ExpectedCodes::default(),
        };
        let tls_kind = matches!(
            monitor.kind,
            HealthMonitorType::Https | HealthMonitorType::TlsHello
        );
        for member in pool.members.iter().filter(|m| m.admin_state_up) {
            let target = SocketAddr::new(
                member.monitor_address.unwrap_or(member.address),
                member.monitor_port.unwrap_or(member.protocol_port),
            );
            let elsewhere = member.monitor_address.is_some() || member.monitor_port.is_some();
            let tls = match &own_tls {
                Some(own) if tls_kind || !elsewhere => ProbeTls::Pool(own.clone()),
                _ if monitor.kind == HealthMonitorType::Https => ProbeTls::AnyCert {
                    sni: monitor.domain_name.clone(),
                },
                _ if tls_kind => ProbeTls::AnyCert { sni: None },
                _ => ProbeTls::Clear,
            };
            let kind = match monitor.kind {
                HealthMonitorType::Ping => ProbeKind::Ping,
                HealthMonitorType::UdpConnect => ProbeKind::UdpConnect,
                HealthMonitorType::Http | HealthMonitorType::Https => {
                    ProbeKind::Http(http::HttpCheck {
                        tls,
                        method: monitor.http_method.unwrap_or(HttpMethod::Get),
                        path: monitor.url_path.clone().unwrap_or_else(|| "/".into()),
                        codes: codes.clone(),
                        http11: monitor.http_version.is_some_and(|v| v >= 1.05),
                        host: host_header(monitor.domain_name.as_deref(), member, target.port()),
                    })
                }
                _ => ProbeKind::Connect(tls),
            };
            plan.insert(
                member.id,
                ProbeKey {
                    target,
                    netns: netns.clone(),
                    kind,
                    // Octavia's minimum delay and timeout are 1 s; guard
                    // against 0 anyway so a bad config cannot spin a prober.
                    delay: Duration::from_secs(monitor.delay_s.max(1)),
                    timeout: Duration::from_secs(monitor.timeout_s.max(1)),
                    rise: monitor.rise.max(1),
                    fall: monitor.fall.max(1),
                },
            );
        }
    }
    Ok(plan)
}

/// The Host header of an HTTP probe: `domain_name`, else the member's
/// address (with the probed port when it is not 80/443).
fn host_header(domain: Option<&str>, member: &MemberConfig, port: u16) -> String {
    if let Some(domain) = domain {
        return domain.to_string();
    }
    let ip = match member.address {
        IpAddr::V4(ip) => ip.to_string(),
        IpAddr::V6(ip) => format!("[{ip}]"),
    };
    if port == 80 || port == 443 {
        ip
    } else {
        format!("{ip}:{port}")
    }
}

/// When a target's first probe comes, after it starts: a hash of its key
/// mapped onto `[0, delay)`. Stable for a key, spread for many keys.
pub fn first_offset(key: &ProbeKey) -> Duration {
    // `DefaultHasher::new()` has fixed keys: the same key, the same phase.
    let mut hasher = std::hash::DefaultHasher::new();
    key.hash(&mut hasher);
    let millis = key.delay.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % millis)
}

/// The shared health of one probe target, as its prober last saw it.
#[derive(Debug)]
pub struct Target {
    pub key: ProbeKey,
    up: AtomicBool,
    /// When the target last came back up after being down (slow start).
    came_up: Mutex<Option<Instant>>,
    /// Probes run so far (diagnostics).
    probes: AtomicU64,
    /// The load balancers using the target, told of each transition.
    subscribers: Mutex<HashMap<Uuid, Weak<Reporter>>>,
    task: OnceLock<AbortHandle>,
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Target {
    fn new(key: ProbeKey, up: bool) -> Target {
        Target {
            key,
            up: AtomicBool::new(up),
            came_up: Mutex::new(None),
            probes: AtomicU64::new(0),
            subscribers: Mutex::new(HashMap::new()),
            task: OnceLock::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// When the target last came back up, if it ever went down.
    pub fn came_up(&self) -> Option<Instant> {
        *self.came_up.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn probes(&self) -> u64 {
        self.probes.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        if let Some(task) = self.task.get() {
            task.abort();
        }
    }

    fn subscribers(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Weak<Reporter>>> {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the target up or down and tells every load balancer using it.
    fn transition(&self, up: bool) {
        if up {
            *self.came_up.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
        }
        self.up.store(up, Ordering::Relaxed);
        tracing::info!(
            target = %self.key.target,
            kind = ?self.key.kind,
            "health check: target is {}",
            if up { "up" } else { "down" }
        );
        let reporters: Vec<Weak<Reporter>> = self.subscribers().values().cloned().collect();
        for reporter in reporters.iter().filter_map(Weak::upgrade) {
            reporter.send();
        }
    }
}

/// Every prober of an engine, one per distinct [`ProbeKey`].
#[derive(Debug, Default)]
pub struct Registry {
    targets: Mutex<HashMap<ProbeKey, Arc<Target>>>,
}

impl Drop for Registry {
    fn drop(&mut self) {
        for target in self.lock().values() {
            target.stop();
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ProbeKey, Arc<Target>>> {
        self.targets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Subscribes load balancer `lb` to the targets of `plan`, starting
    /// probers for keys nobody probed yet; `initial` says whether such a new
    /// target starts up (by member id; up when not given). Must run inside a
    /// tokio runtime. Returns each planned member's target.
    pub fn acquire(
        &self,
        lb: Uuid,
        reporter: &Arc<Reporter>,
        plan: &Plan,
        initial: impl Fn(Uuid) -> Option<bool>,
    ) -> HashMap<Uuid, Arc<Target>> {
        let mut targets = self.lock();
        plan.iter()
            .map(|(member, key)| {
                let target = targets
                    .entry(key.clone())
                    .or_insert_with(|| spawn(key.clone(), initial(*member).unwrap_or(true)))
                    .clone();
                target.subscribers().insert(lb, Arc::downgrade(reporter));
                (*member, target)
            })
            .collect()
    }

    /// Unsubscribes `lb` from `keys`; a target nobody uses any more stops.
    pub fn release<'a>(&self, lb: Uuid, keys: impl IntoIterator<Item = &'a ProbeKey>) {
        let mut targets = self.lock();
        for key in keys {
            let Some(target) = targets.get(key) else {
                continue;
            };
            let mut subscribers = target.subscribers();
            subscribers.remove(&lb);
            if subscribers.is_empty() {
                drop(subscribers);
                if let Some(target) = targets.remove(key) {
                    target.stop();
                }
            }
        }
    }

    /// How many probers run, and how many probes they have run in all
    /// (diagnostics, tests, benchmarks).
    pub fn counts(&self) -> (usize, u64) {
        let targets = self.lock();
        (targets.len(), targets.values().map(|t| t.probes()).sum())
    }
}

/// Starts the prober of a new target.
fn spawn(key: ProbeKey, up: bool) -> Arc<Target> {
    let target = Arc::new(Target::new(key.clone(), up));
    let probe = key.kind.build();
    let task = tokio::spawn(run(Arc::downgrade(&target), probe, key));
    let _ = target.task.set(task.abort_handle());
    target
}

/// Consecutive results of one prober.
#[derive(Debug, Default)]
struct Streak {
    good: u32,
    bad: u32,
}

impl Streak {
    /// Counts one result; returns the new state when the target flips.
    fn observe(&mut self, ok: bool, up: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok {
            self.bad = 0;
            self.good = self.good.saturating_add(1);
            (!up && self.good >= rise).then_some(true)
        } else {
            self.good = 0;
            self.bad = self.bad.saturating_add(1);
            (up && self.bad >= fall).then_some(false)
        }
    }
}

/// The prober: one probe per `delay`, first at [`first_offset`]; ends when
/// its target is gone (or it is aborted).
async fn run(target: Weak<Target>, probe: Arc<dyn Probe>, key: ProbeKey) {
    let mut next = Instant::now() + first_offset(&key);
    let mut streak = Streak::default();
    loop {
        tokio::time::sleep_until(next).await;
        // A probe that overruns its own timeout fails (a grace of 100 ms
        // lets probes that handle their timeout say why).
        let limit = key.timeout + Duration::from_millis(100);
        let result = match tokio::time::timeout(
            limit,
            probe.check(key.target, key.netns.clone(), key.timeout),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err("probe overran its timeout".into()),
        };
        let Some(target) = target.upgrade() else {
            return;
        };
        target.probes.fetch_add(1, Ordering::Relaxed);
        if let Err(why) = &result {
            tracing::debug!(target = %key.target, kind = ?key.kind, %why, "health probe failed");
        }
        if let Some(up) = streak.observe(result.is_ok(), target.is_up(), key.rise, key.fall) {
            target.transition(up);
        }
        drop(target);
        next += key.delay;
        let now = Instant::now();
        if next < now {
            // Probes slower than the delay: keep the cadence, skip the
            // missed slots.
            next = now + key.delay;
        }
    }
}

/// The keys of `old` that `new` no longer uses (released once the new
/// snapshot is out).
#[expect(
    clippy::mutable_key_type,
    reason = "a key's pool TLS (with its session cache inside) hashes and compares by pointer"
)]
pub fn unused_keys(old: &HashSet<ProbeKey>, new: &Plan) -> Vec<ProbeKey> {
    let kept: HashSet<&ProbeKey> = new.values().collect();
    old.iter().filter(|k| !kept.contains(k)).cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(target: SocketAddr, delay: Duration) -> ProbeKey {
        ProbeKey {
            target,
            netns: None,
            kind: ProbeKind::Connect(ProbeTls::Clear),
            delay,
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }

    #[test]
    fn streaks_flip_after_exactly_rise_and_fall() {
        let mut s = Streak::default();
        // Up: two failures are not enough with fall 3, a success resets.
        assert_eq!(s.observe(false, true, 2, 3), None);
        assert_eq!(s.observe(false, true, 2, 3), None);
        assert_eq!(s.observe(true, true, 2, 3), None);
        assert_eq!(s.observe(false, true, 2, 3), None);
        assert_eq!(s.observe(false, true, 2, 3), None);
        assert_eq!(s.observe(false, true, 2, 3), Some(false));
        // Down: rise 2.
        assert_eq!(s.observe(true, false, 2, 3), None);
        assert_eq!(s.observe(false, false, 2, 3), None);
        assert_eq!(s.observe(true, false, 2, 3), None);
        assert_eq!(s.observe(true, false, 2, 3), Some(true));
    }

    #[test]
    fn ten_thousand_first_probes_spread_over_the_whole_delay() {
        let delay = Duration::from_secs(5);
        let buckets_n = 50; // 100 ms each
        let mut buckets = vec![0u32; buckets_n];
        let mut lowest = delay;
        let mut highest = Duration::ZERO;
        for i in 0..10_000u32 {
            let ip = IpAddr::from([127, 104, (i / 100) as u8, 1]);
            let target = SocketAddr::new(ip, 20_000 + (i % 100) as u16);
            let offset = first_offset(&key(target, delay));
            assert!(offset < delay);
            lowest = lowest.min(offset);
            highest = highest.max(offset);
            buckets[(offset.as_millis() / 100) as usize] += 1;
        }
        // 200 per 100 ms on average; no slice of the delay is crowded or
        // empty.
        for (i, n) in buckets.iter().enumerate() {
            assert!((120..=280).contains(n), "bucket {i}: {n} first probes");
        }
        assert!(lowest < Duration::from_millis(20), "{lowest:?}");
        assert!(highest > Duration::from_millis(4_980), "{highest:?}");
    }

    #[test]
    fn a_key_keeps_its_phase() {
        let k = key("127.0.0.1:80".parse().unwrap(), Duration::from_secs(3));
        assert_eq!(first_offset(&k), first_offset(&k.clone()));
    }
}
