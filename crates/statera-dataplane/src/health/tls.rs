//! `TLS-HELLO`: a TLS handshake completes; and the TLS client shared by the
//! HTTPS probe.
//!
//! Certificates are not verified, as Octavia's HAProxy provider checks with
//! `verify none`: a probe asks whether the member serves, not whether it can
//! be trusted (the members' certificates are often self-signed). Handshake
//! signatures are still checked, with the one crypto provider of the build
//! (ring).

use super::{Probe, within};
use crate::sockets::Netns;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use statera_config::BoxFuture;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

#[derive(Debug)]
pub struct TlsHelloProbe;

impl Probe for TlsHelloProbe {
    fn check(
        &self,
        target: SocketAddr,
        netns: Netns,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(within(timeout, async move {
            let mut stream = handshake(&netns, target, None).await?;
            // A polite close_notify; the verdict is already in.
            let _ = stream.shutdown().await;
            Ok(())
        }))
    }
}

/// Connects to `target` and completes a TLS handshake, naming `sni` when
/// given (no SNI otherwise: the server name is the target's IP address).
pub async fn handshake(
    netns: &Netns,
    target: SocketAddr,
    sni: Option<&str>,
) -> Result<TlsStream<TcpStream>, String> {
    let tcp = crate::sockets::connect_tcp(netns, target)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    let name = match sni.map(|s| ServerName::try_from(s.to_string())) {
        Some(Ok(name)) => name,
        _ => ServerName::IpAddress(target.ip().into()),
    };
    TlsConnector::from(client_config())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// The probes' TLS client, built once.
fn client_config() -> Arc<ClientConfig> {
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

/// Accepts any certificate (`verify none`); checks handshake signatures.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
