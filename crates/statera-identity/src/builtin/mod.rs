//! `builtin`: Statera is its own Keystone.
//!
//! Tokens are issued and validated here ([`Builtin`]); users, projects, roles
//! and the catalog live in the store. A token is a signed payload
//! ([`token`]) under keys kept in `<data-dir>/token-keys/` ([`keys`]), so a
//! restart keeps every token valid and `statera token-keys rotate` rotates
//! the keys as `keystone-manage fernet_rotate` does. Validation reads the
//! store's in-memory image: signature, expiry, revocations, the user and the
//! scope still enabled, and the roles computed from the current assignments
//! ([`roles`]), so a removed role or a disabled user takes effect at once.

pub mod bootstrap;
pub mod keys;
pub mod lockout;
mod revocations;
pub mod roles;
pub mod token;

use crate::{AuthError, AuthFuture, AuthMode, Authenticator, password};
use chrono::{DateTime, NaiveDateTime};
use keys::{KeyRepository, KeySet};
use statera_model::identity::{
    ApplicationCredential, Caller, DEFAULT_DOMAIN_ID, Domain, Project, Revocation, Role, User,
    new_id,
};
use statera_store::{State, Store, StoreError};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};
use token::{Payload, Scope};

/// `[auth.builtin]`.
#[derive(Debug, Clone)]
pub struct BuiltinSettings {
    /// How long a token is valid (Keystone's `[token] expiration`).
    pub token_expiration_s: u64,
    /// Failed password authentications in a row that lock a user (0 = never;
    /// Keystone's `[security_compliance] lockout_failure_attempts`).
    pub lockout_failure_attempts: u32,
    /// How long a locked user stays locked.
    pub lockout_duration_s: u64,
    /// Token keys kept by a rotation, the staged one included.
    pub max_active_keys: usize,
    /// Password checks (argon2, CPU-heavy) run at once; more wait.
    pub concurrent_password_checks: usize,
    /// Password checks and hashes allowed to wait for a turn; more are
    /// refused at once with 503 (a flood of guesses queues no further).
    pub queued_password_checks: usize,
    /// Places in the gate (running or waiting) one client may hold: an IPv4
    /// address, or an IPv6 /48; beyond it that client gets 503 while others
    /// still get their turn (0: no per-client share).
    pub password_checks_per_client: usize,
}

impl Default for BuiltinSettings {
    fn default() -> Self {
        BuiltinSettings {
            token_expiration_s: 3600,
            lockout_failure_attempts: 6,
            lockout_duration_s: 1800,
            max_active_keys: 3,
            concurrent_password_checks: 2,
            queued_password_checks: 64,
            password_checks_per_client: 16,
        }
    }
}

/// The token key repository of a data directory.
pub fn key_repository(data_dir: &std::path::Path) -> KeyRepository {
    KeyRepository::new(data_dir.join("token-keys"))
}

/// A valid token, with everything it stands for as the store has it now.
#[derive(Debug, Clone)]
pub struct TokenInfo {
    pub payload: Payload,
    pub user: Arc<User>,
    pub user_domain: Arc<Domain>,
    pub project: Option<Arc<Project>>,
    pub project_domain: Option<Arc<Domain>>,
    pub domain: Option<Arc<Domain>>,
    /// Effective roles on the scope (implied ones included), by name.
    pub roles: Vec<Arc<Role>>,
    pub application_credential: Option<Arc<ApplicationCredential>>,
}

fn micros_to_time(us: i64) -> NaiveDateTime {
    DateTime::from_timestamp_micros(us)
        .unwrap_or_default()
        .naive_utc()
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl TokenInfo {
    pub fn issued_at(&self) -> NaiveDateTime {
        micros_to_time(self.payload.issued_at)
    }

    pub fn expires_at(&self) -> NaiveDateTime {
        micros_to_time(self.payload.expires_at)
    }

    pub fn audit_ids(&self) -> Vec<String> {
        self.payload
            .audit_ids
            .iter()
            .map(token::audit_id_text)
            .collect()
    }

    pub fn methods(&self) -> Vec<&'static str> {
        token::method_names(self.payload.methods)
    }

    pub fn is_system(&self) -> bool {
        self.payload.scope == Scope::System
    }

    /// Keystone's `is_admin_project`: the token is scoped to the cloud admin
    /// project (`admin` in the default domain, as bootstrap makes it).
    pub fn is_admin_project(&self) -> bool {
        self.project
            .as_ref()
            .is_some_and(|p| p.name == "admin" && p.domain_id == DEFAULT_DOMAIN_ID)
    }

    pub fn caller(&self) -> Caller {
        Caller {
            user_id: Some(self.user.id.clone()),
            user_name: Some(self.user.name.clone()),
            user_domain_id: Some(self.user.domain_id.clone()),
            project_id: self.project.as_ref().map(|p| p.id.clone()),
            project_name: self.project.as_ref().map(|p| p.name.clone()),
            project_domain_id: self.project.as_ref().map(|p| p.domain_id.clone()),
            domain_id: self.domain.as_ref().map(|d| d.id.clone()),
            system_scope: self.is_system().then(|| "all".to_string()),
            roles: self
                .roles
                .iter()
                .map(|r| r.name.to_ascii_lowercase())
                .collect(),
            is_admin_project: self.is_admin_project(),
            audit_id: self.audit_ids().into_iter().next(),
        }
    }
}

