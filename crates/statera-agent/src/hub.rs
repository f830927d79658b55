//! The controller's side of the agent protocol: the gRPC endpoint agents
//! connect to, and [`RemotePlane`], the `DataPlane` the controller drives
//! them through.
//!
//! Placement: a load balancer is served by one agent. The hub learns where
//! from each agent's `Hello` (what it serves already) and from the applies
//! it sends; a load balancer nobody serves goes to the connected agent with
//! the fewest.

use crate::pki::Pki;
use crate::proto::{
    self, Ack, AgentMessage, ControllerMessage, EnrollRequest, EnrollResponse, agent_message,
    controller_message,
};
use statera_config::{
    BoxFuture, DataPlane, DataPlaneError, LbConfig, Placement, ReportSender, StatusReport,
};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use uuid::Uuid;

/// How long an apply waits for an agent to be connected (the one serving
/// the load balancer, or any for a new one): agents reconnect within
/// seconds of a controller's restart.
pub const AGENT_WAIT: Duration = Duration::from_secs(20);
/// How long an agent has to acknowledge a change.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new session has to say `Hello`.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Messages queued to one agent before the sender waits.
const QUEUE: usize = 256;

/// The controller's agent endpoint and what it knows of the agents.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    pki: Arc<Pki>,
    report_tx: ReportSender,
    state: Mutex<State>,
    /// The latest report of each load balancer an agent serves.
    reports: RwLock<HashMap<Uuid, StatusReport>>,
    /// Bumped whenever an agent connects or goes.
    changed: watch::Sender<u64>,
    seq: AtomicU64,
    /// When this hub started, and the agents it expects (certificates
    /// issued and not revoked): until all of them are connected, or
    /// [`AGENT_WAIT`] has passed, a load balancer no agent claims is not
    /// placed (an agent not yet reconnected may serve it).
    started: Instant,
    expected: HashSet<String>,
    /// An agent silent (no session, or no message) this long has its load
    /// balancers moved to the other agents.
    failover_after: Duration,
    /// One change at a time per load balancer (the controller's and a
    /// failover's).
    locks: Mutex<Locks>,
    /// One enrolment at a time (they are unauthenticated until the token
    /// is checked): a flood of them costs one core's sliver, not the
    /// controller.
    enrolling: Arc<tokio::sync::Semaphore>,
    /// What the controller's store says of load balancers.
    directory: Arc<dyn Directory>,
    /// One fencing decision at a time (a gone agent's, its return's).
    fencing: tokio::sync::Mutex<()>,
}

/// What the hub asks the controller's store about a load balancer.
pub trait Directory: Send + Sync + 'static {
    /// Whether `lb_id` exists with `provider`: what an agent's `Hello` may
    /// claim.
    fn may_claim(&self, lb_id: Uuid, provider: &str) -> bool;
    /// The agents that may serve `lb_id` (its availability zone's profile's
    /// `agents`), or `None` for any agent.
    fn agents_for(&self, lb_id: Uuid) -> Option<Vec<String>>;
    /// Cuts `agent`'s host off the tenant networks (`fenced`) before its
    /// load balancers are served elsewhere, or joins it again once what it
    /// served and no longer serves has been removed from it. Blocking (run
    /// off the async threads). Nothing to do where load balancers have no
    /// namespaces on agents' hosts. An error: nothing may move off it.
    fn fence(&self, _agent: &str, _fenced: bool) -> Result<(), String> {
        Ok(())
    }
    /// Whether [`Directory::fence`] does anything (load balancers live on
    /// agents' hosts' networks).
    fn fences(&self) -> bool {
        false
    }
}

/// The per-load-balancer locks. An entry nobody holds is dropped when the
/// map has doubled since the last sweep (deleted load balancers' entries do
/// not pile up; the sweep's cost is spread over the insertions).
#[derive(Default)]
struct Locks {
    map: HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>,
    sweep_at: usize,
}

impl Locks {
    const MIN_SWEEP: usize = 1024;

    fn of(&mut self, lb_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        if self.map.len() >= self.sweep_at.max(Self::MIN_SWEEP) && !self.map.contains_key(&lb_id) {
            self.map.retain(|_, lock| Arc::strong_count(lock) > 1);
            self.sweep_at = 2 * self.map.len();
        }
        self.map.entry(lb_id).or_default().clone()
    }
}

/// Longest enrolment fields accepted before any work is done.
const MAX_TOKEN: usize = 256;
const MAX_CSR: usize = 16 * 1024;
/// How long a refused enrolment token holds the enrolment slot: at most a
/// few guesses a second, whoever sends them.
const BAD_TOKEN_PAUSE: Duration = Duration::from_millis(250);
/// How long an enrolment waits for the slot.
const ENROL_WAIT: Duration = Duration::from_secs(10);

/// What became of a gone agent's load balancer.
enum Moved {
    /// Served by another agent (or its agent is back, or it needs nothing).
    Done,
    /// No connected agent may take it.
    Nowhere,
    /// The other agent did not take it.
    Failed,
}

/// How many load balancers of a gone agent move at once.
const FAILOVER_PARALLELISM: usize = 32;

/// The most load balancers one `Hello` may claim.
const MAX_CLAIMS: usize = 100_000;

#[derive(Default)]
struct State {
    sessions: HashMap<String, Session>,
    /// Load balancer → the agent serving it.
    placement: HashMap<Uuid, String>,
    /// Applies and removes waiting for their acknowledgement, by sequence.
    pending: HashMap<u64, Pending>,
    /// Load balancers removed while their agent was away: removed from it
    /// when it says `Hello` again.
    removed: HashSet<Uuid>,
    next_session: u64,
    /// The last configuration each load balancer was served with, and its
    /// provider: what a failover sends to another agent.
    configs: HashMap<Uuid, (String, Arc<LbConfig>)>,
    /// Agents whose session ended, since when.
    gone: HashMap<String, Instant>,
    /// Load balancers being moved to each agent by a failover (not placed
    /// until its Ack): counted as its load, so that moves running at once
    /// spread.
    moving: HashMap<String, usize>,
    /// The version each load balancer was last moved with by an API
    /// failover: the controller retrying that same work (its store refused
    /// the settling write) does not move it again.
    moved_as_asked: HashMap<Uuid, u64>,
    /// Load balancers of gone agents that no connected agent may take,
    /// reported unserved (once), until placed again.
    unserved: HashSet<Uuid>,
    /// Gone agents all of whose load balancers had nowhere to go, and the
    /// count of connections and departures then: not tried again until
    /// an agent connects or goes.
    stuck: HashMap<String, u64>,
    /// Agents whose hosts are cut off the tenant networks
    /// ([`Directory::fence`]): nothing is moved off an agent before it is
    /// in here, and nothing is placed on one while it is.
    fenced: HashSet<String>,
    /// Moves off each agent under way: its host is not joined to the
    /// networks again before they are done (and it is sent a Remove).
    leaving: HashMap<String, usize>,
    /// Enrolled agents absent when the start's grace ended, not fenced yet:
    /// load balancers nobody claims are not placed anew until they are.
    absent_unfenced: Option<HashSet<String>>,
}

