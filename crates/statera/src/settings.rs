//! Settings: defaults, then a TOML file, then environment variables and flags.

use anyhow::Context;
use clap::Args;
use ipnet::IpNet;
use serde::Deserialize;
use statera_store::Durability;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// How requests are authenticated: `builtin` (Statera is its own
    /// Keystone), `keystone` (tokens validated by an external Keystone) or
    /// `noauth` (labs: project and roles from X-Project-Id / X-Roles).
    #[arg(long, env = "STATERA_AUTH")]
    pub auth: Option<String>,
    /// noauth: the roles of a request without an X-Roles header
    /// (comma-separated; none by default, so such a caller is not an admin).
    #[arg(long, env = "STATERA_NOAUTH_DEFAULT_ROLES")]
    pub noauth_default_roles: Option<String>,
    /// An oslo.policy file (YAML or JSON, `"rule": "check string"`) whose
    /// rules override Octavia's and Neutron's defaults.
    #[arg(long, env = "STATERA_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// A TOML settings file (see statera.example.toml).
    #[arg(long, env = "STATERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address and port the API listens on.
    #[arg(long, env = "STATERA_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where the SQLite store lives.
    #[arg(long, env = "STATERA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The subnet of the ready-made `host-net` network VIPs come from (inside 127.0.0.0/8).
    #[arg(long, env = "STATERA_HOST_SUBNET")]
    pub host_subnet: Option<IpNet>,
    /// `host` (VIPs on this host's loopback range) or `netns` (one network
    /// namespace per load balancer on real tenant networks; needs root).
    #[arg(long, env = "STATERA_NETWORK_DRIVER")]
    pub network_driver: Option<String>,
    /// Prefix of every namespace the netns driver creates.
    #[arg(long, env = "STATERA_NAMESPACE_PREFIX")]
    pub namespace_prefix: Option<String>,
    /// `full` (fsync every commit) or `normal` (survives a process crash, not a power loss).
    #[arg(long, env = "STATERA_DURABILITY")]
    pub durability: Option<String>,
    /// Where the objects live: `postgres://USER@HOST:PORT/DATABASE` (a
    /// database several nodes share; `statera db upgrade` it first), or
    /// left out for SQLite in the data directory.
    #[arg(long, env = "STATERA_STORE")]
    pub store: Option<String>,
    /// What this node runs, comma-separated: `api` (the HTTP API),
    /// `controller` (the controller and the data planes). Default: both.
    #[arg(long, env = "STATERA_ROLE")]
    pub role: Option<String>,
    /// This controller's name among the deployment's (default: kept in
    /// `<data-dir>/node-id`, made at the first start).
    #[arg(long, env = "STATERA_NODE_ID")]
    pub node_id: Option<String>,
    /// Seconds a controller may stay silent before a live one adopts its
    /// load balancers (a shared store only).
    #[arg(long, env = "STATERA_CONTROLLER_TIMEOUT")]
    pub controller_timeout: Option<f64>,
    /// Where agents (`statera agent`) connect (gRPC over mutual TLS). Given:
    /// load balancers are served by agents, not in this process.
    #[arg(long, env = "STATERA_AGENT_LISTEN")]
    pub agent_listen: Option<std::net::SocketAddr>,
    /// Seconds an agent may stay silent (disconnected, or connected and
    /// saying nothing) before its load balancers move to other agents.
    #[arg(long, env = "STATERA_AGENT_TIMEOUT")]
    pub agent_timeout: Option<f64>,
    /// `text` or `json`.
    #[arg(long, env = "STATERA_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Connections the API serves at once (more wait in the accept queue);
    /// 0 = from the descriptor budget.
    #[arg(long, env = "STATERA_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<u64>,
    /// Milliseconds a client has to send a whole request head.
    #[arg(long, env = "STATERA_API_HEADER_TIMEOUT_MS")]
    pub api_header_timeout_ms: Option<u64>,
    /// Milliseconds a client has to send a whole request body.
    #[arg(long, env = "STATERA_API_BODY_TIMEOUT_MS")]
    pub api_body_timeout_ms: Option<u64>,
    /// Milliseconds a keep-alive connection may wait for its next request
    /// (and a client may take to read a response).
    #[arg(long, env = "STATERA_API_IDLE_TIMEOUT_MS")]
    pub api_idle_timeout_ms: Option<u64>,
    /// Descriptors kept for the control plane (SQLite, HAProxy control
    /// sockets, health probes, namespace helpers); 0 = from the limit.
    #[arg(long, env = "STATERA_RESERVED_FDS")]
    pub reserved_fds: Option<u64>,
    /// The most connections one load balancer may hold (over all its
    /// listeners), whatever its listeners' `connection_limit`s say.
    #[arg(long, env = "STATERA_LB_MAX_CONNECTIONS")]
    pub lb_max_connections: Option<u32>,
    /// The key manager's key-encryption key file (`[key_manager] kek_file`):
    /// every node sharing a store needs the same one.
    #[arg(long, env = "STATERA_KEK_FILE")]
    pub kek_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub api: ApiSection,
    pub store: StoreSection,
    pub node: NodeSection,
    pub network: NetworkSection,
    pub quotas: QuotaSection,
    pub neutron: NeutronSection,
    pub log: LogSection,
    pub limits: LimitsSection,
    pub auth: AuthSection,
    pub key_manager: KeyManagerSection,
}

