//! Pools over TLS (re-encryption) on the native data plane: members are
//! rustls servers with certificates made by rcgen (the PKI of `tls.rs`),
//! some asking for the load balancer's client certificate.

use crate::support::*;
use crate::support_health::{health, monitor};
use crate::support_http::{BIG_BODY, Behaviour, HttpClient, HttpMember};
use crate::tls::{Leaf, Pki, served};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;
use rustls::server::WebPkiClientVerifier;
use statera_config::{DataPlane, DataPlaneError, MemberHealth, PoolTls};
use statera_model::{AlpnProtocol, HealthMonitorType, ListenerProtocol};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A member's rustls server: `leaf` as its certificate, asking for a
/// client certificate of `pki` when `client_ca` (and refusing a handshake
/// without one), ALPN `http/1.1`.
fn member_tls(leaf: &Leaf, client_ca: Option<&Pki>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        Some(pki) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            builder.with_client_cert_verifier(
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                    .build()
                    .unwrap(),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(
            vec![leaf.der.clone()],
            PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A pool's TLS: members verified against `ca` when given, `client` shown.
fn pool_tls(ca: Option<&Pki>, client: Option<&Leaf>) -> PoolTls {
    PoolTls {
        unreadable: None,
        client_certificate: client.map(|c| served(c, &[])),
        ca_pem: ca.map(|pki| pki.ca_pem.clone()),
        crl_pem: None,
        versions: Vec::new(),
        ciphers: None,
        alpn_protocols: vec![AlpnProtocol::Http11, AlpnProtocol::Http10],
    }
}

#[tokio::test]
async fn a_pool_over_tls_verifies_members_shows_its_certificate_and_reuses_connections() {
    bounded(async {
        let pki = Pki::new();
        // Named for a host, reached by IP: the name is not checked.
        let member_cert = pki.leaf("member.internal", &["member.internal"], 30);
        let client = pki.leaf("lb-client", &[], 31);
        let m = HttpMember::start_tls("m", Behaviour::Answer, member_tls(&member_cert, Some(&pki)))
            .await;
        let big =
            HttpMember::start_tls("big", Behaviour::Big, member_tls(&member_cert, None)).await;
        let mut p = pool(vec![member(m.addr, 1)]);
        p.tls = Some(pool_tls(Some(&pki), Some(&client)));
        let mut p_big = pool(vec![member(big.addr, 1)]);
        p_big.tls = Some(pool_tls(Some(&pki), None));
        let l = listener(ListenerProtocol::Http, 80, Some(p.id));
        let l_big = listener(ListenerProtocol::Http, 81, Some(p_big.id));
        let vip = vip(218);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l, l_big], vec![p, p_big]))
            .await
            .unwrap();

        // Three clients one after another: one member connection, kept
        // alive over TLS (the session tickets a TLS 1.3 server sends after
        // its first answer do not spoil it).
        for path in ["/1", "/2", "/3"] {
            let mut c = HttpClient::connect(addr(vip, 80)).await;
            let reply = c.get(path, &[]).await.unwrap();
            assert_eq!((reply.status, reply.body_text().as_str()), (200, "m"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(m.connections(), 1, "member connections over TLS not reused");
        let peers = m.tls_peers();
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].client_cn.as_deref(), Some("lb-client"));
        assert_eq!(peers[0].alpn.as_deref(), Some(&b"http/1.1"[..]));

        // A body that comes after its head crosses the TLS stream's halves.
        let mut c = HttpClient::connect(addr(vip, 80)).await;
        c.send(b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n01234")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        c.send(b"56789").await.unwrap();
        let reply = c.reply().await.unwrap();
        assert_eq!(reply.status, 200);
        let seen = m.seen();
        assert_eq!(seen.last().unwrap().body, b"0123456789");

        // 1 MiB from a TLS member (no splice: it is decrypted here).
        let mut c = HttpClient::connect(addr(vip, 81)).await;
        let reply = c.get("/big", &[]).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), BIG_BODY);
        assert!(reply.body.starts_with(b"0123456789012"));
        assert_eq!(big.tls_peers()[0].client_cn, None);
    })
    .await;
}

