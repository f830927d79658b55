//! Passive health: members that fail real traffic are ejected for a
//! back-off, reported down meanwhile, and come back; never the last one.

use crate::support::*;
use crate::support_health::*;
use statera_config::{DataPlane, MemberHealth, StatusReport};
use statera_dataplane::{EngineOptions, HealthOptions, PassiveOptions};
use statera_model::ListenerProtocol;
use std::time::{Duration, Instant};
use uuid::Uuid;

fn options() -> EngineOptions {
    EngineOptions {
        health: HealthOptions {
            slow_start: Duration::ZERO,
            passive: PassiveOptions {
                consecutive_failures: 3,
                base_ejection: Duration::from_secs(1),
                max_ejection: Duration::from_secs(4),
            },
        },
        ..EngineOptions::default()
    }
}

/// Waits for a report where member `id` has `want`; returns when it came.
async fn wait_health(h: &mut Harness, id: Uuid, want: MemberHealth) -> (StatusReport, Instant) {
    let report = h.wait_report(|r| health(r, id) == want).await;
    (report, Instant::now())
}

#[tokio::test]
async fn five_hundreds_eject_a_member_for_a_doubling_back_off() {
    bounded(async {
        let good = Backend::start("web1").await;
        let bad = ProbeBackend::http(backend_ip(20, 1), 500).await;
        let g = member(good.addr, 1);
        let b = member(bad.addr, 1);
        let p = pool(vec![g.clone(), b.clone()]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(140), vec![l], vec![p]);
        let mut h = Harness::with_options(options());
        h.apply(&config).await.unwrap();
        let to = addr(vip(140), 8080);

        // Round robin alternates: the bad member's third 500 ejects it.
        let mut statuses = Vec::new();
        for _ in 0..6 {
            statuses.push(get(to).await.unwrap().status);
        }
        assert_eq!(
            statuses.iter().filter(|s| **s == 500).count(),
            3,
            "{statuses:?}"
        );
        let (_, ejected_at) = wait_health(&mut h, b.id, MemberHealth::Down).await;
        assert_eq!(health(&h.report(config.lb_id), g.id), MemberHealth::NoCheck);
        for _ in 0..4 {
            assert_eq!(get(to).await.unwrap().body, "web1");
        }
        // Back after the first back-off (1 s), reported at once.
        let (_, back_at) = wait_health(&mut h, b.id, MemberHealth::NoCheck).await;
        let first = back_at - ejected_at;
        assert!(first >= Duration::from_millis(800), "{first:?}");

        // Failing again: the next ejection lasts twice as long.
        let before = bad.seen().len();
        let mut sent = 0;
        while bad.seen().len() < before + 3 {
            get(to).await.unwrap();
            sent += 1;
            assert!(sent < 20);
        }
        let (_, ejected_at) = wait_health(&mut h, b.id, MemberHealth::Down).await;
        let (_, back_at) = wait_health(&mut h, b.id, MemberHealth::NoCheck).await;
        let second = back_at - ejected_at;
        assert!(second >= Duration::from_millis(1800), "{second:?}");

        // A success resets the back-off; it takes traffic normally again.
        bad.set_status(200);
        let mut reached = false;
        for _ in 0..4 {
            let reply = get(to).await.unwrap();
            reached |= reply.status == 200 && reply.body == "ok";
        }
        assert!(reached, "the returned member took no request");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn the_last_member_of_a_pool_is_never_ejected() {
    bounded(async {
        let bad = ProbeBackend::http(backend_ip(21, 1), 503).await;
        let only = member(bad.addr, 1);
        let p = pool(vec![only.clone()]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(141), vec![l], vec![p]);
        let h = Harness::with_options(options());
        h.apply(&config).await.unwrap();
        for _ in 0..8 {
            assert_eq!(get(addr(vip(141), 8080)).await.unwrap().status, 503);
        }
        assert_eq!(bad.seen().len(), 8);
        assert_eq!(
            health(&h.report(config.lb_id), only.id),
            MemberHealth::NoCheck
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn refused_connects_eject_a_member_of_a_tcp_listener() {
    bounded(async {
        let good = Backend::start("web1").await;
        let dead = closed_tcp(backend_ip(22, 1)).await;
        let g = member(good.addr, 1);
        let d = member(dead, 1);
        let p = pool(vec![d.clone(), g.clone()]);
        let l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        let config = lb(vip(142), vec![l], vec![p]);
        let mut h = Harness::with_options(options());
        h.apply(&config).await.unwrap();
        // Every client is served (the relay retries on the other member)
        // while the dead one collects its failures.
        for i in 0..6 {
            let mut client = LineClient::connect(addr(vip(142), 9000)).await.unwrap();
            assert_eq!(
                client.ask(&format!("{i}")).await.unwrap(),
                format!("web1 {i}")
            );
        }
        wait_health(&mut h, d.id, MemberHealth::Down).await;
        assert_eq!(health(&h.report(config.lb_id), g.id), MemberHealth::NoCheck);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
