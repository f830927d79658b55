//! The contract between the control plane and a data plane.
//!
//! A data plane receives one whole [`LbConfig`] per load balancer, versioned,
//! and either serves it completely or refuses it; it never receives a diff.
//! It acknowledges the version it serves and sends [`StatusReport`]s back:
//! health transitions as they happen, counters periodically.
//!
//! This crate depends on the domain model only: never on the store or the API.

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use statera_model::{
    AlpnProtocol, ClientAuthentication, HealthMonitorType, HttpMethod, L7PolicyAction,
    L7RuleCompareType, L7RuleType, LbAlgorithm, ListenerProtocol, PoolProtocol,
    SessionPersistenceType, TlsVersion,
};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use uuid::Uuid;

/// Writes `text` to `path` whole (a temporary file beside it, synced, then
/// renamed), readable by its owner only: for whatever a data plane keeps of
/// a configuration on disk, which may hold private keys
/// ([`ListenerTls`]).
pub fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Everything one load balancer's data plane needs, whole.
///
/// Objects in PENDING_DELETE are already left out; disabled objects are
/// present with `admin_state_up: false` so the data plane can report them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LbConfig {
    pub lb_id: Uuid,
    /// Strictly increasing per load balancer; a data plane acknowledges it.
    pub version: u64,
    pub admin_state_up: bool,
    pub vip: Vip,
    pub listeners: Vec<ListenerConfig>,
    pub pools: Vec<PoolConfig>,
}

impl LbConfig {
    pub fn pool(&self, id: Uuid) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vip {
    pub address: IpAddr,
    pub port_id: Uuid,
    pub subnet_id: Uuid,
    pub network_id: Uuid,
    /// The VIP port's MAC (used by network drivers that plug a real interface).
    pub mac_address: String,
    /// The subnet the VIP lives on, with its gateway: the members' router.
    pub subnet_cidr: IpNet,
    pub gateway: Option<IpAddr>,
    /// The network namespace the VIP lives in (the `netns` network driver);
    /// `None`: this host's own namespace.
    #[serde(default)]
    pub namespace: Option<String>,
    /// With agents and the `netns` driver: the VIP's namespace as the
    /// controller computes it (leg, routes, ingress filter), for the agent
    /// to build on its host before its data plane binds there (and to name
    /// `namespace` after its own prefix). `None`: nothing to plumb.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plumbing: Option<statera_net::netns::LbPlumbing>,
}

/// The address a data plane's connections to a member at `member` leave
/// from, for a load balancer whose VIP is `vip`: the VIP itself when it is
/// of the member's family, so members see the load balancer's address (as
/// in one-arm mode) rather than whatever the kernel picks (`127.0.0.1` with
/// the host network driver). A loopback VIP cannot be the source of a
/// packet that leaves the host, so from a loopback VIP only loopback members
/// are reached that way; for others the kernel chooses (`None`). Both
/// providers follow this rule (native: a bind before connect; haproxy: the
/// server's `source`).
pub fn member_source(vip: IpAddr, member: IpAddr) -> Option<IpAddr> {
    let (vip, member) = (vip.to_canonical(), member.to_canonical());
    let same_family = vip.is_ipv4() == member.is_ipv4();
    (same_family && !vip.is_unspecified() && (!vip.is_loopback() || member.is_loopback()))
        .then_some(vip)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerConfig {
    pub id: Uuid,
    pub protocol: ListenerProtocol,
    pub protocol_port: u16,
    pub admin_state_up: bool,
    /// `None` = the provider's default limit.
    pub connection_limit: Option<u32>,
    pub default_pool_id: Option<Uuid>,
    pub timeouts: Timeouts,
    pub insert_headers: InsertHeaders,
    /// Empty = every source allowed.
    pub allowed_cidrs: Vec<IpNet>,
    /// Enabled policies in position order.
    pub l7policies: Vec<L7PolicyConfig>,
    /// TERMINATED_HTTPS: the certificates and settings, read from the key
    /// manager by the controller. `None` on a TERMINATED_HTTPS listener:
    /// its certificate could not be read (a data plane refuses it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
}

/// What a TERMINATED_HTTPS listener serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerTls {
    /// The default certificate first, then the SNI ones in the order the
    /// listener names them; a client's SNI picks the one whose names match
    /// (wildcards included), else the default.
    pub certificates: Vec<TlsCertificate>,
    pub client_authentication: ClientAuthentication,
    /// PEM CA certificates clients are verified against.
    pub client_ca_pem: Option<String>,
    /// PEM CRLs of those CAs.
    pub client_crl_pem: Option<String>,
    /// Accepted versions; empty: the data plane's defaults.
    pub versions: Vec<TlsVersion>,
    /// OpenSSL cipher names, colon-separated, as Octavia takes them.
    pub ciphers: Option<String>,
    pub alpn_protocols: Vec<AlpnProtocol>,
    pub hsts: Option<Hsts>,
}

/// One certificate chain and its key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsCertificate {
    /// The reference it was read from (for names in files and errors).
    pub reference: String,
    /// PEM, leaf first, then intermediates.
    pub chain_pem: String,
    pub key_pem: PrivateKeyPem,
    /// The leaf's CN and DNS names.
    pub names: Vec<String>,
}