impl State {
    /// The connected agent serving the fewest load balancers (by name on a
    /// tie), among `allowed` (any when `None`), other than `except`.
    fn least_loaded(&self, allowed: Option<&[String]>, except: Option<&str>) -> Option<String> {
        let mut load: HashMap<&str, usize> = self
            .moving
            .iter()
            .map(|(agent, n)| (agent.as_str(), *n))
            .collect();
        for agent in self.placement.values() {
            *load.entry(agent.as_str()).or_default() += 1;
        }
        self.sessions
            .keys()
            .filter(|name| Some(name.as_str()) != except && !self.fenced.contains(*name))
            .filter(|name| allowed.is_none_or(|a| a.contains(name)))
            .min_by_key(|name| (load.get(name.as_str()).copied().unwrap_or(0), *name))
            .cloned()
    }
}

struct Session {
    id: u64,
    /// Its certificate's SHA-256 fingerprint, checked against the register
    /// while it runs (a revocation ends it).
    fingerprint: String,
    tx: mpsc::Sender<Result<ControllerMessage, Status>>,
    peer: Option<SocketAddr>,
    version: String,
    last_seen: Instant,
}

struct Pending {
    agent: String,
    lb_id: Uuid,
    /// An `Apply` of this version (else a `Remove`).
    applies: Option<u64>,
    tx: oneshot::Sender<Result<Ack, DataPlaneError>>,
}

/// What the controller may show of an agent (the amphora view).
#[derive(Debug, Clone)]
pub struct AgentInfo {
    pub name: String,
    pub peer: Option<SocketAddr>,
    pub version: String,
    pub load_balancers: usize,
    pub seen_ago: Duration,
}

