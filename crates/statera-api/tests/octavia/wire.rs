//! What hyper answers by itself (before the router runs) carries the API's
//! error body: a real socket on loopback, raw requests.

use crate::support::*;
use serde_json::Value;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Serve the harness's API on 127.0.0.1 (an ephemeral port) as `statera
/// serve` does; the address and the server task.
async fn serve(h: &Harness) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = tower::Layer::layer(
        &tower::util::MapRequestLayer::new(statera_api::normalize_path),
        h.router.clone(),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(
            statera_api::wire::ShapedListener(listener),
            axum::ServiceExt::<axum::extract::Request>::into_make_service(app),
        )
        .await;
    });
    (addr, task)
}

/// Send `request` whole, read the answer until the server closes (at most 5 s).
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it read everything.
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .get(9..12)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, head.to_string(), body)
}

#[tokio::test]
async fn hyper_automatic_answers_carry_the_error_body() {
    let h = Harness::new().await;
    let (addr, task) = serve(&h).await;

    // Over hyper's own URI bound (64 KiB): 414.
    let long = "a".repeat(70_000);
    let req = format!("GET /v2/lbaas/loadbalancers?name={long} HTTP/1.1\r\nhost: x\r\n\r\n");
    let (status, _, body) = exchange(addr, req.as_bytes()).await;
    assert_eq!(status, 414);
    assert_eq!(body["faultcode"], "Client", "{body}");
    assert!(body["debuginfo"].is_null());
    let req = format!("GET /v2.0/networks?name={long} HTTP/1.1\r\nhost: x\r\n\r\n");
    let (status, _, body) = exchange(addr, req.as_bytes()).await;
    assert_eq!(status, 414);
    assert_eq!(
        body["NeutronError"]["type"], "HTTPRequestURITooLong",
        "{body}"
    );

    // More headers than hyper parses (100): 431.
    let mut req = String::from("GET /v2/lbaas/pools HTTP/1.1\r\nhost: x\r\n");
    for i in 0..120 {
        req.push_str(&format!("x-h{i}: v\r\n"));
    }
    req.push_str("\r\n");
    let (status, _, body) = exchange(addr, req.as_bytes()).await;
    assert_eq!(status, 431);
    assert!(
        body["faultstring"].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );

    // A head hyper cannot parse: 400.
    let (status, _, body) = exchange(
        addr,
        b"GET /v2.0/ports HTTP/1.1\r\nhost: x\r\nbad header line\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["NeutronError"]["type"], "HTTPBadRequest", "{body}");

    // Ordinary requests on the same server are untouched, keep-alive included.
    let (status, head, body) = exchange(
        addr,
        b"GET /v2/lbaas/loadbalancers/x HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 404, "{head}");
    assert_eq!(body["faultcode"], "Client");
    task.abort();
}

#[tokio::test]
async fn proxy_headers_name_the_host_only_when_the_operator_trusts_them() {
    // Before: any client's X-Forwarded-Host became the links of the answer,
    // the version documents included (which a shared cache may keep and
    // hand to everyone: clients would then authenticate at that host).
    let forged = [
        ("x-forwarded-host", "attacker.example"),
        ("x-forwarded-proto", "https"),
    ];
    let h = Harness::new().await;
    for path in ["/", "/v2", "/v2/lbaas/loadbalancers"] {
        let r = h.raw("GET", path, &forged, None).await.expect(200);
        assert!(!r.text.contains("attacker.example"), "{path}: {}", r.text);
    }
    let r = h.raw("GET", "/", &forged, None).await.expect(200);
    assert_eq!(
        r.body["versions"][0]["links"][0]["href"],
        "http://statera.test:9876/v2"
    );
    // Behind a proxy the operator names ([api] trust_proxy_headers).
    let h = Harness::with_settings(|s| s.trust_proxy_headers = true).await;
    let r = h.raw("GET", "/", &forged, None).await.expect(200);
    assert_eq!(
        r.body["versions"][0]["links"][0]["href"],
        "https://attacker.example/v2"
    );
}
