//! The `netns` network driver's control side: what the kernel should hold,
//! computed from the store, handed to statera-net's driver.
//!
//! Two callers share one lock: the controller plugs a load balancer before
//! its data plane binds the VIP and unplugs it after the data plane let go;
//! the reconciler follows every other change (networks, routers, floating
//! IPs, security groups) and, at start and every [`SCAN_INTERVAL`], removes
//! what it finds in the kernel that the store does not want. The snapshot a
//! pass works from is taken under the lock, so a pass never works from a
//! state older than what the other caller already applied.

use ipnet::IpNet;
use statera_model::*;
use statera_net::netns::firewall::{
    FloatingNat, Ingress, IngressRule, LbFilter, ListenerPort, RouterNat,
};
use statera_net::netns::{Desired, Driver, LbPlumbing, Leg, Names, Route, RouterPlumbing};
use statera_store::{State, Store};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, watch};
use uuid::Uuid;

/// How often a full pass also looks for orphaned kernel objects.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(60);

pub struct NetnsNetwork {
    driver: Arc<Driver>,
    lock: Mutex<()>,
    /// Load balancers are served by agents, each plumbing its own on its
    /// host from the configuration it is sent: this side keeps only the
    /// switch (the networks' bridges, the hosts' trunks end there) and the
    /// routers.
    agents: bool,
}

/// Whether a subnet is served by the `host` driver (loopback VIPs) rather
/// than plumbed into namespaces.
fn host_subnet(s: &Subnet) -> bool {
    statera_net::host::is_bindable_without_setup(&s.cidr)
}

fn host_network(s: &State, network_id: Uuid) -> bool {
    let mut subnets = s.subnets.children(network_id).peekable();
    subnets.peek().is_some() && subnets.all(|x| host_subnet(x))
}

fn mtu(s: &State, network_id: Uuid) -> u32 {
    s.networks
        .get(&network_id)
        .map(|n| n.mtu)
        .filter(|m| (576..=9000).contains(m))
        .unwrap_or(1500)
}

fn leg(s: &State, port: &Port, dev: String, extra: &[IpNet]) -> Leg {
    let mut addresses: Vec<IpNet> = port
        .fixed_ips
        .iter()
        .filter_map(|f| {
            let subnet = s.subnets.get(&f.subnet_id)?;
            IpNet::new(f.ip_address, subnet.cidr.prefix_len()).ok()
        })
        .collect();
    addresses.extend_from_slice(extra);
    Leg {
        port_id: port.id,
        network_id: port.network_id,
        dev,
        mac: port.mac_address.clone(),
        addresses,
        mtu: mtu(s, port.network_id),
    }
}

/// The routes of a leg on `subnet`: default via its gateway, its host routes.
fn subnet_routes(subnet: &Subnet) -> Vec<Route> {
    let mut routes = Vec::new();
    if let Some(gw) = subnet.gateway_ip {
        let any = match gw {
            std::net::IpAddr::V4(_) => "0.0.0.0/0",
            std::net::IpAddr::V6(_) => "::/0",
        };
        routes.push(Route {
            destination: any.parse().expect("valid"),
            via: gw,
        });
    }
    for r in &subnet.host_routes {
        routes.push(Route {
            destination: r.destination,
            via: r.nexthop,
        });
    }
    routes
}

fn rule_of(s: &State, rule: &SecurityGroupRule) -> IngressRule {
    let mut sources: Vec<IpNet> = rule.remote_ip_prefix.iter().copied().collect();
    let mut matches_nothing = false;
    if let Some(group) = rule.remote_group_id {
        sources.extend(
            s.ports
                .iter()
                .filter(|p| p.security_groups.contains(&group))
                .flat_map(|p| p.fixed_ips.iter().map(|f| IpNet::from(f.ip_address))),
        );
        matches_nothing = sources.is_empty();
    }
    IngressRule {
        ipv6: rule.ethertype == EtherType::IPv6,
        protocol: rule
            .protocol
            .as_deref()
            .and_then(SecurityGroupRule::protocol_number),
        port_range_min: rule.port_range_min,
        port_range_max: rule.port_range_max,
        sources,
        matches_nothing,
    }
}

fn lb_filter(s: &State, lb: &LoadBalancer, port: &Port) -> LbFilter {
    let listeners = s
        .listeners
        .children(lb.id)
        .filter(|l| l.provisioning_status != ProvisioningStatus::PendingDelete)
        .map(|l| ListenerPort {
            protocol: if l.protocol == ListenerProtocol::Udp {
                17
            } else {
                6
            },
            port: l.protocol_port,
            allowed_cidrs: l.allowed_cidrs.clone(),
        })
        .collect();
    let mut groups: Vec<Uuid> = port.security_groups.clone();
    for g in &lb.vip_sg_ids {
        if !groups.contains(g) {
            groups.push(*g);
        }
    }
    let ingress = if !port.port_security_enabled {
        Ingress::Everything
    } else if groups.is_empty() {
        Ingress::ListenersOnly
    } else {
        Ingress::Rules(
            groups
                .iter()
                .flat_map(|g| s.security_group_rules.children(*g))
                .filter(|r| r.direction == Direction::Ingress)
                .map(|r| rule_of(s, r))
                .collect(),
        )
    };
    LbFilter { listeners, ingress }
}