/// A user named in an authentication request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// How the caller proves who it is (`identity.methods`; one method).
#[derive(Debug, Clone)]
pub enum Method {
    Password {
        user: UserRef,
        password: String,
    },
    Token {
        token: String,
    },
    ApplicationCredential {
        id: Option<String>,
        name: Option<String>,
        user: Option<UserRef>,
        secret: String,
    },
}

/// The scope asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeRequest {
    /// None given: the user's default project if it has a role there, else
    /// unscoped (Keystone).
    Default,
    /// `"scope": "unscoped"` (Horizon sends it).
    Unscoped,
    Project(ProjectRef),
    Domain(DomainRef),
    System,
}

#[derive(Debug, Clone)]
pub struct AuthRequest {
    pub method: Method,
    pub scope: ScopeRequest,
}

/// Why no token was issued.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// The request is malformed (400, Keystone's ValidationError).
    #[error("{0}")]
    BadRequest(String),
    /// Wrong credentials, a locked or disabled user, a scope without a role:
    /// 401 with Keystone's one message (the reason is for the log only).
    #[error("The request you have made requires authentication.")]
    Unauthorized(String),
    /// The store could not record the attempt.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Too many password checks wait already (or the wait was too long):
    /// 503, safe to retry after a moment; no attempt was counted.
    #[error("The service is busy checking passwords; retry in a moment.")]
    Busy,
}

/// The longest a password check waits for its turn before 503.
const PASSWORD_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Where a password check comes from: the client's address as the API saw
/// it, for the gate's per-client share (`None`: an in-process caller, which
/// has no share and is bounded by the gate alone).
pub type Client = Option<IpAddr>;

/// What a client's share is counted under: an IPv4 address (an IPv4-mapped
/// IPv6 one as IPv4), or an IPv6 /48 — a site's usual allocation, so that
/// one holder of many /64s is still one client.
fn share_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 80) - 1))),
        },
    }
}

/// The places of the password gate: how many are taken (waiting or
/// running), and by which client.
#[derive(Default)]
struct Gate {
    taken: std::sync::atomic::AtomicUsize,
    /// Places held per client (see [`share_key`]); a client's entry goes
    /// when its last place does, so the map is never larger than the gate.
    shares: std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>,
}

/// One place in the password gate, and the client's share it counts
/// against; freed on drop: when the check is done, or when its request went
/// away while it waited (a check already running keeps its place until its
/// work ends, as it keeps its CPU).
struct GatePlace {
    gate: Arc<Gate>,
    share: Option<IpAddr>,
}

impl Drop for GatePlace {
    fn drop(&mut self) {
        if let Some(key) = self.share {
            let mut shares = self.gate.shares.lock().expect("share lock");
            if let Some(n) = shares.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    shares.remove(&key);
                }
            }
        }
        self.gate
            .taken
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

struct LoadedKeys {
    keys: Arc<KeySet>,
    mtime: Option<SystemTime>,
    checked: Instant,
}

/// The built-in Keystone's authenticator and token issuer.
pub struct Builtin {
    store: Arc<Store>,
    repo: KeyRepository,
    keys: RwLock<LoadedKeys>,
    settings: BuiltinSettings,
    hashing: Arc<tokio::sync::Semaphore>,
    /// Password checks and hashes in the gate (waiting or running).
    gate: Arc<Gate>,
    attempts: Arc<lockout::Attempts>,
    revocations: revocations::Revocations,
    /// Revocations per token user in the current minute: (minute, count).
    revokes: std::sync::Mutex<std::collections::HashMap<String, (i64, u32)>>,
    /// When expired revocations were last pruned (seconds since the epoch).
    pruned_at: std::sync::atomic::AtomicI64,
}

