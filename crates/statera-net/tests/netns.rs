//! The netns driver against the real kernel (needs root, as CI runs): one
//! external and one tenant network, a router with a floating IP, a load
//! balancer namespace with one leg, a client and a member namespace plugged
//! in the way a VM's port would be.

use socket2::Socket;
use statera_net::netns::exec;
use statera_net::netns::firewall::{FloatingNat, Ingress, LbFilter, ListenerPort, RouterNat};
use statera_net::netns::{Desired, Driver, LbPlumbing, Leg, Names, Route, RouterPlumbing};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use uuid::Uuid;

fn is_root() -> bool {
    // SAFETY: no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// A prerequisite is missing: on a developer's machine say so and skip; under CI (`CI=true`),
/// which runs as root, fail.
fn skip_or_fail(reason: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("prerequisite missing under CI=true: {reason}");
    }
    println!("SKIPPED: {reason}");
}

fn plug_host(sw: &str, ns: &str, bridge: &str, tap: &str, addr: &str, gw: &str) {
    exec::add_namespace(ns).unwrap();
    exec::ip_batch(
        Some(sw),
        &[
            format!("link add {tap} type veth peer name eth0 netns {ns}"),
            format!("link set {tap} master {bridge}"),
            format!("link set {tap} up"),
        ],
    )
    .unwrap();
    exec::ip_batch(
        Some(ns),
        &[
            format!("addr add {addr} dev eth0"),
            "link set eth0 up".to_string(),
            format!("route add default via {gw}"),
        ],
    )
    .unwrap();
}

fn listen_in(ns: &str, addr: SocketAddr) -> TcpListener {
    let socket = Socket::from(exec::socket(ns, libc::AF_INET, libc::SOCK_STREAM, 0).unwrap());
    socket.set_reuse_address(true).unwrap();
    socket.bind(&addr.into()).unwrap();
    socket.listen(16).unwrap();
    socket.into()
}

fn connect_from(ns: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let ns = ns.to_string();
    exec::run_in(&ns, move || {
        TcpStream::connect_timeout(&to, Duration::from_secs(3))
    })
}

