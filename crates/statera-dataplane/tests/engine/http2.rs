//! HTTP/2 from TLS clients on TERMINATED_HTTPS listeners (ALPN h2): the h2
//! crate's client over rustls against the native data plane, HTTP/1.1
//! members behind it.

use crate::support::*;
use crate::support_http::{BIG_BODY, Behaviour, ExpectProxy, HttpMember};
use crate::tls::{Pki, served};
use bytes::Bytes;
use rustls::pki_types::ServerName;
use statera_config::ListenerTls;
use statera_model::{AlpnProtocol, ClientAuthentication, ListenerProtocol};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn h2_listener_tls(pki: &Pki) -> ListenerTls {
    let leaf = pki.leaf("www.example.test", &["www.example.test"], 70);
    ListenerTls {
        certificates: vec![served(&leaf, &["www.example.test"])],
        client_authentication: ClientAuthentication::None,
        client_ca_pem: None,
        client_crl_pem: None,
        versions: Vec::new(),
        ciphers: None,
        alpn_protocols: vec![AlpnProtocol::H2, AlpnProtocol::Http11],
        hsts: Some(statera_config::Hsts {
            max_age: 600,
            include_subdomains: false,
            preload: false,
        }),
    }
}

/// An HTTP/2 client connection to `to` (ALPN h2, the test CA trusted).
async fn h2_client(pki: &Pki, to: SocketAddr) -> ::h2::client::SendRequest<Bytes> {
    h2_client_with(pki, to, ::h2::client::Builder::new())
        .await
        .0
}

/// The same with `builder`'s settings; also how its connection ended.
async fn h2_client_with(
    pki: &Pki,
    to: SocketAddr,
    builder: ::h2::client::Builder,
) -> (
    ::h2::client::SendRequest<Bytes>,
    tokio::task::JoinHandle<Result<(), ::h2::Error>>,
) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_der.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(to).await.unwrap();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("www.example.test").unwrap(), tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (send, conn) = builder.handshake(tls).await.unwrap();
    (send, tokio::spawn(conn))
}

fn request(method: &str, path: &str) -> http::Request<()> {
    http::Request::builder()
        .method(method)
        .uri(format!("https://www.example.test{path}"))
        .body(())
        .unwrap()
}

/// Sends `req` (with `body` when given) and reads the whole response.
async fn exchange(
    send: &mut ::h2::client::SendRequest<Bytes>,
    req: http::Request<()>,
    body: Option<&[u8]>,
) -> Result<(http::response::Parts, Vec<u8>), ::h2::Error> {
    let mut send = send.clone().ready().await?;
    let (response, mut stream) = send.send_request(req, body.is_none())?;
    if let Some(body) = body {
        stream.send_data(Bytes::copy_from_slice(body), true)?;
    }
    let response = response.await?;
    let (parts, mut recv) = response.into_parts();
    let mut out = Vec::new();
    while let Some(data) = recv.data().await {
        let data = data?;
        out.extend_from_slice(&data);
        let _ = recv.flow_control().release_capacity(data.len());
    }
    Ok((parts, out))
}