/// Write one failed authentication of `user_id` (at `failed_at`) to its row.
/// `counted`, a retry's guard: the write is skipped once a right password or
/// an unlock cleared the failure (checked inside the transaction), and once
/// the failure would no longer count.
async fn write_failure(
    store: &Store,
    user_id: &str,
    failed_at: statera_model::Timestamp,
    duration: i64,
    limit: u32,
    counted: Option<&lockout::Unrecorded>,
) -> Result<(), StoreError> {
    store
        .write(|txn| {
            if counted.is_some_and(|c| c.cleared()) {
                return Ok(());
            }
            let Some(user) = txn.state().users.get(&user_id.to_string()).cloned() else {
                return Ok(());
            };
            let now = statera_model::now();
            if (now - failed_at).num_seconds() >= duration {
                return Ok(());
            }
            let mut user = (*user).clone();
            let stale = user
                .last_failed_auth_at
                .is_none_or(|t| (now - t).num_seconds() >= duration);
            user.failed_auth_count = if stale {
                1
            } else {
                user.failed_auth_count.saturating_add(1)
            };
            // When it failed, not when it was written: a late write does not
            // lengthen the lockout.
            user.last_failed_auth_at = Some(match user.last_failed_auth_at {
                Some(t) if !stale && t > failed_at => t,
                _ => failed_at,
            });
            if user.failed_auth_count == limit {
                tracing::warn!(user_id = %user.id, "user locked after {limit} failed authentications");
            }
            txn.put(user)
        })
        .await
}

/// Clock skew tolerated on a token's times, in seconds.
pub const CLOCK_SKEW_S: i64 = 60;

/// How often the key repository is looked at for a rotation (its mtime).
const KEY_RECHECK: Duration = Duration::from_secs(1);

fn dir_mtime(repo: &KeyRepository) -> Option<SystemTime> {
    std::fs::metadata(repo.dir())
        .and_then(|m| m.modified())
        .ok()
}

impl Builtin {
    /// The authenticator over `store`, with the keys of `repo` (created if
    /// the repository is empty).
    pub fn new(
        store: Arc<Store>,
        repo: KeyRepository,
        settings: BuiltinSettings,
    ) -> Result<Builtin, keys::KeyError> {
        repo.setup()?;
        let keys = repo.load()?;
        let mtime = dir_mtime(&repo);
        Ok(Builtin {
            store,
            keys: RwLock::new(LoadedKeys {
                keys: Arc::new(keys),
                mtime,
                checked: Instant::now(),
            }),
            repo,
            hashing: Arc::new(tokio::sync::Semaphore::new(
                settings.concurrent_password_checks.max(1),
            )),
            gate: Default::default(),
            attempts: Arc::new(lockout::Attempts::new(
                settings.lockout_failure_attempts,
                settings.lockout_duration_s,
            )),
            revocations: revocations::Revocations::new(),
            pruned_at: std::sync::atomic::AtomicI64::new(0),
            revokes: Default::default(),
            settings,
        })
    }