/// What `lb`'s namespace should be, if it has one (its VIP is not on a
/// host-driver subnet and its port exists).
pub fn lb_plumbing(s: &State, lb: &LoadBalancer) -> Option<LbPlumbing> {
    let subnet = s.subnets.get(&lb.vip_subnet_id)?;
    if host_subnet(subnet) {
        return None;
    }
    let port = s.ports.get(&lb.vip_port_id)?;
    Some(LbPlumbing {
        lb_id: lb.id,
        leg: leg(s, port, Names::vip_dev(port.id), &[]),
        routes: subnet_routes(subnet),
        filter: lb_filter(s, lb, port),
    })
}

fn router_plumbing(s: &State, router: &Router) -> RouterPlumbing {
    let id = router.id.to_string();
    let floating: Vec<&Arc<FloatingIp>> = s
        .floating_ips
        .iter()
        .filter(|f| f.router_id == Some(router.id) && f.port_id.is_some())
        .collect();
    let mut gateway = None;
    let mut routes = Vec::new();
    let mut nat = None;
    let interfaces: Vec<&Arc<Port>> = s
        .ports
        .iter()
        .filter(|p| p.device_id == id && p.device_owner == device_owner::ROUTER_INTERFACE)
        .collect();
    if let Some(gw) = &router.external_gateway
        && let Some(port) = s.ports.get(&gw.port_id)
    {
        let fips: Vec<IpNet> = floating
            .iter()
            .map(|f| IpNet::from(f.floating_ip_address))
            .collect();
        let leg = leg(s, port, Names::gateway_dev(port.id), &fips);
        if let Some(subnet) = port
            .fixed_ips
            .first()
            .and_then(|f| s.subnets.get(&f.subnet_id))
        {
            routes.extend(subnet_routes(subnet));
        }
        let snat_address = port
            .fixed_ips
            .iter()
            .map(|f| f.ip_address)
            .find(|a| a.is_ipv4());
        let internal: Vec<IpNet> = interfaces
            .iter()
            .flat_map(|p| p.fixed_ips.iter())
            .filter_map(|f| s.subnets.get(&f.subnet_id).map(|x| x.cidr))
            .collect();
        nat = Some(RouterNat {
            gateway_dev: leg.dev.clone(),
            floating: floating
                .iter()
                .filter_map(|f| {
                    Some(FloatingNat {
                        floating_ip: f.floating_ip_address,
                        fixed_ip: f.fixed_ip_address?,
                    })
                })
                .collect(),
            snat: match (gw.enable_snat, snat_address) {
                (true, Some(a)) => Some((a, internal)),
                _ => None,
            },
        });
        gateway = Some(leg);
    }
    for r in &router.routes {
        routes.push(Route {
            destination: r.destination,
            via: r.nexthop,
        });
    }
    RouterPlumbing {
        router_id: router.id,
        gateway,
        interfaces: interfaces
            .iter()
            .map(|p| leg(s, p, Names::interface_dev(p.id), &[]))
            .collect(),
        routes,
        nat,
    }
}

/// Everything the kernel should hold for `s`, and the load balancers whose
/// plumbing the controller owns right now (those with pending work).
pub fn desired(s: &State) -> (Desired, HashSet<Uuid>) {
    let networks = s
        .networks
        .iter()
        .filter(|n| !host_network(s, n.id))
        .map(|n| n.id)
        .collect();
    let mut keep = HashSet::new();
    let mut lbs = Vec::new();
    for lb in s.loadbalancers.iter() {
        // A load balancer with pending work is the controller's to plug
        // (before its provider applies) or unplug; a pass here would only
        // make the controller wait for the lock (a burst of creates would
        // all be plugged by one long pass before the first is applied).
        if lb.provisioning_status.is_pending() {
            keep.insert(lb.id);
            continue;
        }
        if let Some(p) = lb_plumbing(s, lb) {
            lbs.push(p);
        }
    }
    let routers = s.routers.iter().map(|r| router_plumbing(s, r)).collect();
    (
        Desired {
            networks,
            lbs,
            routers,
        },
        keep,
    )
}

