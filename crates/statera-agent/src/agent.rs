//! The agent's side: its credentials, the configurations it serves (kept on
//! disk, so a restarted agent serves them again before any controller
//! speaks to it), and the session with the controller, which reconnects by
//! itself while the data planes serve on.

use crate::pki::write_private;
use crate::proto::{self, Ack, AgentMessage, ControllerMessage, agent_message, controller_message};
use statera_config::{DataPlane, DataPlaneError, LbConfig, StatusReport};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use uuid::Uuid;

/// How often the agent says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How often the counters of the load balancers served here are sent, for
/// those whose counters moved (a status change is sent at once): what the
/// embedded data plane's controller reads at the same pace.
pub const COUNTERS_EVERY: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

/// An agent's certificate, key and the CA it trusts, in
/// `<data-dir>/agent-cert/` (0700; the key 0600).
#[derive(Clone)]
pub struct Credentials {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials { .. }")
    }
}

fn cert_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("agent-cert")
}

/// The credentials kept in `data_dir`, if enrolled.
pub fn load_credentials(data_dir: &Path) -> std::io::Result<Option<Credentials>> {
    let dir = cert_dir(data_dir);
    let read = |name: &str| std::fs::read_to_string(dir.join(name));
    match (read("cert.pem"), read("key.pem"), read("ca.pem")) {
        (Ok(cert_pem), Ok(key_pem), Ok(ca_pem)) => Ok(Some(Credentials {
            cert_pem,
            key_pem,
            ca_pem,
        })),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e))
            if e.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
    }
}

fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if !dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    Ok(())
}

/// Enrols with the controller at `controller` (host:port), trusting `ca_pem`
/// for its certificate: trades `token` and a fresh key's CSR for a
/// certificate, kept in `data_dir`.
pub async fn enroll(
    controller: &str,
    ca_pem: &str,
    token: &str,
    name: &str,
    data_dir: &Path,
) -> Result<Credentials, String> {
    let (key_pem, csr_pem) = crate::pki::new_key_and_csr(name).map_err(|e| e.to_string())?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca_pem))
        .domain_name(crate::CONTROLLER_NAME);
    let endpoint = endpoint(controller)?
        .tls_config(tls)
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(10));
    let channel = connect(controller, endpoint)
        .await
        .map_err(|e| format!("cannot reach the controller at {controller}: {e}"))?;
    let mut client = proto::agent_client::AgentClient::new(channel);
    let response = client
        .enroll(proto::EnrollRequest {
            token: token.to_string(),
            name: name.to_string(),
            csr_pem,
        })
        .await
        .map_err(|status| format!("enrolment refused: {}", status.message()))?
        .into_inner();
    let dir = cert_dir(data_dir);
    private_dir(&dir).map_err(|e| e.to_string())?;
    write_private(&dir.join("key.pem"), &key_pem).map_err(|e| e.to_string())?;
    write_private(&dir.join("cert.pem"), &response.cert_pem).map_err(|e| e.to_string())?;
    write_private(&dir.join("ca.pem"), &response.ca_pem).map_err(|e| e.to_string())?;
    Ok(Credentials {
        cert_pem: response.cert_pem,
        key_pem,
        ca_pem: response.ca_pem,
    })
}

/// The controller's agents' endpoint as an agent names it: `HOST:PORT`, or
/// `unix:PATH`, its Unix socket (`<its data dir>/agents.sock`), which an
/// agent reaches from any network namespace of the same machine.
fn endpoint(controller: &str) -> Result<Endpoint, String> {
    // Over a Unix socket the authority is only a name: the certificate is
    // checked against CONTROLLER_NAME either way.
    let uri = match controller.strip_prefix("unix:") {
        Some(_) => format!("https://{}", crate::CONTROLLER_NAME),
        None => format!("https://{controller}"),
    };
    Endpoint::from_shared(uri).map_err(|e| e.to_string())
}

