//! The engine: applies whole configs, one load balancer at a time.

use crate::health::{self, HealthOptions, ProbeKey, Registry};
use crate::l7::Policies;
use crate::limits::{ConnectionLimits, EngineAdmission};
use crate::listener::{self, AcceptTask};
use crate::member_tls::MemberTls;
use crate::snapshot::{LbShared, PoolTlsMap, Reporter, Served, Snapshot};
use crate::sockets::SocketKey;
use crate::tls::ServerTls;
use crate::udp::{self, UdpTask};
use statera_config::{
    BoxFuture, DataPlane, DataPlaneError, LbConfig, ListenerConfig, PoolTls, ReportSender,
    StatusReport,
};
use statera_model::{L7PolicyAction, ListenerProtocol};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket};
use uuid::Uuid;

/// How the engine behaves; [`Default`] is what production wants.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How long connections of a removed or disabled listener may run before
    /// they are closed.
    pub drain_timeout: Duration,
    /// Slow start and passive health (see [`HealthOptions`]).
    pub health: HealthOptions,
    /// Connection ceilings, per load balancer and for all together
    /// (`limits.rs`; unbounded by default, `statera serve` derives them from
    /// the descriptor budget).
    pub limits: ConnectionLimits,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            // Long enough for ordinary requests and downloads in flight to
            // finish; short enough that a deleted load balancer is gone soon.
            drain_timeout: Duration::from_secs(30),
            health: HealthOptions::default(),
            limits: ConnectionLimits::default(),
        }
    }
}

/// The native data plane. Cheap to clone: clones share the same load
/// balancers. When the last clone is dropped, every listener closes and its
/// connections drain.
#[derive(Debug, Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    report_tx: ReportSender,
    options: EngineOptions,
    /// Serialises applies and removes (an async lock: they wait for closed
    /// sockets to be released). The relay never takes it.
    control: tokio::sync::Mutex<HashMap<Uuid, LbRuntime>>,
    /// What `report` reads, without waiting for an apply in progress.
    served: RwLock<HashMap<Uuid, Arc<LbShared>>>,
    /// One prober per distinct probe, shared by every load balancer.
    probes: Registry,
    /// The process-wide connection ceiling and refusal count.
    admission: Arc<EngineAdmission>,
    /// Listening sockets handed over by the process this one replaces, not
    /// yet taken by an apply ([`Engine::inherit`]).
    inherited: std::sync::Mutex<HashMap<SocketKey, OwnedFd>>,
}

/// One served load balancer: what tasks share, plus what only the engine
/// touches (sockets, whose handles stop them when dropped, and the probes
/// it is subscribed to).
#[derive(Debug)]
struct LbRuntime {
    shared: Arc<LbShared>,
    sockets: HashMap<SocketAddr, AcceptTask>,
    udp_sockets: HashMap<SocketAddr, UdpTask>,
    probe_keys: HashSet<ProbeKey>,
    drain_timeout: Duration,
}

impl Drop for LbRuntime {
    fn drop(&mut self) {
        // Dropping `sockets` closes them; established connections drain.
        for view in self.shared.load().by_addr.values() {
            view.life.drain(self.drain_timeout);
        }
    }
}

impl Engine {
    /// An engine that sends its reports (after each apply, and on each member
    /// health transition) to `report_tx`.
    pub fn new(report_tx: ReportSender) -> Engine {
        Engine::with_options(report_tx, EngineOptions::default())
    }

    pub fn with_options(report_tx: ReportSender, options: EngineOptions) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                report_tx,
                admission: EngineAdmission::new(options.limits),
                options,
                control: tokio::sync::Mutex::new(HashMap::new()),
                served: RwLock::new(HashMap::new()),
                probes: Registry::default(),
                inherited: std::sync::Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Listening sockets handed over by the process this one replaces
    /// (`statera serve` taking over from a running one): an apply that
    /// serves one of their addresses takes the socket instead of binding a
    /// new one, so connections queued on it are served and none is refused.
    pub fn inherit(&self, sockets: Vec<(SocketKey, OwnedFd)>) {
        self.inherited_mut().extend(sockets);
    }