    pub fn settings(&self) -> &BuiltinSettings {
        &self.settings
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The current keys; re-read when the repository changed (a rotation by
    /// `statera token-keys rotate` while the server runs).
    fn keys(&self) -> Arc<KeySet> {
        {
            let k = self.keys.read().expect("key lock");
            if k.checked.elapsed() < KEY_RECHECK {
                return k.keys.clone();
            }
        }
        let mut k = self.keys.write().expect("key lock");
        if k.checked.elapsed() >= KEY_RECHECK {
            k.checked = Instant::now();
            let mtime = dir_mtime(&self.repo);
            if mtime != k.mtime {
                match self.repo.load() {
                    Ok(keys) => {
                        tracing::info!(keys = ?keys.numbers(), "token keys reloaded");
                        k.keys = Arc::new(keys);
                        k.mtime = mtime;
                    }
                    Err(e) => tracing::warn!(error = %e, "token keys not reloaded"),
                }
            }
        }
        k.keys.clone()
    }

    /// The token `token` stands for, if it is valid now.
    pub fn validate(&self, token: &str) -> Result<TokenInfo, String> {
        let keys = self.keys();
        let payload = token::open(keys.all(), token)?;
        let now = now_micros();
        if now >= payload.expires_at {
            return Err("token expired".into());
        }
        // What this server never issues (a forged token, a leaked key): one
        // issued in the future would escape every revocation, one living
        // longer than `token_expiration_s` would outlast them.
        let skew = CLOCK_SKEW_S * 1_000_000;
        if payload.issued_at > now + skew {
            return Err("token issued in the future".into());
        }
        let lifetime = (self.settings.token_expiration_s as i64).saturating_mul(1_000_000);
        if payload.expires_at.saturating_sub(payload.issued_at) > lifetime.saturating_add(skew) {
            return Err("token lifetime longer than token_expiration_s".into());
        }
        let state = self.store.snapshot();
        let info = resolve(&state, payload)?;
        if let Some(id) = self.revocations.revoked_by(&state, &info) {
            return Err(format!("token revoked ({id})"));
        }
        Ok(info)
    }

    /// Revocation rows compared by validations so far (a hash lookup counts
    /// one): the work the revocation check does, for tests and metrics.
    pub fn revocation_comparisons(&self) -> u64 {
        self.revocations.comparisons()
    }

    /// Sign `payload` with the primary key.
    fn seal(&self, payload: &Payload) -> String {
        token::seal(self.keys().primary(), payload)
    }

    /// Run argon2 work (`f`) on the blocking pool through the one bounded
    /// gate every password check and hash passes: at most
    /// `concurrent_password_checks` run at once, at most
    /// `queued_password_checks` wait (each at most 10 s), and one client
    /// holds at most `password_checks_per_client` of those places, so that a
    /// flood from one address cannot take every turn; beyond that
    /// [`IssueError::Busy`] at once.
    async fn argon2<T: Send + 'static>(
        &self,
        client: Client,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, IssueError> {
        use std::sync::atomic::Ordering;
        let running = self.settings.concurrent_password_checks.max(1);
        let room = running + self.settings.queued_password_checks;
        if self.gate.taken.fetch_add(1, Ordering::AcqRel) >= room {
            self.gate.taken.fetch_sub(1, Ordering::AcqRel);
            return Err(IssueError::Busy);
        }
        let mut place = GatePlace {
            gate: self.gate.clone(),
            share: None,
        };
        let share = self.settings.password_checks_per_client;
        if let Some(ip) = client.filter(|_| share > 0) {
            let key = share_key(ip);
            let mut shares = self.gate.shares.lock().expect("share lock");
            let held = shares.entry(key).or_insert(0);
            if *held >= share {
                drop(shares);
                tracing::debug!(client = %key, "a client holds its share of password checks: 503");
                return Err(IssueError::Busy);
            }
            *held += 1;
            place.share = Some(key);
        }
        let permit =
            tokio::time::timeout(PASSWORD_QUEUE_WAIT, self.hashing.clone().acquire_owned())
                .await
                .map_err(|_| IssueError::Busy)?
                .expect("the password semaphore is never closed");
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let _place = place;
            f()
        })
        .await
        .map_err(|_| IssueError::Busy)
    }

    /// Verify `secret` against `phc` (`None`: against a decoy, the same
    /// work as a real check, for the same time, and false).
    async fn verify(
        &self,
        client: Client,
        secret: String,
        phc: Option<String>,
    ) -> Result<bool, IssueError> {
        self.argon2(client, move || match phc {
            Some(phc) => password::verify(&secret, &phc),
            None => {
                password::verify(&secret, password::decoy());
                false
            }
        })
        .await
    }

    /// A PHC hash of a new password or secret, through the same gate as the
    /// checks (the admin API's user and application-credential writes).
    pub async fn hash_secret(&self, client: Client, secret: String) -> Result<String, IssueError> {
        self.argon2(client, move || password::hash(&secret)).await
    }