/// A PEM private key. Its `Debug` says nothing of it, so a configuration
/// logged or printed in a test failure leaks no key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PrivateKeyPem(pub String);

impl std::fmt::Debug for PrivateKeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKeyPem(<redacted>)")
    }
}

/// `Strict-Transport-Security` added to every response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

/// Listener timeouts, in milliseconds as the API states them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    pub client_data_ms: u64,
    pub member_connect_ms: u64,
    pub member_data_ms: u64,
    /// 0 = do not wait for data before choosing a member.
    pub tcp_inspect_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InsertHeaders {
    pub x_forwarded_for: bool,
    pub x_forwarded_port: bool,
    pub x_forwarded_proto: bool,
    /// TERMINATED_HTTPS: what the client's certificate tells the member.
    #[serde(default)]
    pub client_cert: ClientCertHeaders,
}

/// The `X-SSL-*` headers a TERMINATED_HTTPS listener adds, each asked for
/// by its `insert_headers` key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientCertHeaders {
    /// `X-SSL-Client-Verify`: 0 when verified, else the verify error code.
    pub verify: bool,
    /// `X-SSL-Client-Has-Cert`: whether the client showed a certificate.
    pub has_cert: bool,
    /// `X-SSL-Client-DN`: its subject.
    pub dn: bool,
    /// `X-SSL-Client-CN`: its subject's CN.
    pub cn: bool,
    /// `X-SSL-Issuer`: its issuer.
    pub issuer: bool,
    /// `X-SSL-Client-SHA1`: the SHA-1 of its DER, hex.
    pub sha1: bool,
    /// `X-SSL-Client-Not-Before` / `-Not-After`: its validity.
    pub not_before: bool,
    pub not_after: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7PolicyConfig {
    pub id: Uuid,
    pub action: L7PolicyAction,
    pub redirect_pool_id: Option<Uuid>,
    pub redirect_url: Option<String>,
    pub redirect_prefix: Option<String>,
    pub redirect_http_code: Option<u16>,
    /// Enabled rules only; all must match (AND).
    pub rules: Vec<L7RuleConfig>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct L7RuleConfig {
    pub id: Uuid,
    pub kind: L7RuleType,
    pub compare_type: L7RuleCompareType,
    pub key: Option<String>,
    pub value: String,
    pub invert: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub id: Uuid,
    pub protocol: PoolProtocol,
    pub lb_algorithm: LbAlgorithm,
    pub admin_state_up: bool,
    pub session_persistence: Option<SessionPersistenceConfig>,
    pub members: Vec<MemberConfig>,
    pub health_monitor: Option<HealthMonitorConfig>,
    /// `tls_enabled`: connections to members (and HTTPS/TLS-HELLO checks)
    /// over TLS with these settings. `None`: plain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<PoolTls>,
}

/// How a pool speaks TLS to its members (re-encryption).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolTls {
    /// Set when the controller could not read the pool's references: the
    /// pool must not be served (and never in plain text instead).
    pub unreadable: Option<String>,
    /// The certificate shown to members that ask for one.
    pub client_certificate: Option<TlsCertificate>,
    /// Members are verified against these PEM CAs; `None`: not verified
    /// (Octavia's behaviour without `ca_tls_container_ref`).
    pub ca_pem: Option<String>,
    pub crl_pem: Option<String>,
    /// Empty: the data plane's defaults.
    pub versions: Vec<TlsVersion>,
    pub ciphers: Option<String>,
    pub alpn_protocols: Vec<AlpnProtocol>,
}