#[tokio::test]
async fn members_that_fail_verification_or_speak_plain_text_are_not_used() {
    bounded(async {
        let pki = Pki::new();
        let other = Pki::new();
        let good = pki.leaf("good", &["good"], 40);
        let revoked = pki.leaf("revoked", &["revoked"], 41);
        let rogue = other.leaf("rogue", &["rogue"], 42);
        let m_good =
            HttpMember::start_tls("good", Behaviour::Answer, member_tls(&good, None)).await;
        let m_revoked =
            HttpMember::start_tls("revoked", Behaviour::Answer, member_tls(&revoked, None)).await;
        let m_rogue =
            HttpMember::start_tls("rogue", Behaviour::Answer, member_tls(&rogue, None)).await;
        let m_plain = HttpMember::start("plain").await;
        let vip = vip(219);
        let mut pools = Vec::new();
        let mut listeners = Vec::new();
        for (port, m, ca) in [
            (80, &m_good, true),
            (81, &m_revoked, true),
            (82, &m_rogue, true),
            (83, &m_plain, true),
            // Without a CA (Octavia's default) any certificate will do.
            (84, &m_rogue, false),
        ] {
            let mut p = pool(vec![member(m.addr, 1)]);
            let mut tls = pool_tls(ca.then_some(&pki), None);
            tls.crl_pem = ca.then(|| pki.crl(&revoked));
            p.tls = Some(tls);
            listeners.push(listener(ListenerProtocol::Http, port, Some(p.id)));
            pools.push(p);
        }
        let h = Harness::new();
        h.apply(&lb(vip, listeners, pools)).await.unwrap();
        let status = async |port| {
            let mut c = HttpClient::connect(addr(vip, port)).await;
            c.get("/", &[]).await.unwrap().status
        };
        assert_eq!(status(80).await, 200);
        // Revoked, signed by another CA, no TLS at all: no member took it.
        assert_eq!(status(81).await, 503);
        assert_eq!(status(82).await, 503);
        assert_eq!(status(83).await, 503);
        assert!(
            m_plain.seen().is_empty(),
            "plain text reached a member of a TLS pool"
        );
        assert!(m_revoked.seen().is_empty() && m_rogue.seen().is_empty());
        assert_eq!(status(84).await, 200);
    })
    .await;
}

#[tokio::test]
async fn a_pool_whose_tls_cannot_be_served_leaves_out_its_listeners_alone() {
    bounded(async {
        let pki = Pki::new();
        let vip = vip(220);
        let h = Harness::new();
        let unreadable = PoolTls::unreadable("certificate r: gone".into());
        let mut h2_only = pool_tls(Some(&pki), None);
        h2_only.alpn_protocols = vec![AlpnProtocol::H2];
        let mut bad_ca = pool_tls(None, None);
        bad_ca.ca_pem = Some("not a certificate".into());
        for (protocol, tls, why) in [
            (ListenerProtocol::Http, unreadable, "certificate r: gone"),
            (ListenerProtocol::Http, h2_only, "h2"),
            (ListenerProtocol::Http, bad_ca, "CA"),
            (
                ListenerProtocol::Tcp,
                pool_tls(None, None),
                "HTTP and TERMINATED_HTTPS listeners only",
            ),
        ] {
            let mut p = pool(vec![member(dead_addr().await, 1)]);
            p.tls = Some(tls);
            let l = listener(protocol, 80, Some(p.id));
            let config = lb(vip, vec![l], vec![p]);
            match h.apply(&config).await {
                Err(DataPlaneError::Bind {
                    listener, reason, ..
                }) => {
                    assert_eq!(listener, Some(config.listeners[0].id));
                    assert!(reason.contains(why), "{reason}");
                }
                other => panic!("{other:?}"),
            }
        }
    })
    .await;
}

