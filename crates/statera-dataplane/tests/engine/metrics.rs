//! PROMETHEUS listeners: `/metrics` with the load balancer's counters.

use crate::support::*;
use statera_config::DataPlane;
use statera_model::ListenerProtocol;
use std::collections::HashMap;
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET path` on `to`: status and body.
async fn scrape(to: SocketAddr, path: &str) -> (u16, String) {
    tokio::time::timeout(IO_DEADLINE, async {
        let mut stream = connect_from(None, to).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: statera\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        if status == 200 {
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: text/plain; version=0.0.4"),
                "{head}"
            );
        }
        (status, body.to_string())
    })
    .await
    .expect("scrape within the deadline")
}

/// The samples of an exposition: `name{labels}` → value.
fn samples(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[tokio::test]
async fn a_prometheus_listener_serves_the_counters() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let dead = dead_addr().await;
        let p = pool(vec![
            member(web1.addr, 1),
            member(web2.addr, 1),
            member(dead, 1),
        ]);
        let http = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let metrics = listener(ListenerProtocol::Prometheus, 9100, None);
        let config = lb(
            vip(150),
            vec![http.clone(), metrics.clone()],
            vec![p.clone()],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        for _ in 0..6 {
            let reply = get(addr(vip(150), 8080)).await.unwrap();
            assert_eq!(reply.status, 200);
        }
        let (status, text) = scrape(addr(vip(150), 9100), "/metrics").await;
        assert_eq!(status, 200);
        let s = samples(&text);
        let lb = config.lb_id;
        let l = http.id;
        let get_ = |name: &str, labels: &str| -> u64 {
            *s.get(&format!("{name}{{{labels}}}"))
                .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
        };
        let ll = format!("loadbalancer=\"{lb}\",listener=\"{l}\"");
        assert_eq!(get_("statera_listener_connections_total", &ll), 6);
        assert_eq!(get_("statera_listener_active_connections", &ll), 0);
        assert_eq!(get_("statera_listener_request_errors_total", &ll), 0);
        let report = h.report(lb);
        let stats = listener_stats(&report, l);
        assert_eq!(get_("statera_listener_bytes_in_total", &ll), stats.bytes_in);
        assert_eq!(
            get_("statera_listener_bytes_out_total", &ll),
            stats.bytes_out
        );
        assert!(stats.bytes_in > 0 && stats.bytes_out > 0);

        // Members: the two live ones served three requests each; the dead
        // one failed its connects, and every failure moved on.
        let pl = format!("loadbalancer=\"{lb}\",pool=\"{}\"", p.id);
        let ml = |i: usize| format!("{pl},member=\"{}\"", p.members[i].id);
        let served: u64 = (0..2)
            .map(|i| {
                let total = get_("statera_member_connections_total", &ml(i));
                assert!(get_("statera_member_bytes_out_total", &ml(i)) > 0);
                assert!(get_("statera_member_bytes_in_total", &ml(i)) > 0);
                assert_eq!(get_("statera_member_up", &ml(i)), 1);
                total
            })
            .sum();
        let failed = get_("statera_member_request_errors_total", &ml(2));
        assert!(failed >= 1, "{text}");
        assert_eq!(served, 6);
        assert_eq!(get_("statera_member_connections_total", &ml(2)), failed);
        assert_eq!(get_("statera_pool_connections_total", &pl), 6 + failed);
        assert_eq!(get_("statera_pool_request_errors_total", &pl), failed);
        let member_bytes: u64 = (0..3)
            .map(|i| get_("statera_member_bytes_out_total", &ml(i)))
            .sum();
        assert_eq!(get_("statera_pool_bytes_out_total", &pl), member_bytes);

        // The scrape counts on the PROMETHEUS listener itself.
        let ml_ = format!("loadbalancer=\"{lb}\",listener=\"{}\"", metrics.id);
        assert_eq!(get_("statera_listener_connections_total", &ml_), 1);
        let (_, again) = scrape(addr(vip(150), 9100), "/metrics").await;
        assert_eq!(
            samples(&again)[&format!("statera_listener_connections_total{{{ml_}}}")],
            2
        );

        // Other paths: 404.
        assert_eq!(scrape(addr(vip(150), 9100), "/").await.0, 404);
        assert_eq!(scrape(addr(vip(150), 9100), "/metricsx").await.0, 404);
        h.engine.remove(lb).await.unwrap();
    })
    .await;
}