/// `[key_manager]`: the Barbican-compatible secret store.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeyManagerSection {
    /// The key-encryption key: a file holding 32 random bytes, base64 (for
    /// example `head -c 32 /dev/urandom | base64`), readable by Statera
    /// only. Default: `<data-dir>/key-manager.kek`, made on the first start.
    /// Several API nodes sharing a store need the same file.
    pub kek_file: Option<PathBuf>,
    /// Secrets a project may hold (every secret is kept in memory, sealed).
    pub max_secrets_per_project: usize,
    /// Containers a project may hold.
    pub max_containers_per_project: usize,
}

impl Default for KeyManagerSection {
    fn default() -> Self {
        KeyManagerSection {
            kek_file: None,
            max_secrets_per_project: 500,
            max_containers_per_project: 500,
        }
    }
}

/// How requests are authenticated (`statera_identity::AuthMode`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// `builtin`, `keystone` or `noauth`.
    pub mode: String,
    /// The operator's policy file (overrides of the default rules).
    pub policy_file: Option<PathBuf>,
    pub noauth: NoAuthSection,
    pub builtin: BuiltinSection,
    pub keystone: KeystoneSection,
}

/// `[auth.builtin]`: Statera as its own Keystone.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuiltinSection {
    /// Seconds a token is valid (Keystone's `[token] expiration`).
    pub token_expiration_s: u64,
    /// The URL clients reach the API at (catalog endpoints, clouds.yaml);
    /// default: `http://` + the listen address (127.0.0.1 for 0.0.0.0).
    pub public_url: Option<String>,
    /// Failed password authentications in a row that lock a user (0 = never).
    pub lockout_failure_attempts: u32,
    /// Seconds a locked user stays locked.
    pub lockout_duration_s: u64,
    /// Token keys kept by `statera token-keys rotate`, the staged one included.
    pub max_active_keys: usize,
    /// Password checks (argon2) run at once.
    pub concurrent_password_checks: usize,
    /// Password checks allowed to wait for a turn; more get 503.
    pub queued_password_checks: usize,
    /// Places in that gate one client (an IPv4 address, an IPv6 /48) may
    /// hold; 0: no per-client share.
    pub password_checks_per_client: usize,
}

impl Default for BuiltinSection {
    fn default() -> Self {
        let d = statera_identity::builtin::BuiltinSettings::default();
        BuiltinSection {
            token_expiration_s: d.token_expiration_s,
            public_url: None,
            lockout_failure_attempts: d.lockout_failure_attempts,
            lockout_duration_s: d.lockout_duration_s,
            max_active_keys: d.max_active_keys,
            concurrent_password_checks: d.concurrent_password_checks,
            queued_password_checks: d.queued_password_checks,
            password_checks_per_client: d.password_checks_per_client,
        }
    }
}