    /// Closes the handed-over sockets no apply took (their load balancers
    /// are gone, or moved): nothing would accept their connections. Returns
    /// how many.
    pub fn release_inherited(&self) -> usize {
        let left: Vec<SocketKey> = self.inherited_mut().drain().map(|(k, _)| k).collect();
        for key in &left {
            tracing::info!(address = %key.addr, udp = key.udp, "handed-over socket not served here: closed");
        }
        left.len()
    }

    fn inherited_mut(&self) -> std::sync::MutexGuard<'_, HashMap<SocketKey, OwnedFd>> {
        self.inner
            .inherited
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// The handed-over socket for `key`, if it is one and fits.
    fn take_inherited(&self, key: SocketKey) -> Option<OwnedFd> {
        self.inherited_mut().remove(&key)
    }

    /// Second descriptors of every listening socket, with what they are,
    /// for a process taking over from this one.
    pub async fn listening_sockets(&self) -> std::io::Result<Vec<(SocketKey, OwnedFd)>> {
        let lbs = self.inner.control.lock().await;
        let mut out = Vec::new();
        for runtime in lbs.values() {
            let netns = runtime.shared.load().config.vip.namespace.clone();
            for (addr, task) in &runtime.sockets {
                let key = SocketKey {
                    netns: netns.clone(),
                    addr: *addr,
                    udp: false,
                };
                out.push((key, task.socket_fd()?));
            }
            for (addr, task) in &runtime.udp_sockets {
                let key = SocketKey {
                    netns: netns.clone(),
                    addr: *addr,
                    udp: true,
                };
                out.push((key, task.socket_fd()?));
            }
        }
        Ok(out)
    }

    /// Stops accepting on every listener (a process that took the sockets
    /// over accepts on them now) and starts draining: connections in
    /// progress finish — an HTTP keep-alive connection after its current
    /// request — and are cut at the drain timeout. UDP sessions end.
    pub async fn stop_accepting(&self) {
        let mut lbs = self.inner.control.lock().await;
        for runtime in lbs.values_mut() {
            for (_, socket) in runtime.sockets.drain() {
                socket.close().await;
            }
            for (_, socket) in runtime.udp_sockets.drain() {
                socket.close().await;
            }
            for view in runtime.shared.load().by_addr.values() {
                view.life.drain(runtime.drain_timeout);
            }
        }
    }

    /// How long connections of a removed listener may run.
    pub fn drain_timeout(&self) -> Duration {
        self.inner.options.drain_timeout
    }

    /// How many distinct health probes run (one per probe target and
    /// settings, however many members share it), and how many probes they
    /// have sent in all.
    pub fn health_probes(&self) -> (usize, u64) {
        self.inner.probes.counts()
    }

    /// Connections refused at a ceiling (a load balancer's or the
    /// process's) since the engine started, and connections held now.
    pub fn connections(&self) -> (u64, u64) {
        let a = &self.inner.admission;
        (a.refused(), a.in_use())
    }