    /// Check `user`'s password as authentication does: lockout (a locked
    /// user is refused after the same work, a wrong password counts a
    /// failure, a right one clears them), the decoy for an unknown user
    /// (`None`). `POST /v3/auth/tokens` and the password change both come
    /// here, so neither is a way round the other's lockout.
    pub async fn check_password(
        &self,
        user: Option<&User>,
        password: String,
        client: Client,
    ) -> Result<(), IssueError> {
        let unauthorized = |why: String| IssueError::Unauthorized(why);
        let Some(found) = user else {
            self.verify(client, password, None).await?;
            // The name typed is not logged: it may be a password typed in
            // the wrong field.
            return Err(unauthorized("unknown user".into()));
        };
        // A slot among the user's attempts in flight, taken before the check
        // and held until its failure is written (lockout holds under
        // concurrent guesses; see `lockout`).
        let reservation = if lockout::ignores_lockout(found) {
            None
        } else {
            // Bounded like the gate: a queue of one user's guesses behind
            // a full gate answers 503, it does not hold connections.
            let reserved = tokio::time::timeout(
                PASSWORD_QUEUE_WAIT,
                self.attempts.reserve(&self.store, &found.id),
            )
            .await
            .map_err(|_| IssueError::Busy)?;
            match reserved {
                Ok(r) => r,
                Err(lockout::Refused::Locked) => {
                    self.verify(client, password, None).await?;
                    return Err(unauthorized(format!("user {} is locked", found.id)));
                }
            }
        };
        let Some(phc) = found.password_hash.clone() else {
            self.verify(client, password, None).await?;
            drop(reservation);
            return Err(unauthorized(format!("user {} has no password", found.id)));
        };
        let ok = match self.verify(client, password, Some(phc)).await {
            Ok(ok) => ok,
            Err(e) => {
                // Not checked: nothing to count.
                drop(reservation);
                return Err(e);
            }
        };
        if !ok {
            self.record_failure(found.id.clone(), reservation);
            return Err(unauthorized(format!(
                "wrong password for user {}",
                found.id
            )));
        }
        self.attempts.clear(&found.id);
        self.clear_failures(found).await?;
        drop(reservation);
        Ok(())
    }

    /// Count a failed password for `user_id`, after the answer (so that a
    /// wrong password answers in the time an unknown user does); the
    /// attempt's reservation is released once the failure is written.
    fn record_failure(&self, user_id: String, reservation: Option<lockout::Reservation>) {
        let Some(reservation) = reservation else {
            return;
        };
        let store = self.store.clone();
        let duration = self.settings.lockout_duration_s as i64;
        let limit = self.settings.lockout_failure_attempts;
        let failed_at = statera_model::now();
        tokio::spawn(async move {
            let write =
                |counted| write_failure(&store, &user_id, failed_at, duration, limit, counted);
            let Err(e) = write(None).await else {
                drop(reservation);
                return;
            };
            // Refused (a full disk): the failure still counts, in memory,
            // while the write is retried; a guess is never free.
            tracing::warn!(error = %e, user_id = %user_id, "a failed authentication was not recorded: counted in memory, retrying");
            let counted = reservation.into_unrecorded();
            let until = Instant::now() + Duration::from_secs(duration.max(0) as u64);
            let mut pause = Duration::from_millis(250);
            loop {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() || counted.cleared() {
                    return;
                }
                tokio::time::sleep(pause.min(left)).await;
                if Instant::now() >= until {
                    return;
                }
                match write(Some(&counted)).await {
                    Ok(()) => {
                        tracing::info!(user_id = %user_id, "a failed authentication was recorded on retry");
                        return;
                    }
                    Err(_) => pause = (pause * 2).min(Duration::from_secs(30)),
                }
            }
        });
    }

    /// An administrator unlocked `user_id` or set its password: failures not
    /// yet recorded (a full disk) are forgotten too, as the recorded ones.
    pub fn forget_failures(&self, user_id: &str) {
        self.attempts.clear(user_id);
    }

    async fn clear_failures(&self, user: &User) -> Result<(), StoreError> {
        // The row as of now (failures may have been written while this
        // attempt waited its turn); no write when there is nothing to clear.
        let id = user.id.clone();
        if self
            .store
            .snapshot()
            .users
            .get(&id)
            .is_none_or(|u| u.failed_auth_count == 0)
        {
            return Ok(());
        }
        self.store
            .write(|txn| {
                if let Some(u) = txn.state().users.get(&id).cloned() {
                    let mut u = (*u).clone();
                    u.failed_auth_count = 0;
                    u.last_failed_auth_at = None;
                    txn.put(u)?;
                }
                Ok(())
            })
            .await
    }

    /// `POST /v3/auth/tokens`: a new token and what it stands for.
    pub async fn issue(&self, req: AuthRequest) -> Result<(String, TokenInfo), IssueError> {
        self.issue_for(None, req).await
    }