impl BuiltinSection {
    pub fn identity_settings(&self) -> statera_identity::builtin::BuiltinSettings {
        statera_identity::builtin::BuiltinSettings {
            token_expiration_s: self.token_expiration_s,
            lockout_failure_attempts: self.lockout_failure_attempts,
            lockout_duration_s: self.lockout_duration_s,
            max_active_keys: self.max_active_keys,
            concurrent_password_checks: self.concurrent_password_checks,
            queued_password_checks: self.queued_password_checks,
            password_checks_per_client: self.password_checks_per_client,
        }
    }

    /// `public_url`, or the one the API's listen address gives.
    pub fn public_url(&self, listen: SocketAddr) -> String {
        if let Some(u) = &self.public_url {
            return u.trim_end_matches('/').to_string();
        }
        let ip = match listen.ip() {
            IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        format!("http://{}", SocketAddr::new(ip, listen.port()))
    }
}

/// `keystone` mode: the external Keystone and Statera's service user there
/// (keystonemiddleware's `[keystone_authtoken]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeystoneSection {
    /// Keystone's identity v3 endpoint (`http://keystone:5000/v3`), http or https.
    pub auth_url: String,
    pub username: String,
    /// Also `STATERA_KEYSTONE_PASSWORD`, which wins.
    pub password: String,
    pub project_name: String,
    pub user_domain_name: String,
    pub project_domain_name: String,
    /// Seconds a validated token is trusted without asking Keystone (a
    /// revoked token is refused at the latest this long after); 0 = no cache.
    pub cache_seconds: u64,
    /// The most tokens cached.
    pub cache_entries: usize,
    /// Each request to Keystone must finish within this.
    pub timeout_ms: u64,
    /// Where a 401 sends clients (`WWW-Authenticate`); `auth_url` if empty.
    pub www_authenticate_uri: String,
    /// For an https `auth_url`: the CA bundle (PEM) to trust; the system's if empty.
    pub cafile: String,
}

impl Default for KeystoneSection {
    fn default() -> Self {
        use statera_identity::keystone::KeystoneConfig as K;
        KeystoneSection {
            auth_url: String::new(),
            username: String::new(),
            password: String::new(),
            project_name: String::new(),
            user_domain_name: "Default".into(),
            project_domain_name: "Default".into(),
            cache_seconds: K::DEFAULT_CACHE_SECONDS,
            cache_entries: K::DEFAULT_CACHE_ENTRIES,
            timeout_ms: K::DEFAULT_TIMEOUT_MS,
            www_authenticate_uri: String::new(),
            cafile: String::new(),
        }
    }
}