async fn connect(
    controller: &str,
    endpoint: Endpoint,
) -> Result<tonic::transport::Channel, tonic::transport::Error> {
    let Some(path) = controller.strip_prefix("unix:") else {
        return endpoint.connect().await;
    };
    let path = PathBuf::from(path);
    endpoint
        .connect_with_connector(tower::service_fn(move |_: tonic::transport::Uri| {
            let path = path.clone();
            async move {
                // A path too long for a socket address is reached through
                // its directory's descriptor.
                let stream = match (path.parent(), path.file_name()) {
                    (Some(dir), Some(name)) if path.as_os_str().len() >= 100 => {
                        let dir = std::fs::File::open(dir)?;
                        let short = Path::new("/proc/self/fd")
                            .join(std::os::fd::AsRawFd::as_raw_fd(&dir).to_string())
                            .join(name);
                        tokio::net::UnixStream::connect(short).await?
                    }
                    _ => tokio::net::UnixStream::connect(&path).await?,
                };
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
}

/// What the agent serves: load balancer → (provider, configuration).
type Served = HashMap<Uuid, (String, Arc<LbConfig>)>;

/// The agent: its data planes by provider and what they serve.
pub struct Agent {
    planes: HashMap<String, Arc<dyn DataPlane>>,
    served: Mutex<Served>,
    /// One change at a time per load balancer (the controller's, the
    /// restore's).
    locks: Mutex<HashMap<Uuid, Arc<tokio::sync::Mutex<()>>>>,
    /// `<data-dir>/configs/`: each served configuration as JSON, with its
    /// provider, written once it is acknowledged.
    configs: PathBuf,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    provider: String,
    config: LbConfig,
}

impl Agent {
    pub fn new(
        planes: HashMap<String, Arc<dyn DataPlane>>,
        data_dir: &Path,
    ) -> std::io::Result<Agent> {
        let configs = data_dir.join("configs");
        private_dir(&configs)?;
        Ok(Agent {
            planes,
            served: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            configs,
        })
    }

    fn served(&self) -> std::sync::MutexGuard<'_, Served> {
        self.served.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes every configuration kept on disk as what this agent serves,
    /// before serving it: the session's `Hello` then claims them, so a
    /// controller that hears from this agent while it restores (an upgrade)
    /// does not move them elsewhere. Returns how many.
    pub fn claim_kept(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.configs) else {
            return 0;
        };
        let mut served = self.served();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            let kept: Kept = match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
            {
                Ok(kept) => kept,
                Err(error) => {
                    tracing::error!(file = %path.display(), %error, "unreadable kept configuration: skipped");
                    continue;
                }
            };
            if !self.planes.contains_key(&kept.provider) {
                tracing::error!(provider = %kept.provider, "kept configuration for a provider this agent lacks: skipped");
                continue;
            }
            served.insert(kept.config.lb_id, (kept.provider, Arc::new(kept.config)));
        }
        served.len()
    }

    /// Serves every claimed configuration (at start, or after a handover
    /// that did not happen), one load balancer at a time with the
    /// controller's changes: one the controller changed meanwhile is left
    /// as it is (`at_start`: the process's first restore, not the one after
    /// a handover that did not happen). Returns how many are served.
    pub async fn restore(&self, at_start: bool) -> usize {
        let claimed: Vec<(Uuid, String, Arc<LbConfig>)> = self
            .served()
            .iter()
            .map(|(id, (p, c))| (*id, p.clone(), c.clone()))
            .collect();
        let mut n = 0;
        for (lb_id, provider, config) in claimed {
            let lock = self.lock_of(lb_id);
            let _one = lock.lock().await;
            let current = self.served().get(&lb_id).map(|(_, c)| c.version);
            if current != Some(config.version) {
                continue;
            }
            let Some(plane) = self.planes.get(&provider) else {
                continue;
            };
            match plane.apply(config.clone()).await {
                Ok(version) => {
                    tracing::info!(lb = %lb_id, version, "restored from the kept configuration");
                    n += 1;
                }
                Err(error) => {
                    // Not served: not claimed (the next Hello says so). At
                    // start, one whose address another process holds (it
                    // was moved to another agent while this one was away)
                    // is not kept either: the Hello may already have gone
                    // without it, so no Remove would come, and the stale
                    // copy would be served at the next start.
                    let held_elsewhere = matches!(error, DataPlaneError::Bind { .. });
                    self.served().remove(&lb_id);
                    if at_start && held_elsewhere {
                        tracing::error!(lb = %lb_id, %error, "cannot restore: its address is held elsewhere, the kept configuration is dropped");
                        self.forget(lb_id);
                    } else {
                        tracing::error!(lb = %lb_id, %error, "cannot restore");
                    }
                }
            }
        }
        n
    }

    /// The load balancers claimed (kept on disk, or applied since).
    pub fn claimed_ids(&self) -> std::collections::HashSet<Uuid> {
        self.served().keys().copied().collect()
    }

    fn lock_of(&self, lb_id: Uuid) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|e| e.into_inner());
        locks.entry(lb_id).or_default().clone()
    }

    fn keep(&self, provider: &str, config: &LbConfig) -> std::io::Result<()> {
        let text = serde_json::to_string(&Kept {
            provider: provider.to_string(),
            config: config.clone(),
        })
        .map_err(std::io::Error::other)?;
        write_private(&self.configs.join(format!("{}.json", config.lb_id)), &text)
    }

    fn forget(&self, lb_id: Uuid) {
        let _ = std::fs::remove_file(self.configs.join(format!("{lb_id}.json")));
    }

    /// Applies one `Apply`, checking that it says what it carries.
    async fn apply(&self, apply: proto::Apply) -> Ack {
        let mut ack = Ack {
            seq: apply.seq,
            lb_id: apply.lb_id.clone(),
            ..Ack::default()
        };
        let config: LbConfig = match serde_json::from_slice(&apply.config) {
            Ok(config) => config,
            Err(e) => return refused(ack, format!("unreadable configuration: {e}")),
        };
        if config.lb_id.to_string() != apply.lb_id || config.version != apply.version {
            tracing::warn!(envelope_lb = %apply.lb_id, envelope_version = apply.version, lb = %config.lb_id, version = config.version, "configuration that does not match its envelope: refused");
            return refused(
                ack,
                "the configuration is not the load balancer and version its envelope names".into(),
            );
        }
        let Some(plane) = self.planes.get(&apply.provider) else {
            tracing::warn!(provider = %apply.provider, "configuration for a provider this agent lacks: refused");
            return refused(
                ack,
                format!("provider {} is not served by this agent", apply.provider),
            );
        };
        if let Some((provider, _)) = self.served().get(&config.lb_id)
            && provider != &apply.provider
        {
            return refused(
                ack,
                format!(
                    "load balancer {} is served here by provider {provider}",
                    config.lb_id
                ),
            );
        }
        let config = Arc::new(config);
        let lock = self.lock_of(config.lb_id);
        let _one = lock.lock().await;
        match plane.apply(config.clone()).await {
            Ok(version) => {
                if let Err(error) = self.keep(&apply.provider, &config) {
                    // Served, but a restart would not know it: say so.
                    tracing::error!(lb = %config.lb_id, %error, "cannot keep the configuration on disk");
                }
                self.served()
                    .insert(config.lb_id, (apply.provider.clone(), config));
                ack.version = version;
                ack
            }
            Err(e) => {
                set_error(&mut ack, e);
                ack
            }
        }
    }

    async fn remove(&self, remove: proto::Remove) -> Ack {
        let mut ack = Ack {
            seq: remove.seq,
            lb_id: remove.lb_id.clone(),
            ..Ack::default()
        };
        let Ok(lb_id) = remove.lb_id.parse::<Uuid>() else {
            return refused(ack, "not a load balancer id".into());
        };
        let lock = self.lock_of(lb_id);
        let _one = lock.lock().await;
        let provider = self
            .served()
            .get(&lb_id)
            .map(|(p, _)| p.clone())
            .unwrap_or(remove.provider);
        if let Some(plane) = self.planes.get(&provider)
            && let Err(e) = plane.remove(lb_id).await
        {
            set_error(&mut ack, e);
            return ack;
        }
        self.served().remove(&lb_id);
        self.forget(lb_id);
        ack
    }

    fn hello(&self) -> AgentMessage {
        let served = self
            .served()
            .iter()
            .map(|(id, (provider, config))| proto::Served {
                lb_id: id.to_string(),
                provider: provider.clone(),
                version: config.version,
            })
            .collect();
        AgentMessage {
            kind: Some(agent_message::Kind::Hello(proto::Hello {
                protocol: proto::PROTOCOL,
                agent_version: env!("CARGO_PKG_VERSION").to_string(),
                served,
            })),
        }
    }

    /// The current report of one load balancer served here.
    fn report_of(&self, lb_id: &str) -> Option<StatusReport> {
        let lb_id = lb_id.parse::<Uuid>().ok()?;
        let provider = self.served().get(&lb_id).map(|(p, _)| p.clone())?;
        self.planes.get(&provider)?.report(lb_id)
    }

    fn current_reports(&self) -> Vec<StatusReport> {
        let served: Vec<(Uuid, String)> = self
            .served()
            .iter()
            .map(|(id, (p, _))| (*id, p.clone()))
            .collect();
        served
            .into_iter()
            .filter_map(|(id, p)| self.planes.get(&p)?.report(id))
            .collect()
    }

    /// Keeps a session with the controller at `controller` until `shutdown`,
    /// reconnecting after every failure; the data planes serve throughout.
    /// Gives the reports' receiver back when it stops.
    pub async fn run(
        self: Arc<Self>,
        controller: String,
        credentials: Credentials,
        mut reports: mpsc::UnboundedReceiver<StatusReport>,
        mut shutdown: watch::Receiver<bool>,
    ) -> mpsc::UnboundedReceiver<StatusReport> {
        let mut backoff = BACKOFF_MIN;
        loop {
            if *shutdown.borrow() {
                return reports;
            }
            let started = std::time::Instant::now();
            match self
                .clone()
                .session(&controller, &credentials, &mut reports, &mut shutdown)
                .await
            {
                Ok(()) if *shutdown.borrow() => return reports,
                Ok(()) => tracing::warn!(%controller, "the controller ended the session"),
                Err(error) => {
                    tracing::warn!(%controller, %error, "no session with the controller; serving on")
                }
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = BACKOFF_MIN;
            }
            let wait = tokio::time::sleep(backoff);
            tokio::pin!(wait);
            loop {
                tokio::select! {
                    () = &mut wait => break,
                    // Reports meanwhile are dropped: the next session starts
                    // with every load balancer's current one.
                    Some(_) = reports.recv() => {}
                    _ = shutdown.changed() => return reports,
                }
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    async fn session(
        self: Arc<Self>,
        controller: &str,
        credentials: &Credentials,
        reports: &mut mpsc::UnboundedReceiver<StatusReport>,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), String> {
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&credentials.ca_pem))
            .identity(Identity::from_pem(
                &credentials.cert_pem,
                &credentials.key_pem,
            ))
            .domain_name(crate::CONTROLLER_NAME);
        let endpoint = endpoint(controller)?
            .tls_config(tls)
            .map_err(|e| e.to_string())?
            .connect_timeout(Duration::from_secs(5))
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = connect(controller, endpoint)
            .await
            .map_err(|e| format!("cannot connect: {e}"))?;
        let mut client = proto::agent_client::AgentClient::new(channel);
        let (tx, rx) = mpsc::channel::<AgentMessage>(256);
        tx.send(self.hello()).await.map_err(|e| e.to_string())?;
        // The counters last sent of each load balancer.
        let mut sent = SentCounters::default();
        for report in self.current_reports() {
            sent.record(&report);
            let _ = tx.send(report_message(&report)).await;
        }
        let mut inbound = client
            .session(ReceiverStream::new(rx))
            .await
            .map_err(|status| format!("session refused: {}", status.message()))?
            .into_inner();
        tracing::info!(%controller, "session with the controller");
        let mut beat = tokio::time::interval(HEARTBEAT);
        let mut counters = tokio::time::interval(COUNTERS_EVERY);
        counters.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        counters.tick().await;
        loop {
            tokio::select! {
                message = inbound.message() => {
                    let message = message.map_err(|status| format!("session ended: {}", status.message()))?;
                    let Some(ControllerMessage { kind: Some(kind) }) = message else {
                        if message.is_none() {
                            return Ok(());
                        }
                        continue;
                    };
                    // Each change in a task of its own: one HAProxy starting
                    // does not hold up another load balancer's change (the
                    // controller sends one change at a time per load
                    // balancer).
                    let agent = self.clone();
                    let tx = tx.clone();
                    tokio::spawn(async move {
                        let ack = match kind {
                            controller_message::Kind::Apply(apply) => agent.apply(apply).await,
                            controller_message::Kind::Remove(remove) => {
                                // Its counters as they are, before they go
                                // with it: the controller takes them when
                                // the load balancer is still placed here
                                // (a delete, an API failover), not when it
                                // was moved away while this agent was gone.
                                if let Some(report) = agent.report_of(&remove.lb_id) {
                                    let _ = tx.send(report_message(&report)).await;
                                }
                                agent.remove(remove).await
                            }
                        };
                        let _ = tx.send(AgentMessage { kind: Some(agent_message::Kind::Ack(ack)) }).await;
                    });
                }
                Some(report) = reports.recv() => {
                    sent.record(&report);
                    if tx.send(report_message(&report)).await.is_err() {
                        return Err("session closed".into());
                    }
                }
                _ = counters.tick() => {
                    let current = self.current_reports();
                    sent.keep(current.iter().map(|r| r.lb_id));
                    for report in current {
                        if !sent.moved(&report) {
                            continue;
                        }
                        sent.record(&report);
                        if tx.send(report_message(&report)).await.is_err() {
                            return Err("session closed".into());
                        }
                    }
                }
                _ = beat.tick() => {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_millis() as u64)
                        .unwrap_or(0);
                    let beat = AgentMessage {
                        kind: Some(agent_message::Kind::Heartbeat(proto::Heartbeat { sent_unix_ms: now })),
                    };
                    if tx.send(beat).await.is_err() {
                        return Err("session closed".into());
                    }
                }
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

/// The counters last sent of each load balancer, so that the periodic send
/// leaves out those that did not move.
#[derive(Default)]
struct SentCounters(HashMap<Uuid, Vec<(Uuid, u64, statera_config::Stats)>>);

impl SentCounters {
    fn of(report: &StatusReport) -> Vec<(Uuid, u64, statera_config::Stats)> {
        report
            .listeners
            .iter()
            .map(|l| (l.id, l.epoch, l.stats))
            .collect()
    }

    fn record(&mut self, report: &StatusReport) {
        self.0.insert(report.lb_id, Self::of(report));
    }

    fn moved(&self, report: &StatusReport) -> bool {
        self.0.get(&report.lb_id) != Some(&Self::of(report))
    }

    /// Forgets the load balancers not served any more.
    fn keep(&mut self, served: impl Iterator<Item = Uuid>) {
        let served: std::collections::HashSet<Uuid> = served.collect();
        self.0.retain(|id, _| served.contains(id));
    }
}

fn report_message(report: &StatusReport) -> AgentMessage {
    AgentMessage {
        kind: Some(agent_message::Kind::Report(
            serde_json::to_vec(report).unwrap_or_default(),
        )),
    }
}

fn refused(mut ack: Ack, why: String) -> Ack {
    ack.error = why;
    ack.error_kind = "refused".into();
    ack
}

fn set_error(ack: &mut Ack, error: DataPlaneError) {
    match error {
        DataPlaneError::Bind {
            address,
            reason,
            listener,
        } => {
            ack.error = reason;
            ack.error_kind = "bind".into();
            ack.bind_address = address;
            ack.bind_listener = listener.map(|l| l.to_string()).unwrap_or_default();
        }
        DataPlaneError::Unsupported(why) => {
            ack.error = why;
            ack.error_kind = "unsupported".into();
        }
        other => {
            ack.error = other.to_string();
            ack.error_kind = "other".into();
        }
    }
}

/// The name `credentials`' certificate was issued to (its common name).
pub fn certified_name(credentials: &Credentials) -> Result<String, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(credentials.cert_pem.as_bytes())
        .map_err(|e| format!("unreadable agent certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("unreadable agent certificate: {e}"))?;
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_string)
        .ok_or_else(|| "the agent certificate names no agent".into())
}
