//! TERMINATED_HTTPS on the native data plane: certificates made here with
//! rcgen (a CA, a default and a wildcard server certificate, a client
//! certificate and a revoked one in a CRL), clients speaking rustls.

use crate::support::*;
use crate::support_http::{HttpClient, HttpMember};
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use statera_config::{ClientCertHeaders, ListenerTls, PrivateKeyPem, TlsCertificate};
use statera_model::{ClientAuthentication, ListenerProtocol};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub struct Pki {
    pub ca_pem: String,
    pub ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate signed by the test CA, as the controller hands it over.
pub struct Leaf {
    pub chain_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
    pub serial: u64,
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Statera Test CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    pub fn leaf(&self, cn: &str, names: &[&str], serial: u64) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Tenant");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.not_before = rcgen::date_time_ymd(2026, 1, 1);
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
            serial,
        }
    }

    pub fn crl(&self, revoked: &Leaf) -> String {
        rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2026, 1, 1),
            next_update: rcgen::date_time_ymd(2036, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(revoked.serial),
                revocation_time: rcgen::date_time_ymd(2026, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&self.issuer)
        .unwrap()
        .pem()
        .unwrap()
    }
}

pub fn served(leaf: &Leaf, names: &[&str]) -> TlsCertificate {
    TlsCertificate {
        reference: format!("test-{}", leaf.serial),
        chain_pem: leaf.chain_pem.clone(),
        key_pem: PrivateKeyPem(leaf.key_pem.clone()),
        names: names.iter().map(|n| n.to_string()).collect(),
    }
}

fn listener_tls(certificates: Vec<TlsCertificate>) -> ListenerTls {
    ListenerTls {
        certificates,
        client_authentication: ClientAuthentication::None,
        client_ca_pem: None,
        client_crl_pem: None,
        versions: Vec::new(),
        ciphers: None,
        alpn_protocols: Vec::new(),
        hsts: None,
    }
}

