//! The certificate references of a listener or pool request, checked before
//! its transaction: each must be readable by the caller and hold what it
//! should (`statera_service::keymanager::tls::check_refs`, Octavia's
//! messages). Reading a PKCS#12 bundle costs key-derivation work (done in
//! a child process under CPU and memory limits, `statera_tls::isolated`),
//! so checks run on the blocking pool, at most [`CONCURRENT`] at once in
//! this process and one at a time per project, never under the store's
//! write lock; a check that cannot have its turn (its project's is taken, or
//! none frees within [`WAIT`]) is 503 with `Retry-After`. A request names at
//! most [`MAX_REFS`] distinct references.

use crate::AppState;
use crate::context::RequestContext;
use crate::error::{ApiError, ApiResult};
use axum::http::StatusCode;
use statera_model::ListenerProtocol;
use statera_service::Opt;
use statera_service::keymanager::tls::{TlsRef, check_refs};
use statera_service::octavia::listeners::ListenerFields;
use statera_service::octavia::pools::PoolFields;
use std::time::Duration;
use tokio::sync::Semaphore;

pub const CONCURRENT: usize = 2;
pub const WAIT: Duration = Duration::from_secs(10);
/// The most distinct references one request may name.
pub const MAX_REFS: usize = 16;
/// This process's checks in flight (each reads bundles in a limited child).
static GATE: Semaphore = Semaphore::const_new(CONCURRENT);
/// Projects with a check in flight: one at a time each, so one tenant
/// never holds every turn.
static BUSY: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

fn busy() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "Certificate checks are busy; retry shortly.",
    );
    e.retry_after_s = Some(1);
    e
}

/// The project's turn, released when dropped.
struct Turn(String);

impl Drop for Turn {
    fn drop(&mut self) {
        let mut b = BUSY.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = b.iter().position(|p| *p == self.0) {
            b.swap_remove(i);
        }
    }
}

fn project_turn(project: &str) -> Option<Turn> {
    let mut b = BUSY.lock().unwrap_or_else(|p| p.into_inner());
    if b.iter().any(|p| p == project) {
        return None;
    }
    b.push(project.to_string());
    Some(Turn(project.to_string()))
}

/// Checks `refs` for the caller, for a load balancer of project `owner`
/// (`None`: the caller's; nothing to do without references): each distinct
/// reference once, at most [`MAX_REFS`] of them.
pub async fn check(
    app: &AppState,
    ctx: &RequestContext,
    mut refs: Vec<TlsRef>,
    owner: Option<String>,
) -> ApiResult<()> {
    let mut seen = std::collections::HashSet::new();
    refs.retain(|r| seen.insert(r.clone()));
    if refs.is_empty() {
        return Ok(());
    }
    if refs.len() > MAX_REFS {
        return Err(ApiError::validation(format!(
            "A request names at most {MAX_REFS} certificate references."
        )));
    }
    let turn = project_turn(&ctx.project_id).ok_or_else(busy)?;
    let permit = match tokio::time::timeout(WAIT, GATE.acquire()).await {
        Ok(Ok(p)) => p,
        _ => return Err(busy()),
    };
    let snap = app.store.snapshot();
    let km = app.key_manager.clone();
    let svc = ctx.service.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = (permit, turn);
        let owner = owner.unwrap_or_else(|| svc.caller.project_id.clone().unwrap_or_default());
        check_refs(&svc, &km, snap.as_ref(), &refs, &owner)
    })
    .await
    .map_err(|e| {
        tracing::error!(error = %e, "a certificate check failed");
        ApiError::internal("A certificate check failed.")
    })?
    .map_err(ApiError::from)
}

fn set(o: &Opt<String>) -> Option<String> {
    match o {
        Opt::Set(v) => Some(v.clone()),
        _ => None,
    }
}

/// The references a listener's fields set, for a listener of `protocol`.
pub fn listener_refs(protocol: ListenerProtocol, f: &ListenerFields) -> Vec<TlsRef> {
    // The protocols the service accepts references on (others are refused
    // there with Octavia's own message, before any lookup matters).
    if !matches!(
        protocol,
        ListenerProtocol::TerminatedHttps | ListenerProtocol::Prometheus
    ) {
        return Vec::new();
    }
    let mut refs: Vec<TlsRef> = set(&f.default_tls_container_ref)
        .into_iter()
        .map(TlsRef::Certificate)
        .collect();
    if let Opt::Set(sni) = &f.sni_container_refs {
        refs.extend(sni.iter().cloned().map(TlsRef::Certificate));
    }
    refs.extend(set(&f.client_ca_tls_container_ref).map(TlsRef::Ca));
    refs.extend(set(&f.client_crl_container_ref).map(TlsRef::Crl));
    refs
}

/// The references a pool's fields set.
pub fn pool_refs(f: &PoolFields) -> Vec<TlsRef> {
    let mut refs: Vec<TlsRef> = set(&f.tls_container_ref)
        .into_iter()
        .map(TlsRef::Certificate)
        .collect();
    refs.extend(set(&f.ca_tls_container_ref).map(TlsRef::Ca));
    refs.extend(set(&f.crl_container_ref).map(TlsRef::Crl));
    refs
}
