//! The certificate references of a listener or pool request, checked before
//! its transaction: each must be readable by the caller and hold what it
//! should (`statera_service::keymanager::tls::check_refs`, Octavia's
//! messages). Reading a PKCS#12 bundle costs key-derivation work (bounded
//! per input by `statera-tls`), so checks run on the blocking pool, at most
//! [`CONCURRENT`] at once deployment-wide, and never under the store's write
//! lock; a check that waits longer than [`WAIT`] for its turn is 503 with
//! `Retry-After`.

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
static GATE: Semaphore = Semaphore::const_new(CONCURRENT);

/// Checks `refs` for the caller (nothing to do without any).
pub async fn check(app: &AppState, ctx: &RequestContext, refs: Vec<TlsRef>) -> ApiResult<()> {
    if refs.is_empty() {
        return Ok(());
    }
    let permit = match tokio::time::timeout(WAIT, GATE.acquire()).await {
        Ok(Ok(p)) => p,
        _ => {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Certificate checks are busy; retry shortly.",
            );
            e.retry_after_s = Some(1);
            return Err(e);
        }
    };
    let snap = app.store.snapshot();
    let km = app.key_manager.clone();
    let svc = ctx.service.clone();
    tokio::task::spawn_blocking(move || {
        let _turn = permit;
        check_refs(&svc, &km, snap.as_ref(), &refs)
    })
    .await
    .map_err(|e| ApiError::internal(format!("a certificate check failed: {e}")))?
    .map_err(ApiError::from)
}

fn set(o: &Opt<String>) -> Option<String> {
    match o {
        Opt::Set(v) => Some(v.clone()),
        _ => None,
    }
}

/// The references a listener's fields set, for a listener of `protocol`
/// (none unless TERMINATED_HTTPS: on other protocols the service refuses
/// references with Octavia's own message).
pub fn listener_refs(protocol: ListenerProtocol, f: &ListenerFields) -> Vec<TlsRef> {
    if protocol != ListenerProtocol::TerminatedHttps {
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
