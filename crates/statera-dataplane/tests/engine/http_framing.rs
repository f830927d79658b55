//! HTTP message framing through the proxy, with members that answer with
//! fixed bytes: chunked responses to HTTP/1.0 clients, responses delimited by
//! the member's close, pipelined requests, `Expect: 100-continue`, and a
//! member answering before the request body is all there; members that send
//! their response in pieces, slow and stalled request bodies, and lengths a
//! member tries to hide.

use crate::support::*;
use crate::support_http::*;
use statera_config::DataPlane;
use statera_model::ListenerProtocol;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A member that reads each request head (and a `Content-Length` body, unless
/// `early`) and answers with the bytes of `pieces`, written one by one 50 ms
/// apart (so each arrives in a read of its own), then closes the connection
/// if `close`. `early`: answers as soon as the head is in, without reading
/// the body, and closes. Returns its address and the heads it saw.
async fn raw_member(
    pieces: &'static [&'static [u8]],
    close: bool,
    early: bool,
) -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let heads = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let heads = heads.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let end = loop {
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break end + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    heads.lock().unwrap().push(head);
                    buf.drain(..end);
                    if !early {
                        while buf.len() < length {
                            let mut chunk = [0u8; 4096];
                            match stream.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.drain(..length);
                    }
                    for (i, piece) in pieces.iter().enumerate() {
                        if i > 0 {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        if stream.write_all(piece).await.is_err() {
                            return;
                        }
                    }
                    if close || early {
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

async fn serve_one(n: u8, member_addr: SocketAddr) -> (Harness, statera_config::LbConfig) {
    let p = pool(vec![member(member_addr, 1)]);
    let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
    let config = lb(vip(n), vec![l], vec![p]);
    let h = Harness::new();
    h.apply(&config).await.unwrap();
    (h, config)
}

/// Everything the proxy sends on `client` until it closes.
async fn read_to_close(client: &mut tokio::net::TcpStream) -> String {
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all))
        .await
        .expect("the proxy closes the connection")
        .unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_chunked_response_reaches_an_http_1_0_client_without_its_coding() {
    bounded(async {
        let (web, _) = raw_member(
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"],
            false,
            false,
        )
        .await;
        let (h, config) = serve_one(170, web).await;
        let mut client = connect_from(None, addr(vip(170), 8080)).await.unwrap();
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let all = read_to_close(&mut client).await;
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(body, "hello world");

        // An HTTP/1.1 client gets the chunks as they are, and keeps its connection.
        let mut client = HttpClient::connect(addr(vip(170), 8080)).await;
        for _ in 0..2 {
            let reply = client.get("/", &[]).await.unwrap();
            assert_eq!(reply.header("transfer-encoding"), Some("chunked"));
            assert_eq!(reply.body_text(), "hello world");
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_response_ended_by_the_members_close_reaches_the_client_whole() {
    bounded(async {
        let (web, _) = raw_member(&[b"HTTP/1.1 200 OK\r\n\r\nuntil the end"], true, false).await;
        let (h, config) = serve_one(171, web).await;
        let mut client = connect_from(None, addr(vip(171), 8080)).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let all = read_to_close(&mut client).await;
        assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
        assert!(all.contains("Connection: close\r\n"), "{all}");
        assert!(all.ends_with("\r\n\r\nuntil the end"), "{all}");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let (h, config) = serve_one(172, web1.addr).await;
        let mut client = HttpClient::connect(addr(vip(172), 8080)).await;
        client
            .send(
                b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n\
                  POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc\
                  GET /3 HTTP/1.1\r\nHost: x\r\n\r\n",
            )
            .await
            .unwrap();
        for _ in 0..3 {
            assert_eq!(client.reply().await.unwrap().status, 200);
        }
        let lines: Vec<String> = web1
            .seen()
            .iter()
            .map(|s| s.request_line().to_string())
            .collect();
        assert_eq!(
            lines,
            ["GET /1 HTTP/1.1", "POST /2 HTTP/1.1", "GET /3 HTTP/1.1"]
        );
        assert_eq!(web1.seen()[1].body, b"abc");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn expect_100_continue_is_answered_by_the_proxy() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let (h, config) = serve_one(173, web1.addr).await;
        let mut client = connect_from(None, addr(vip(173), 8080)).await.unwrap();
        client
            .write_all(
                b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            )
            .await
            .unwrap();
        let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut got = vec![0u8; interim.len()];
        tokio::time::timeout(Duration::from_secs(5), client.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, interim);
        client.write_all(b"hello").await.unwrap();
        let mut rest = Vec::new();
        while !String::from_utf8_lossy(&rest).ends_with("web1") {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(
                n > 0,
                "closed before the response: {}",
                String::from_utf8_lossy(&rest)
            );
            rest.extend_from_slice(&chunk[..n]);
        }
        assert!(rest.starts_with(b"HTTP/1.1 200 OK\r\n"));
        let seen = web1.seen();
        assert_eq!(seen[0].body, b"hello");
        assert!(
            seen[0].header("expect").is_empty(),
            "Expect went to the member"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_member_answering_before_the_body_is_in_is_relayed_and_the_client_closed() {
    bounded(async {
        let (web, heads) = raw_member(
            &[b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\n\r\nbig!"],
            false,
            true,
        )
        .await;
        let (h, config) = serve_one(174, web).await;
        let mut client = connect_from(None, addr(vip(174), 8080)).await.unwrap();
        client
            .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nfirst bytes")
            .await
            .unwrap();
        let all = read_to_close(&mut client).await;
        assert!(
            all.starts_with("HTTP/1.1 413 Payload Too Large\r\n"),
            "{all}"
        );
        assert!(all.contains("Connection: close\r\n"), "{all}");
        assert!(all.ends_with("big!"), "{all}");
        assert_eq!(heads.lock().unwrap().len(), 1);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

async fn serve_with(
    n: u8,
    member_addr: SocketAddr,
    tweak: impl FnOnce(&mut statera_config::ListenerConfig),
) -> (Harness, statera_config::LbConfig, uuid::Uuid) {
    let p = pool(vec![member(member_addr, 1)]);
    let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
    tweak(&mut l);
    let id = l.id;
    let config = lb(vip(n), vec![l], vec![p]);
    let h = Harness::new();
    h.apply(&config).await.unwrap();
    (h, config, id)
}

async fn read_all(client: &mut tokio::net::TcpStream) -> String {
    let mut all = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut all)).await;
    String::from_utf8_lossy(&all).into_owned()
}

/// HTTP/1.0 de-chunking writes an empty IoSlice when a read holds
/// only chunk framing -> WriteZero -> the response is cut (silently, since
/// the 1.0 response is close-delimited).
#[tokio::test]
async fn chunk_framing_read_alone_does_not_cut_a_response_to_http_1_0() {
    bounded(async {
        let web = raw_member(
            &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                b"5\r\n",
                b"hello",
                b"\r\n",
                b"6\r\n world\r\n",
                b"0\r\n\r\n",
            ],
            false,
            false,
        )
        .await
        .0;
        let (h, config, _) = serve_with(175, web, |_| {}).await;
        let mut client = connect_from(None, addr(vip(175), 8080)).await.unwrap();
        client.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let all = read_all(&mut client).await;
        let body = all.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
        assert_eq!(body, "hello world", "whole response: {all:?}");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// timeout_member_data runs while the client is still (slowly but
/// steadily) uploading the body: 504 (and a passive-health failure).
#[tokio::test]
async fn a_slow_but_steady_upload_is_not_a_member_timeout() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config, _) = serve_with(176, web.addr, |l| {
            l.timeouts.member_data_ms = 500;
            l.timeouts.client_data_ms = 5_000;
        })
        .await;
        let mut client = HttpClient::connect(addr(vip(176), 8080)).await;
        client
            .send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
            .await
            .unwrap();
        for _ in 0..10 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if client.send(b"x").await.is_err() {
                break;
            }
        }
        let reply = client.reply().await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.body_text());
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// a malformed chunk that arrives after the head's read is not
/// answered 400 (nor counted): the connection just closes.
#[tokio::test]
async fn a_malformed_chunk_later_in_the_body_is_400() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config, l) = serve_with(177, web.addr, |_| {}).await;
        let mut client = connect_from(None, addr(vip(177), 8080)).await.unwrap();
        client
            .write_all(
                b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"zz\r\n").await.unwrap();
        let all = read_all(&mut client).await;
        let errors = listener_stats(&h.report(config.lb_id), l).request_errors;
        assert!(
            all.starts_with("HTTP/1.1 400"),
            "got {all:?}, request_errors {errors}"
        );
        assert_eq!(errors, 1);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// a response framed by Content-Length loses it when the member's
/// Connection header names it; the client keeps a keep-alive connection with
/// an undelimited response.
#[tokio::test]
async fn a_response_length_named_by_connection_is_still_stated() {
    bounded(async {
        let web = raw_member(
            &[b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 2\r\n\r\nok"],
            false,
            false,
        )
        .await
        .0;
        let (h, config, _) = serve_with(178, web, |_| {}).await;
        let mut client = connect_from(None, addr(vip(178), 8080)).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut got = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(2), client.read(&mut got))
            .await
            .unwrap()
            .unwrap();
        let head = String::from_utf8_lossy(&got[..n]).to_ascii_lowercase();
        assert!(
            head.contains("content-length: 2") || head.contains("connection: close"),
            "undelimited keep-alive response: {head:?}"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// the first request head may take up to twice
/// timeout_client_data (first_byte's wait, then read_head's own).
#[tokio::test]
async fn the_first_head_is_bounded_by_one_client_timeout() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config, _) = serve_with(179, web.addr, |l| l.timeouts.client_data_ms = 400).await;
        let mut client = HttpClient::connect(addr(vip(179), 8080)).await;
        tokio::time::sleep(Duration::from_millis(350)).await;
        client.send(b"G").await.unwrap();
        tokio::time::sleep(Duration::from_millis(350)).await;
        // 700 ms after the connection opened, well past 400 ms.
        let _ = client.send(b"ET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
        assert!(
            client.reply().await.is_err(),
            "a head that took 700 ms was served with a 400 ms timeout"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// clients that stall in their
/// request body make healthy members fail passive health and get ejected.
#[tokio::test]
async fn stalled_client_bodies_do_not_eject_healthy_members() {
    bounded(async {
        let a = HttpMember::start("a").await;
        let b = HttpMember::start("b").await;
        let ma = member(a.addr, 1);
        let mb = member(b.addr, 1);
        let p = pool(vec![ma.clone(), mb.clone()]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.timeouts.member_data_ms = 200;
        l.timeouts.client_data_ms = 5_000;
        let config = lb(vip(180), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut clients = Vec::new();
        for _ in 0..10 {
            let mut c = HttpClient::connect(addr(vip(180), 8080)).await;
            c.send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nx")
                .await
                .unwrap();
            clients.push(c);
        }
        for c in &mut clients {
            let _ = c.reply().await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let report = h.report(config.lb_id);
        let ha = crate::support_health::health(&report, ma.id);
        let hb = crate::support_health::health(&report, mb.id);
        assert!(
            ha != statera_config::MemberHealth::Down && hb != statera_config::MemberHealth::Down,
            "healthy member ejected by stalled clients: a {ha:?}, b {hb:?}"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// a POST with `Content-Length: 0` reaches the member without any
/// Content-Length (members that require one answer 411).
#[tokio::test]
async fn a_post_with_an_empty_body_keeps_its_length() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config, _) = serve_with(181, web.addr, |_| {}).await;
        let mut client = HttpClient::connect(addr(vip(181), 8080)).await;
        client
            .send(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        let seen = web.seen();
        assert_eq!(seen[0].header("content-length"), ["0"], "{}", seen[0].head);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// A large response body (moved by splice past its first read) arrives
/// whole, byte for byte, and the connections on both sides stay usable.
#[tokio::test]
async fn a_large_body_arrives_whole_and_both_connections_go_on() {
    bounded(async {
        let body: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut response =
            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
        response.extend_from_slice(&body);
        let response: &'static [u8] = Box::leak(response.into_boxed_slice());
        let (web, heads) = raw_member(Box::leak(Box::new([response])), false, false).await;
        let (h, config) = serve_one(182, web).await;
        let mut client = HttpClient::connect(addr(vip(182), 8080)).await;
        for _ in 0..3 {
            let reply = client.get("/big", &[]).await.unwrap();
            assert_eq!(reply.status, 200);
            assert!(
                reply.body == body,
                "body differs ({} bytes)",
                reply.body.len()
            );
        }
        assert_eq!(heads.lock().unwrap().len(), 3);
        let stats = listener_stats(&h.report(config.lb_id), config.listeners[0].id);
        assert!(stats.bytes_out >= 3 * body.len() as u64, "{stats:?}");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// An HTTP/1.0 request without Host reaches the member as the HTTP/1.0
/// request it is (HTTP/1.1 would need a Host nobody named), and a
/// `Connection` header naming Host does not take the Host away (issue 12).
#[tokio::test]
async fn requests_without_host_or_naming_it_in_connection_reach_the_member_valid() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config) = serve_one(201, web.addr).await;
        let mut client = HttpClient::connect(addr(vip(201), 8080)).await;
        client
            .send(b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().body_text(), "web");
        client
            .send(b"GET /b HTTP/1.1\r\nHost: h.example\r\nConnection: host, x-private\r\nX-Private: 1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().body_text(), "web");
        client
            .send(b"GET /c HTTP/1.0\r\nHost: h.example\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().body_text(), "web");
        let seen = web.seen();
        assert_eq!(seen[0].request_line(), "GET /a HTTP/1.0");
        assert!(seen[0].header("host").is_empty());
        assert_eq!(seen[0].header("connection"), ["keep-alive"]);
        assert_eq!(seen[1].request_line(), "GET /b HTTP/1.1");
        assert_eq!(seen[1].header("host"), ["h.example"]);
        assert!(seen[1].header("x-private").is_empty());
        assert_eq!(seen[2].request_line(), "GET /c HTTP/1.1");
        assert_eq!(seen[2].header("host"), ["h.example"]);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// Transfer codings besides chunked are never dropped (issue 12): a
/// request's `gzip, chunked` reaches the member as it is, so does a
/// response's to an HTTP/1.1 client (and a response coded without chunked,
/// delimited by its close); an HTTP/1.0 client, which cannot be told of
/// codings, gets 502 rather than a body it would misread.
#[tokio::test]
async fn transfer_codings_besides_chunked_are_forwarded_intact() {
    bounded(async {
        let web = HttpMember::start("web").await;
        let (h, config) = serve_one(202, web.addr).await;
        let mut client = HttpClient::connect(addr(vip(202), 8080)).await;
        client
            .send(b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(client.reply().await.unwrap().status, 200);
        let seen = web.seen();
        assert_eq!(seen[0].header("transfer-encoding"), ["gzip, chunked"]);
        assert_eq!(seen[0].body, b"abc");
        h.engine.remove(config.lb_id).await.unwrap();

        let (coded, _) = raw_member(
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"],
            false,
            false,
        )
        .await;
        let (h, config) = serve_one(203, coded).await;
        let mut client = HttpClient::connect(addr(vip(203), 8080)).await;
        for _ in 0..2 {
            let reply = client.get("/", &[]).await.unwrap();
            assert_eq!(reply.header("transfer-encoding"), Some("gzip, chunked"));
            assert_eq!(reply.body_text(), "abc");
        }
        let mut old = connect_from(None, addr(vip(203), 8080)).await.unwrap();
        old.write_all(b"GET / HTTP/1.0\r\n\r\n").await.unwrap();
        let all = read_to_close(&mut old).await;
        assert!(all.starts_with("HTTP/1.1 502 "), "{all}");
        h.engine.remove(config.lb_id).await.unwrap();

        let (until_close, _) = raw_member(
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzipped"],
            true,
            false,
        )
        .await;
        let (h, config) = serve_one(204, until_close).await;
        let mut client = connect_from(None, addr(vip(204), 8080)).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let all = read_to_close(&mut client).await;
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("Transfer-Encoding: gzip\r\n"), "{head}");
        assert!(head.contains("Connection: close"), "{head}");
        assert_eq!(body, "zipped");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
