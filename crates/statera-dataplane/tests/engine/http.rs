//! HTTP listeners: keep-alive, forwarded headers, member failures, and what
//! the proxy refuses itself.

use crate::support::*;
use crate::support_http::*;
use statera_config::{DataPlane, InsertHeaders};
use statera_model::ListenerProtocol;
use std::net::IpAddr;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn keep_alive_requests_reach_members_in_round_robin_order_over_pooled_connections() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let web2 = HttpMember::start("web2").await;
        let p = pool(vec![member(web1.addr, 1), member(web2.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(50), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(50), 8080)).await;
        let mut bodies = Vec::new();
        for i in 0..8 {
            let reply = client.get(&format!("/r{i}"), &[]).await.unwrap();
            assert_eq!(reply.status, 200);
            bodies.push(reply.body_text());
        }
        assert_eq!(
            bodies,
            [
                "web1", "web2", "web1", "web2", "web1", "web2", "web1", "web2"
            ]
        );
        // One client connection, and one pooled connection per member.
        let stats = listener_stats(&h.report(config.lb_id), l.id);
        assert_eq!(stats.total_connections, 1);
        assert_eq!(stats.request_errors, 0);
        assert_eq!((web1.connections(), web2.connections()), (1, 1));
        let paths: Vec<String> = web1
            .seen()
            .iter()
            .map(|s| s.request_line().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "GET /r0 HTTP/1.1",
                "GET /r2 HTTP/1.1",
                "GET /r4 HTTP/1.1",
                "GET /r6 HTTP/1.1"
            ]
        );
        // A second client reuses the same member connections.
        let mut other = HttpClient::connect(addr(vip(50), 8080)).await;
        assert_eq!(other.get("/", &[]).await.unwrap().status, 200);
        assert_eq!(web1.connections() + web2.connections(), 2);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn forwarded_headers_as_the_member_sees_them() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut with = listener(ListenerProtocol::Http, 8080, Some(p.id));
        with.insert_headers = InsertHeaders {
            x_forwarded_for: true,
            x_forwarded_port: true,
            x_forwarded_proto: true,
            ..Default::default()
        };
        let without = listener(ListenerProtocol::Http, 8081, Some(p.id));
        let config = lb(vip(51), vec![with, without], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let source: IpAddr = [127, 102, 51, 7].into();

        let mut client = HttpClient::connect_from(Some(source), addr(vip(51), 8080)).await;
        client.get("/plain", &[]).await.unwrap();
        client
            .get(
                "/chained",
                &[
                    ("X-Forwarded-For", "203.0.113.9"),
                    ("X-Forwarded-Port", "1234"),
                    ("X-Forwarded-Proto", "https"),
                    ("Connection", "keep-alive, X-Hop"),
                    ("X-Hop", "secret"),
                ],
            )
            .await
            .unwrap();
        let mut bare = HttpClient::connect_from(Some(source), addr(vip(51), 8081)).await;
        bare.get("/bare", &[("X-Forwarded-For", "203.0.113.9")])
            .await
            .unwrap();

        let seen = web1.seen();
        assert_eq!(seen.len(), 3);
        let (plain, chained, untouched) = (&seen[0], &seen[1], &seen[2]);
        assert_eq!(plain.header("x-forwarded-for"), ["127.102.51.7"]);
        assert_eq!(plain.header("x-forwarded-port"), ["8080"]);
        assert_eq!(plain.header("x-forwarded-proto"), ["http"]);
        assert_eq!(plain.header("host"), ["statera.test"]);
        // Appended to an earlier proxy's chain; port and proto are ours.
        assert_eq!(
            chained.header("x-forwarded-for"),
            ["203.0.113.9, 127.102.51.7"]
        );
        assert_eq!(chained.header("x-forwarded-port"), ["8080"]);
        assert_eq!(chained.header("x-forwarded-proto"), ["http"]);
        // Hop-by-hop headers stay on the client's hop.
        assert!(chained.header("x-hop").is_empty());
        assert!(chained.header("connection").is_empty());
        // Without insert_headers, nothing is added or changed.
        assert_eq!(untouched.header("x-forwarded-for"), ["203.0.113.9"]);
        assert!(untouched.header("x-forwarded-port").is_empty());
        assert!(untouched.header("x-forwarded-proto").is_empty());
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn request_bodies_reach_the_member_whatever_their_framing() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let config = lb(
            vip(58),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(58), 8080)).await;
        client
            .send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        client
            .send(
                b"POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                  3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            )
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        let seen = web1.seen();
        assert_eq!(seen[0].body, b"hello");
        assert_eq!(seen[0].header("content-length"), ["5"]);
        assert_eq!(seen[1].body, b"abcdefg");
        assert_eq!(seen[1].header("transfer-encoding"), ["chunked"]);

        // A body that looks like header lines is not taken for a head: the
        // chunked request after it is not mistaken for an ambiguous one.
        let tricky = "Content-Length: 9\r\n\r\n";
        client
            .send(
                format!(
                    "POST /c HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{tricky}",
                    tricky.len()
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        client
            .send(b"POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        assert_eq!(web1.seen()[3].body, b"z");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_member_refusing_connections_costs_no_client_error() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let dead = dead_addr().await;
        let p = pool(vec![member(dead, 1), member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(52), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(52), 8080)).await;
        for _ in 0..6 {
            let reply = client.get("/", &[]).await.unwrap();
            assert_eq!((reply.status, reply.body_text().as_str()), (200, "web1"));
        }
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l.id).request_errors,
            0
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn no_usable_member_is_503_and_the_client_connection_stays_open() {
    bounded(async {
        let dead = dead_addr().await;
        let p = pool(vec![member(dead, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let no_pool = listener(ListenerProtocol::Http, 8081, None);
        let config = lb(vip(53), vec![l.clone(), no_pool.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(53), 8080)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().status, 503);
        assert_eq!(client.get("/", &[]).await.unwrap().status, 503);
        let mut client = HttpClient::connect(addr(vip(53), 8081)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().status, 503);
        let report = h.report(config.lb_id);
        assert_eq!(listener_stats(&report, l.id).request_errors, 2);
        assert_eq!(listener_stats(&report, no_pool.id).request_errors, 1);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_member_failing_before_its_answer_is_502() {
    bounded(async {
        let mute =
            HttpMember::start_with("mute", Behaviour::CloseWithoutAnswer, ExpectProxy::None).await;
        let p = pool(vec![member(mute.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(54), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(54), 8080)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().status, 502);
        // The client's connection survives its member's failure.
        assert_eq!(client.get("/", &[]).await.unwrap().status, 502);
        assert_eq!(mute.seen().len(), 2);
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l.id).request_errors,
            2
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_member_dying_mid_body_cuts_the_response_and_counts_an_error() {
    bounded(async {
        let dying = HttpMember::start_with("dying", Behaviour::DieMidBody, ExpectProxy::None).await;
        let p = pool(vec![member(dying.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(55), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(55), 8080)).await;
        // The head (200, 100 bytes announced) is out before the member dies:
        // the client gets a short body and a closed connection, never a
        // response it could take for complete.
        let reply = client.get("/", &[]).await;
        assert!(reply.is_err(), "expected a cut response, got {reply:?}");
        let counted = eventually(Duration::from_secs(2), async || {
            listener_stats(&h.report(config.lb_id), l.id).request_errors == 1
        })
        .await;
        assert!(counted, "{:?}", h.report(config.lb_id));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_silent_member_is_504_after_the_member_data_timeout() {
    bounded(async {
        // Accepts and reads, never answers.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent_addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = silent.accept().await {
                held.push(stream);
            }
        });
        let p = pool(vec![member(silent_addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.timeouts.member_data_ms = 300;
        let config = lb(vip(56), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(56), 8080)).await;
        let started = tokio::time::Instant::now();
        assert_eq!(client.get("/", &[]).await.unwrap().status, 504);
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l.id).request_errors,
            1
        );
        hold.abort();
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_member_data_timeout_holds_for_each_request_of_a_connection() {
    bounded(async {
        // Answers the first request it reads, then goes silent.
        let member_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member_addr = member_listener.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut held = Vec::new();
            let mut answered = false;
            while let Ok((mut stream, _)) = member_listener.accept().await {
                if !answered {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                            break;
                        }
                        head.push(byte[0]);
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                    answered = true;
                }
                held.push(stream);
            }
        });
        let p = pool(vec![member(member_addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.timeouts.member_data_ms = 300;
        let config = lb(vip(61), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(61), 8080)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().status, 200);
        // The same client connection, right away: its timer starts over.
        let started = tokio::time::Instant::now();
        assert_eq!(client.get("/", &[]).await.unwrap().status, 504);
        assert!(started.elapsed() >= Duration::from_millis(250));
        hold.abort();
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// Requests the proxy must refuse itself: answered with `status`, the
/// connection closed, nothing forwarded.
#[tokio::test]
async fn malformed_oversized_and_ambiguous_requests_are_refused_and_never_forwarded() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(57), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let huge = "a".repeat(20 * 1024);
        let table: Vec<(&str, String, u16)> =
            vec![
            ("no colon", "GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n".into(), 400),
            ("not HTTP", "HELLO\r\n\r\n".into(), 400),
            ("bad version", "GET / HTTP/7.1\r\nHost: x\r\n\r\n".into(), 400),
            ("no Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n".into(), 400),
            ("two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(), 400),
            (
                "oversized head",
                format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {huge}\r\n\r\n"),
                431,
            ),
            (
                "two different Content-Lengths",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"
                    .into(),
                400,
            ),
            (
                "Content-Length, then Transfer-Encoding (CL.TE smuggling)",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"
                    .into(),
                400,
            ),
            (
                "Transfer-Encoding, then Content-Length (TE.CL smuggling)",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
                 Content-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n"
                    .into(),
                400,
            ),
            (
                "Transfer-Encoding that is not chunked",
                "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc".into(),
                400,
            ),
            (
                "Content-Length that is not a number",
                "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3x\r\n\r\nabc".into(),
                400,
            ),
        ];
        for (i, (what, raw, status)) in table.iter().enumerate() {
            let mut client = HttpClient::connect(addr(vip(57), 8080)).await;
            client.send(raw.as_bytes()).await.unwrap();
            let reply = client
                .reply()
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_eq!(reply.status, *status, "{what}");
            assert!(client.is_closed().await, "{what}: connection left open");
            assert!(web1.seen().is_empty(), "{what}: forwarded");
            assert_eq!(
                listener_stats(&h.report(config.lb_id), l.id).request_errors,
                i as u64 + 1,
                "{what}"
            );
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_idle_keep_alive_client_is_closed_after_the_client_data_timeout() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.timeouts.client_data_ms = 300;
        let config = lb(vip(59), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(59), 8080)).await;
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert_eq!(client.get("/", &[]).await.unwrap().status, 200);
        }
        let started = tokio::time::Instant::now();
        assert!(client.is_closed().await);
        assert!(started.elapsed() >= Duration::from_millis(250));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_silent_client_is_closed_after_the_client_data_timeout_or_at_removal() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.timeouts.client_data_ms = 300;
        let mut config = lb(vip(165), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        // Connected, nothing sent: closed at the timeout, not before.
        let started = tokio::time::Instant::now();
        let mut silent = HttpClient::connect(addr(vip(165), 8080)).await;
        assert!(silent.is_closed().await);
        assert!(started.elapsed() >= Duration::from_millis(250));

        // A silent client that then asks is served as usual.
        let mut late = HttpClient::connect(addr(vip(165), 8080)).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(late.get("/", &[]).await.unwrap().status, 200);

        // A silent client of a removed listener is closed at once.
        config.listeners[0].timeouts.client_data_ms = 60_000;
        config.version = 2;
        h.apply(&config).await.unwrap();
        let mut silent = HttpClient::connect(addr(vip(165), 8080)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        config.version = 3;
        config.listeners.clear();
        h.apply(&config).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(silent.is_closed().await);
        assert!(started.elapsed() < Duration::from_secs(2));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// A member whose first connection answers one request, then reads the
/// next and closes without a word (a member closing a keep-alive connection
/// just as the proxy reuses it); its other connections answer every request.
/// Returns its address and the request heads its other connections got.
async fn member_losing_the_second_request() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    tokio::spawn(async move {
        let mut connection = 0;
        while let Ok((stream, _)) = listener.accept().await {
            let (first, seen) = (connection == 0, seen.clone());
            connection += 1;
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = tokio::io::BufReader::new(read).lines();
                let (mut head, mut requests) = (String::new(), 0);
                while let Ok(Some(line)) = lines.next_line().await {
                    if !line.is_empty() {
                        head.push_str(&line.to_ascii_lowercase());
                        head.push('\n');
                        continue;
                    }
                    requests += 1;
                    if first && requests == 2 {
                        return;
                    }
                    if !first {
                        seen.lock().unwrap().push(std::mem::take(&mut head));
                    }
                    head.clear();
                    let _ = write
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .await;
                }
            });
        }
    });
    (addr, heads)
}

#[tokio::test]
async fn a_get_lost_by_a_reused_member_connection_is_sent_again_on_a_fresh_one() {
    bounded(async {
        let (member_addr, heads) = member_losing_the_second_request().await;
        let p = pool(vec![member(member_addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.insert_headers = InsertHeaders {
            x_forwarded_for: true,
            ..Default::default()
        };
        let config = lb(vip(166), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = HttpClient::connect(addr(vip(166), 8080)).await;
        assert_eq!(client.get("/one", &[]).await.unwrap().status, 200);
        // The member connection is parked before the next request takes it.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = client.get("/two", &[("x-test", "1")]).await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body_text(), "ok");
        let heads = heads.lock().unwrap().clone();
        assert_eq!(heads.len(), 1, "{heads:?}");
        // Sent again whole: the same target and the rewritten headers.
        assert!(heads[0].starts_with("get /two http/1.1\n"), "{heads:?}");
        assert!(heads[0].contains("x-test: 1\n"), "{heads:?}");
        assert!(
            heads[0].contains("x-forwarded-for: 127.0.0.1\n"),
            "{heads:?}"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_removed_http_listener_closes_idle_keep_alive_connections_at_once() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut config = lb(
            vip(60),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        // The drain deadline is far: closing idle connections must not wait
        // for it.
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut client = HttpClient::connect(addr(vip(60), 8080)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().status, 200);

        config.version = 2;
        config.listeners.clear();
        h.apply(&config).await.unwrap();
        let started = tokio::time::Instant::now();
        assert!(client.is_closed().await);
        assert!(started.elapsed() < Duration::from_secs(2));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