impl KeystoneSection {
    pub fn config(&self) -> statera_identity::keystone::KeystoneConfig {
        statera_identity::keystone::KeystoneConfig {
            auth_url: self.auth_url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            user_domain_name: self.user_domain_name.clone(),
            project_name: self.project_name.clone(),
            project_domain_name: self.project_domain_name.clone(),
            cache_seconds: self.cache_seconds,
            timeout: std::time::Duration::from_millis(self.timeout_ms),
            www_authenticate_uri: Some(self.www_authenticate_uri.clone())
                .filter(|u| !u.trim().is_empty()),
            cache_entries: self.cache_entries,
            cafile: Some(PathBuf::from(&self.cafile)).filter(|p| !p.as_os_str().is_empty()),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoAuthSection {
    /// The roles of a request without an `X-Roles` header.
    pub default_roles: Vec<String>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            mode: "builtin".to_string(),
            policy_file: None,
            noauth: NoAuthSection::default(),
            builtin: BuiltinSection::default(),
            keystone: KeystoneSection::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSection {
    pub listen: SocketAddr,
    /// The project of requests that name none (noauth).
    pub default_project_id: String,
    pub pagination_max_limit: usize,
    /// Connections served at once; 0 = from the descriptor budget.
    pub max_connections: u64,
    /// A request head must arrive whole within this.
    pub header_timeout_ms: u64,
    /// A request body must arrive whole within this (else 408).
    pub body_timeout_ms: u64,
    /// A keep-alive connection waits this long for its next request.
    pub idle_timeout_ms: u64,
    /// Links honour `X-Forwarded-Proto`/`X-Forwarded-Host` (set it only
    /// behind a proxy that sets them; oslo's `enable_proxy_headers_parsing`).
    pub trust_proxy_headers: bool,
}

/// How the process's descriptors are shared out (see `FdBudget`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsSection {
    /// Descriptors kept for the control plane; 0 = from the limit.
    pub reserved_fds: u64,
    /// The most connections one load balancer may hold.
    pub lb_max_connections: u32,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            reserved_fds: 0,
            // Octavia's default connection limit for a listener of -1.
            lb_max_connections: 50_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreSection {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// `postgres://…` for a shared PostgreSQL database; none: SQLite in
    /// `data_dir`.
    pub url: Option<String>,
    /// PostgreSQL connections this node keeps at most.
    pub max_connections: u32,
}

/// `[node]`: what this process runs and how it finds its peers.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSection {
    /// `api`, `controller`, or both.
    pub roles: Vec<String>,
    pub id: Option<String>,
    /// Seconds of silence after which a controller's load balancers are
    /// adopted by a live one.
    pub controller_timeout_s: f64,
    /// Where agents connect; none: the data planes run in this process.
    pub agent_listen: Option<std::net::SocketAddr>,
    /// Seconds of an agent's silence before its load balancers move.
    pub agent_timeout_s: f64,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            roles: vec!["api".into(), "controller".into()],
            id: None,
            controller_timeout_s: 5.0,
            agent_listen: None,
            agent_timeout_s: 5.0,
        }
    }
}

impl NodeSection {
    pub fn runs(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkSection {
    pub driver: String,
    pub host_subnet: IpNet,
    /// netns driver: every namespace it creates starts with this.
    pub namespace_prefix: String,
    /// Addresses no member or health monitor may point at (Octavia's
    /// `[networking] reserved_ips`).
    pub reserved_ips: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSection {
    pub loadbalancer: i64,
    pub listener: i64,
    pub member: i64,
    pub pool: i64,
    pub healthmonitor: i64,
    pub l7policy: i64,
    pub l7rule: i64,
}

/// The Neutron side's limits (Neutron's `max_fixed_ips_per_port` and
/// `[quotas] quota_*`).
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NeutronSection {
    pub max_fixed_ips_per_port: usize,
    /// Neutron objects per project; -1 = unlimited. Defaults are Neutron's.
    pub quotas: statera_api::neutron::quotas::NeutronQuotas,
}

impl Default for NeutronSection {
    fn default() -> Self {
        NeutronSection {
            max_fixed_ips_per_port: statera_api::neutron::quotas::MAX_FIXED_IPS_PER_PORT,
            quotas: Default::default(),
        }
    }
}

impl NeutronSection {
    /// What the API enforces, with `reader` for the host's interface addresses.
    pub fn api_settings(
        &self,
        reader: statera_api::neutron::quotas::HostAddressReader,
    ) -> statera_api::neutron::quotas::NeutronSettings {
        statera_api::neutron::quotas::NeutronSettings {
            quotas: self.quotas,
            max_fixed_ips_per_port: self.max_fixed_ips_per_port,
            host_interface_addresses: reader,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    pub format: String,
    /// A tracing filter (`info`, `statera=debug,…`); RUST_LOG wins when set.
    pub level: String,
}

impl Default for ApiSection {
    fn default() -> Self {
        ApiSection {
            listen: "127.0.0.1:9876".parse().expect("valid default"),
            default_project_id: "6c7f0b5e1d2a4c3b9e8f7a6d5c4b3a21".to_string(),
            pagination_max_limit: 1000,
            max_connections: 0,
            header_timeout_ms: 10_000,
            body_timeout_ms: 30_000,
            idle_timeout_ms: 60_000,
            trust_proxy_headers: false,
        }
    }
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            data_dir: PathBuf::from("./statera-data"),
            durability: Durability::Full,
            url: None,
            max_connections: 8,
        }
    }
}

impl Default for NetworkSection {
    fn default() -> Self {
        NetworkSection {
            driver: "host".to_string(),
            host_subnet: "127.100.0.0/16".parse().expect("valid default"),
            namespace_prefix: "statera-".to_string(),
            reserved_ips: vec!["169.254.169.254".parse().expect("valid default")],
        }
    }
}

impl Default for QuotaSection {
    fn default() -> Self {
        QuotaSection {
            loadbalancer: -1,
            listener: -1,
            member: -1,
            pool: -1,
            healthmonitor: -1,
            l7policy: -1,
            l7rule: -1,
        }
    }
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            format: "text".to_string(),
            level: "info".to_string(),
        }
    }
}

impl Settings {
    pub fn load(args: &ServeArgs) -> anyhow::Result<Settings> {
        let mut s = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(v) = &args.kek_file {
            s.key_manager.kek_file = Some(v.clone());
        }
        if let Some(v) = args.listen {
            s.api.listen = v;
        }
        if let Some(v) = &args.data_dir {
            s.store.data_dir = v.clone();
        }
        if let Some(v) = args.host_subnet {
            s.network.host_subnet = v;
        }
        if let Some(v) = &args.network_driver {
            s.network.driver = v.clone();
        }
        if let Some(v) = &args.namespace_prefix {
            s.network.namespace_prefix = v.clone();
        }
        if let Some(v) = &args.store {
            s.store.url = Some(v.clone()).filter(|v| !v.trim().is_empty());
        }
        if let Some(v) = &args.role {
            s.node.roles = v
                .split(',')
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty())
                .collect();
        }
        if let Some(v) = &args.node_id {
            s.node.id = Some(v.clone());
        }
        if let Some(v) = args.controller_timeout {
            s.node.controller_timeout_s = v;
        }
        if let Some(v) = args.agent_listen {
            s.node.agent_listen = Some(v);
        }
        if let Some(v) = args.agent_timeout {
            s.node.agent_timeout_s = v;
        }
        if !(s.node.agent_timeout_s.is_finite() && s.node.agent_timeout_s >= 1.0) {
            anyhow::bail!("--agent-timeout must be at least 1 second");
        }
        if s.node.roles.is_empty() || s.node.roles.iter().any(|r| r != "api" && r != "controller") {
            anyhow::bail!(
                "--role must list api, controller or both (comma-separated), not {:?}",
                s.node.roles
            );
        }
        if !(s.node.controller_timeout_s.is_finite() && s.node.controller_timeout_s >= 1.0) {
            anyhow::bail!("--controller-timeout must be at least 1 second");
        }
        if let Some(v) = &args.durability {
            s.store.durability = match v.as_str() {
                "full" => Durability::Full,
                "normal" => Durability::Normal,
                other => anyhow::bail!("--durability must be full or normal, not {other}"),
            };
        }
        if let Some(v) = &args.log_format {
            s.log.format = v.clone();
        }
        if let Some(v) = args.api_max_connections {
            s.api.max_connections = v;
        }
        if let Some(v) = args.api_header_timeout_ms {
            s.api.header_timeout_ms = v;
        }
        if let Some(v) = args.api_body_timeout_ms {
            s.api.body_timeout_ms = v;
        }
        if let Some(v) = args.api_idle_timeout_ms {
            s.api.idle_timeout_ms = v;
        }
        if let Some(v) = args.reserved_fds {
            s.limits.reserved_fds = v;
        }
        if let Some(v) = args.lb_max_connections {
            s.limits.lb_max_connections = v;
        }
        for (name, ms) in [
            ("header_timeout_ms", s.api.header_timeout_ms),
            ("body_timeout_ms", s.api.body_timeout_ms),
            ("idle_timeout_ms", s.api.idle_timeout_ms),
        ] {
            if ms == 0 {
                anyhow::bail!("api.{name} must be above 0");
            }
        }
        if s.limits.lb_max_connections == 0 {
            anyhow::bail!("limits.lb_max_connections must be above 0");
        }
        if !matches!(s.network.driver.as_str(), "host" | "netns") {
            anyhow::bail!(
                "network driver '{}' is not available (host or netns)",
                s.network.driver
            );
        }
        let prefix = &s.network.namespace_prefix;
        if prefix.is_empty()
            || prefix.len() > 40
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            anyhow::bail!(
                "namespace_prefix must be 1-40 letters, digits, '-' or '_', not '{prefix}'"
            );
        }
        if let Some(v) = &args.auth {
            s.auth.mode = v.clone();
        }
        if let Some(v) = &args.policy_file {
            s.auth.policy_file = Some(v.clone());
        }
        if let Some(v) = &args.noauth_default_roles {
            s.auth.noauth.default_roles = statera_identity::split_roles(v);
        }
        if let Ok(v) = std::env::var("STATERA_KEYSTONE_PASSWORD") {
            s.auth.keystone.password = v;
        }
        match statera_identity::AuthMode::parse(&s.auth.mode) {
            Some(statera_identity::AuthMode::NoAuth | statera_identity::AuthMode::Builtin) => {}
            Some(statera_identity::AuthMode::Keystone) => {
                // Checked now so a missing setting stops the start.
                statera_identity::keystone::Keystone::new(s.auth.keystone.config())
                    .map_err(anyhow::Error::msg)?;
            }
            None => anyhow::bail!(
                "auth mode '{}' is not available (builtin, keystone or noauth)",
                s.auth.mode
            ),
        }
        let b = &s.auth.builtin;
        if b.token_expiration_s == 0 {
            anyhow::bail!("auth.builtin.token_expiration_s must be above 0");
        }
        if b.max_active_keys < 2 {
            anyhow::bail!(
                "auth.builtin.max_active_keys must be at least 2 (a staged and a primary key)"
            );
        }
        if b.concurrent_password_checks == 0 {
            anyhow::bail!("auth.builtin.concurrent_password_checks must be above 0");
        }
        if let Some(u) = &b.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            anyhow::bail!("auth.builtin.public_url must start with http:// or https://, not '{u}'");
        }
        if !matches!(s.log.format.as_str(), "text" | "json") {
            anyhow::bail!("log format must be text or json, not {}", s.log.format);
        }
        Ok(s)
    }
}

