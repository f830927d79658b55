//! Applying configs over time: listeners added, kept, removed; refusals that
//! leave the served config alone; draining.

use crate::support::*;
use statera_config::{DataPlane, DataPlaneError, L7PolicyConfig, L7RuleConfig, ListenerState};
use statera_dataplane::EngineOptions;
use statera_model::{L7PolicyAction, L7RuleCompareType, L7RuleType, ListenerProtocol};
use std::time::Duration;
use uuid::Uuid;

#[tokio::test]
async fn a_listener_added_later_answers_and_the_first_keeps_working() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let p1 = pool(vec![member(web1.addr, 1)]);
        let p2 = pool(vec![member(web2.addr, 1)]);
        // TCP: the held connection below speaks lines, not HTTP.
        let first = listener(ListenerProtocol::Tcp, 8080, Some(p1.id));
        let mut config = lb(vip(10), vec![first.clone()], vec![p1, p2.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        // An idle connection to the first listener, open across the apply.
        let mut held = LineClient::connect(addr(vip(10), 8080)).await.unwrap();
        assert_eq!(held.ask("before").await.unwrap(), "web1 before");

        config.version = 2;
        config
            .listeners
            .push(listener(ListenerProtocol::Tcp, 8081, Some(p2.id)));
        assert_eq!(h.apply(&config).await.unwrap(), 2);

        assert_eq!(get(addr(vip(10), 8081)).await.unwrap().body, "web2");
        assert_eq!(get(addr(vip(10), 8080)).await.unwrap().body, "web1");
        assert_eq!(held.ask("after").await.unwrap(), "web1 after");
        let report = h.report(config.lb_id);
        assert_eq!(report.version, 2);
        assert!(
            report
                .listeners
                .iter()
                .all(|l| l.state == ListenerState::Open)
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_removed_listener_stops_accepting() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let kept = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let removed = listener(ListenerProtocol::Http, 8081, Some(p.id));
        let mut config = lb(vip(11), vec![kept.clone(), removed], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(11), 8081)).await.unwrap().body, "web1");

        config.version = 2;
        config.listeners = vec![kept];
        h.apply(&config).await.unwrap();
        // Closed by the time apply/remove returns, not some time later.
        assert!(
            connect_from(None, addr(vip(11), 8081)).await.is_err(),
            "the removed listener still accepts"
        );
        assert_eq!(get(addr(vip(11), 8080)).await.unwrap().body, "web1");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_disabled_listener_is_down_and_closed() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let mut config = lb(vip(12), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(12), 8080)).await.unwrap().body, "web1");

        config.version = 2;
        config.listeners[0].admin_state_up = false;
        h.apply(&config).await.unwrap();
        assert_eq!(
            h.report(config.lb_id).listeners[0].state,
            ListenerState::Down
        );
        // Closed by the time apply/remove returns, not some time later.
        assert!(
            connect_from(None, addr(vip(12), 8080)).await.is_err(),
            "the disabled listener still accepts"
        );

        config.version = 3;
        config.listeners[0].admin_state_up = true;
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(12), 8080)).await.unwrap().body, "web1");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_long_lived_connection_survives_a_change_of_members() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let mut p = pool(vec![member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        let mut config = lb(vip(13), vec![l], vec![p.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let mut client = LineClient::connect(addr(vip(13), 9000)).await.unwrap();
        assert_eq!(client.ask("one").await.unwrap(), "web1 one");

        p.members = vec![member(web2.addr, 1)];
        config.pools = vec![p];
        config.version = 2;
        h.apply(&config).await.unwrap();

        assert_eq!(client.ask("two").await.unwrap(), "web1 two");
        assert_eq!(get(addr(vip(13), 9000)).await.unwrap().body, "web2");
        assert_eq!(client.ask("three").await.unwrap(), "web1 three");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_unbindable_apply_fails_and_the_previous_config_keeps_serving() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        // Someone else holds VIP:8081.
        let squatter = tokio::net::TcpListener::bind(addr(vip(14), 8081))
            .await
            .unwrap();

        let p1 = pool(vec![member(web1.addr, 1)]);
        let p2 = pool(vec![member(web2.addr, 1)]);
        let mut config = lb(
            vip(14),
            vec![listener(ListenerProtocol::Http, 8080, Some(p1.id))],
            vec![p1, p2.clone()],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        // Version 2 points the first listener at web2 and adds one on the
        // taken port: all or nothing, so nothing of it may be served.
        let mut next = config.clone();
        next.version = 2;
        next.listeners[0].default_pool_id = Some(p2.id);
        next.listeners
            .push(listener(ListenerProtocol::Http, 8081, Some(p2.id)));
        match h.apply(&next).await {
            Err(DataPlaneError::Bind {
                address, listener, ..
            }) => {
                assert_eq!(address, addr(vip(14), 8081).to_string());
                assert_eq!(
                    listener,
                    Some(next.listeners[1].id),
                    "the error names the listener"
                );
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
        assert_eq!(h.report(config.lb_id).version, 1);
        assert_eq!(get(addr(vip(14), 8080)).await.unwrap().body, "web1");

        // Once the port is free, the same change applies.
        drop(squatter);
        config = next;
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(14), 8080)).await.unwrap().body, "web2");
        assert_eq!(get(addr(vip(14), 8081)).await.unwrap().body, "web2");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn unsupported_listeners_are_refused_unless_disabled() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut config = lb(
            vip(15),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        for protocol in [ListenerProtocol::Sctp] {
            let mut next = config.clone();
            next.version = 2;
            next.listeners.push(listener(protocol, 9000, None));
            match h.apply(&next).await {
                Err(DataPlaneError::Unsupported(message)) => assert!(
                    message.contains(&format!(
                        "{protocol} listeners are not yet served by the native data plane"
                    )),
                    "{message}"
                ),
                other => panic!("expected {protocol} to be unsupported, got {other:?}"),
            }
        }
        // L7 policies only make sense on HTTP listeners: refused elsewhere.
        let reject = L7PolicyConfig {
            id: Uuid::new_v4(),
            action: L7PolicyAction::Reject,
            redirect_pool_id: None,
            redirect_url: None,
            redirect_prefix: None,
            redirect_http_code: None,
            rules: vec![L7RuleConfig {
                id: Uuid::new_v4(),
                kind: L7RuleType::Path,
                compare_type: L7RuleCompareType::Regex,
                key: None,
                value: "^/admin".into(),
                invert: false,
            }],
        };
        let mut on_tcp = config.clone();
        on_tcp.version = 2;
        let mut tcp = listener(ListenerProtocol::Tcp, 9000, None);
        tcp.l7policies.push(reject.clone());
        on_tcp.listeners.push(tcp);
        assert!(matches!(
            h.apply(&on_tcp).await,
            Err(DataPlaneError::Unsupported(m)) if m.contains("only HTTP listeners evaluate them")
        ));
        // A regex that does not compile fails the apply, not a request later.
        let mut bad_regex = config.clone();
        bad_regex.version = 2;
        let mut broken = reject.clone();
        broken.rules[0].value = "([a-z]".into();
        bad_regex.listeners[0].l7policies.push(broken);
        assert!(matches!(
            h.apply(&bad_regex).await,
            Err(DataPlaneError::Other(m)) if m.contains("invalid regex")
        ));
        assert_eq!(h.report(config.lb_id).version, 1);

        let mut udp = listener(ListenerProtocol::Udp, 9000, None);
        udp.admin_state_up = false;
        config.version = 2;
        config.listeners.push(udp);
        h.apply(&config).await.unwrap();
        let report = h.report(config.lb_id);
        assert_eq!(report.listeners[0].state, ListenerState::Open);
        assert_eq!(report.listeners[1].state, ListenerState::Down);
        assert_eq!(get(addr(vip(15), 8080)).await.unwrap().body, "web1");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn remove_closes_listeners_and_forgets_the_load_balancer() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let config = lb(
            vip(16),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(16), 8080)).await.unwrap().body, "web1");

        h.engine.remove(config.lb_id).await.unwrap();
        assert!(h.engine.report(config.lb_id).is_none());
        // Closed by the time apply/remove returns, not some time later.
        assert!(
            connect_from(None, addr(vip(16), 8080)).await.is_err(),
            "a removed load balancer still accepts"
        );
        // Removing again is harmless.
        h.engine.remove(config.lb_id).await.unwrap();

        // The VIP's port is free at once: a new load balancer may take it.
        let p2 = pool(vec![member(web1.addr, 1)]);
        let again = lb(
            vip(16),
            vec![listener(ListenerProtocol::Http, 8080, Some(p2.id))],
            vec![p2],
        );
        h.apply(&again).await.unwrap();
        assert_eq!(get(addr(vip(16), 8080)).await.unwrap().body, "web1");
        h.engine.remove(again.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn connections_of_a_removed_listener_drain_then_are_cut() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut config = lb(
            vip(17),
            vec![listener(ListenerProtocol::Tcp, 9000, Some(p.id))],
            vec![p],
        );
        let h = Harness::with_options(EngineOptions {
            drain_timeout: Duration::from_millis(500),
            ..EngineOptions::default()
        });
        h.apply(&config).await.unwrap();
        let mut client = LineClient::connect(addr(vip(17), 9000)).await.unwrap();
        assert_eq!(client.ask("one").await.unwrap(), "web1 one");

        config.version = 2;
        config.listeners.clear();
        h.apply(&config).await.unwrap();
        // Draining: still served...
        assert_eq!(client.ask("two").await.unwrap(), "web1 two");
        // ...until the deadline closes it.
        let end = client.recv_within(Duration::from_secs(5)).await;
        let closed = match &end {
            Ok(None) => true,
            Ok(Some(_)) => false,
            Err(e) => e.kind() != std::io::ErrorKind::TimedOut,
        };
        assert!(
            closed,
            "expected the drain deadline to close the connection, got {end:?}"
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_disabled_load_balancer_serves_nothing() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut config = lb(
            vip(18),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        config.admin_state_up = false;
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        assert_eq!(
            h.report(config.lb_id).listeners[0].state,
            ListenerState::Down
        );
        assert!(connect_from(None, addr(vip(18), 8080)).await.is_err());

        config.version = 2;
        config.admin_state_up = true;
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(18), 8080)).await.unwrap().body, "web1");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_older_version_is_refused() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut config = lb(
            vip(19),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        config.version = 5;
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        // The same version again is fine (a controller retrying)...
        assert_eq!(h.apply(&config).await.unwrap(), 5);
        // ...an older one is not.
        let mut older = config.clone();
        older.version = 4;
        older.listeners.clear();
        assert!(matches!(
            h.apply(&older).await,
            Err(DataPlaneError::Other(_))
        ));
        assert_eq!(h.report(config.lb_id).version, 5);
        assert_eq!(get(addr(vip(19), 8080)).await.unwrap().body, "web1");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let mut l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        l.timeouts.client_data_ms = 300;
        l.timeouts.member_data_ms = 300;
        let config = lb(vip(22), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        let mut client = LineClient::connect(addr(vip(22), 9000)).await.unwrap();
        // Activity keeps the connection: exchanges spread over more than one
        // timeout in total.
        for i in 0..4 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            assert_eq!(
                client.ask(&i.to_string()).await.unwrap(),
                format!("web1 {i}")
            );
        }
        // Silence closes it.
        let started = tokio::time::Instant::now();
        let end = client.recv_within(Duration::from_secs(5)).await;
        assert!(
            matches!(end, Ok(None)),
            "expected end of stream, got {end:?}"
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// Issue #12 item 1: no listening socket is ever shared between two load
/// balancers. The engine binds without SO_REUSEPORT, so a second load
/// balancer on an address and port another one serves (another project's,
/// say) is refused with a bind error, and so is a bind next to an outside
/// socket that asked for SO_REUSEPORT (as HAProxy does by default).
#[tokio::test]
async fn two_load_balancers_never_share_a_listening_socket() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let h = Harness::new();
        let p1 = pool(vec![member(web1.addr, 1)]);
        let first = lb(
            vip(240),
            vec![listener(ListenerProtocol::Http, 8080, Some(p1.id))],
            vec![p1],
        );
        h.apply(&first).await.unwrap();
        let p2 = pool(vec![member(web2.addr, 1)]);
        let second = lb(
            vip(240),
            vec![listener(ListenerProtocol::Http, 8080, Some(p2.id))],
            vec![p2],
        );
        match h.apply(&second).await {
            Err(DataPlaneError::Bind { address, .. }) => {
                assert_eq!(address, addr(vip(240), 8080).to_string())
            }
            other => panic!("expected a bind error, got {other:?}"),
        }
        for _ in 0..10 {
            assert_eq!(get(addr(vip(240), 8080)).await.unwrap().body, "web1");
        }

        // An outside listener with SO_REUSEPORT on another port: the engine
        // does not join it.
        let outside = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )
        .unwrap();
        outside.set_reuse_port(true).unwrap();
        outside.bind(&addr(vip(240), 8081).into()).unwrap();
        outside.listen(16).unwrap();
        let p3 = pool(vec![member(web2.addr, 1)]);
        let third = lb(
            vip(240),
            vec![listener(ListenerProtocol::Http, 8081, Some(p3.id))],
            vec![p3],
        );
        assert!(matches!(
            h.apply(&third).await,
            Err(DataPlaneError::Bind { .. })
        ));
        drop(outside);
        h.engine.remove(first.lb_id).await.unwrap();
        let _ = h.engine.remove(second.lb_id).await;
        let _ = h.engine.remove(third.lb_id).await;
    })
    .await;
}

/// A second engine (the process taking over) serves on the first one's
/// listening socket: no bind conflict, and once the first stops accepting,
/// connections are served by the second while a connection the first had
/// accepted finishes there.
#[tokio::test]
async fn a_handed_over_socket_serves_in_the_next_engine() {
    bounded(async {
        let web = Backend::start("web").await;
        let p = pool(vec![member(web.addr, 1)]);
        let config = lb(
            vip(241),
            vec![listener(ListenerProtocol::Tcp, 8080, Some(p.id))],
            vec![p],
        );
        let old = Harness::new();
        old.apply(&config).await.unwrap();
        let mut held = LineClient::connect(addr(vip(241), 8080)).await.unwrap();
        assert_eq!(held.ask("one").await.unwrap(), "web one");

        let sockets = old.engine.listening_sockets().await.unwrap();
        assert_eq!(sockets.len(), 1);
        assert_eq!(sockets[0].0.addr, addr(vip(241), 8080));
        let new = Harness::new();
        new.engine.inherit(sockets);
        // Without the handed-over socket this bind would conflict.
        new.apply(&config).await.unwrap();
        assert_eq!(new.engine.release_inherited(), 0);
        old.engine.stop_accepting().await;

        for _ in 0..20 {
            let mut c = LineClient::connect(addr(vip(241), 8080)).await.unwrap();
            assert_eq!(c.ask("new").await.unwrap(), "web new");
        }
        assert_eq!(held.ask("still").await.unwrap(), "web still");
        let total = |h: &Harness| {
            let report = h.report(config.lb_id);
            listener_stats(&report, config.listeners[0].id).total_connections
        };
        assert_eq!(total(&new), 20);
        assert_eq!(total(&old), 1);
        new.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

/// A handed-over socket that is not what its key says (another address) is
/// refused: the engine binds its own instead of serving one address on
/// another's socket.
#[tokio::test]
async fn a_handed_over_socket_for_another_address_is_not_used() {
    bounded(async {
        let web = Backend::start("web").await;
        let p = pool(vec![member(web.addr, 1)]);
        let config = lb(
            vip(242),
            vec![listener(ListenerProtocol::Tcp, 8080, Some(p.id))],
            vec![p],
        );
        let other = std::net::TcpListener::bind(addr(vip(243), 8080)).unwrap();
        let fd = std::os::fd::AsFd::as_fd(&other)
            .try_clone_to_owned()
            .unwrap();
        let key = statera_dataplane::SocketKey {
            netns: None,
            addr: addr(vip(242), 8080),
            udp: false,
        };
        let h = Harness::new();
        h.engine.inherit(vec![(key, fd)]);
        h.apply(&config).await.unwrap();
        assert_eq!(get(addr(vip(242), 8080)).await.unwrap().body, "web");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
