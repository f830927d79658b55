//! Member selection and relaying.

use crate::support::*;
use statera_config::DataPlane;
use statera_model::ListenerProtocol;

#[tokio::test]
async fn requests_reach_members_in_smooth_weighted_round_robin_order() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let p = pool(vec![member(web1.addr, 3), member(web2.addr, 1)]);
        let config = lb(
            vip(1),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        assert_eq!(h.apply(&config).await.unwrap(), 1);

        let mut seen = Vec::new();
        for _ in 0..8 {
            let reply = get(addr(vip(1), 8080)).await.unwrap();
            assert_eq!(reply.status, 200);
            seen.push(reply.body);
        }
        assert_eq!(
            seen,
            [
                "web1", "web1", "web2", "web1", "web1", "web1", "web2", "web1"
            ]
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_dead_member_costs_no_failed_connection() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let dead = dead_addr().await;
        let p = pool(vec![member(dead, 1), member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Tcp, 8080, Some(p.id));
        let config = lb(vip(2), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        for _ in 0..6 {
            let reply = get(addr(vip(2), 8080)).await.unwrap();
            assert_eq!(reply.body, "web1");
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
async fn backup_members_serve_only_when_no_primary_is_usable() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let mut backup = member(web2.addr, 1);
        backup.backup = true;
        let mut p = pool(vec![member(web1.addr, 1), backup]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let mut config = lb(vip(3), vec![l], vec![p.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        for _ in 0..3 {
            assert_eq!(get(addr(vip(3), 8080)).await.unwrap().body, "web1");
        }

        p.members[0].admin_state_up = false;
        config.pools = vec![p];
        config.version = 2;
        h.apply(&config).await.unwrap();
        for _ in 0..3 {
            assert_eq!(get(addr(vip(3), 8080)).await.unwrap().body, "web2");
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn no_usable_member_closes_tcp_and_answers_503_on_http() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let mut disabled = member(web1.addr, 1);
        disabled.admin_state_up = false;
        let p = pool(vec![disabled, member(web1.addr, 0)]);
        let http = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let tcp = listener(ListenerProtocol::Tcp, 8081, None);
        let config = lb(vip(4), vec![http.clone(), tcp.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let reply = get(addr(vip(4), 8080)).await.unwrap();
        assert_eq!(reply.status, 503);

        // TCP listener without a pool: the connection is closed, nothing said.
        let mut client = LineClient::connect(addr(vip(4), 8081)).await.unwrap();
        let _ = client.send("hello").await;
        let answer = client.recv_within(IO_DEADLINE).await;
        assert!(
            matches!(answer, Ok(None) | Err(_)),
            "expected a closed connection, got {answer:?}"
        );

        let report = h.report(config.lb_id);
        assert_eq!(listener_stats(&report, http.id).request_errors, 1);
        assert_eq!(listener_stats(&report, tcp.id).request_errors, 1);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