#[test]
fn one_arm_topology_and_teardown() {
    if !is_root() {
        skip_or_fail("the netns driver needs root");
        return;
    }
    for tool in ["ip", "nft"] {
        if std::process::Command::new(tool).arg("-V").output().is_err() {
            skip_or_fail(&format!(
                "the netns driver needs `{tool}` (iproute2, nftables)"
            ));
            return;
        }
    }
    let prefix = format!("stnt{}-", std::process::id());
    let driver = Driver::new(&prefix);
    let names = driver.names().clone();
    let ext = Uuid::new_v4();
    let tenant = Uuid::new_v4();
    let lb_id = Uuid::new_v4();
    let router_id = Uuid::new_v4();
    let vip_port = Uuid::new_v4();
    let qg = Uuid::new_v4();
    let qr = Uuid::new_v4();
    let leg = |port_id: Uuid, network_id: Uuid, dev: String, mac: &str, addrs: &[&str]| Leg {
        port_id,
        network_id,
        dev,
        mac: mac.to_string(),
        addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        mtu: 1500,
    };
    let lb = LbPlumbing {
        lb_id,
        leg: leg(
            vip_port,
            tenant,
            Names::vip_dev(vip_port),
            "fa:16:3e:00:00:10",
            &["10.20.0.10/24"],
        ),
        routes: vec![Route {
            destination: "0.0.0.0/0".parse().unwrap(),
            via: "10.20.0.1".parse().unwrap(),
        }],
        filter: LbFilter {
            listeners: vec![ListenerPort {
                protocol: 6,
                port: 80,
                allowed_cidrs: vec![],
            }],
            ingress: Ingress::ListenersOnly,
        },
    };
    let router = RouterPlumbing {
        router_id,
        gateway: Some(leg(
            qg,
            ext,
            Names::gateway_dev(qg),
            "fa:16:3e:00:00:01",
            &["172.24.4.1/24", "172.24.4.100/32"],
        )),
        interfaces: vec![leg(
            qr,
            tenant,
            Names::interface_dev(qr),
            "fa:16:3e:00:00:02",
            &["10.20.0.1/24"],
        )],
        routes: vec![],
        nat: Some(RouterNat {
            gateway_dev: Names::gateway_dev(qg),
            floating: vec![FloatingNat {
                floating_ip: "172.24.4.100".parse().unwrap(),
                fixed_ip: "10.20.0.10".parse().unwrap(),
            }],
            snat: None,
        }),
    };
    let desired = Desired {
        networks: vec![ext, tenant],
        lbs: vec![lb.clone()],
        routers: vec![router.clone()],
    };
    let client_ns = format!("{prefix}client");
    let web_ns = format!("{prefix}web1");
    let cleanup = |driver: &Driver| {
        let _ = exec::delete_namespace(&client_ns);
        let _ = exec::delete_namespace(&web_ns);
        let _ = driver.teardown();
    };
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        driver.reconcile(&desired, &HashSet::new(), true).unwrap();
        // A second pass changes nothing and succeeds.
        driver.reconcile(&desired, &HashSet::new(), true).unwrap();

        // The LB namespace holds lo and exactly one leg.
        let links = exec::links(&names.lb(lb_id)).unwrap();
        let mut link_names: Vec<String> = links.into_iter().map(|l| l.name).collect();
        link_names.sort();
        assert_eq!(link_names, vec!["lo".to_string(), Names::vip_dev(vip_port)]);

        plug_host(
            &names.switch(),
            &client_ns,
            &Names::bridge(ext),
            "tapclient",
            "172.24.4.50/24",
            "172.24.4.1",
        );
        plug_host(
            &names.switch(),
            &web_ns,
            &Names::bridge(tenant),
            "tapweb1",
            "10.20.0.11/24",
            "10.20.0.1",
        );
        // The load balancer reaches the member from its VIP address.
        let member = listen_in(&web_ns, "10.20.0.11:8080".parse().unwrap());
        let accept = std::thread::spawn(move || member.accept().map(|(_, peer)| peer));
        let conn = connect_from(&names.lb(lb_id), "10.20.0.11:8080".parse().unwrap()).unwrap();
        let peer = accept.join().unwrap().unwrap();
        assert_eq!(peer.ip().to_string(), "10.20.0.10");
        drop(conn);

        // The client reaches the VIP through the floating IP, and the load
        // balancer sees the client's own address (DNAT only on the way in).
        let vip = listen_in(&names.lb(lb_id), "10.20.0.10:80".parse().unwrap());
        let accept = std::thread::spawn(move || {
            let (mut s, peer) = vip.accept()?;
            s.write_all(b"hi")?;
            std::io::Result::Ok(peer)
        });
        let mut conn = connect_from(&client_ns, "172.24.4.100:80".parse().unwrap()).unwrap();
        let mut buf = [0u8; 2];
        conn.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        let peer = accept.join().unwrap().unwrap();
        assert_eq!(peer.ip().to_string(), "172.24.4.50");

        // The filter: a port no listener uses is closed.
        let closed = listen_in(&names.lb(lb_id), "10.20.0.10:81".parse().unwrap());
        assert!(connect_from(&client_ns, "172.24.4.100:81".parse().unwrap()).is_err());
        drop(closed);

        // Removing the load balancer removes its namespace and veth.
        let without_lb = Desired {
            lbs: vec![],
            ..desired.clone()
        };
        driver
            .reconcile(&without_lb, &HashSet::new(), false)
            .unwrap();
        let inv = driver.inventory().unwrap();
        assert!(!inv.namespaces.contains(&names.lb(lb_id)), "{inv:?}");
        assert!(!inv.switch_links.contains(&Names::tap(vip_port)), "{inv:?}");

        // A restarted driver (nothing applied in memory) removes orphans:
        // here the router no one wants any more, and its legs.
        let fresh = Driver::new(&prefix);
        let only_networks = Desired {
            networks: vec![ext, tenant],
            ..Desired::default()
        };
        fresh
            .reconcile(&only_networks, &HashSet::new(), true)
            .unwrap();
        let inv = fresh.inventory().unwrap();
        assert!(
            !inv.namespaces.contains(&names.router(router_id)),
            "{inv:?}"
        );
        assert!(!inv.switch_links.contains(&Names::tap(qg)), "{inv:?}");
        // What others plugged into the bridges (a VM's port) is left alone.
        assert!(
            inv.switch_links.contains(&"tapclient".to_string()),
            "{inv:?}"
        );
    }));
    let _ = exec::ip(&["-n", &names.switch(), "link", "del", "tapclient"]);
    let _ = exec::ip(&["-n", &names.switch(), "link", "del", "tapweb1"]);
    cleanup(&driver);
    let left: Vec<String> = exec::list_namespaces()
        .unwrap()
        .into_iter()
        .filter(|n| n.starts_with(&prefix))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
}