pub fn init_logging(log: &LogSection) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if log.format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_have_defaults_flags_and_checks() {
        let s = Settings::load(&ServeArgs::default()).unwrap();
        assert_eq!(
            (
                s.api.max_connections,
                s.api.header_timeout_ms,
                s.api.body_timeout_ms,
                s.api.idle_timeout_ms
            ),
            (0, 10_000, 30_000, 60_000)
        );
        assert_eq!(
            (s.limits.reserved_fds, s.limits.lb_max_connections),
            (0, 50_000)
        );
        let args = ServeArgs {
            api_max_connections: Some(8),
            api_body_timeout_ms: Some(1500),
            lb_max_connections: Some(100),
            ..ServeArgs::default()
        };
        let s = Settings::load(&args).unwrap();
        assert_eq!(
            (
                s.api.max_connections,
                s.api.body_timeout_ms,
                s.limits.lb_max_connections
            ),
            (8, 1500, 100)
        );
        let zero = ServeArgs {
            api_header_timeout_ms: Some(0),
            ..ServeArgs::default()
        };
        let e = Settings::load(&zero).unwrap_err().to_string();
        assert!(e.contains("header_timeout_ms"), "{e}");
        let zero = ServeArgs {
            lb_max_connections: Some(0),
            ..ServeArgs::default()
        };
        assert!(Settings::load(&zero).is_err());
    }

    #[test]
    fn auth_defaults_to_builtin_with_keystones_defaults_and_checks() {
        let s = Settings::load(&ServeArgs::default()).unwrap();
        assert_eq!(s.auth.mode, "builtin");
        let b = &s.auth.builtin;
        assert_eq!(
            (
                b.token_expiration_s,
                b.lockout_failure_attempts,
                b.lockout_duration_s,
                b.max_active_keys
            ),
            (3600, 6, 1800, 3)
        );
        assert_eq!(
            b.public_url("0.0.0.0:9876".parse().unwrap()),
            "http://127.0.0.1:9876"
        );
        assert_eq!(
            b.public_url("[::]:9876".parse().unwrap()),
            "http://[::1]:9876"
        );
        let noauth = ServeArgs {
            auth: Some("noauth".into()),
            ..ServeArgs::default()
        };
        assert_eq!(Settings::load(&noauth).unwrap().auth.mode, "noauth");
        let bad = ServeArgs {
            auth: Some("ldap".into()),
            ..ServeArgs::default()
        };
        assert!(Settings::load(&bad).is_err());
        let s: Settings = toml::from_str(
            "[auth.builtin]\npublic_url = \"https://lb.example.net/\"\nmax_active_keys = 5\n",
        )
        .unwrap();
        assert_eq!(
            s.auth.builtin.public_url("127.0.0.1:1".parse().unwrap()),
            "https://lb.example.net"
        );
        assert_eq!(s.auth.builtin.max_active_keys, 5);
    }

    #[test]
    fn keystone_mode_needs_its_settings_and_says_which() {
        let dir = std::env::temp_dir().join(format!("statera-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keystone.toml");
        let load = |text: &str| {
            std::fs::write(&file, text).unwrap();
            Settings::load(&ServeArgs {
                config: Some(file.clone()),
                ..ServeArgs::default()
            })
        };
        let e = load("[auth]\nmode = \"keystone\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("[auth.keystone] auth_url is required"), "{e}");
        let e = load("[auth]\nmode = \"keystone\"\n[auth.keystone]\nauth_url = \"http://127.0.0.1:5000\"\nusername = \"statera\"\npassword = \"p\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("project_name is required"), "{e}");
        let e = load("[auth]\nmode = \"keystone\"\n[auth.keystone]\nauth_url = \"https://k:5000/v3\"\nusername = \"s\"\npassword = \"p\"\nproject_name = \"service\"\ncafile = \"/nonexistent/ca.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cafile /nonexistent/ca.pem"), "{e}");
        let s = load("[auth]\nmode = \"keystone\"\n[auth.keystone]\nauth_url = \"http://127.0.0.1:5000\"\nusername = \"s\"\npassword = \"p\"\nproject_name = \"service\"\ncache_seconds = 0\n")
            .unwrap();
        let k = s.auth.keystone.config();
        assert_eq!(
            (k.cache_seconds, k.user_domain_name.as_str()),
            (0, "Default")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn example_file_parses_with_neutron_defaults() {
        let s: Settings =
            toml::from_str(include_str!("../../../statera.example.toml")).expect("example parses");
        assert_eq!(s.auth.mode, "builtin");
        assert_eq!(s.auth.builtin.max_active_keys, 3);
        assert_eq!(s.neutron.max_fixed_ips_per_port, 5);
        let q = s.neutron.quotas;
        assert_eq!(
            (
                q.network,
                q.subnet,
                q.port,
                q.router,
                q.floatingip,
                q.security_group,
                q.security_group_rule
            ),
            (100, 100, 500, 10, 50, 10, 100)
        );
        let s: Settings = toml::from_str("[neutron.quotas]\nport = 3\n").expect("parses");
        assert_eq!((s.neutron.quotas.port, s.neutron.quotas.network), (3, 100));
    }
}