    /// [`Builtin::issue`] for a request from `client` (its password check
    /// counts against that client's share of the gate).
    pub async fn issue_for(
        &self,
        client: Client,
        req: AuthRequest,
    ) -> Result<(String, TokenInfo), IssueError> {
        let now = now_micros();
        let expires = now + (self.settings.token_expiration_s as i64).saturating_mul(1_000_000);
        let state = self.store.snapshot();
        let unauthorized = |why: String| IssueError::Unauthorized(why);
        let (payload_base, scope_req) = match req.method {
            Method::Password { user, password } => {
                let found = find_user(&state, &user);
                self.check_password(found.as_deref(), password, client)
                    .await?;
                let found = found.expect("a checked password has a user");
                if found
                    .password_expires_at
                    .is_some_and(|t| t.and_utc().timestamp_micros() <= now)
                {
                    return Err(unauthorized(format!(
                        "the password of user {} has expired",
                        found.id
                    )));
                }
                let scope = req.scope;
                (
                    Payload {
                        methods: token::METHOD_PASSWORD,
                        user_id: found.id.clone(),
                        scope: Scope::Unscoped,
                        issued_at: now,
                        expires_at: expires,
                        audit_ids: vec![token::new_audit_id()],
                        application_credential_id: None,
                    },
                    scope,
                )
            }
            Method::Token { token } => {
                let old = self.validate(&token).map_err(unauthorized)?;
                if old.application_credential.is_some() {
                    return Err(unauthorized(
                        "a token from an application credential cannot be rescoped".into(),
                    ));
                }
                let chain = *old
                    .payload
                    .audit_ids
                    .last()
                    .expect("a token has an audit id");
                (
                    Payload {
                        methods: old.payload.methods | token::METHOD_TOKEN,
                        user_id: old.user.id.clone(),
                        scope: Scope::Unscoped,
                        issued_at: now,
                        // A rescoped token lives no longer than its parent.
                        expires_at: old.payload.expires_at.min(expires),
                        audit_ids: vec![token::new_audit_id(), chain],
                        application_credential_id: None,
                    },
                    req.scope,
                )
            }
            Method::ApplicationCredential {
                id,
                name,
                user,
                secret,
            } => {
                let cred = match (&id, &name) {
                    (Some(id), _) => state.application_credentials.get(id).cloned(),
                    (None, Some(name)) => {
                        let user = user.as_ref().ok_or_else(|| {
                            IssueError::BadRequest(
                                "Expecting to find user in application_credential.".into(),
                            )
                        })?;
                        find_user(&state, user).and_then(|u| {
                            state
                                .application_credentials
                                .iter()
                                .find(|c| c.user_id == u.id && c.name == *name)
                                .cloned()
                        })
                    }
                    (None, None) => {
                        return Err(IssueError::BadRequest(
                            "Expecting to find id or name in application_credential.".into(),
                        ));
                    }
                };
                let Some(cred) = cred else {
                    self.verify(client, secret, None).await?;
                    return Err(unauthorized("unknown application credential".into()));
                };
                if !self
                    .verify(client, secret, Some(cred.secret_hash.clone()))
                    .await?
                {
                    return Err(unauthorized(format!(
                        "wrong secret for application credential {}",
                        cred.id
                    )));
                }
                if cred
                    .expires_at
                    .is_some_and(|t| t.and_utc().timestamp_micros() <= now)
                {
                    return Err(unauthorized(format!(
                        "application credential {} has expired",
                        cred.id
                    )));
                }
                let explicit = match &req.scope {
                    ScopeRequest::Default => None,
                    ScopeRequest::Project(p) => Some(p),
                    _ => {
                        return Err(unauthorized(
                            "an application credential is scoped to its project only".into(),
                        ));
                    }
                };
                if let Some(p) = explicit
                    && find_project(&state, p).map(|p| p.id.clone())
                        != Some(cred.project_id.clone())
                {
                    return Err(unauthorized(
                        "an application credential is scoped to its project only".into(),
                    ));
                }
                (
                    Payload {
                        methods: token::METHOD_APPLICATION_CREDENTIAL,
                        user_id: cred.user_id.clone(),
                        scope: Scope::Project(cred.project_id.clone()),
                        issued_at: now,
                        expires_at: cred
                            .expires_at
                            .map(|t| t.and_utc().timestamp_micros().min(expires))
                            .unwrap_or(expires),
                        audit_ids: vec![token::new_audit_id()],
                        application_credential_id: Some(cred.id.clone()),
                    },
                    ScopeRequest::Default,
                )
            }
        };
        let mut payload = payload_base;
        if payload.application_credential_id.is_none() {
            payload.scope = match scope_req {
                ScopeRequest::Unscoped => Scope::Unscoped,
                ScopeRequest::System => Scope::System,
                ScopeRequest::Project(p) => Scope::Project(
                    find_project(&state, &p)
                        .ok_or_else(|| unauthorized(format!("no project {p:?}")))?
                        .id
                        .clone(),
                ),
                ScopeRequest::Domain(d) => Scope::Domain(
                    find_domain(&state, &d)
                        .ok_or_else(|| unauthorized(format!("no domain {d:?}")))?
                        .id
                        .clone(),
                ),
                ScopeRequest::Default => {
                    // The default project when the user has a role there.
                    let default = state
                        .users
                        .get(&payload.user_id)
                        .and_then(|u| u.default_project_id.clone());
                    match default {
                        Some(p)
                            if resolve(
                                &state,
                                Payload {
                                    scope: Scope::Project(p.clone()),
                                    ..payload.clone()
                                },
                            )
                            .is_ok() =>
                        {
                            Scope::Project(p)
                        }
                        _ => Scope::Unscoped,
                    }
                }
            };
        }
        let info = resolve(&state, payload).map_err(unauthorized)?;
        let text = self.seal(&info.payload);
        Ok((text, info))
    }