impl Hub {
    pub fn new(
        pki: Arc<Pki>,
        report_tx: ReportSender,
        failover_after: Duration,
        directory: Arc<dyn Directory>,
    ) -> Hub {
        let expected = pki
            .agents()
            .unwrap_or_default()
            .into_iter()
            .filter(|a| !a.revoked)
            .map(|a| a.name)
            .collect();
        Hub {
            inner: Arc::new(Inner {
                started: Instant::now(),
                expected,
                failover_after,
                locks: Mutex::new(Locks::default()),
                enrolling: Arc::new(tokio::sync::Semaphore::new(1)),
                directory,
                fencing: tokio::sync::Mutex::new(()),
                pki,
                report_tx,
                state: Mutex::new(State::default()),
                reports: RwLock::new(HashMap::new()),
                changed: watch::channel(0).0,
                seq: AtomicU64::new(1),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `DataPlane` for load balancers of `provider`, served by agents.
    pub fn plane(&self, provider: &str) -> RemotePlane {
        RemotePlane {
            hub: self.clone(),
            provider: provider.to_string(),
        }
    }

    /// Connected agents.
    pub fn agents(&self) -> Vec<AgentInfo> {
        let state = self.state();
        let mut out: Vec<AgentInfo> = state
            .sessions
            .iter()
            .map(|(name, s)| AgentInfo {
                name: name.clone(),
                peer: s.peer,
                version: s.version.clone(),
                load_balancers: state.placement.values().filter(|a| *a == name).count(),
                seen_ago: s.last_seen.elapsed(),
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Ends every agent's session (the controller stops): their streams
    /// close, so the endpoint's graceful shutdown completes and the agents
    /// reconnect, to whichever process serves next.
    pub fn close(&self) {
        let mut state = self.state();
        state.sessions.clear();
        for (_, p) in state.pending.drain() {
            let _ = p.tx.send(Err(unavailable("the controller stops".into())));
        }
    }

    /// The agent serving `lb_id`, if known, and what the controller knows
    /// of it while it is connected (the address it connects from, its
    /// version).
    pub fn placement(&self, lb_id: Uuid) -> Option<Placement> {
        let state = self.state();
        let agent = state.placement.get(&lb_id)?;
        let session = state.sessions.get(agent);
        Some(Placement {
            agent: agent.clone(),
            address: session.and_then(|s| s.peer).map(|p| p.ip().to_canonical()),
            version: session.map(|s| s.version.clone()).unwrap_or_default(),
        })
    }

    /// Serves the agent endpoint on `listener` (mutual TLS with the CA's
    /// controller certificate) until `shutdown` resolves.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        self.router()?
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| e.to_string())
    }

    /// Serves the same endpoint on a Unix socket (agents of this machine in
    /// other network namespaces reach it; the same mutual TLS).
    pub async fn serve_unix(
        self,
        listener: tokio::net::UnixListener,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), String> {
        let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
        self.router()?
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
            .map_err(|e| e.to_string())
    }

    fn router(self) -> Result<tonic::transport::server::Router, String> {
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let (cert, key) = self
            .inner
            .pki
            .controller_identity()
            .map_err(|e| e.to_string())?;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .client_ca_root(Certificate::from_pem(self.inner.pki.ca_pem()))
            // Enrolment comes without a client certificate; sessions are
            // refused without one (see `session`).
            .client_auth_optional(true);
        Ok(tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(5)))
            .add_service(proto::agent_server::AgentServer::new(self)))
    }

    /// Sends `kind` to `agent` and waits for its acknowledgement.
    async fn request(
        &self,
        agent: &str,
        lb_id: Uuid,
        applies: Option<u64>,
        kind: impl FnOnce(u64) -> controller_message::Kind,
    ) -> Result<Ack, DataPlaneError> {
        let seq = self.inner.seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let sender = {
            let mut state = self.state();
            let Some(session) = state.sessions.get(agent) else {
                return Err(unavailable(format!("agent {agent} is not connected")));
            };
            let sender = session.tx.clone();
            state.pending.insert(
                seq,
                Pending {
                    agent: agent.to_string(),
                    lb_id,
                    applies,
                    tx,
                },
            );
            sender
        };
        let message = ControllerMessage {
            kind: Some(kind(seq)),
        };
        // An agent that stops reading its stream (its queue full) is not
        // waited for longer than for an Ack.
        match tokio::time::timeout(ACK_TIMEOUT, sender.send(Ok(message))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                self.state().pending.remove(&seq);
                return Err(unavailable(format!("agent {agent} went away")));
            }
            Err(_) => {
                self.state().pending.remove(&seq);
                return Err(unavailable(format!(
                    "agent {agent} does not read what it is sent"
                )));
            }
        }
        match tokio::time::timeout(ACK_TIMEOUT, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(unavailable(format!("agent {agent} went away"))),
            Err(_) => {
                self.state().pending.remove(&seq);
                Err(unavailable(format!(
                    "agent {agent} did not acknowledge within {} s",
                    ACK_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// The agent that serves (or is to serve) `lb_id`, waiting up to
    /// [`AGENT_WAIT`] for it (or, for a new one, any agent it may be placed
    /// on) to connect; for one whose agent is gone past the failover
    /// timeout, the agent a failover would move it to.
    async fn agent_for(&self, lb_id: Uuid) -> Result<String, DataPlaneError> {
        let mut changed = self.inner.changed.subscribe();
        // The wait counts from the end of the start's grace: a restore's
        // apply of a load balancer whose agent does not come back is placed
        // anew when the grace ends (and absent hosts are fenced), not
        // refused just then.
        let grace_left = AGENT_WAIT.saturating_sub(self.inner.started.elapsed());
        let until = tokio::time::Instant::now() + grace_left + AGENT_WAIT;
        let allowed = self.inner.directory.agents_for(lb_id);
        loop {
            let elsewhere = {
                let state = self.state();
                match state.placement.get(&lb_id) {
                    Some(agent) if state.sessions.contains_key(agent) => return Ok(agent.clone()),
                    // Its agent is gone for longer than the failover
                    // timeout (or for so long that its failovers are done
                    // with): the change goes where a failover would take
                    // it (with this configuration, not the last one), or is
                    // refused now if nowhere may take it, rather than
                    // holding the controller's work for the whole wait.
                    Some(agent)
                        if state
                            .gone
                            .get(agent)
                            .is_none_or(|since| since.elapsed() >= self.inner.failover_after) =>
                    {
                        match state.least_loaded(allowed.as_deref(), Some(agent)) {
                            Some(other) => Some((agent.clone(), other)),
                            None => {
                                return Err(unavailable(format!(
                                    "agent {agent}, which serves load balancer {lb_id}, is gone and no other agent that may serve it is connected"
                                )));
                            }
                        }
                    }
                    Some(_) => None,
                    None if self.inner.started.elapsed() < AGENT_WAIT
                        && !self
                            .inner
                            .expected
                            .iter()
                            .all(|name| state.sessions.contains_key(name)) =>
                    {
                        None
                    }
                    // Past the grace, not before the absent agents' hosts
                    // are cut off (the failovers task does it).
                    None if self.inner.directory.fences()
                        && self.inner.started.elapsed() >= AGENT_WAIT
                        && state.absent_unfenced.as_ref().is_none_or(|p| !p.is_empty()) =>
                    {
                        None
                    }
                    None => {
                        if let Some(agent) = state.least_loaded(allowed.as_deref(), None) {
                            return Ok(agent);
                        }
                        if let Some(names) = &allowed {
                            // Its zone's agents are all away: refused now,
                            // not after holding the controller's work for
                            // the whole wait.
                            return Err(unavailable(format!(
                                "none of the agents of load balancer {lb_id}'s availability zone ({}) is connected",
                                names.join(", ")
                            )));
                        }
                        None
                    }
                }
            };
            if let Some((gone, other)) = elsewhere {
                // Its gone agent's host cut off first (or found back).
                if self.fence_gone(&gone).await {
                    tracing::warn!(lb = %lb_id, %gone, to = %other, "changed while its agent is gone: applied on another agent");
                    return Ok(other);
                }
                if !self.state().sessions.contains_key(&gone) {
                    return Err(unavailable(format!(
                        "agent {gone}, which serves load balancer {lb_id}, is gone and its host cannot be fenced"
                    )));
                }
                continue;
            }
            tokio::select! {
                _ = changed.changed() => {}
                // The start's grace may end meanwhile.
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
                () = tokio::time::sleep_until(until) => {
                    let placed = self.state().placement.get(&lb_id).cloned();
                    return Err(unavailable(match placed {
                        Some(agent) => format!("agent {agent}, which serves load balancer {lb_id}, is not connected"),
                        None => "no agent is connected".to_string(),
                    }));
                }
            }
        }
    }

    fn lock_of(&self, lb_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.of(lb_id)
    }

    async fn apply(&self, provider: &str, config: Arc<LbConfig>) -> Result<u64, DataPlaneError> {
        let lb_id = config.lb_id;
        let lock = self.lock_of(lb_id);
        let _one = lock.lock().await;
        let agent = self.agent_for(lb_id).await?;
        let placed = self.state().placement.get(&lb_id).cloned();
        let elsewhere = placed.as_ref().is_some_and(|old| *old != agent);
        let version = match self.apply_on(&agent, provider, config).await {
            Ok(version) => version,
            Err(error) => {
                // Refused or unanswered on another agent than its own: a
                // late apply there must not serve it beside its own agent
                // come back.
                if elsewhere && self.state().sessions.contains_key(&agent) {
                    let _ = self.remove_from(&agent, provider, lb_id).await;
                }
                return Err(error);
            }
        };
        // Applied elsewhere than where it was (its agent gone): if that
        // agent came back meanwhile, it must not serve it too.
        if let Some(old) = placed.filter(|old| *old != agent)
            && self.state().sessions.contains_key(&old)
        {
            let _ = self.remove_from(&old, provider, lb_id).await;
        }
        Ok(version)
    }

    /// Sends `config` to `agent` and waits for its acknowledgement of that
    /// version; the load balancer is then placed there.
    async fn apply_on(
        &self,
        agent: &str,
        provider: &str,
        config: Arc<LbConfig>,
    ) -> Result<u64, DataPlaneError> {
        let lb_id = config.lb_id;
        let body = serde_json::to_vec(&*config)
            .map_err(|e| DataPlaneError::Other(format!("cannot encode the configuration: {e}")))?;
        let version = config.version;
        let name = provider.to_string();
        let ack = self
            .request(agent, lb_id, Some(version), |seq| {
                controller_message::Kind::Apply(proto::Apply {
                    seq,
                    lb_id: lb_id.to_string(),
                    provider: name,
                    version,
                    config: body,
                })
            })
            .await?;
        if ack.version != version {
            tracing::warn!(%agent, lb = %lb_id, sent = version, acknowledged = ack.version, "agent acknowledged another version: refused");
            return Err(DataPlaneError::Other(format!(
                "agent {agent} acknowledged version {} of load balancer {lb_id}, not {version}",
                ack.version
            )));
        }
        let mut state = self.state();
        state.placement.insert(lb_id, agent.to_string());
        state.removed.remove(&lb_id);
        state.configs.insert(lb_id, (provider.to_string(), config));
        Ok(version)
    }

    /// Moves the load balancers of agents silent for `failover_after` to the
    /// connected agents (the fewest first, of the load balancer's zone's
    /// agents if it names them), with their last configuration:
    /// same VIP, same version. Runs until the hub's endpoint stops.
    pub async fn failovers(self, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            if self.inner.started.elapsed() >= AGENT_WAIT {
                // Agents that have not come back since this hub started may
                // have died with their hosts still plumbed: fenced (tried
                // again each tick until done) before load balancers nobody
                // claimed are placed anew.
                let absent: Vec<String> = {
                    let mut state = self.state();
                    let sessions: HashSet<String> = state.sessions.keys().cloned().collect();
                    let pending = state.absent_unfenced.get_or_insert_with(|| {
                        self.inner
                            .expected
                            .iter()
                            .filter(|name| !sessions.contains(*name))
                            .cloned()
                            .collect()
                    });
                    pending.retain(|name| !sessions.contains(name));
                    pending.iter().cloned().collect()
                };
                for agent in absent {
                    if self.fence_gone(&agent).await
                        && let Some(pending) = &mut self.state().absent_unfenced
                    {
                        pending.remove(&agent);
                    }
                }
            }
            let after = self.inner.failover_after;
            // A session that stopped talking counts as gone.
            let silent: Vec<(String, u64, Instant)> = self
                .state()
                .sessions
                .iter()
                .filter(|(_, s)| s.last_seen.elapsed() >= after)
                .map(|(name, s)| (name.clone(), s.id, s.last_seen))
                .collect();
            for (agent, id, since) in silent {
                tracing::warn!(%agent, "agent silent: its session is dropped");
                // Gone since it last spoke: failed over now, not after
                // another timeout.
                self.ended_since(&agent, id, since);
            }
            // A revoked certificate ends its session.
            let sessions: Vec<(String, u64, String)> = self
                .state()
                .sessions
                .iter()
                .map(|(name, s)| (name.clone(), s.id, s.fingerprint.clone()))
                .collect();
            let valid = self.inner.pki.valid_fingerprints().unwrap_or_default();
            for (agent, id, fingerprint) in sessions {
                if !valid.contains(&fingerprint) {
                    tracing::warn!(%agent, "agent certificate revoked: its session is ended");
                    self.ended(&agent, id);
                }
            }
            let due: Vec<(String, Instant, Vec<Uuid>)> = {
                let state = self.state();
                state
                    .gone
                    .iter()
                    .filter(|(_, since)| since.elapsed() >= after)
                    .map(|(agent, since)| {
                        let lbs = state
                            .placement
                            .iter()
                            .filter(|(_, a)| *a == agent)
                            .map(|(lb, _)| *lb)
                            .collect();
                        (agent.clone(), *since, lbs)
                    })
                    .collect()
            };
            let connections = *self.inner.changed.borrow();
            for (agent, since, lbs) in due {
                if self.state().stuck.get(&agent) == Some(&connections) {
                    continue;
                }
                // What it still plumbs on its host must not answer for
                // addresses served elsewhere from now on.
                if !self.fence_gone(&agent).await {
                    continue;
                }
                // Several at a time: one after the other, an agent's
                // thousands of load balancers took seconds each thousand.
                let mut moves = tokio::task::JoinSet::new();
                let (mut failed, mut nowhere) = (0, 0);
                let mut count =
                    |outcome: Option<Result<Moved, tokio::task::JoinError>>| match outcome {
                        Some(Ok(Moved::Done)) | None => {}
                        Some(Ok(Moved::Nowhere)) => nowhere += 1,
                        Some(Ok(Moved::Failed)) | Some(Err(_)) => failed += 1,
                    };
                for lb_id in lbs {
                    if moves.len() >= FAILOVER_PARALLELISM {
                        count(moves.join_next().await);
                    }
                    let hub = self.clone();
                    let from = agent.clone();
                    moves.spawn(async move { hub.fail_over(&from, lb_id, since).await });
                }
                while let Some(done) = moves.join_next().await {
                    count(Some(done));
                }
                let mut state = self.state();
                if failed + nowhere == 0 {
                    state.gone.remove(&agent);
                    state.stuck.remove(&agent);
                } else if failed == 0 {
                    state.stuck.insert(agent.clone(), connections);
                } else {
                    state.stuck.remove(&agent);
                }
            }
        }
    }

    /// Fences the host of `agent`, gone: whether it is (it may be moved
    /// off); not when it is connected again or the fence failed.
    async fn fence_gone(&self, agent: &str) -> bool {
        let _one = self.inner.fencing.lock().await;
        {
            let state = self.state();
            if state.sessions.contains_key(agent) {
                return false;
            }
            if !self.inner.directory.fences() {
                return true;
            }
        }
        // Set again even when recorded as fenced: an unfencing that failed
        // half-way may have left some of its trunks up.
        match self.set_fence(agent, true).await {
            Ok(()) => {
                self.state().fenced.insert(agent.to_string());
                true
            }
            Err(error) => {
                tracing::error!(%agent, %error, "cannot fence the gone agent's host: its load balancers stay where they are");
                false
            }
        }
    }

    /// Joins the host of `agent` to the networks again, if session `id` is
    /// still its session.
    async fn unfence(&self, agent: &str, id: u64) {
        if !self.inner.directory.fences() {
            return;
        }
        let _one = self.inner.fencing.lock().await;
        if self.state().sessions.get(agent).map(|s| s.id) != Some(id) {
            return;
        }
        match self.set_fence(agent, false).await {
            Ok(()) => {
                self.state().fenced.remove(agent);
            }
            Err(error) => {
                tracing::error!(%agent, %error, "cannot join the agent's host to the networks again")
            }
        }
    }

    async fn set_fence(&self, agent: &str, fenced: bool) -> Result<(), String> {
        let (directory, name) = (self.inner.directory.clone(), agent.to_string());
        tokio::task::spawn_blocking(move || directory.fence(&name, fenced))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Moves `lb_id` off `from`.
    async fn fail_over(&self, from: &str, lb_id: Uuid, since: Instant) -> Moved {
        let lock = self.lock_of(lb_id);
        let _one = lock.lock().await;
        let allowed = self.inner.directory.agents_for(lb_id);
        let (target, kept) = {
            let mut state = self.state();
            if state.placement.get(&lb_id).map(String::as_str) != Some(from) {
                return Moved::Done;
            }
            if state.sessions.contains_key(from) {
                // It came back meanwhile and serves it.
                return Moved::Done;
            }
            if self.inner.directory.fences() && !state.fenced.contains(from) {
                // Back and gone again since it was fenced (and joined
                // again): fenced anew before anything moves.
                return Moved::Failed;
            }
            let Some(kept) = state.configs.get(&lb_id).cloned() else {
                // Never applied by this hub (it started after, and its
                // agent went before the restore reached it): there is no
                // configuration to move. Served nowhere, and said so (its
                // last report came from the agent that went); a change or
                // a failover through the API places it again.
                let last = self
                    .inner
                    .reports
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&lb_id)
                    .map(|r| (r.version, r.listeners.iter().map(|l| l.id).collect()));
                let (version, listeners) = last.unwrap_or_default();
                self.report_unserved(&mut state, from, lb_id, version, listeners);
                return Moved::Nowhere;
            };
            let target = state.least_loaded(allowed.as_deref(), Some(from));
            match &target {
                Some(target) => {
                    *state.moving.entry(target.clone()).or_default() += 1;
                    *state.leaving.entry(from.to_string()).or_default() += 1;
                }
                // Said under the same lock that found `from` away, so that
                // it cannot overwrite the report of `from` come back.
                None => {
                    let listeners = kept.1.listeners.iter().map(|l| l.id).collect();
                    self.report_unserved(&mut state, from, lb_id, kept.1.version, listeners);
                }
            }
            (target, kept)
        };
        let Some(target) = target else {
            return Moved::Nowhere;
        };
        let (provider, config) = kept;
        let applied = self.apply_on(&target, &provider, config).await;
        {
            let mut state = self.state();
            if let Some(n) = state.moving.get_mut(&target) {
                *n -= 1;
                if *n == 0 {
                    state.moving.remove(&target);
                }
            }
        }
        let moved = match applied {
            Ok(version) => {
                tracing::warn!(lb = %lb_id, %from, to = %target, version, silent_ms = since.elapsed().as_millis() as u64, "load balancer failed over to another agent");
                // Back while it moved: it must not serve it too.
                let session = self.state().sessions.get(from).map(|s| s.id);
                if let Some(id) = session
                    && let Err(error) = self.remove_from(from, &provider, lb_id).await
                {
                    tracing::warn!(lb = %lb_id, agent = %from, %error, "the agent back during its load balancer's move did not remove it: fenced, and its session ended");
                    self.refence(from, id).await;
                }
                Moved::Done
            }
            Err(error) => {
                tracing::error!(lb = %lb_id, %from, to = %target, %error, "failover failed; tried again");
                Moved::Failed
            }
        };
        let mut state = self.state();
        if let Some(n) = state.leaving.get_mut(from) {
            *n -= 1;
            if *n == 0 {
                state.leaving.remove(from);
            }
        }
        moved
    }

    /// Cuts `agent`'s host off again and ends its session `id` (it may
    /// still serve a load balancer served elsewhere): its next session's
    /// Hello claims what it serves, gets the Removes, and joins it again.
    async fn refence(&self, agent: &str, id: u64) {
        if self.inner.directory.fences() {
            let _one = self.inner.fencing.lock().await;
            match self.set_fence(agent, true).await {
                Ok(()) => {
                    self.state().fenced.insert(agent.to_string());
                }
                Err(error) => tracing::error!(%agent, %error, "cannot fence the agent's host"),
            }
        }
        self.ended(agent, id);
    }

    /// Says once that `lb_id`, whose agent `from` is gone, is served
    /// nowhere: no connected agent may take it.
    fn report_unserved(
        &self,
        state: &mut State,
        from: &str,
        lb_id: Uuid,
        version: u64,
        listeners: Vec<Uuid>,
    ) {
        if !state.unserved.insert(lb_id) {
            return;
        }
        tracing::error!(lb = %lb_id, %from, "agent gone and no other connected agent may serve its load balancer: it is served nowhere until one connects");
        let report = StatusReport {
            lb_id,
            version,
            listeners: listeners
                .into_iter()
                .map(|id| statera_config::ListenerReport {
                    id,
                    state: statera_config::ListenerState::Down,
                    stats: statera_config::Stats::default(),
                    epoch: 0,
                })
                .collect(),
            pools: Vec::new(),
            unserved: true,
        };
        // No older report may say it is served.
        self.inner
            .reports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lb_id, report.clone());
        let _ = self.inner.report_tx.send(report);
    }

    /// A failover asked through the API: `config`'s load balancer moves to
    /// the connected agent serving the fewest (of its zone's agents, if its
    /// zone names them), other than the one serving it, and is removed from that one first (on one host both would bind
    /// the same VIP). With no other agent connected it is applied again
    /// where it is. If the other agent refuses, it is served again where it
    /// was and the refusal is returned.
    async fn move_to_another(
        &self,
        provider: &str,
        config: Arc<LbConfig>,
    ) -> Result<u64, DataPlaneError> {
        let lb_id = config.lb_id;
        let lock = self.lock_of(lb_id);
        let _one = lock.lock().await;
        let allowed = self.inner.directory.agents_for(lb_id);
        let done = {
            let state = self.state();
            (state.moved_as_asked.get(&lb_id) == Some(&config.version))
                .then(|| state.placement.get(&lb_id).cloned())
                .flatten()
                .filter(|agent| state.sessions.contains_key(agent))
        };
        if let Some(agent) = done {
            tracing::info!(lb = %lb_id, %agent, version = config.version, "failover already done with this version: applied again where it went");
            let applied = self.apply_on(&agent, provider, config).await;
            if applied.is_err() {
                // Asked again after this fails, it moves.
                self.state().moved_as_asked.remove(&lb_id);
            }
            return applied;
        }
        let (placed, from, target) = {
            let state = self.state();
            let placed = state.placement.get(&lb_id).cloned();
            let from = placed.clone().filter(|a| state.sessions.contains_key(a));
            let target = state.least_loaded(allowed.as_deref(), placed.as_deref());
            (placed, from, target)
        };
        let Some(target) = target else {
            tracing::warn!(lb = %lb_id, "failover: no other agent is connected; applied again where it is");
            let agent = self.agent_for(lb_id).await?;
            return self.apply_on(&agent, provider, config).await;
        };
        if let Some(from) = &from {
            self.remove_from(from, provider, lb_id).await?;
            self.state().placement.remove(&lb_id);
        } else if let Some(old) = &placed
            && !self.fence_gone(old).await
        {
            // Away, and its host not cut off: it may still answer for the
            // address.
            return Err(unavailable(format!(
                "agent {old}, which serves load balancer {lb_id}, is away and its host could not be fenced"
            )));
        }
        match self.apply_on(&target, provider, config.clone()).await {
            Ok(version) => {
                self.state().moved_as_asked.insert(lb_id, version);
                tracing::warn!(lb = %lb_id, from = placed.as_deref().unwrap_or("-"), to = %target, version, "load balancer failed over to another agent, as asked");
                // Its old agent, away when the move began, came back
                // meanwhile (its Hello claimed it while it was still placed
                // there): it must not serve it too.
                if let Some(old) = placed.filter(|old| from.is_none() && *old != target)
                    && self.state().sessions.contains_key(&old)
                {
                    let _ = self.remove_from(&old, provider, lb_id).await;
                }
                Ok(version)
            }
            Err(error) => {
                tracing::error!(lb = %lb_id, to = %target, %error, "failover refused by the other agent");
                // It may apply it after all (a late answer): it must not
                // serve it beside the old one.
                if self.state().sessions.contains_key(&target) {
                    let _ = self.remove_from(&target, provider, lb_id).await;
                }
                let back = match &from {
                    Some(from) => match self.apply_on(from, provider, config).await {
                        Ok(_) => {
                            tracing::warn!(lb = %lb_id, agent = %from, "served again where it was");
                            true
                        }
                        Err(again) => {
                            tracing::error!(lb = %lb_id, agent = %from, error = %again, "cannot serve it again where it was");
                            false
                        }
                    },
                    None => false,
                };
                if !back {
                    // Served nowhere now: no report may say otherwise.
                    self.inner
                        .reports
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(&lb_id);
                }
                Err(error)
            }
        }
    }

    /// Asks `agent` to stop serving `lb_id` and waits for its Ack.
    async fn remove_from(
        &self,
        agent: &str,
        provider: &str,
        lb_id: Uuid,
    ) -> Result<Ack, DataPlaneError> {
        let provider = provider.to_string();
        self.request(agent, lb_id, None, |seq| {
            controller_message::Kind::Remove(proto::Remove {
                seq,
                lb_id: lb_id.to_string(),
                provider,
            })
        })
        .await
    }

    async fn remove(&self, provider: &str, lb_id: Uuid) -> Result<(), DataPlaneError> {
        let lock = self.lock_of(lb_id);
        let _one = lock.lock().await;
        {
            let mut state = self.state();
            state.configs.remove(&lb_id);
            state.unserved.remove(&lb_id);
            state.moved_as_asked.remove(&lb_id);
        }
        let agent = {
            let state = self.state();
            match state.placement.get(&lb_id) {
                Some(agent) if state.sessions.contains_key(agent) => Some(agent.clone()),
                _ => None,
            }
        };
        self.inner
            .reports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lb_id);
        let Some(agent) = agent else {
            // Not served, or its agent is away: removed when it comes back.
            let mut state = self.state();
            if state.placement.remove(&lb_id).is_some() {
                state.removed.insert(lb_id);
            }
            return Ok(());
        };
        self.remove_from(&agent, provider, lb_id).await?;
        // Its lock entry stays while a change waits on it (it must keep
        // excluding the next one); `Locks` sweeps it once nobody holds it.
        self.state().placement.remove(&lb_id);
        // The report the agent sent before removing it.
        self.inner
            .reports
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&lb_id);
        Ok(())
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        self.inner
            .reports
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&lb_id)
            .cloned()
    }

    /// One message of `agent`'s session.
    fn received(&self, agent: &str, message: AgentMessage) {
        match message.kind {
            Some(agent_message::Kind::Ack(ack)) => {
                let mut state = self.state();
                // Only the agent a request went to may answer it, and only
                // for the load balancer it named: anything else is logged
                // and leaves the request waiting for its real answer.
                let mine = state
                    .pending
                    .get(&ack.seq)
                    .is_some_and(|p| p.agent == agent && p.lb_id.to_string() == ack.lb_id);
                if !mine {
                    drop(state);
                    tracing::warn!(%agent, seq = ack.seq, lb = %ack.lb_id, "acknowledgement of a request this agent was not sent: refused");
                } else if let Some(p) = state.pending.remove(&ack.seq) {
                    // Placed as the Ack is read, so that the agent's reports
                    // that follow it are taken.
                    if ack.error.is_empty() && p.applies == Some(ack.version) {
                        state.placement.insert(p.lb_id, agent.to_string());
                    }
                    drop(state);
                    let _ = p.tx.send(ack_result(ack));
                }
            }
            Some(agent_message::Kind::Report(json)) => {
                let report: StatusReport = match serde_json::from_slice(&json) {
                    Ok(report) => report,
                    Err(error) => {
                        tracing::warn!(%agent, %error, "unreadable status report: ignored");
                        return;
                    }
                };
                let placed_here = {
                    let state = self.state();
                    state.placement.get(&report.lb_id).map(String::as_str) == Some(agent)
                        // Sent before the Ack of the apply that places it.
                        || state
                            .pending
                            .values()
                            .any(|p| p.agent == agent && p.lb_id == report.lb_id && p.applies.is_some())
                };
                if !placed_here {
                    tracing::warn!(%agent, lb = %report.lb_id, "status report for a load balancer not placed on this agent: ignored");
                    return;
                }
                // Served again (an agent's report never says unserved).
                let mut report = report;
                report.unserved = false;
                self.state().unserved.remove(&report.lb_id);
                self.inner
                    .reports
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(report.lb_id, report.clone());
                let _ = self.inner.report_tx.send(report);
            }
            Some(agent_message::Kind::Heartbeat(_)) => {}
            Some(agent_message::Kind::Hello(_)) => {
                tracing::warn!(%agent, "a second Hello in one session: ignored");
            }
            None => {}
        }
        if let Some(s) = self.state().sessions.get_mut(agent) {
            s.last_seen = Instant::now();
        }
    }

    /// `agent`'s session `id` ended: its pending requests fail (retry-safe).
    fn ended(&self, agent: &str, id: u64) {
        self.ended_since(agent, id, Instant::now());
    }

    fn ended_since(&self, agent: &str, id: u64, since: Instant) {
        let mut state = self.state();
        if state.sessions.get(agent).is_some_and(|s| s.id == id) {
            state.sessions.remove(agent);
            state.gone.insert(agent.to_string(), since);
            let gone: Vec<u64> = state
                .pending
                .iter()
                .filter(|(_, p)| p.agent == agent)
                .map(|(seq, _)| *seq)
                .collect();
            for seq in gone {
                if let Some(p) = state.pending.remove(&seq) {
                    let _ =
                        p.tx.send(Err(unavailable(format!("agent {agent} went away"))));
                }
            }
            tracing::warn!(%agent, "agent disconnected; it keeps serving what it has");
        }
        drop(state);
        self.inner.changed.send_modify(|n| *n += 1);
    }
}

fn unavailable(reason: String) -> DataPlaneError {
    DataPlaneError::Unavailable(reason)
}

fn ack_result(ack: Ack) -> Result<Ack, DataPlaneError> {
    if ack.error.is_empty() {
        return Ok(ack);
    }
    Err(match ack.error_kind.as_str() {
        "bind" => DataPlaneError::Bind {
            address: ack.bind_address,
            reason: ack.error,
            listener: ack.bind_listener.parse().ok(),
        },
        "unsupported" => DataPlaneError::Unsupported(ack.error),
        _ => DataPlaneError::Other(ack.error),
    })
}

type SessionStream = ReceiverStream<Result<ControllerMessage, Status>>;

#[tonic::async_trait]
impl proto::agent_server::Agent for Hub {
    type SessionStream = SessionStream;

    async fn enroll(
        &self,
        request: Request<EnrollRequest>,
    ) -> Result<Response<EnrollResponse>, Status> {
        let peer = request.remote_addr();
        let r = request.into_inner();
        if r.token.len() > MAX_TOKEN || r.csr_pem.len() > MAX_CSR || r.name.len() > 253 {
            tracing::warn!(
                ?peer,
                "enrolment with an oversized token, name or CSR: refused"
            );
            return Err(Status::invalid_argument(
                "the token, name or CSR is longer than any valid one",
            ));
        }
        let name = r.name.clone();
        // The wait for the slot ends with the request (a client that gives
        // up waits no more); the enrolment and a wrong token's pause run
        // in a task of their own holding the slot, so a client that gives
        // up then does not free it early nor skip the pause.
        let Ok(Ok(slot)) =
            tokio::time::timeout(ENROL_WAIT, self.inner.enrolling.clone().acquire_owned()).await
        else {
            tracing::warn!(
                ?peer,
                "enrolment not served: other enrolments held the slot too long"
            );
            return Err(Status::resource_exhausted(
                "too many enrolments at once; retry later",
            ));
        };
        let pki = self.inner.pki.clone();
        let attempt = tokio::spawn(async move {
            let _slot = slot;
            let issued =
                tokio::task::spawn_blocking(move || pki.enroll(&r.token, &r.name, &r.csr_pem))
                    .await;
            if matches!(issued, Ok(Err(crate::pki::PkiError::BadToken))) {
                tokio::time::sleep(BAD_TOKEN_PAUSE).await;
            }
            issued
        });
        let Ok(Ok(issued)) = attempt.await else {
            return Err(Status::internal("enrolment failed"));
        };
        match issued {
            Ok(cert_pem) => {
                tracing::info!(agent = %name, ?peer, "agent enrolled: certificate issued");
                Ok(Response::new(EnrollResponse {
                    cert_pem,
                    ca_pem: self.inner.pki.ca_pem().to_string(),
                }))
            }
            Err(e) => {
                tracing::warn!(agent = %name, ?peer, error = %e, "enrolment refused");
                Err(match e {
                    crate::pki::PkiError::BadToken => Status::permission_denied(e.to_string()),
                    crate::pki::PkiError::BadName(_) | crate::pki::PkiError::BadCsr(_) => {
                        Status::invalid_argument(e.to_string())
                    }
                    crate::pki::PkiError::NameTaken(_) => Status::already_exists(e.to_string()),
                    _ => Status::internal("enrolment failed"),
                })
            }
        }
    }

    async fn session(
        &self,
        request: Request<Streaming<AgentMessage>>,
    ) -> Result<Response<Self::SessionStream>, Status> {
        let peer = request.remote_addr();
        // Over TCP or over the Unix socket.
        let certs = request.peer_certs().or_else(|| {
            use tonic::transport::server::{TlsConnectInfo, UdsConnectInfo};
            request
                .extensions()
                .get::<TlsConnectInfo<UdsConnectInfo>>()
                .and_then(|info| info.peer_certs())
        });
        let Some(cert) = certs.and_then(|c| c.first().cloned()) else {
            tracing::warn!(?peer, "agent session without a client certificate: refused");
            return Err(Status::unauthenticated("a client certificate is required"));
        };
        let pki = self.inner.pki.clone();
        let der = cert.to_vec();
        let agent = tokio::task::spawn_blocking(move || pki.agent_of(&der))
            .await
            .map_err(|_| Status::internal("certificate check failed"))?
            .map_err(|_| Status::internal("certificate check failed"))?;
        let Some(agent) = agent else {
            tracing::warn!(
                ?peer,
                "agent certificate revoked or not issued here: refused"
            );
            return Err(Status::permission_denied(
                "this certificate is revoked or was not issued by this controller",
            ));
        };
        let mut inbound = request.into_inner();
        let hello = match tokio::time::timeout(HELLO_TIMEOUT, inbound.message()).await {
            Ok(Ok(Some(AgentMessage {
                kind: Some(agent_message::Kind::Hello(hello)),
            }))) => hello,
            _ => {
                tracing::warn!(%agent, ?peer, "agent session without a Hello: refused");
                return Err(Status::invalid_argument("the session starts with Hello"));
            }
        };
        if hello.served.len() > MAX_CLAIMS {
            tracing::warn!(%agent, claims = hello.served.len(), "agent claims too many load balancers: refused");
            return Err(Status::invalid_argument("too many load balancers claimed"));
        }
        if hello.agent_version.len() > 64
            || !hello.agent_version.chars().all(|c| c.is_ascii_graphic())
        {
            tracing::warn!(%agent, "agent names its version with more than 64 printable characters: refused");
            return Err(Status::invalid_argument(
                "the agent version is at most 64 printable characters",
            ));
        }
        if hello.protocol != proto::PROTOCOL {
            tracing::warn!(%agent, protocol = hello.protocol, "agent speaks another protocol version: refused");
            return Err(Status::failed_precondition(format!(
                "protocol {} is not {}",
                hello.protocol,
                proto::PROTOCOL
            )));
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let (id, stale) = {
            let mut state = self.state();
            state.next_session += 1;
            let id = state.next_session;
            state.gone.remove(&agent);
            state.stuck.remove(&agent);
            // A newer session of the same agent replaces the older one.
            state.sessions.insert(
                agent.clone(),
                Session {
                    id,
                    fingerprint: crate::pki::sha256_hex(&cert),
                    tx: tx.clone(),
                    peer,
                    version: hello.agent_version.clone(),
                    last_seen: Instant::now(),
                },
            );
            let mut stale = Vec::new();
            for served in &hello.served {
                let Ok(lb_id) = served.lb_id.parse::<Uuid>() else {
                    continue;
                };
                if state.removed.remove(&lb_id)
                    || !self.inner.directory.may_claim(lb_id, &served.provider)
                {
                    // Deleted, or not a load balancer of that provider.
                    stale.push((lb_id, served.provider.clone()));
                    continue;
                }
                match state.placement.get(&lb_id) {
                    Some(other) if other != &agent => {
                        // Moved elsewhere while this agent was away.
                        stale.push((lb_id, served.provider.clone()));
                    }
                    _ => {
                        state.placement.insert(lb_id, agent.clone());
                    }
                }
            }
            (id, stale)
        };
        tracing::info!(%agent, ?peer, version = %hello.agent_version, serves = hello.served.len(), "agent connected");
        self.inner.changed.send_modify(|n| *n += 1);
        let hub = self.clone();
        let name = agent.clone();
        // The removes go out one change at a time with the load balancer's
        // others (its lock), in a task of their own: the session's answers
        // must be read meanwhile (a change holding the lock waits for one).
        let remover = self.clone();
        let stale_agent = agent.clone();
        tokio::spawn(async move {
            let mut removes = tokio::task::JoinSet::new();
            let mut failed = 0;
            for (lb_id, provider) in stale {
                if removes.len() >= FAILOVER_PARALLELISM
                    && !matches!(removes.join_next().await, Some(Ok(true)))
                {
                    failed += 1;
                }
                let (hub, agent) = (remover.clone(), stale_agent.clone());
                removes.spawn(async move {
                    let lock = hub.lock_of(lb_id);
                    let _one = lock.lock().await;
                    if hub.state().placement.get(&lb_id) == Some(&agent) {
                        // A failover placed it on this agent meanwhile.
                        return true;
                    }
                    tracing::info!(%agent, lb = %lb_id, "removing a load balancer the agent no longer serves");
                    match hub.remove_from(&agent, &provider, lb_id).await {
                        Ok(_) => true,
                        Err(error) => {
                            tracing::warn!(%agent, lb = %lb_id, %error, "the agent did not remove a load balancer it no longer serves");
                            false
                        }
                    }
                });
            }
            while let Some(done) = removes.join_next().await {
                if !matches!(done, Ok(true)) {
                    failed += 1;
                }
            }
            if failed > 0 {
                // Not joined again while it may plumb what is served
                // elsewhere; its next session tries again.
                tracing::error!(agent = %stale_agent, failed, "the agent did not remove load balancers served elsewhere: its host stays fenced and its session is ended");
                remover.refence(&stale_agent, id).await;
                return;
            }
            // Moves off it still under way end with a Remove to it.
            let until = Instant::now() + 3 * ACK_TIMEOUT;
            while remover.state().leaving.contains_key(&stale_agent) && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // Its stale copies gone, its host joins the networks again (a
            // controller that started since does not know whether it was
            // fenced: unfencing a host that was not changes nothing).
            remover.unfence(&stale_agent, id).await;
        });
        tokio::spawn(async move {
            loop {
                match inbound.message().await {
                    Ok(Some(message)) => hub.received(&name, message),
                    Ok(None) => break,
                    Err(status) => {
                        tracing::debug!(agent = %name, %status, "agent session ended");
                        break;
                    }
                }
            }
            hub.ended(&name, id);
        });
        Ok(Response::new(ReceiverStream::new(rx)))
    }
}

/// The `DataPlane` for one provider's load balancers, served by agents.
#[derive(Clone)]
pub struct RemotePlane {
    hub: Hub,
    provider: String,
}

impl DataPlane for RemotePlane {
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(self.hub.apply(&self.provider, config))
    }

    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>> {
        Box::pin(self.hub.remove(&self.provider, lb_id))
    }

    fn fail_over(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        Box::pin(self.hub.move_to_another(&self.provider, config))
    }

    fn report(&self, lb_id: Uuid) -> Option<StatusReport> {
        self.hub.report(lb_id)
    }

    fn placement(&self, lb_id: Uuid) -> Option<Placement> {
        self.hub.placement(lb_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unheld_locks_of_gone_load_balancers_are_swept() {
        let mut locks = Locks::default();
        let held = locks.of(Uuid::new_v4());
        for _ in 0..10 * Locks::MIN_SWEEP {
            locks.of(Uuid::new_v4());
        }
        assert!(
            locks.map.len() <= Locks::MIN_SWEEP + 1,
            "{}",
            locks.map.len()
        );
        // A held lock survives the sweeps, and is the same lock.
        let id = *locks
            .map
            .iter()
            .find(|(_, l)| Arc::ptr_eq(l, &held))
            .expect("the held lock is kept")
            .0;
        assert!(Arc::ptr_eq(&locks.of(id), &held));
    }
}
