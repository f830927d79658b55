//! Counters and status reports.

use crate::support::*;
use statera_config::{DataPlane, ListenerState, MemberHealth};
use statera_model::ListenerProtocol;
use std::time::Duration;

#[tokio::test]
async fn counters_are_kept_across_applies_for_a_listener_that_stays() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let mut p = pool(vec![member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let mut config = lb(vip(30), vec![l.clone()], vec![p.clone()]);
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();
        for _ in 0..3 {
            get(addr(vip(30), 8080)).await.unwrap();
        }
        let idle = eventually(Duration::from_secs(2), async || {
            listener_stats(&h.report(config.lb_id), l.id).active_connections == 0
        })
        .await;
        assert!(idle);
        let before = listener_stats(&h.report(config.lb_id), l.id);
        assert_eq!(before.total_connections, 3);
        assert_eq!(before.request_errors, 0);
        let request_len = "GET / HTTP/1.1\r\nHost: statera\r\nConnection: close\r\n\r\n".len();
        assert_eq!(before.bytes_in, 3 * request_len as u64);
        assert!(before.bytes_out > 3 * "web1".len() as u64);

        p.members.push(member(web2.addr, 1));
        config.pools = vec![p];
        config.version = 2;
        h.apply(&config).await.unwrap();
        let report = h.wait_report(|r| r.version == 2).await;
        assert_eq!(listener_stats(&report, l.id), before);

        get(addr(vip(30), 8080)).await.unwrap();
        let counted = eventually(Duration::from_secs(2), async || {
            let now = listener_stats(&h.report(config.lb_id), l.id);
            now.total_connections == 4 && now.active_connections == 0
        })
        .await;
        assert!(counted, "{:?}", h.report(config.lb_id));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn reports_show_member_admin_state_and_weight() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let mut maint = member(web1.addr, 1);
        maint.admin_state_up = false;
        let drain = member(web1.addr, 0);
        let serving = member(web1.addr, 1);
        let p = pool(vec![maint.clone(), drain.clone(), serving.clone()]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(31), vec![l], vec![p.clone()]);
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();

        let report = h.wait_report(|r| r.lb_id == config.lb_id).await;
        assert_eq!(report, h.report(config.lb_id));
        assert_eq!(report.version, 1);
        assert_eq!(report.listeners[0].state, ListenerState::Open);
        let health: Vec<_> = report.pools[0]
            .members
            .iter()
            .map(|m| (m.id, m.health))
            .collect();
        assert_eq!(
            health,
            [
                (maint.id, MemberHealth::Maint),
                (drain.id, MemberHealth::Drain),
                (serving.id, MemberHealth::NoCheck),
            ]
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
