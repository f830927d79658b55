//! Who gets in: connection limits and allowed source networks.

use crate::support::*;
use statera_config::{DataPlane, ListenerState};
use statera_model::ListenerProtocol;
use std::net::IpAddr;
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