#[tokio::test]
async fn clients_choosing_h2_are_served_over_http2_by_http11_members() {
    bounded(async {
        let pki = Pki::new();
        let m = HttpMember::start("m").await;
        let big = HttpMember::start_with("big", Behaviour::Big, ExpectProxy::None).await;
        let p = pool(vec![member(m.addr, 1)]);
        let p_big = pool(vec![member(big.addr, 1)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(p.id));
        l.tls = Some(h2_listener_tls(&pki));
        l.insert_headers.x_forwarded_proto = true;
        let mut l_big = listener(ListenerProtocol::TerminatedHttps, 444, Some(p_big.id));
        l_big.tls = Some(h2_listener_tls(&pki));
        let vip = vip(225);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l, l_big], vec![p, p_big]))
            .await
            .unwrap();
        let mut c = h2_client(&pki, addr(vip, 443)).await;

        // Forged headers a member trusts do not get through.
        let mut first = request("GET", "/a?b=c");
        first
            .headers_mut()
            .insert("x-ssl-client-cn", "forged".parse().unwrap());
        first
            .headers_mut()
            .insert("x-forwarded-proto", "http".parse().unwrap());
        let (parts, body) = exchange(&mut c, first, None).await.unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body, b"m");
        assert_eq!(parts.headers["x-member"], "m");
        assert_eq!(parts.headers["strict-transport-security"], "max-age=600");
        assert!(parts.headers.get("connection").is_none());
        let seen = m.seen();
        assert_eq!(seen[0].request_line(), "GET /a?b=c HTTP/1.1");
        assert_eq!(seen[0].header("host"), vec!["www.example.test"]);
        assert_eq!(seen[0].header("x-forwarded-proto"), vec!["https"]);
        assert!(
            seen[0].header("x-ssl-client-cn").is_empty(),
            "{}",
            seen[0].head
        );

        // Cookie crumbs are one line again; a body without a length goes
        // chunked.
        let mut req = request("POST", "/up");
        req.headers_mut().append("cookie", "a=1".parse().unwrap());
        req.headers_mut().append("cookie", "b=2".parse().unwrap());
        let (parts, _) = exchange(&mut c, req, Some(b"0123456789")).await.unwrap();
        assert_eq!(parts.status, 200);
        let last = m.seen().pop().unwrap();
        assert_eq!(last.header("cookie"), vec!["a=1; b=2"]);
        assert_eq!(last.body, b"0123456789");
        assert_eq!(last.header("transfer-encoding"), vec!["chunked"]);

        // HEAD: no body.
        let (parts, body) = exchange(&mut c, request("HEAD", "/h"), None).await.unwrap();
        assert_eq!(parts.status, 200);
        assert!(body.is_empty());

        // Fifty streams at once on the one connection.
        let calls: Vec<_> = (0..50)
            .map(|i| {
                let mut c = c.clone();
                tokio::spawn(async move {
                    exchange(&mut c, request("GET", &format!("/many/{i}")), None).await
                })
            })
            .collect();
        for call in calls {
            let (parts, body) = call.await.unwrap().unwrap();
            assert_eq!(
                (parts.status, body.as_slice()),
                (http::StatusCode::OK, &b"m"[..])
            );
        }
        // Member connections are kept alive across streams.
        let before = m.connections();
        for i in 0..5 {
            let (parts, _) = exchange(&mut c, request("GET", &format!("/seq/{i}")), None)
                .await
                .unwrap();
            assert_eq!(parts.status, 200);
        }
        assert_eq!(m.connections(), before, "member connections not reused");

        // 1 MiB through the client's flow-control window.
        let mut c_big = h2_client(&pki, addr(vip, 444)).await;
        let (parts, body) = exchange(&mut c_big, request("GET", "/big"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
        assert_eq!(body.len(), BIG_BODY);
        assert!(body.starts_with(b"0123456789012"));
    })
    .await;
}

#[tokio::test]
async fn a_member_failing_mid_body_resets_only_its_stream() {
    bounded(async {
        let pki = Pki::new();
        let dies = HttpMember::start_with("dies", Behaviour::DieMidBody, ExpectProxy::None).await;
        let ok = HttpMember::start("ok").await;
        let p_dies = pool(vec![member(dies.addr, 1)]);
        let p_ok = pool(vec![member(ok.addr, 1)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(p_ok.id));
        l.tls = Some(h2_listener_tls(&pki));
        // Requests for /dies go to the dying member.
        l.l7policies = vec![statera_config::L7PolicyConfig {
            id: uuid::Uuid::new_v4(),
            action: statera_model::L7PolicyAction::RedirectToPool,
            redirect_pool_id: Some(p_dies.id),
            redirect_url: None,
            redirect_prefix: None,
            redirect_http_code: None,
            rules: vec![statera_config::L7RuleConfig {
                id: uuid::Uuid::new_v4(),
                kind: statera_model::L7RuleType::Path,
                compare_type: statera_model::L7RuleCompareType::StartsWith,
                key: None,
                value: "/dies".into(),
                invert: false,
            }],
        }];
        let vip = vip(226);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![p_ok, p_dies]))
            .await
            .unwrap();
        let mut c = h2_client(&pki, addr(vip, 443)).await;
        let cut = exchange(&mut c, request("GET", "/dies"), None).await;
        assert!(cut.is_err(), "a cut body was delivered as whole: {cut:?}");
        // The connection and its other streams go on.
        let (parts, body) = exchange(&mut c, request("GET", "/fine"), None)
            .await
            .unwrap();
        assert_eq!(
            (parts.status, body.as_slice()),
            (http::StatusCode::OK, &b"ok"[..])
        );
    })
    .await;
}

