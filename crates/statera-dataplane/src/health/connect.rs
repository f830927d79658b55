//! How a probe reaches its target: plain TCP, TLS accepting any certificate
//! (HAProxy's `check-ssl verify none`), or the pool's own TLS for a pool over
//! TLS ([`ProbeTls`]); and the probe of `TCP` and `TLS-HELLO` monitors,
//! which succeeds once that connection is made (TCP established, TLS
//! handshake complete).
//!
//! Without pool TLS, certificates are not verified, as Octavia's HAProxy
//! provider checks: a probe asks whether the member serves, not whether it
//! can be trusted (the members' certificates are often self-signed).
//! Handshake signatures are still checked, with the one crypto provider of
//! the build (ring). With pool TLS, the probe verifies and authenticates as
//! the pool's traffic does (`member_tls.rs`), so a member the proxy could
//! not use is not reported up.

use super::{Probe, within};
use crate::member_tls::{AnyCertificate, MemberTls};
use crate::sockets::Netns;
use crate::stream::{MaybeTls, MemberStream};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use statera_config::BoxFuture;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio_rustls::TlsConnector;

/// How a probe connects (part of the probe key).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeTls {
    Clear,
    /// TLS, any certificate accepted, naming `sni` when given (no SNI
    /// otherwise: the server name is the target's IP address).
    AnyCert {
        sni: Option<String>,
    },
    /// The pool's TLS toward its members.
    Pool(PoolTlsRef),
}

/// A pool's [`MemberTls`] as part of a probe key: the same settings are the
/// same `Arc` (an unchanged pool keeps its `MemberTls` over applies), so
/// keys compare by pointer.
#[derive(Debug, Clone)]
pub struct PoolTlsRef(pub Arc<MemberTls>);

impl PartialEq for PoolTlsRef {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PoolTlsRef {}

impl Hash for PoolTlsRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.0).hash(state)
    }
}

/// `TCP` and `TLS-HELLO`: the connection is made.
#[derive(Debug)]
pub struct ConnectProbe(pub ProbeTls);

impl Probe for ConnectProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(within(timeout, async move {
            let mut stream = connect(&netns, target, &self.0).await?;
            if let MaybeTls::Tls(_) = stream {
                // A polite close_notify; the verdict is already in.
                let _ = stream.shutdown().await;
            }
            Ok(())
        }))
    }
}

/// Connects to `target` as `tls` says.
pub async fn connect(
    netns: &Netns,
    target: SocketAddr,
    tls: &ProbeTls,
) -> Result<MemberStream, String> {
    let tcp = crate::sockets::connect_tcp(netns, target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let stream = match tls {
        ProbeTls::Clear => return Ok(MaybeTls::Plain(tcp)),
        ProbeTls::AnyCert { sni } => {
            let name = match sni.as_ref().map(|s| ServerName::try_from(s.clone())) {
                Some(Ok(name)) => name,
                _ => ServerName::IpAddress(target.ip().into()),
            };
            TlsConnector::from(any_certificate())
                .connect(name, tcp)
                .await
        }
        ProbeTls::Pool(pool) => pool.0.connect(tcp, target.ip()).await,
    };
    stream
        .map(|s| MaybeTls::Tls(Box::new(s)))
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// The TLS client of probes that verify nothing, built once.
fn any_certificate() -> Arc<ClientConfig> {
    static CONFIG: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}