impl NetnsNetwork {
    /// Checks the host can run the driver.
    pub fn new(prefix: &str) -> std::io::Result<NetnsNetwork> {
        Driver::check_host()?;
        Ok(NetnsNetwork {
            driver: Arc::new(Driver::new(prefix)),
            lock: Mutex::new(()),
            agents: false,
        })
    }

    /// The switch and routers only: load balancers' namespaces are their
    /// agents' (each configuration carries its plumbing, [`Self::plumbing_for`]).
    pub fn for_agents(prefix: &str) -> std::io::Result<NetnsNetwork> {
        let mut network = NetnsNetwork::new(prefix)?;
        network.agents = true;
        Ok(network)
    }

    /// Whether load balancers' namespaces are their agents'.
    pub fn on_agents(&self) -> bool {
        self.agents
    }

    /// What an agent must build for `lb` on its host (agents only).
    pub fn plumbing_for(&self, s: &State, lb: &LoadBalancer) -> Option<LbPlumbing> {
        if !self.agents {
            return None;
        }
        lb_plumbing(s, lb)
    }

    pub fn names(&self) -> &Names {
        self.driver.names()
    }

    /// The namespace `lb`'s data plane must use, if any.
    pub fn namespace_for(&self, s: &State, lb: &LoadBalancer) -> Option<String> {
        if self.agents {
            // The agent's, named after its prefix.
            return None;
        }
        let subnet = s.subnets.get(&lb.vip_subnet_id)?;
        (!host_subnet(subnet)).then(|| self.driver.names().lb(lb.id))
    }

    /// Builds (or updates) `lb_id`'s namespace from the current store.
    pub async fn plug(&self, store: &Store, lb_id: Uuid) -> Result<(), String> {
        let _guard = self.lock.lock().await;
        let s = store.snapshot();
        let Some(plumbing) = s
            .loadbalancers
            .get(&lb_id)
            .and_then(|lb| lb_plumbing(&s, lb))
        else {
            return Ok(());
        };
        let driver = self.driver.clone();
        tokio::task::spawn_blocking(move || driver.ensure_lb(&plumbing))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot plug the VIP port: {e}"))
    }

    /// Makes a network's bridge exist in the switch (agents' hosts trunk
    /// into it).
    pub async fn ensure_network(&self, network_id: Uuid) -> Result<(), String> {
        let _guard = self.lock.lock().await;
        let driver = self.driver.clone();
        tokio::task::spawn_blocking(move || driver.ensure_network(network_id))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot make the network's bridge: {e}"))
    }

    /// Removes `lb_id`'s namespace.
    pub async fn unplug(&self, lb_id: Uuid) {
        if self.agents {
            return;
        }
        let _guard = self.lock.lock().await;
        let driver = self.driver.clone();
        let result = tokio::task::spawn_blocking(move || driver.remove_lb(lb_id)).await;
        if let Ok(Err(e)) = result {
            tracing::warn!(lb = %lb_id, error = %e, "cannot remove the load balancer's namespace");
        }
    }

    /// One pass: makes the kernel match the store.
    pub async fn reconcile(&self, store: &Store, scan: bool) {
        let _guard = self.lock.lock().await;
        let s = store.snapshot();
        let (mut desired, keep) = desired(&s);
        if self.agents {
            desired.lbs.clear();
        }
        let driver = self.driver.clone();
        let result =
            tokio::task::spawn_blocking(move || driver.reconcile(&desired, &keep, scan)).await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "network reconcile incomplete; will retry"),
            Err(e) => tracing::error!(error = %e, "network reconcile panicked"),
        }
    }

    /// Follows the store until `shutdown` turns true: a pass after every
    /// burst of changes, a full pass (with orphan scan) every SCAN_INTERVAL.
    pub async fn run(self: Arc<Self>, store: Arc<Store>, mut shutdown: watch::Receiver<bool>) {
        let mut changes = store.changes();
        let mut scan = tokio::time::interval(SCAN_INTERVAL);
        scan.tick().await;
        loop {
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Let a burst of writes settle into one pass.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    changes.borrow_and_update();
                    self.reconcile(&store, false).await;
                }
                _ = scan.tick() => self.reconcile(&store, true).await,
                _ = shutdown.changed() => {
                    if *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }

    /// Removes every kernel object under the driver's prefix.
    pub async fn teardown(&self) -> std::io::Result<()> {
        let _guard = self.lock.lock().await;
        let driver = self.driver.clone();
        tokio::task::spawn_blocking(move || driver.teardown())
            .await
            .map_err(std::io::Error::other)?
    }

    pub async fn inventory(&self) -> std::io::Result<statera_net::netns::Inventory> {
        let driver = self.driver.clone();
        tokio::task::spawn_blocking(move || driver.inventory())
            .await
            .map_err(std::io::Error::other)?
    }
}