#[tokio::test]
async fn a_rapid_reset_flood_is_sent_away_and_others_are_served() {
    bounded(async {
        let pki = Pki::new();
        let m = HttpMember::start("m").await;
        let p = pool(vec![member(m.addr, 1)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(p.id));
        l.tls = Some(h2_listener_tls(&pki));
        let vip = vip(227);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![p])).await.unwrap();
        // Streams opened and reset at once, as fast as the connection takes
        // them (reset before the proxy took them: h2's bound), then paced
        // (reset after: ours), each for at most 10,000 streams or 10 s.
        for paced in [false, true] {
            let (c, conn) =
                h2_client_with(&pki, addr(vip, 443), ::h2::client::Builder::new()).await;
            let (opened, sent_away) = flood(&c, paced).await;
            assert!(
                sent_away,
                "{opened} streams reset and the connection still open (paced: {paced})"
            );
            drop(c);
            let ended = tokio::time::timeout(IO_DEADLINE, conn)
                .await
                .unwrap()
                .unwrap();
            let reason = ended.err().and_then(|e| e.reason());
            assert_eq!(
                reason,
                Some(::h2::Reason::ENHANCE_YOUR_CALM),
                "paced: {paced}, after {opened} streams"
            );
            assert!(
                m.seen().len() < opened / 2,
                "most reset streams reached the member ({} of {opened})",
                m.seen().len()
            );
        }
        // Another client is served.
        let mut other = h2_client(&pki, addr(vip, 443)).await;
        let (parts, _) = exchange(&mut other, request("GET", "/"), None)
            .await
            .unwrap();
        assert_eq!(parts.status, 200);
    })
    .await;
}

/// Opens streams and resets each at once; returns how many, and whether
/// the connection refused more (GOAWAY) within the bounds.
async fn flood(c: &::h2::client::SendRequest<Bytes>, paced: bool) -> (usize, bool) {
    {
        let started = tokio::time::Instant::now();
        let mut opened = 0;
        let mut sent_away = false;
        while opened < 10_000 && started.elapsed() < Duration::from_secs(10) {
            let mut send = match tokio::time::timeout(IO_DEADLINE, c.clone().ready()).await {
                Ok(Ok(send)) => send,
                _ => {
                    sent_away = true;
                    break;
                }
            };
            match send.send_request(request("GET", "/flood"), true) {
                Ok((response, _)) => drop(response),
                Err(_) => {
                    sent_away = true;
                    break;
                }
            }
            opened += 1;
            if paced {
                tokio::time::sleep(Duration::from_millis(1)).await;
            } else if opened % 50 == 0 {
                tokio::task::yield_now().await;
            }
        }
        (opened, sent_away)
    }
}

#[tokio::test]
async fn a_client_that_opens_no_window_loses_its_stream_within_the_client_timeout() {
    bounded(async {
        let pki = Pki::new();
        let m = HttpMember::start("m").await;
        let p = pool(vec![member(m.addr, 1)]);
        let mut l = listener(ListenerProtocol::TerminatedHttps, 443, Some(p.id));
        l.tls = Some(h2_listener_tls(&pki));
        l.timeouts.client_data_ms = 1_000;
        let vip = vip(228);
        let h = Harness::new();
        h.apply(&lb(vip, vec![l], vec![p])).await.unwrap();
        let mut builder = ::h2::client::Builder::new();
        builder.initial_window_size(0);
        let (c, _conn) = h2_client_with(&pki, addr(vip, 443), builder).await;
        let mut send = c.ready().await.unwrap();
        let (response, _) = send.send_request(request("GET", "/"), true).unwrap();
        let response = tokio::time::timeout(IO_DEADLINE, response)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(response.status(), 200);
        // No window is ever opened: the body cannot come, and the stream is
        // reset rather than held.
        let mut body = response.into_body();
        let got = tokio::time::timeout(Duration::from_secs(5), body.data()).await;
        match got {
            Ok(Some(Err(e))) => assert_eq!(e.reason(), Some(::h2::Reason::CANCEL), "{e}"),
            other => panic!("the stream was held: {other:?}"),
        }
    })
    .await;
}