#[tokio::test]
async fn probes_of_a_pool_over_tls_go_over_its_tls() {
    bounded(async {
        let pki = Pki::new();
        let cert = pki.leaf("m", &["m"], 50);
        let client = pki.leaf("lb-client", &[], 51);
        // Both ask for the client certificate: an HTTP probe in clear, or
        // over TLS without the certificate, would fail.
        let up =
            HttpMember::start_tls("up", Behaviour::Answer, member_tls(&cert, Some(&pki))).await;
        let plain = HttpMember::start("plain").await;
        let mut p = pool(vec![member(up.addr, 1), member(plain.addr, 1)]);
        p.tls = Some(pool_tls(Some(&pki), Some(&client)));
        let mut hm = monitor(HealthMonitorType::Http);
        hm.url_path = Some("/health".into());
        p.health_monitor = Some(hm);
        let ids = [p.members[0].id, p.members[1].id];
        // A TCP monitor over TLS: the handshake must complete.
        let mut p_tcp = pool(vec![member(up.addr, 1), member(plain.addr, 1)]);
        p_tcp.tls = Some(pool_tls(Some(&pki), Some(&client)));
        p_tcp.health_monitor = Some(monitor(HealthMonitorType::Tcp));
        let tcp_ids = [p_tcp.members[0].id, p_tcp.members[1].id];
        let l = listener(ListenerProtocol::Http, 80, Some(p.id));
        let l_tcp = listener(ListenerProtocol::Http, 81, Some(p_tcp.id));
        let config = lb(vip(221), vec![l, l_tcp], vec![p, p_tcp]);
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();
        h.wait_report(|r| {
            health(r, ids[0]) == MemberHealth::Up
                && health(r, ids[1]) == MemberHealth::Down
                && health(r, tcp_ids[0]) == MemberHealth::Up
                && health(r, tcp_ids[1]) == MemberHealth::Down
        })
        .await;
        assert!(
            up.seen()
                .iter()
                .any(|s| s.request_line() == "GET /health HTTP/1.0"),
            "{:?}",
            up.seen()
        );
        assert!(
            up.tls_peers()
                .iter()
                .all(|p| p.client_cn.as_deref() == Some("lb-client"))
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_kept_alive_plain_member_connection_never_carries_a_request_once_the_pool_is_over_tls() {
    bounded(async {
        // A PROXY pool: its idle member connections belong to the client
        // connection, and outlive configuration changes with it.
        let m =
            HttpMember::start_with("m", Behaviour::Answer, crate::support_http::ExpectProxy::V1)
                .await;
        let mut p = pool(vec![member(m.addr, 1)]);
        p.protocol = statera_model::PoolProtocol::Proxy;
        let l = listener(ListenerProtocol::Http, 80, Some(p.id));
        let vip = vip(222);
        let mut config = lb(vip, vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut c = HttpClient::connect(addr(vip, 80)).await;
        assert_eq!(c.get("/plain", &[]).await.unwrap().status, 200);
        // The pool goes over TLS; the member still speaks plain text.
        config.version += 1;
        config.pools[0].tls = Some(pool_tls(None, None));
        h.apply(&config).await.unwrap();
        let reply = c.get("/after", &[]).await.unwrap();
        assert_eq!(reply.status, 503, "{}", reply.head);
        assert_eq!(
            m.seen().len(),
            1,
            "a request went in plain text to a member of a TLS pool"
        );
    })
    .await;
}

#[tokio::test]
async fn a_member_that_never_answers_the_handshake_is_given_up_without_a_connect_timeout() {
    bounded(async {
        // Accepts, reads, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let held = tokio::spawn(async move {
            let mut kept = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                kept.push(s);
            }
        });
        let mut p = pool(vec![member(silent_addr, 1)]);
        p.tls = Some(pool_tls(None, None));
        let mut l = listener(ListenerProtocol::Http, 80, Some(p.id));
        l.timeouts.member_connect_ms = 0;
        let vip = vip(223);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![p])).await.unwrap();
        let started = tokio::time::Instant::now();
        let mut c = tokio::net::TcpStream::connect(addr(vip, 80)).await.unwrap();
        c.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(25), c.read_to_end(&mut reply))
            .await
            .expect("the request hung on a silent handshake")
            .unwrap();
        assert!(reply.starts_with(b"HTTP/1.1 503"), "{reply:?}");
        assert!(started.elapsed() >= Duration::from_secs(9));
        held.abort();
    })
    .await;
}

#[tokio::test]
async fn a_body_until_close_from_a_tls_member_ends_whole_without_close_notify() {
    bounded(async {
        let pki = Pki::new();
        let cert = pki.leaf("m", &["m"], 60);
        let m = HttpMember::start_tls("m", Behaviour::UntilClose, member_tls(&cert, None)).await;
        let mut p = pool(vec![member(m.addr, 1)]);
        p.tls = Some(pool_tls(None, None));
        let l = listener(ListenerProtocol::Http, 80, Some(p.id));
        let id = l.id;
        let vip = vip(224);
        let config = lb(vip, vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut c = HttpClient::connect(addr(vip, 80)).await;
        let reply = c.get("/", &[]).await.unwrap();
        assert_eq!(
            (reply.status, reply.body_text().as_str()),
            (200, "until-close")
        );
        let stats = listener_stats(&h.report(config.lb_id), id);
        assert_eq!(stats.request_errors, 0, "{stats:?}");
    })
    .await;
}
