//! What members see of the proxy's connections to them: the VIP as their
//! source, and ACKs that do not hold back a member with Nagle on.

use crate::support::*;
use crate::support_http::*;
use statera_config::DataPlane;
use statera_model::ListenerProtocol;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A keep-alive HTTP member on 127.0.0.1 that answers each request with
/// `body(peer)` in two sends, head then body, with Nagle on (the default),
/// as Python's `http.server` does.
async fn two_send_member(body: fn(SocketAddr) -> String) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, peer)) = listener.accept().await {
            tokio::spawn(async move {
                let served = async {
                    let mut buf = Vec::new();
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            let mut chunk = [0u8; 4096];
                            let n = stream.read(&mut chunk).await?;
                            if n == 0 {
                                return std::io::Result::Ok(());
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
                        buf.drain(..end);
                        let text = body(peer);
                        let head =
                            format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", text.len());
                        stream.write_all(head.as_bytes()).await?;
                        stream.write_all(text.as_bytes()).await?;
                    }
                };
                let _ = tokio::time::timeout(TEST_DEADLINE, served).await;
            });
        }
    });
    addr
}

/// A member writing head and body in two sends with Nagle on holds the body
/// until the proxy acknowledges the head; with delayed ACKs on a kept-alive
/// member connection that is ~40 ms per response (24 requests/s, issue 12).
/// The proxy acknowledges at once: 50 requests on one keep-alive connection
/// take well under 50 × 40 ms.
#[tokio::test]
async fn a_member_with_nagle_on_costs_no_delayed_ack_per_response() {
    bounded(async {
        let web = two_send_member(|_| "hello".to_string()).await;
        let p = pool(vec![member(web, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(205), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut client = HttpClient::connect(addr(vip(205), 8080)).await;
        // Warm: the member connection is open and past its first exchanges.
        for _ in 0..5 {
            assert_eq!(client.get("/", &[]).await.unwrap().body_text(), "hello");
        }
        let started = Instant::now();
        for _ in 0..50 {
            assert_eq!(client.get("/", &[]).await.unwrap().body_text(), "hello");
        }
        let took = started.elapsed();
        // Stalled, 50 responses take at least 2 s; fixed, a few ms each even
        // on a loaded machine.
        assert!(took < Duration::from_secs(1), "50 requests took {took:?}");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// With the host network driver, members see the VIP as the source of the
/// proxy's connections (as in one-arm mode), not 127.0.0.1 (issue 12): on
/// HTTP and TCP listeners alike.
#[tokio::test]
async fn members_see_the_vip_as_the_source() {
    bounded(async {
        let web = two_send_member(|peer| peer.ip().to_string()).await;
        let http_pool = pool(vec![member(web, 1)]);
        let tcp_pool = pool(vec![member(web, 1)]);
        let http = listener(ListenerProtocol::Http, 8080, Some(http_pool.id));
        let tcp = listener(ListenerProtocol::Tcp, 8081, Some(tcp_pool.id));
        let config = lb(vip(206), vec![http, tcp], vec![http_pool, tcp_pool]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let want = vip(206).to_string();
        for port in [8080, 8081] {
            let mut client = HttpClient::connect(addr(vip(206), port)).await;
            let reply = client.get("/", &[]).await.unwrap();
            assert_eq!(reply.body_text(), want, "listener port {port}");
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
