//! PROXY and PROXYV2 pools: the header members see before anything else.

use crate::support::*;
use crate::support_http::*;
use statera_config::DataPlane;
use statera_model::{ListenerProtocol, PoolProtocol};
use std::net::{IpAddr, SocketAddr};

fn v2_tcp4(client: SocketAddr, vip: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(c), IpAddr::V4(v)) = (client.ip(), vip.ip()) else {
        panic!("IPv4 expected");
    };
    [
        &b"\r\n\r\n\0\r\nQUIT\n"[..],
        &[0x21, 0x11, 0, 12],
        &c.octets(),
        &v.octets(),
        &client.port().to_be_bytes(),
        &vip.port().to_be_bytes(),
    ]
    .concat()
}

#[tokio::test]
async fn tcp_listener_members_see_the_client_in_a_v1_line_or_a_v2_header() {
    bounded(async {
        let v1_member = HttpMember::start_with("v1", Behaviour::Answer, ExpectProxy::V1).await;
        let v2_member = HttpMember::start_with("v2", Behaviour::Answer, ExpectProxy::V2).await;
        let mut v1_pool = pool(vec![member(v1_member.addr, 1)]);
        v1_pool.protocol = PoolProtocol::Proxy;
        let mut v2_pool = pool(vec![member(v2_member.addr, 1)]);
        v2_pool.protocol = PoolProtocol::ProxyV2;
        let config = lb(
            vip(80),
            vec![
                listener(ListenerProtocol::Tcp, 9000, Some(v1_pool.id)),
                listener(ListenerProtocol::Tcp, 9001, Some(v2_pool.id)),
            ],
            vec![v1_pool, v2_pool],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let source: IpAddr = [127, 102, 80, 7].into();

        let mut client = HttpClient::connect_from(Some(source), addr(vip(80), 9000)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().body_text(), "v1");
        let seen = v1_member.seen();
        assert_eq!(
            String::from_utf8(seen[0].proxy_header.clone().unwrap()).unwrap(),
            format!(
                "PROXY TCP4 127.102.80.7 127.101.80.1 {} 9000\r\n",
                client.local.port()
            )
        );

        let mut client = HttpClient::connect_from(Some(source), addr(vip(80), 9001)).await;
        assert_eq!(client.get("/", &[]).await.unwrap().body_text(), "v2");
        assert_eq!(
            v2_member.seen()[0].proxy_header.as_deref().unwrap(),
            v2_tcp4(client.local, addr(vip(80), 9001))
        );
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn http_listener_sends_one_header_per_member_connection_and_never_shares_it() {
    bounded(async {
        let m = HttpMember::start_with("m", Behaviour::Answer, ExpectProxy::V2).await;
        let mut p = pool(vec![member(m.addr, 1)]);
        p.protocol = PoolProtocol::ProxyV2;
        let config = lb(
            vip(81),
            vec![listener(ListenerProtocol::Http, 8080, Some(p.id))],
            vec![p],
        );
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let vip_addr = addr(vip(81), 8080);

        let mut clients = [
            HttpClient::connect_from(Some([127, 102, 81, 1].into()), vip_addr).await,
            HttpClient::connect_from(Some([127, 102, 81, 2].into()), vip_addr).await,
        ];
        for i in [0, 1, 0, 1, 0] {
            assert_eq!(clients[i].get("/", &[]).await.unwrap().status, 200);
        }
        let [a, b] = &clients;
        let seen = m.seen();
        assert_eq!(seen.len(), 5);
        // Each client's requests share one member connection, opened with
        // that client's header; the two clients never share one.
        assert_eq!(m.connections(), 2);
        for (i, client) in [(0, a), (1, b), (2, a), (3, b), (4, a)] {
            assert_eq!(
                seen[i].proxy_header.as_deref().unwrap(),
                v2_tcp4(client.local, vip_addr),
                "request {i}"
            );
        }
        assert_eq!(seen[0].connection, seen[2].connection);
        assert_eq!(seen[0].connection, seen[4].connection);
        assert_eq!(seen[1].connection, seen[3].connection);
        assert_ne!(seen[0].connection, seen[1].connection);
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