    fn served(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Arc<LbShared>>> {
        // The map is only ever replaced entry by entry: a poisoned lock still
        // holds a consistent map.
        self.inner.served.read().unwrap_or_else(|e| e.into_inner())
    }

    fn served_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Arc<LbShared>>> {
        self.inner.served.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Serves `config`, all or nothing. Must run inside a tokio runtime.
    async fn apply_config(&self, config: Arc<LbConfig>) -> Result<u64, DataPlaneError> {
        let mut lbs = self.inner.control.lock().await;
        let current = lbs.get(&config.lb_id);
        if let Some(current) = current {
            let served = current.shared.load().config.version;
            if config.version < served {
                return Err(DataPlaneError::Other(format!(
                    "load balancer {} is at version {served}; refusing older version {}",
                    config.lb_id, config.version
                )));
            }
        }

        // 1. Decide, refusing what this engine cannot serve.
        let previous = current.map(|c| c.shared.load());
        let (served, pool_tls) = served_listeners(&config, previous.as_deref())?;
        drop(previous);
        let plan = health::plan(&config, &pool_tls)?;

        // 2. Bind every address not bound yet. On error, what was bound here
        //    is dropped (closed) and the current config keeps serving.
        let netns = crate::sockets::netns_of(&config);
        let mut fresh: Vec<(SocketAddr, TcpListener)> = Vec::new();
        let mut fresh_udp: Vec<(SocketAddr, UdpSocket)> = Vec::new();
        for Served {
            addr, udp, index, ..
        } in &served
        {
            let listener = Some(config.listeners[*index].id);
            if *udp {
                if current.is_some_and(|c| c.udp_sockets.contains_key(addr)) {
                    continue;
                }
                let socket = match self.adopt(&netns, *addr, true, |fd| udp::adopt(fd, *addr)) {
                    Some(socket) => socket,
                    None => udp::bind(&netns, *addr).map_err(|e| DataPlaneError::Bind {
                        address: format!("{addr}/udp"),
                        reason: e.to_string(),
                        listener,
                    })?,
                };
                fresh_udp.push((*addr, socket));
                continue;
            }
            if current.is_some_and(|c| c.sockets.contains_key(addr)) {
                continue;
            }
            let socket = match self.adopt(&netns, *addr, false, |fd| listener::adopt(fd, *addr)) {
                Some(socket) => socket,
                None => listener::bind(&netns, *addr).map_err(|e| DataPlaneError::Bind {
                    address: addr.to_string(),
                    reason: e.to_string(),
                    listener,
                })?,
            };
            fresh.push((*addr, socket));
        }

        // 3. Subscribe to the probes the config asks for (new ones start),
        //    then publish one snapshot: from here on, new connections see it.
        let version = config.version;
        let lb_id = config.lb_id;
        let options = self.inner.options.health;
        let runtime = match lbs.get_mut(&lb_id) {
            Some(runtime) => {
                let prev = runtime.shared.load();
                let reporter = prev.reporter.clone();
                // A member whose probe settings changed starts its new
                // target in the state its old one was in, if it probes the
                // same endpoint.
                let initial = |member: Uuid| {
                    let key = plan.get(&member)?;
                    prev.pools
                        .values()
                        .flat_map(|p| &p.members)
                        .find(|m| m.id == member)?
                        .health
                        .as_ref()
                        .filter(|t| t.key.target == key.target)
                        .map(|t| t.is_up())
                };
                let targets = self.inner.probes.acquire(lb_id, &reporter, &plan, initial);
                let next = Snapshot::build(
                    config,
                    &served,
                    &pool_tls,
                    Some(&prev),
                    &targets,
                    reporter,
                    options,
                );
                let prev = runtime.shared.publish(next);
                for life in prev.ended_lives(&runtime.shared.load()) {
                    life.drain(self.inner.options.drain_timeout);
                }
                runtime
            }
            None => {
                let reporter = Arc::new(Reporter::default());
                let targets = self.inner.probes.acquire(lb_id, &reporter, &plan, |_| None);
                let first = Snapshot::build(
                    config, &served, &pool_tls, None, &targets, reporter, options,
                );
                let shared = LbShared::new(
                    first,
                    self.inner.report_tx.clone(),
                    self.inner.admission.for_lb(lb_id),
                );
                self.served_mut().insert(lb_id, shared.clone());
                lbs.entry(lb_id).or_insert(LbRuntime {
                    shared,
                    sockets: HashMap::new(),
                    udp_sockets: HashMap::new(),
                    probe_keys: HashSet::new(),
                    drain_timeout: self.inner.options.drain_timeout,
                })
            }
        };

        // 4. Start the new sockets; take out the ones no listener uses any more.
        for (addr, socket) in fresh {
            let task = AcceptTask::spawn(socket, addr, runtime.shared.clone());
            runtime.sockets.insert(addr, task);
        }
        for (addr, socket) in fresh_udp {
            let task = UdpTask::spawn(socket, addr, runtime.shared.clone());
            runtime.udp_sockets.insert(addr, task);
        }
        let unused: Vec<SocketAddr> = runtime
            .sockets
            .keys()
            .filter(|addr| !served.iter().any(|s| s.addr == **addr && !s.udp))
            .copied()
            .collect();
        let closing: Vec<AcceptTask> = unused
            .iter()
            .filter_map(|addr| runtime.sockets.remove(addr))
            .collect();
        let unused_udp: Vec<SocketAddr> = runtime
            .udp_sockets
            .keys()
            .filter(|addr| !served.iter().any(|s| s.addr == **addr && s.udp))
            .copied()
            .collect();
        let closing_udp: Vec<UdpTask> = unused_udp
            .iter()
            .filter_map(|addr| runtime.udp_sockets.remove(addr))
            .collect();

        // 5. Let go of the probes the config no longer uses (a probe nobody
        //    uses stops).
        let unused = health::unused_keys(&runtime.probe_keys, &plan);
        self.inner.probes.release(lb_id, &unused);
        runtime.probe_keys = plan.into_values().collect();

        tracing::info!(%lb_id, version, listeners = served.len(), "load balancer config applied");
        runtime.shared.send_report();

        // 6. Return once the unused sockets are closed, so the next config
        //    may bind their addresses again.
        for socket in closing {
            socket.close().await;
        }
        for socket in closing_udp {
            socket.close().await;
        }
        Ok(version)
    }

    /// The handed-over socket for `addr`, made ready by `adopt`; `None`
    /// (bind a new one) when there is none or it does not fit.
    fn adopt<S>(
        &self,
        netns: &crate::sockets::Netns,
        addr: SocketAddr,
        udp: bool,
        adopt: impl FnOnce(OwnedFd) -> std::io::Result<S>,
    ) -> Option<S> {
        let key = SocketKey {
            netns: netns.as_deref().map(String::from),
            addr,
            udp,
        };
        let fd = self.take_inherited(key)?;
        match adopt(fd) {
            Ok(socket) => Some(socket),
            Err(error) => {
                tracing::warn!(%addr, udp, %error, "handed-over socket refused: binding a new one");
                None
            }
        }
    }

    async fn remove_lb(&self, lb_id: Uuid) {
        let mut lbs = self.inner.control.lock().await;
        self.served_mut().remove(&lb_id);
        let Some(mut runtime) = lbs.remove(&lb_id) else {
            return;
        };
        for (_, socket) in runtime.sockets.drain() {
            socket.close().await;
        }
        for (_, socket) in runtime.udp_sockets.drain() {
            socket.close().await;
        }
        self.inner.probes.release(lb_id, &runtime.probe_keys);
        // Dropping the runtime starts draining its connections.
        drop(runtime);
        tracing::info!(%lb_id, "load balancer removed");
    }
}

/// The listeners `config` serves, with their compiled L7 policies, and the
/// TLS of its pools over TLS; refuses what this engine cannot serve, and
/// policies that do not compile (an invalid regex, a redirect to a pool that
/// is not there). A listener whose certificate, or whose pool's TLS, does
/// not build is left out alone (`Bind` for that listener).
fn served_listeners(
    config: &LbConfig,
    previous: Option<&Snapshot>,
) -> Result<(Vec<Served>, PoolTlsMap), DataPlaneError> {
    if !config.admin_state_up {
        return Ok((Vec::new(), PoolTlsMap::new()));
    }
    // Each pool over TLS built once (or kept), or why it cannot be served;
    // never served in plain text instead.
    let pool_tls: HashMap<Uuid, Result<Arc<MemberTls>, String>> = config
        .pools
        .iter()
        .filter_map(|pool| Some((pool.id, member_tls(pool.id, pool.tls.as_ref()?, previous))))
        .collect();
    let mut served: Vec<Served> = Vec::new();
    for (index, listener) in config.listeners.iter().enumerate() {
        if !listener.admin_state_up {
            continue;
        }
        match listener.protocol {
            ListenerProtocol::Tcp
            | ListenerProtocol::Http
            | ListenerProtocol::Https
            | ListenerProtocol::Prometheus
            | ListenerProtocol::TerminatedHttps
            | ListenerProtocol::Udp => {}
            other => {
                return Err(DataPlaneError::Unsupported(format!(
                    "{other} listeners are not yet served by the native data plane (listener {})",
                    listener.id
                )));
            }
        }
        // Refused rather than ignored: an ignored REJECT would let through
        // what the user blocked. Octavia only accepts policies on HTTP-aware
        // listeners anyway.
        let http = matches!(
            listener.protocol,
            ListenerProtocol::Http | ListenerProtocol::TerminatedHttps
        );
        if !listener.l7policies.is_empty() && !http {
            return Err(DataPlaneError::Unsupported(format!(
                "L7 policies on a {} listener: only HTTP listeners evaluate them (listener {})",
                listener.protocol, listener.id
            )));
        }
        let policies = Policies::compile(listener, config)
            .map_err(|e| DataPlaneError::Other(format!("listener {}: {e}", listener.id)))?;
        let addr = SocketAddr::new(config.vip.address, listener.protocol_port);
        let udp = listener.protocol == ListenerProtocol::Udp;
        if let Some(other) = served.iter().find(|s| s.addr == addr && s.udp == udp) {
            return Err(DataPlaneError::Other(format!(
                "listeners {} and {} both use {} port {}",
                config.listeners[other.index].id,
                listener.id,
                if udp { "UDP" } else { "TCP" },
                listener.protocol_port
            )));
        }
        let bind_error = |reason: String| DataPlaneError::Bind {
            address: addr.to_string(),
            reason,
            listener: Some(listener.id),
        };
        let redirects = listener
            .l7policies
            .iter()
            .filter(|p| p.action == L7PolicyAction::RedirectToPool)
            .filter_map(|p| p.redirect_pool_id);
        for pool in listener.default_pool_id.into_iter().chain(redirects) {
            match pool_tls.get(&pool) {
                Some(Err(why)) => {
                    return Err(bind_error(format!("its pool {pool} (tls_enabled): {why}")));
                }
                Some(Ok(_)) if !http => {
                    return Err(bind_error(format!(
                        "its pool {pool} is over TLS (tls_enabled), which the native data plane \
                         serves behind HTTP and TERMINATED_HTTPS listeners only"
                    )));
                }
                _ => {}
            }
        }
        let tls = match listener.protocol {
            ListenerProtocol::TerminatedHttps => {
                // Only this listener is left out (its certificate could not
                // be read, or does not serve): the others go on.
                Some(server_tls(listener, addr, previous).map_err(bind_error)?)
            }
            _ => None,
        };
        served.push(Served {
            index,
            addr,
            policies: Arc::new(policies),
            udp,
            tls,
        });
    }
    let pool_tls = pool_tls
        .into_iter()
        .filter_map(|(id, tls)| Some((id, tls.ok()?)))
        .collect();
    Ok((served, pool_tls))
}

/// A pool's TLS toward its members: the one it had when its settings have
/// not changed (its session cache; nothing parsed again), else built anew.
fn member_tls(
    pool: Uuid,
    tls: &PoolTls,
    previous: Option<&Snapshot>,
) -> Result<Arc<MemberTls>, String> {
    if let Some(kept) = previous
        .and_then(|p| p.pools.get(&pool))
        .and_then(|p| p.tls.as_ref())
        .filter(|kept| kept.source == *tls)
    {
        return Ok(kept.clone());
    }
    MemberTls::build(tls).map(Arc::new)
}

/// What rustls serves for a TERMINATED_HTTPS listener: the one it served
/// at `addr` when its TLS settings have not changed (its ticket key, so
/// sessions resume over the change; nothing parsed again), else built anew.
fn server_tls(
    listener: &ListenerConfig,
    addr: SocketAddr,
    previous: Option<&Snapshot>,
) -> Result<Arc<ServerTls>, String> {
    let tls = listener
        .tls
        .as_ref()
        .ok_or_else(|| "its certificate could not be read from the key manager".to_string())?;
    if let Some(kept) = previous
        .and_then(|p| p.by_addr.get(&addr))
        .and_then(|view| view.tls.as_ref())
        .filter(|kept| kept.source == *tls)
    {
        return Ok(kept.clone());
    }
    ServerTls::build(tls).map(Arc::new)
}

impl DataPlane for Engine {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(self.apply_config(config))
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(async move {
            self.remove_lb(lb_id).await;
            Ok(())
        })
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        let shared = self.served().get(&lb_id)?.clone();
        Some(shared.report())
    }
}
