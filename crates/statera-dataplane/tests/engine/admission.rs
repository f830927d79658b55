//! Who gets in: connection limits and allowed source networks.

use crate::support::*;
use statera_config::{DataPlane, ListenerState};
use statera_dataplane::{ConnectionLimits, EngineOptions};
use statera_model::ListenerProtocol;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[tokio::test]
async fn connections_over_the_limit_wait_instead_of_being_refused() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        l.connection_limit = Some(1);
        let config = lb(vip(20), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut first = LineClient::connect(addr(vip(20), 9000)).await.unwrap();
        assert_eq!(first.ask("a").await.unwrap(), "web1 a");
        assert_eq!(
            h.report(config.lb_id).listeners[0].state,
            ListenerState::Full
        );

        // The second client connects (kernel accept queue) but is not served...
        let mut second = LineClient::connect(addr(vip(20), 9000)).await.unwrap();
        second.send("b").await.unwrap();
        let early = second.recv_within(Duration::from_millis(300)).await;
        assert!(
            matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
            "the second connection was served over the limit: {early:?}"
        );
        // ...until the first leaves; then it is, without having to reconnect.
        drop(first);
        assert_eq!(
            second.recv_within(IO_DEADLINE).await.unwrap().as_deref(),
            Some("web1 b")
        );
        drop(second);
        let open = eventually(Duration::from_secs(2), async || {
            h.report(config.lb_id).listeners[0].state == ListenerState::Open
        })
        .await;
        assert!(open, "the listener stays full after its connections closed");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn sources_outside_allowed_cidrs_are_closed() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        l.allowed_cidrs = vec!["127.102.21.0/24".parse().unwrap()];
        let config = lb(vip(21), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let inside: IpAddr = [127, 102, 21, 5].into();
        let outside: IpAddr = [127, 103, 21, 5].into();
        let vip_addr = addr(vip(21), 8080);
        assert_eq!(get_from(Some(inside), vip_addr).await.unwrap().body, "web1");
        assert!(get_from(Some(outside), vip_addr).await.is_err());
        assert!(
            get(vip_addr).await.is_err(),
            "127.0.0.1 is not allowed either"
        );

        let stats = listener_stats(&h.report(config.lb_id), l.id);
        assert_eq!(stats.total_connections, 1, "refused sources are not served");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_waiting_client_keeps_its_place_across_an_apply_and_a_raised_limit_admits_it() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        l.connection_limit = Some(1);
        let mut config = lb(vip(23), vec![l], vec![p.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut first = LineClient::connect(addr(vip(23), 9000)).await.unwrap();
        assert_eq!(first.ask("a").await.unwrap(), "web1 a");
        let mut second = LineClient::connect(addr(vip(23), 9000)).await.unwrap();
        second.send("b").await.unwrap();

        // An apply that keeps the listener keeps its socket: the waiting
        // client stays queued on it and is not reset.
        config.version = 2;
        config
            .listeners
            .push(listener(ListenerProtocol::Tcp, 9001, Some(p.id)));
        h.apply(&config).await.unwrap();
        let early = second.recv_within(Duration::from_millis(300)).await;
        assert!(
            matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::TimedOut),
            "{early:?}"
        );

        // Raising the limit admits it while the first is still connected.
        config.version = 3;
        config.listeners[0].connection_limit = Some(2);
        h.apply(&config).await.unwrap();
        assert_eq!(
            second.recv_within(IO_DEADLINE).await.unwrap().as_deref(),
            Some("web1 b")
        );
        assert_eq!(first.ask("c").await.unwrap(), "web1 c");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// Octavia's `connection_limit` of -1 does not mean "the whole process": a
/// load balancer holds at most its ceiling over all its listeners (an
/// explicit limit above it included), all load balancers together at most
/// the process's; past either a connection is reset at once and counted.
#[tokio::test]
async fn connections_past_the_ceilings_are_refused_and_counted() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let h = Harness::with_options(EngineOptions {
            limits: ConnectionLimits {
                total: Some(5),
                per_lb: Some(3),
                handshakes: None,
            },
            ..EngineOptions::default()
        });
        let pa = pool(vec![member(web1.addr, 1)]);
        let unlimited = listener(ListenerProtocol::Tcp, 9000, Some(pa.id));
        let mut explicit = listener(ListenerProtocol::Tcp, 9001, Some(pa.id));
        explicit.connection_limit = Some(1000);
        let a = lb(
            vip(231),
            vec![unlimited.clone(), explicit.clone()],
            vec![pa],
        );
        let pb = pool(vec![member(web1.addr, 1)]);
        let lb_b = listener(ListenerProtocol::Tcp, 9000, Some(pb.id));
        let b = lb(vip(232), vec![lb_b.clone()], vec![pb]);
        h.apply(&a).await.unwrap();
        h.apply(&b).await.unwrap();

        let served = async |to: SocketAddr| -> Option<LineClient> {
            let mut client = LineClient::connect(to).await.ok()?;
            (client.ask("x").await.ok()? == "web1 x").then_some(client)
        };
        // A: three connections over its two listeners, then its ceiling.
        let mut held = Vec::new();
        for port in [9000, 9000, 9001] {
            held.push(
                served(addr(vip(231), port))
                    .await
                    .expect("under the ceiling"),
            );
        }
        for port in [9000, 9001] {
            assert!(
                served(addr(vip(231), port)).await.is_none(),
                "served past the load balancer's ceiling"
            );
        }
        // B is not starved by A: it gets the process's two remaining places.
        let mut held_b = Vec::new();
        for _ in 0..2 {
            held_b.push(served(addr(vip(232), 9000)).await.expect("B serves"));
        }
        assert!(
            served(addr(vip(232), 9000)).await.is_none(),
            "served past the process's ceiling"
        );
        assert_eq!(h.engine.connections(), (3, 5));
        // Both load balancers' listeners report FULL (operating status DEGRADED).
        for config in [&a, &b] {
            for listener in h.report(config.lb_id).listeners {
                assert_eq!(listener.state, ListenerState::Full);
            }
        }

        // Counted where the operator reads them: the listeners' request errors.
        let report = h.report(a.lb_id);
        assert_eq!(listener_stats(&report, unlimited.id).request_errors, 1);
        assert_eq!(listener_stats(&report, explicit.id).request_errors, 1);
        assert_eq!(
            listener_stats(&h.report(b.lb_id), lb_b.id).request_errors,
            1
        );

        // A connection that ends gives its place back.
        drop(held.pop());
        let again = eventually(Duration::from_secs(2), async || {
            match served(addr(vip(231), 9001)).await {
                Some(client) => {
                    held.push(client);
                    true
                }
                None => false,
            }
        })
        .await;
        assert!(
            again,
            "the ceiling did not give the closed connection's place back"
        );
        drop(held);
        drop(held_b);
        h.engine.remove(a.lb_id).await.unwrap();
        h.engine.remove(b.lb_id).await.unwrap();
    })
    .await;
}