    /// Revoke `info`'s token and every token rescoped from it (`DELETE
    /// /v3/auth/tokens`); expired revocations are dropped on the way, at
    /// most once per [`PRUNE_EVERY_S`] (not a scan of the table per write).
    pub async fn revoke(&self, info: &TokenInfo) -> Result<(), RevokeError> {
        self.count_revocation(&info.user.id)?;
        let audit = info.audit_ids().into_iter().next();
        let row = Revocation {
            id: new_id(),
            audit_id: audit,
            user_id: None,
            project_id: None,
            domain_id: None,
            application_credential_id: None,
            issued_before: micros_to_time(now_micros()),
            expires_at: info.expires_at(),
        };
        let now_s = chrono::Utc::now().timestamp();
        let last = self.pruned_at.load(std::sync::atomic::Ordering::Relaxed);
        let prune = now_s - last >= PRUNE_EVERY_S
            && self
                .pruned_at
                .compare_exchange(
                    last,
                    now_s,
                    std::sync::atomic::Ordering::Relaxed,
                    std::sync::atomic::Ordering::Relaxed,
                )
                .is_ok();
        self.store
            .write(|txn| {
                if prune {
                    let now = statera_model::now();
                    let expired: Vec<String> = txn
                        .state()
                        .revocations
                        .iter()
                        .filter(|r| r.expires_at < now)
                        .map(|r| r.id.clone())
                        .collect();
                    for id in expired {
                        txn.delete::<Revocation>(&id);
                    }
                }
                txn.put(row)
            })
            .await?;
        Ok(())
    }

    /// Count a revocation of `user_id`'s tokens; refused past
    /// [`MAX_REVOCATIONS_PER_MINUTE`] in the current minute (a user can mint
    /// tokens by rescoping without a password check, so revocation rows
    /// would otherwise grow as fast as it can send requests).
    fn count_revocation(&self, user_id: &str) -> Result<(), RevokeError> {
        let now = chrono::Utc::now().timestamp();
        let minute = now / 60;
        let mut counts = self.revokes.lock().expect("revocation counts lock");
        if counts.len() > 10_000 {
            counts.retain(|_, (m, _)| *m == minute);
        }
        let e = counts.entry(user_id.to_string()).or_insert((minute, 0));
        if e.0 != minute {
            *e = (minute, 0);
        }
        if e.1 >= MAX_REVOCATIONS_PER_MINUTE {
            return Err(RevokeError::TooMany {
                retry_after_s: (60 - now % 60).max(1) as u64,
            });
        }
        e.1 += 1;
        Ok(())
    }
}

/// Revocations of one user's tokens accepted per minute.
pub const MAX_REVOCATIONS_PER_MINUTE: u32 = 60;

/// Why a token was not revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeError {
    /// Too many revocations of this user's tokens this minute (429; safe to
    /// retry after `retry_after_s`).
    #[error("Too many token revocations for this user; retry in {retry_after_s} s.")]
    TooMany { retry_after_s: u64 },
    /// The store could not write the revocation (nothing written).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How often `revoke` prunes expired revocations, in seconds.
pub const PRUNE_EVERY_S: i64 = 60;

fn find_domain(state: &State, d: &DomainRef) -> Option<Arc<Domain>> {
    match d {
        DomainRef::Id(id) => state.domains.get(id).cloned(),
        DomainRef::Name(name) => state.domains.iter().find(|x| x.name == *name).cloned(),
    }
}

fn find_user(state: &State, u: &UserRef) -> Option<Arc<User>> {
    match u {
        UserRef::Id(id) => state.users.get(id).cloned(),
        UserRef::Name { name, domain } => {
            let domain = find_domain(state, domain)?;
            state
                .users
                .iter()
                .find(|x| x.domain_id == domain.id && x.name == *name)
                .cloned()
        }
    }
}

