//! TCP connect probes.

use crate::support::*;
use statera_config::{DataPlane, HealthMonitorConfig, MemberHealth};
use statera_model::{HealthMonitorType, ListenerProtocol};
use uuid::Uuid;

fn tcp_monitor() -> HealthMonitorConfig {
    HealthMonitorConfig {
        id: Uuid::new_v4(),
        kind: HealthMonitorType::Tcp,
        admin_state_up: true,
        delay_s: 1,
        timeout_s: 1,
        rise: 1,
        fall: 1,
        http_method: None,
        url_path: None,
        expected_codes: None,
        http_version: None,
        domain_name: None,
    }
}

#[tokio::test]
async fn a_dead_member_is_reported_down_and_skipped() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let dead = member(dead_addr().await, 1);
        let alive = member(web1.addr, 1);
        let mut p = pool(vec![dead.clone(), alive.clone()]);
        p.health_monitor = Some(tcp_monitor());
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(40), vec![l.clone()], vec![p]);
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();

        let health_of = |r: &statera_config::StatusReport, id: Uuid| {
            r.pools[0]
                .members
                .iter()
                .find(|m| m.id == id)
                .unwrap()
                .health
        };
        let report = h
            .wait_report(|r| health_of(r, dead.id) == MemberHealth::Down)
            .await;
        assert_eq!(health_of(&report, alive.id), MemberHealth::Up);

        for _ in 0..4 {
            assert_eq!(get(addr(vip(40), 8080)).await.unwrap().body, "web1");
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
async fn a_member_that_comes_back_is_reported_up() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        // Reserve a port, leave it dead, then start a backend on it.
        let later = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let later_addr = later.local_addr().unwrap();
        drop(later);
        let coming = member(later_addr, 1);
        let mut p = pool(vec![coming.clone(), member(web1.addr, 1)]);
        p.health_monitor = Some(tcp_monitor());
        let config = lb(
            vip(41),
            vec![listener(ListenerProtocol::Tcp, 8080, Some(p.id))],
            vec![p],
        );
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();

        let health_of = |r: &statera_config::StatusReport| r.pools[0].members[0].health;
        h.wait_report(|r| health_of(r) == MemberHealth::Down).await;
        let revived = tokio::net::TcpListener::bind(later_addr).await.unwrap();
        h.wait_report(|r| health_of(r) == MemberHealth::Up).await;
        drop(revived);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