/// A rustls client trusting the test CA, showing `client` if given.
fn connector(pki: &Pki, client: Option<&Leaf>, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match client {
        Some(leaf) => builder
            .with_client_auth_cert(
                vec![leaf.der.clone()],
                PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn handshake(connector: &TlsConnector, to: SocketAddr, sni: &str) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(to).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(IO_DEADLINE, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The CN of the certificate the proxy showed.
fn served_cn(stream: &Tls) -> String {
    cn_of(&stream.get_ref().1.peer_certificates().unwrap()[0])
}

fn cn_of(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_string()
}

fn client_over(stream: Tls) -> HttpClient {
    let local = stream.get_ref().0.local_addr().unwrap();
    HttpClient::over(stream, local)
}

#[tokio::test]
async fn sni_picks_the_certificate_and_requests_cross_with_https_headers() {
    bounded(async {
        let pki = Pki::new();
        let default = pki.leaf("www.example.test", &["www.example.test"], 10);
        let wildcard = pki.leaf("*.sni.test", &["*.sni.test"], 11);
        let member = HttpMember::start("m").await;
        let pool = pool(vec![member_of(member.addr)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        let mut tls = listener_tls(vec![
            served(&default, &["www.example.test"]),
            served(&wildcard, &["*.sni.test"]),
        ]);
        tls.hsts = Some(statera_config::Hsts {
            max_age: 31_536_000,
            include_subdomains: true,
            preload: false,
        });
        l.tls = Some(tls);
        l.insert_headers.x_forwarded_proto = true;
        let vip = vip(210);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![pool])).await.unwrap();
        let to = addr(vip, 443);
        let c = connector(&pki, None, &[b"h2", b"http/1.1"]);

        for (sni, cn) in [
            ("www.example.test", "www.example.test"),
            ("a.sni.test", "*.sni.test"),
            // One label only, and unknown names: the default.
            ("a.b.sni.test", "www.example.test"),
            ("unknown.test", "www.example.test"),
        ] {
            // The client checks the name, so the unknown ones fail its
            // verification after the proxy chose: look at the choice with a
            // name the default covers instead.
            if cn == "www.example.test" && sni != "www.example.test" {
                let tcp = TcpStream::connect(to).await.unwrap();
                let chosen = chosen_cn(tcp, sni).await;
                assert_eq!(chosen, cn, "SNI {sni}");
                continue;
            }
            let stream = handshake(&c, to, sni).await.unwrap();
            assert_eq!(served_cn(&stream), cn, "SNI {sni}");
            // h2 is not offered: HTTP/1.1 it is.
            assert_eq!(stream.get_ref().1.alpn_protocol(), None);
        }

        let stream = handshake(&c, to, "www.example.test").await.unwrap();
        let mut client = client_over(stream);
        let reply = client
            .get(
                "/x",
                &[("X-Forwarded-Proto", "http"), ("X-SSL-Client-CN", "forged")],
            )
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("strict-transport-security"),
            Some("max-age=31536000; includeSubDomains")
        );
        // Keep-alive over TLS: a second request on the same connection.
        let again = client.get("/y", &[]).await.unwrap();
        assert_eq!(again.status, 200);
        // A client offering only h2 goes on without ALPN (as OpenSSL
        // lets it), rather than get a fatal alert.
        let h2_only = connector(&pki, None, &[b"h2"]);
        let stream = handshake(&h2_only, to, "www.example.test").await.unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), None);
        // The proxy ends a connection with close_notify: the client sees a
        // clean end, not a cut one.
        let mut stream = handshake(&c, to, "www.example.test").await.unwrap();
        stream
            .write_all(b"GET /z HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut all = Vec::new();
        let read = tokio::time::timeout(IO_DEADLINE, stream.read_to_end(&mut all)).await;
        assert!(matches!(read, Ok(Ok(_))), "{read:?}");
        assert!(all.starts_with(b"HTTP/1.1 200"));
        let seen = member.seen();
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[0].header("x-forwarded-proto"), vec!["https"]);
        assert!(
            seen[0].header("x-ssl-client-cn").is_empty(),
            "{:?}",
            seen[0].head
        );
    })
    .await;
}

/// The CN of the certificate the proxy shows for `sni`, without verifying
/// the name (the handshake is read as far as the certificate).
async fn chosen_cn(tcp: TcpStream, sni: &str) -> String {
    let seen = Arc::new(std::sync::Mutex::new(None));
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .dangerous()
    .with_custom_certificate_verifier(Arc::new(Recorder(seen.clone())))
    .with_no_client_auth();
    let name = ServerName::try_from(sni.to_string()).unwrap();
    let _ = tokio::time::timeout(
        IO_DEADLINE,
        TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await;
    let der: CertificateDer<'static> = seen.lock().unwrap().clone().expect("a certificate");
    cn_of(&der)
}

/// Records the server's certificate and refuses it.
#[derive(Debug)]
struct Recorder(Arc<std::sync::Mutex<Option<CertificateDer<'static>>>>);

impl rustls::client::danger::ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        *self.0.lock().unwrap() = Some(end_entity.clone().into_owned());
        Err(rustls::Error::General("recorded".into()))
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("recorded".into()))
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("recorded".into()))
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Serves `server`; asks clients for a certificate of the test CA.
fn optional_client_auth(pki: &Pki, server: &Leaf) -> ListenerTls {
    let mut tls = listener_tls(vec![served(server, &["www.example.test"])]);
    tls.client_authentication = ClientAuthentication::Optional;
    tls.client_ca_pem = Some(pki.ca_pem.clone());
    tls
}

fn member_of(addr: SocketAddr) -> statera_config::MemberConfig {
    member(addr, 1)
}

#[tokio::test]
async fn client_certificates_are_verified_and_told_to_the_member() {
    bounded(async {
        let pki = Pki::new();
        let server = pki.leaf("www.example.test", &["www.example.test"], 20);
        let good = pki.leaf("tenant-client", &[], 21);
        let revoked = pki.leaf("revoked-client", &[], 22);
        let member = HttpMember::start("m").await;
        let pool = pool(vec![member_of(member.addr)]);
        let mut optional = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        let mut tls = optional_client_auth(&pki, &server);
        tls.client_crl_pem = Some(pki.crl(&revoked));
        optional.tls = Some(tls.clone());
        optional.insert_headers.client_cert = ClientCertHeaders {
            verify: true,
            has_cert: true,
            dn: true,
            cn: true,
            issuer: true,
            sha1: true,
            not_before: true,
            not_after: true,
        };
        let mut mandatory = listener(ListenerProtocol::TerminatedHttps, 8443, Some(pool.id));
        tls.client_authentication = ClientAuthentication::Mandatory;
        mandatory.tls = Some(tls);
        let vip = vip(211);
        let h = Harness::new();
        h.apply(&lb(vip, vec![optional, mandatory], vec![pool]))
            .await
            .unwrap();
        let (opt, man) = (addr(vip, 443), addr(vip, 8443));
        let sni = "www.example.test";

        // OPTIONAL, with a certificate: the member hears of it.
        let with = connector(&pki, Some(&good), &[]);
        let mut client = client_over(handshake(&with, opt, sni).await.unwrap());
        let reply = client
            .get("/", &[("X-SSL-Client-Verify", "forged")])
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
        let seen = member.seen().pop().unwrap();
        assert_eq!(seen.header("x-ssl-client-verify"), vec!["0"]);
        assert_eq!(seen.header("x-ssl-client-has-cert"), vec!["1"]);
        assert_eq!(seen.header("x-ssl-client-cn"), vec!["\"tenant-client\""]);
        assert_eq!(
            seen.header("x-ssl-client-dn"),
            vec!["\"/O=Tenant/CN=tenant-client\""]
        );
        assert_eq!(seen.header("x-ssl-issuer"), vec!["\"/CN=Statera Test CA\""]);
        let sha1 = &seen.header("x-ssl-client-sha1")[0];
        assert_eq!(sha1.len(), 42, "{sha1}");
        assert_eq!(
            seen.header("x-ssl-client-not-before"),
            vec!["\"260101000000Z\""]
        );
        assert_eq!(
            seen.header("x-ssl-client-not-after"),
            vec!["\"360101000000Z\""]
        );

        // OPTIONAL, without: served, and told so.
        let without = connector(&pki, None, &[]);
        let mut client = client_over(handshake(&without, opt, sni).await.unwrap());
        assert_eq!(client.get("/", &[]).await.unwrap().status, 200);
        let seen = member.seen().pop().unwrap();
        assert_eq!(seen.header("x-ssl-client-has-cert"), vec!["0"]);
        assert_eq!(seen.header("x-ssl-client-cn"), vec!["\"\""]);

        // The revoked certificate never gets to HTTP, on either listener.
        let bad = connector(&pki, Some(&revoked), &[]);
        for to in [opt, man] {
            assert!(refused(&bad, to, sni).await, "revoked certificate at {to}");
        }
        // MANDATORY: none is refused, a good one served.
        assert!(refused(&without, man, sni).await);
        let mut client = client_over(handshake(&with, man, sni).await.unwrap());
        assert_eq!(client.get("/", &[]).await.unwrap().status, 200);
    })
    .await;
}

/// Whether the proxy refuses the client: the handshake fails, or (TLS 1.3,
/// where the client's certificate is judged after the client finished)
/// the first request gets no answer.
async fn refused(connector: &TlsConnector, to: SocketAddr, sni: &str) -> bool {
    let Ok(stream) = handshake(connector, to, sni).await else {
        return true;
    };
    let mut client = client_over(stream);
    client.get("/", &[]).await.is_err()
}

#[tokio::test]
async fn a_megabyte_crosses_and_what_is_not_tls_is_closed() {
    bounded(async {
        let pki = Pki::new();
        let server = pki.leaf("www.example.test", &["www.example.test"], 30);
        // A member that answers with 1 MiB.
        let big = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let big_addr = big.local_addr().unwrap();
        let body = vec![b'z'; 1 << 20];
        let served_body = body.clone();
        let member_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = big.accept().await {
                let body = served_body.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let mut got = Vec::new();
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    let _ = s.write_all(head.as_bytes()).await;
                    let _ = s.write_all(&body).await;
                });
            }
        });
        let pool = pool(vec![member_of(big_addr)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        l.tls = Some(listener_tls(vec![served(&server, &["www.example.test"])]));
        let vip = vip(212);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![pool])).await.unwrap();
        let to = addr(vip, 443);

        let c = connector(&pki, None, &[]);
        let mut client = client_over(handshake(&c, to, "www.example.test").await.unwrap());
        let reply = client.get("/big", &[]).await.unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body == body, "1 MiB body arrives whole");

        // Plain HTTP on the TLS port: closed without an answer.
        let mut plain = TcpStream::connect(to).await.unwrap();
        plain
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(IO_DEADLINE, plain.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        // A handshake begun and left: closed at the handshake timeout
        // (10 s at most); meanwhile others are served.
        let mut stalled = TcpStream::connect(to).await.unwrap();
        stalled
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .unwrap();
        let mut client = client_over(handshake(&c, to, "www.example.test").await.unwrap());
        assert_eq!(client.get("/big", &[]).await.unwrap().status, 200);
        let read = tokio::time::timeout(Duration::from_secs(15), stalled.read(&mut byte)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
        member_task.abort();
    })
    .await;
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_handshakes_and_keeps_open_connections() {
    bounded(async {
        let pki = Pki::new();
        let first = pki.leaf("www.example.test", &["www.example.test"], 40);
        let second = pki.leaf("www.example.test", &["www.example.test"], 41);
        let member = HttpMember::start("m").await;
        let pool = pool(vec![member_of(member.addr)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        l.tls = Some(listener_tls(vec![served(&first, &["www.example.test"])]));
        let vip = vip(213);
        let h = Harness::new();
        let mut config = lb(vip, vec![l], vec![pool]);
        h.apply(&config).await.unwrap();
        let to = addr(vip, 443);
        let c = connector(&pki, None, &[]);
        let old = handshake(&c, to, "www.example.test").await.unwrap();
        assert_eq!(peer_serial(&old), 40);
        let mut old = client_over(old);
        assert_eq!(old.get("/", &[]).await.unwrap().status, 200);

        config.version += 1;
        config.listeners[0].tls = Some(listener_tls(vec![served(&second, &["www.example.test"])]));
        h.apply(&config).await.unwrap();
        let new = handshake(&c, to, "www.example.test").await.unwrap();
        assert_eq!(peer_serial(&new), 41);
        // The connection opened before goes on.
        assert_eq!(old.get("/", &[]).await.unwrap().status, 200);

        // A certificate that cannot be served takes out only its listener.
        config.version += 1;
        config.listeners[0].tls = None;
        match h.apply(&config).await {
            Err(statera_config::DataPlaneError::Bind { listener, .. }) => {
                assert_eq!(listener, Some(config.listeners[0].id));
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

/// The records of a ClientHello for bench.test-like names, as a client
/// would send them first.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn = rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::try_from("www.example.test").unwrap(),
    )
    .unwrap();
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

fn peer_serial(stream: &Tls) -> u64 {
    let der = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.tbs_certificate.serial.try_into().unwrap()
}

#[tokio::test]
async fn ssl_rules_see_the_client_certificate() {
    use statera_config::{L7PolicyConfig, L7RuleConfig};
    use statera_model::{L7PolicyAction, L7RuleCompareType, L7RuleType};
    bounded(async {
        let pki = Pki::new();
        let server = pki.leaf("www.example.test", &["www.example.test"], 50);
        let good = pki.leaf("tenant-client", &[], 51);
        let other = pki.leaf("other-client", &[], 52);
        let member = HttpMember::start("m").await;
        let pool = pool(vec![member_of(member.addr)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        let tls = optional_client_auth(&pki, &server);
        l.tls = Some(tls);
        let rule = |kind, compare_type, key: Option<&str>, value: &str, invert| L7RuleConfig {
            id: uuid::Uuid::new_v4(),
            kind,
            compare_type,
            key: key.map(str::to_string),
            value: value.to_string(),
            invert,
        };
        let reject = |rules| L7PolicyConfig {
            id: uuid::Uuid::new_v4(),
            action: L7PolicyAction::Reject,
            redirect_pool_id: None,
            redirect_url: None,
            redirect_prefix: None,
            redirect_http_code: None,
            rules,
        };
        // No certificate: 403. A certificate whose CN is other-client: 403.
        l.l7policies = vec![
            reject(vec![rule(
                L7RuleType::SslConnHasCert,
                L7RuleCompareType::EqualTo,
                None,
                "True",
                true,
            )]),
            reject(vec![
                rule(
                    L7RuleType::SslDnField,
                    L7RuleCompareType::EqualTo,
                    Some("CN"),
                    "other-client",
                    false,
                ),
                rule(
                    L7RuleType::SslVerifyResult,
                    L7RuleCompareType::EqualTo,
                    None,
                    "0",
                    false,
                ),
            ]),
        ];
        let vip = vip(214);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![pool])).await.unwrap();
        let to = addr(vip, 443);
        let sni = "www.example.test";
        for (client, status) in [(None, 403), (Some(&good), 200), (Some(&other), 403)] {
            let c = connector(&pki, client, &[]);
            let mut http = client_over(handshake(&c, to, sni).await.unwrap());
            let reply = http.get("/", &[]).await.unwrap();
            assert_eq!(
                reply.status,
                status,
                "client {:?}",
                client.map(|c| c.serial)
            );
        }
        assert_eq!(member.seen().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn handshakes_are_bounded_per_load_balancer_and_silence_holds_no_place() {
    bounded(async {
        let pki = Pki::new();
        let server = pki.leaf("www.example.test", &["www.example.test"], 60);
        let member = HttpMember::start("m").await;
        // Four handshakes over the process, one per load balancer.
        let h = Harness::with_options(statera_dataplane::EngineOptions {
            limits: statera_dataplane::ConnectionLimits {
                handshakes: Some(4),
                ..Default::default()
            },
            ..Default::default()
        });
        let mut addrs = Vec::new();
        for n in [215, 216] {
            let pool = pool(vec![member_of(member.addr)]);
            let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
            l.tls = Some(listener_tls(vec![served(&server, &["www.example.test"])]));
            h.apply(&lb(vip(n), vec![l], vec![pool])).await.unwrap();
            addrs.push(addr(vip(n), 443));
        }
        let (a, b) = (addrs[0], addrs[1]);
        let c = connector(&pki, None, &[]);
        let sni = "www.example.test";
        // A silent connection holds no place.
        let _silent = TcpStream::connect(a).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut http = client_over(handshake(&c, a, sni).await.unwrap());
        assert_eq!(http.get("/", &[]).await.unwrap().status, 200);
        // Part of a ClientHello holds no place.
        let mut partial = TcpStream::connect(a).await.unwrap();
        partial
            .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut http = client_over(handshake(&c, a, sni).await.unwrap());
        assert_eq!(http.get("/", &[]).await.unwrap().status, 200);
        // A whole ClientHello, then nothing: the handshake holds A's one
        // place (until it times out); A refuses the next, B still serves.
        let mut stalled = TcpStream::connect(a).await.unwrap();
        stalled.write_all(&client_hello(&pki)).await.unwrap();
        let refused_at_a = eventually(Duration::from_secs(3), async || {
            handshake(&c, a, sni).await.is_err()
        })
        .await;
        assert!(refused_at_a, "A's handshake place is held");
        let mut http = client_over(handshake(&c, b, sni).await.unwrap());
        assert_eq!(http.get("/", &[]).await.unwrap().status, 200);
        // Gone with the stalled client.
        drop(stalled);
        let served_again = eventually(Duration::from_secs(3), async || {
            handshake(&c, a, sni).await.is_ok()
        })
        .await;
        assert!(served_again);
    })
    .await;
}

#[tokio::test]
async fn a_response_cut_by_its_member_ends_without_close_notify() {
    use crate::support_http::{Behaviour, ExpectProxy};
    bounded(async {
        let pki = Pki::new();
        let server = pki.leaf("www.example.test", &["www.example.test"], 70);
        let member = HttpMember::start_with("m", Behaviour::DieMidBody, ExpectProxy::None).await;
        let pool = pool(vec![member_of(member.addr)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(pool.id));
        l.tls = Some(listener_tls(vec![served(&server, &["www.example.test"])]));
        let vip = vip(217);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![pool])).await.unwrap();
        let c = connector(&pki, None, &[]);
        let mut stream = handshake(&c, addr(vip, 443), "www.example.test")
            .await
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut all = Vec::new();
        let read = tokio::time::timeout(IO_DEADLINE, stream.read_to_end(&mut all))
            .await
            .unwrap();
        // The head and part of the body came; the end is a bare close, which
        // the client sees as a cut (a close_notify would say it ended).
        assert!(all.starts_with(b"HTTP/1.1 200"), "{all:?}");
        let error = read.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::UnexpectedEof, "{error}");
    })
    .await;
}