fn find_project(state: &State, p: &ProjectRef) -> Option<Arc<Project>> {
    match p {
        ProjectRef::Id(id) => state.projects.get(id).cloned(),
        ProjectRef::Name { name, domain } => {
            let domain = find_domain(state, domain)?;
            state
                .projects
                .iter()
                .find(|x| x.domain_id == domain.id && x.name == *name)
                .cloned()
        }
    }
}

fn enabled_domain(state: &State, id: &str) -> Result<Arc<Domain>, String> {
    let d = state
        .domains
        .get(&id.to_string())
        .cloned()
        .ok_or_else(|| format!("domain {id} not found"))?;
    if !d.enabled {
        return Err(format!("domain {id} is disabled"));
    }
    Ok(d)
}

/// What `payload` stands for in `state`, if its user and scope are still
/// there, enabled, and it has a role on the scope.
fn resolve(state: &State, payload: Payload) -> Result<TokenInfo, String> {
    let user = state
        .users
        .get(&payload.user_id)
        .cloned()
        .ok_or_else(|| format!("user {} not found", payload.user_id))?;
    if !user.enabled {
        return Err(format!("user {} is disabled", user.id));
    }
    let user_domain = enabled_domain(state, &user.domain_id)?;
    let (mut project, mut project_domain, mut domain) = (None, None, None);
    let mut roles = match &payload.scope {
        Scope::Unscoped => Vec::new(),
        Scope::Project(id) => {
            let p = state
                .projects
                .get(id)
                .cloned()
                .ok_or_else(|| format!("project {id} not found"))?;
            if !p.enabled {
                return Err(format!("project {id} is disabled"));
            }
            project_domain = Some(enabled_domain(state, &p.domain_id)?);
            project = Some(p);
            roles::effective(state, &user.id, roles::Target::Project(id))
        }
        Scope::Domain(id) => {
            domain = Some(enabled_domain(state, id)?);
            roles::effective(state, &user.id, roles::Target::Domain(id))
        }
        Scope::System => roles::effective(state, &user.id, roles::Target::System),
    };
    let mut application_credential = None;
    if let Some(cred_id) = &payload.application_credential_id {
        let cred = state
            .application_credentials
            .get(cred_id)
            .cloned()
            .ok_or_else(|| format!("application credential {cred_id} not found"))?;
        if cred.user_id != user.id || payload.scope != Scope::Project(cred.project_id.clone()) {
            return Err(format!(
                "application credential {cred_id} is not this token's"
            ));
        }
        if cred
            .expires_at
            .is_some_and(|t| t.and_utc().timestamp_micros() <= now_micros())
        {
            return Err(format!("application credential {cred_id} has expired"));
        }
        // Only the delegated roles (and what they imply) that the user still has.
        let delegated = roles::with_implied(state, cred.role_ids.iter().cloned());
        roles.retain(|r| delegated.iter().any(|d| d.id == r.id));
        application_credential = Some(cred);
    }
    if payload.scope != Scope::Unscoped && roles.is_empty() {
        return Err(format!(
            "user {} has no role on the token's scope {:?}",
            user.id, payload.scope
        ));
    }
    Ok(TokenInfo {
        payload,
        user,
        user_domain,
        project,
        project_domain,
        domain,
        roles,
        application_credential,
    })
}

impl Authenticator for Builtin {
    fn mode(&self) -> AuthMode {
        AuthMode::Builtin
    }

    fn authenticate<'a>(&'a self, headers: &'a http::HeaderMap) -> AuthFuture<'a> {
        // The header as sent (not trimmed): only a canonical token passes.
        let token = headers
            .get("x-auth-token")
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty());
        let result = match token {
            None => Err(AuthError::Missing),
            Some(t) => self
                .validate(t)
                .map(|info| info.caller())
                .map_err(AuthError::Invalid),
        };
        Box::pin(async move { result })
    }

    fn identity_uri(&self, base_url: &str) -> Option<String> {
        Some(format!("{base_url}/v3"))
    }

    fn builtin(&self) -> Option<&Builtin> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use super::share_key;

    #[test]
    fn a_share_is_an_ipv4_address_or_an_ipv6_64() {
        let key = |s: &str| share_key(s.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        // The same host over an IPv4-mapped address is the same client.
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        // A /48 is one client: a site holds its many /64s.
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:2:2::1"));
    }
}
