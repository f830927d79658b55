//! Session persistence end to end: SOURCE_IP, HTTP_COOKIE and APP_COOKIE,
//! across applies, and giving way to members that cannot serve.

use crate::support::*;
use crate::support_http::{Behaviour, ExpectProxy, HttpClient, HttpMember};
use statera_config::{
    DataPlane, HealthMonitorConfig, MemberHealth, PoolConfig, SessionPersistenceConfig,
};
use statera_model::{HealthMonitorType, ListenerProtocol, SessionPersistenceType};
use std::net::IpAddr;
use uuid::Uuid;

fn source(n: u8, k: u8) -> IpAddr {
    IpAddr::from([127, 102, n, k])
}

fn persistent(mut p: PoolConfig, kind: SessionPersistenceType, cookie: Option<&str>) -> PoolConfig {
    p.session_persistence = Some(SessionPersistenceConfig {
        kind,
        cookie_name: cookie.map(str::to_string),
        persistence_timeout: None,
        persistence_granularity: None,
    });
    p
}

/// The member a reply came from (the `HttpMember`'s name in the body).
async fn get_member(client: &mut HttpClient, extra: &[(&str, &str)]) -> (String, Vec<String>) {
    let reply = client.get("/", extra).await.unwrap();
    assert_eq!(reply.status, 200, "{}", reply.body_text());
    let cookies = reply
        .headers("set-cookie")
        .into_iter()
        .map(str::to_string)
        .collect();
    (reply.body_text(), cookies)
}

