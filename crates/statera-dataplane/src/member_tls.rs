//! Pools over TLS (`tls_enabled`): a pool's TLS settings made into the
//! rustls client the proxy and the pool's health probes use toward its
//! members ([`MemberTls`], built once per change of those settings).
//!
//! The rules follow the `server` line the HAProxy provider renders for the
//! same pool (`statera-haproxy`'s `render/tls.rs`: `ssl verify required
//! ca-file … crl-file … crt … ssl-min-ver … ciphers … alpn …`):
//!
//! - **Verification.** Without `ca_tls_container_ref` the member's
//!   certificate is not verified (`verify none`, Octavia's behaviour:
//!   members often serve self-signed certificates); handshake signatures
//!   are still checked. With one, the member's chain must lead to that CA,
//!   and with `crl_container_ref` no certificate of it may be revoked (an
//!   unknown status and an expired CRL refused, as for client certificates
//!   on listeners). The certificate's names are not matched against
//!   anything: members are addressed by IP, and HAProxy checks a name only
//!   with `verifyhost` or `sni`, which Octavia does not render. A member
//!   that fails verification fails the connect, as a refused one does.
//! - **No SNI** is sent (the server name is the member's IP address).
//! - **Client certificate**: `tls_container_ref`, shown to members that ask.
//! - **Versions and ciphers** as for listeners (`tls.rs`): a range of which
//!   TLS 1.2 and 1.3 are spoken; OpenSSL cipher names for TLS 1.2.
//! - **ALPN**: `http/1.1` and `http/1.0` as listed (the proxy speaks
//!   HTTP/1.1 to members); a list naming only `h2` is refused, since
//!   offering nothing would let the member expect HTTP/2. No list: no ALPN.
//! - **Sessions** resume: the client keeps rustls' small in-memory session
//!   cache per pool, and an unchanged pool keeps its `MemberTls` over a
//!   configuration change.

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, SignatureScheme};
use statera_config::PoolTls;
use statera_model::AlpnProtocol;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// A pool's TLS toward its members, ready to connect.
#[derive(Debug)]
pub struct MemberTls {
    config: Arc<ClientConfig>,
    /// What it was built from: an unchanged pool keeps its `MemberTls` (and
    /// its session cache) over a configuration change.
    pub source: PoolTls,
}

impl MemberTls {
    pub fn build(tls: &PoolTls) -> Result<MemberTls, String> {
        if let Some(why) = &tls.unreadable {
            return Err(why.clone());
        }
        let versions = crate::tls::versions(&tls.versions)?;
        let cipher_suites = crate::tls::cipher_suites(tls.ciphers.as_deref(), &versions)?;
        let provider = Arc::new(CryptoProvider {
            cipher_suites,
            ..rustls::crypto::ring::default_provider()
        });
        let verifier: Arc<dyn ServerCertVerifier> = match tls.ca_pem.as_deref() {
            None => Arc::new(AnyCertificate(provider.clone())),
            Some(ca) => {
                let mut builder = WebPkiServerVerifier::builder_with_provider(
                    crate::tls::roots(ca, "CA")?,
                    provider.clone(),
                );
                if let Some(crl) = tls.crl_pem.as_deref() {
                    builder = builder
                        .with_crls(crate::tls::crls(crl, "CRL")?)
                        .enforce_revocation_expiration();
                }
                let verifier = builder
                    .build()
                    .map_err(|e| format!("member verification: {e}"))?;
                Arc::new(AnyName(verifier))
            }
        };
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&versions)
            .map_err(|e| format!("TLS versions: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match &tls.client_certificate {
            Some(cert) => builder
                .with_client_cert_resolver(Arc::new(ClientCert(crate::tls::certified_key(cert)?))),
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = tls
            .alpn_protocols
            .iter()
            .filter_map(|p| match p {
                AlpnProtocol::H2 => None,
                AlpnProtocol::Http11 => Some(b"http/1.1".to_vec()),
                AlpnProtocol::Http10 => Some(b"http/1.0".to_vec()),
            })
            .collect();
        if config.alpn_protocols.is_empty() && !tls.alpn_protocols.is_empty() {
            return Err(
                "alpn_protocols name only h2; this data plane speaks HTTP/1.1 to members".into(),
            );
        }
        Ok(MemberTls {
            config: Arc::new(config),
            source: tls.clone(),
        })
    }

    /// The TLS handshake with the member at `member` over `tcp`.
    pub async fn connect(
        &self,
        tcp: TcpStream,
        member: IpAddr,
    ) -> io::Result<TlsStream<TcpStream>> {
        TlsConnector::from(self.config.clone())
            .connect(ServerName::IpAddress(member.into()), tcp)
            .await
    }
}

/// Shows the pool's client certificate to a member that asks for one.
#[derive(Debug)]
struct ClientCert(Arc<CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The pool's CA verifier, without the name check (see the module notes).
/// webpki checks the name last, after the chain, its validity and its
/// revocation, so a name mismatch is the only error let through.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (`verify none`); checks handshake signatures.
#[derive(Debug)]
pub(crate) struct AnyCertificate(pub(crate) Arc<CryptoProvider>);

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