impl PoolTls {
    /// A pool whose references could not be read, and why.
    pub fn unreadable(why: String) -> PoolTls {
        PoolTls {
            unreadable: Some(why),
            client_certificate: None,
            ca_pem: None,
            crl_pem: None,
            versions: Vec::new(),
            ciphers: None,
            alpn_protocols: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionPersistenceConfig {
    pub kind: SessionPersistenceType,
    pub cookie_name: Option<String>,
    /// Seconds (UDP pools).
    pub persistence_timeout: Option<u64>,
    pub persistence_granularity: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberConfig {
    pub id: Uuid,
    pub address: IpAddr,
    pub protocol_port: u16,
    /// 0–256; 0 takes no new connections.
    pub weight: u16,
    pub backup: bool,
    pub admin_state_up: bool,
    pub monitor_address: Option<IpAddr>,
    pub monitor_port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthMonitorConfig {
    pub id: Uuid,
    pub kind: HealthMonitorType,
    pub admin_state_up: bool,
    pub delay_s: u64,
    pub timeout_s: u64,
    /// Good probes to come back up.
    pub rise: u32,
    /// Failed probes to go down.
    pub fall: u32,
    pub http_method: Option<HttpMethod>,
    pub url_path: Option<String>,
    pub expected_codes: Option<String>,
    pub http_version: Option<f64>,
    pub domain_name: Option<String>,
}

/// What a data plane observed of one load balancer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusReport {
    pub lb_id: Uuid,
    /// The config version being served.
    pub version: u64,
    pub listeners: Vec<ListenerReport>,
    pub pools: Vec<PoolReport>,
    /// Nothing serves the load balancer (its agent is gone and no other
    /// may take it): its listeners are reported down and it is ERROR until
    /// a report from where it is served again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unserved: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerReport {
    pub id: Uuid,
    pub state: ListenerState,
    /// Cumulative since the data plane started serving this listener.
    pub stats: Stats,
    /// Which run of counters `stats` are: a data plane that starts serving
    /// the listener afresh (another process, another agent, the listener
    /// served again after it was removed) counts from zero under a new
    /// epoch ([`counter_epoch`]), and the controller counts it from zero;
    /// under one epoch the counters never go down. 0 from a data plane
    /// that does not say.
    #[serde(default)]
    pub epoch: u64,
}

/// A new, random, non-zero counter epoch (see [`ListenerReport::epoch`]).
pub fn counter_epoch() -> u64 {
    Uuid::new_v4().as_u64_pair().0 | 1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerState {
    /// Accepting connections.
    Open,
    /// At its connection limit.
    Full,
    /// Disabled or failed to bind.
    Down,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolReport {
    pub id: Uuid,
    pub members: Vec<MemberReport>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberReport {
    pub id: Uuid,
    pub health: MemberHealth,
}

/// A member as the data plane sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MemberHealth {
    Up,
    Down,
    /// Weight 0: serves what it has, takes nothing new.
    Drain,
    /// admin_state_up false.
    Maint,
    /// No (enabled) health monitor.
    NoCheck,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub active_connections: u64,
    pub total_connections: u64,
    pub request_errors: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DataPlaneError {
    /// A listening socket could not be bound (address in use, no
    /// permission, address not on this host). The rest of the config was
    /// fine: the controller may serve it without that listener where the
    /// listener is not what the change is about (a restore).
    #[error("cannot bind {address}: {reason}")]
    Bind {
        address: String,
        reason: String,
        /// The listener whose socket it was, when known.
        listener: Option<Uuid>,
    },
    #[error("not supported by this provider: {0}")]
    Unsupported(String),
    /// The data plane could not be reached (a remote agent not connected,
    /// or not answering in time): nothing was refused, and sending the
    /// same configuration again is safe.
    #[error("data plane unavailable: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Other(String),
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a data plane sends its reports.
pub type ReportSender = tokio::sync::mpsc::UnboundedSender<StatusReport>;

/// A data plane: serves whole load balancer configurations.
pub trait DataPlane: Send + Sync + 'static {
    /// Serve `config` for its load balancer, replacing what was served before
    /// without cutting established connections. Returns the version now served.
    fn apply(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>>;

    /// Stop serving a load balancer (its listeners drain) and forget it.
    fn remove(&self, lb_id: Uuid) -> BoxFuture<'_, Result<(), DataPlaneError>>;

    /// The current report for one load balancer, if it is served here.
    fn report(&self, lb_id: Uuid) -> Option<StatusReport>;

    /// A failover (`PUT …/failover`): serve `config` somewhere else than
    /// where it is served now, where this data plane has somewhere else (a
    /// remote plane moves it to another agent); elsewhere it is applied
    /// again in place. Returns the version now served.
    fn fail_over(&self, config: Arc<LbConfig>) -> BoxFuture<'_, Result<u64, DataPlaneError>> {
        self.apply(config)
    }

    /// Where the load balancer is served when not in this process (a remote
    /// agent): what the amphora API shows of it.
    fn placement(&self, _lb_id: Uuid) -> Option<Placement> {
        None
    }
}

/// Where a remote data plane serves a load balancer: the amphora API's
/// compute_id (the agent's name), lb_network_ip (the address the agent
/// connects from) and image_id (the agent's version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub agent: String,
    pub address: Option<std::net::IpAddr>,
    pub version: String,
}