#[tokio::test]
async fn source_ip_persistence_keeps_each_client_on_its_member_across_applies() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let web3 = Backend::start("web3").await;
        let mut p = persistent(
            pool(vec![
                member(web1.addr, 1),
                member(web2.addr, 1),
                member(web3.addr, 1),
            ]),
            SessionPersistenceType::SourceIp,
            None,
        );
        let http = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let tcp = listener(ListenerProtocol::Tcp, 8081, Some(p.id));
        let mut config = lb(vip(100), vec![http, tcp], vec![p.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();

        // Round robin gives the first three clients three members; each then
        // stays on its own, interleaved, over HTTP and TCP alike.
        let clients: Vec<IpAddr> = (1..=3).map(|k| source(100, k)).collect();
        let mut first = Vec::new();
        for c in &clients {
            first.push(get_from(Some(*c), addr(vip(100), 8080)).await.unwrap().body);
        }
        let mut distinct = first.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 3, "{first:?}");
        for _ in 0..4 {
            for (c, m) in clients.iter().zip(&first) {
                assert_eq!(
                    &get_from(Some(*c), addr(vip(100), 8080)).await.unwrap().body,
                    m
                );
                assert_eq!(
                    &get_from(Some(*c), addr(vip(100), 8081)).await.unwrap().body,
                    m
                );
            }
        }

        // A new config (another member, other weights): the table stays.
        let web4 = Backend::start("web4").await;
        p.members.push(member(web4.addr, 5));
        p.members[0].weight = 2;
        config.pools = vec![p];
        config.version = 2;
        h.apply(&config).await.unwrap();
        for (c, m) in clients.iter().zip(&first) {
            assert_eq!(
                &get_from(Some(*c), addr(vip(100), 8080)).await.unwrap().body,
                m
            );
        }
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn source_ip_persistence_gives_way_to_a_dead_or_disabled_member_and_re_sticks() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let web3 = Backend::start("web3").await;
        let mut p = persistent(
            pool(vec![
                member(web1.addr, 1),
                member(web2.addr, 1),
                member(web3.addr, 1),
            ]),
            SessionPersistenceType::SourceIp,
            None,
        );
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let mut config = lb(vip(101), vec![l.clone()], vec![p.clone()]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(101), 8080);
        let client = Some(source(101, 1));

        // web1 first (round robin), and it stays.
        assert_eq!(get_from(client, to).await.unwrap().body, "web1");
        assert_eq!(get_from(client, to).await.unwrap().body, "web1");

        // web1 disabled: the client moves, without an error, and stays
        // where it moved, even once web1 is back.
        p.members[0].admin_state_up = false;
        config.pools = vec![p.clone()];
        config.version = 2;
        h.apply(&config).await.unwrap();
        let moved = get_from(client, to).await.unwrap();
        assert_eq!(moved.status, 200);
        assert_ne!(moved.body, "web1");
        p.members[0].admin_state_up = true;
        config.pools = vec![p.clone()];
        config.version = 3;
        h.apply(&config).await.unwrap();
        for _ in 0..3 {
            assert_eq!(get_from(client, to).await.unwrap().body, moved.body);
        }

        // Its new member dies (no health monitor: the connect fails): the
        // next request is served by another member all the same.
        let survivor = if moved.body == "web2" {
            let stopped = web2.addr;
            drop(web2);
            wait_refused(stopped).await;
            "web3"
        } else {
            let stopped = web3.addr;
            drop(web3);
            wait_refused(stopped).await;
            "web2"
        };
        let reply = get_from(client, to).await.unwrap();
        assert_eq!(reply.status, 200);
        assert!(reply.body == survivor || reply.body == "web1", "{reply:?}");
        let again = get_from(client, to).await.unwrap();
        assert_eq!(again.body, reply.body, "re-stuck to the member that served");
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l.id).request_errors,
            0
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn http_cookie_is_inserted_once_and_keeps_the_client_on_its_member() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let web2 = HttpMember::start("web2").await;
        let p = persistent(
            pool(vec![member(web1.addr, 1), member(web2.addr, 1)]),
            SessionPersistenceType::HttpCookie,
            None,
        );
        let ids: Vec<(Uuid, &str)> = vec![(p.members[0].id, "web1"), (p.members[1].id, "web2")];
        let config = lb(
            vip(102),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(102), 8080);

        let mut client = HttpClient::connect(to).await;
        let (first, set) = get_member(&mut client, &[]).await;
        let id = ids.iter().find(|(_, n)| *n == first).unwrap().0;
        assert_eq!(set, [format!("SRV={id}; Path=/")]);
        let cookie = format!("SRV={id}");

        // With the cookie: the same member every time (round robin would
        // alternate), and no cookie inserted again.
        for _ in 0..4 {
            let (m, set) = get_member(&mut client, &[("Cookie", &cookie)]).await;
            assert_eq!(m, first);
            assert!(set.is_empty(), "{set:?}");
        }
        // Among other cookies too; the member never sees the proxy's cookie.
        let mixed = format!("app=1; {cookie}; other=2");
        let (m, _) = get_member(&mut client, &[("Cookie", &mixed)]).await;
        assert_eq!(m, first);
        let member = if first == "web1" { &web1 } else { &web2 };
        let last = member.seen().pop().unwrap();
        assert_eq!(last.header("cookie"), ["app=1; other=2"]);
        assert!(member.seen().iter().all(|s| !s.head.contains("SRV=")));

        // A cookie naming no member: balanced anew, and a fresh cookie.
        let (m, set) = get_member(&mut client, &[("Cookie", "SRV=not-a-member")]).await;
        let id = ids.iter().find(|(_, n)| *n == m).unwrap().0;
        assert_eq!(set, [format!("SRV={id}; Path=/")]);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn http_cookie_gives_way_to_a_member_down_by_health() {
    bounded(async {
        let web1 = HttpMember::start("web1").await;
        let web2 = HttpMember::start("web2").await;
        let mut p = persistent(
            pool(vec![member(web1.addr, 1), member(web2.addr, 1)]),
            SessionPersistenceType::HttpCookie,
            None,
        );
        p.health_monitor = Some(HealthMonitorConfig {
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
        });
        let web1_id = p.members[0].id;
        let web2_id = p.members[1].id;
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(103), vec![l.clone()], vec![p]);
        let mut h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(103), 8080);

        let mut client = HttpClient::connect(to).await;
        let (m, _) = get_member(&mut client, &[("Cookie", &format!("SRV={web1_id}"))]).await;
        assert_eq!(m, "web1");

        drop(web1);
        h.wait_report(|r| r.pools[0].members[0].health == MemberHealth::Down)
            .await;
        for _ in 0..2 {
            let (m, set) = get_member(&mut client, &[("Cookie", &format!("SRV={web1_id}"))]).await;
            assert_eq!(m, "web2");
            assert_eq!(set, [format!("SRV={web2_id}; Path=/")]);
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
async fn app_cookie_values_are_learnt_from_responses_and_requests() {
    bounded(async {
        let web1 = HttpMember::start_with("web1", Behaviour::SetsCookie, ExpectProxy::None).await;
        let web2 = HttpMember::start_with("web2", Behaviour::SetsCookie, ExpectProxy::None).await;
        let p = persistent(
            pool(vec![member(web1.addr, 1), member(web2.addr, 1)]),
            SessionPersistenceType::AppCookie,
            Some("JSESSIONID"),
        );
        let config = lb(
            vip(104),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(104), 8080);
        let mut client = HttpClient::connect(to).await;

        // The member sets JSESSIONID=<its name>; requests carrying that value
        // go back to it.
        let (first, set) = get_member(&mut client, &[]).await;
        assert_eq!(set, [format!("JSESSIONID={first}; Path=/; HttpOnly")]);
        for _ in 0..4 {
            let cookie = format!("JSESSIONID={first}");
            let (m, _) = get_member(&mut client, &[("Cookie", &cookie)]).await;
            assert_eq!(m, first);
        }
        // The other member's value goes to the other member.
        let other = if first == "web1" { "web2" } else { "web1" };
        let (m, _) = get_member(&mut client, &[("Cookie", &format!("JSESSIONID={other}"))]).await;
        assert_eq!(m, other);

        // A value the proxy never saw sticks to the member chosen for it.
        let (chosen, _) = get_member(&mut client, &[("Cookie", "JSESSIONID=client-made")]).await;
        for _ in 0..4 {
            let (m, _) = get_member(&mut client, &[("Cookie", "JSESSIONID=client-made")]).await;
            assert_eq!(m, chosen);
        }
        // The application's cookie reaches the member untouched.
        let member = if chosen == "web1" { &web1 } else { &web2 };
        assert_eq!(
            member.seen().pop().unwrap().header("cookie"),
            ["JSESSIONID=client-made"]
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn app_cookie_gives_way_to_a_dead_member_without_a_client_error() {
    bounded(async {
        let web1 = HttpMember::start_with("web1", Behaviour::SetsCookie, ExpectProxy::None).await;
        let web2 = HttpMember::start_with("web2", Behaviour::SetsCookie, ExpectProxy::None).await;
        let p = persistent(
            pool(vec![member(web1.addr, 1), member(web2.addr, 1)]),
            SessionPersistenceType::AppCookie,
            Some("JSESSIONID"),
        );
        let l = listener(ListenerProtocol::Http, 8080, Some(p.id));
        let config = lb(vip(105), vec![l.clone()], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(105), 8080);
        let mut client = HttpClient::connect(to).await;

        let (first, _) = get_member(&mut client, &[]).await;
        assert_eq!(first, "web1");
        let cookie = "JSESSIONID=web1";
        assert_eq!(
            get_member(&mut client, &[("Cookie", cookie)]).await.0,
            "web1"
        );

        // web1 dies with no health monitor to notice: the request still gets
        // an answer, from web2, which the value now sticks to.
        let stopped = web1.addr;
        drop(web1);
        wait_refused(stopped).await;
        for _ in 0..3 {
            let (m, _) = get_member(&mut client, &[("Cookie", cookie)]).await;
            assert_eq!(m, "web2");
        }
        assert_eq!(
            listener_stats(&h.report(config.lb_id), l.id).request_errors,
            0
        );
        drop(web2);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn source_ip_entries_expire_after_the_persistence_timeout() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let web2 = Backend::start("web2").await;
        let mut p = persistent(
            pool(vec![member(web1.addr, 1), member(web2.addr, 1)]),
            SessionPersistenceType::SourceIp,
            None,
        );
        if let Some(sp) = &mut p.session_persistence {
            sp.persistence_timeout = Some(1);
        }
        let config = lb(
            vip(106),
            vec![listener(ListenerProtocol::Tcp, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(106), 8080);
        let client = Some(source(106, 1));

        // Used within the timeout: kept (each use refreshes it).
        for _ in 0..3 {
            assert_eq!(get_from(client, to).await.unwrap().body, "web1");
            tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        }
        // Idle past the timeout: forgotten; round robin's next turn is web2.
        tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
        assert_eq!(get_from(client, to).await.unwrap().body, "web2");
        assert_eq!(get_from(client, to).await.unwrap().body, "web2");
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
