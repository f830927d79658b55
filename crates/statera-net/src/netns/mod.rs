//! The `netns` network driver: Neutron's picture built from Linux network
//! namespaces, veth pairs and bridges on this host (needs root).
//!
//! ```text
//!  ns <prefix>switch      one bridge brq<network id[..11]> per Neutron network
//!        │ tap<port id[..11]>  (veth; the other end lives in the owner's namespace)
//!  ns <prefix>lb-<lb id>      ONE leg vip-<port[..11]>: the VIP port's MAC and
//!                             address, default route via the subnet gateway,
//!                             nftables table "statera" (ingress filter)
//!  ns <prefix>router-<id>     qg-<port[..11]> on the external network (+ floating
//!                             IPs as /32), qr-<port[..11]> per attached subnet,
//!                             ip_forward, nftables table "statera-nat"
//! ```
//!
//! Keeping the bridges in a namespace of their own leaves the host's root
//! namespace untouched. The driver is told what should exist ([`Desired`],
//! computed by the controller from the store) and makes the kernel match: it
//! remembers what it applied, so an unchanged object costs nothing, and a
//! full pass ([`Driver::reconcile`] with `scan`) also removes what it finds
//! in the kernel under its prefix that nothing wants (after a restart).

pub mod exec;
pub mod firewall;

use firewall::{LbFilter, RouterNat};
use ipnet::IpNet;
use std::collections::{HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::Mutex;
use uuid::Uuid;

/// The alias the driver gives the interfaces it creates in the switch
/// namespace: an orphan scan only ever removes interfaces carrying it.
pub const OWN_ALIAS: &str = "statera";

/// How the driver names its kernel objects.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

fn short(id: Uuid) -> String {
    id.simple().to_string()[..11].to_string()
}

impl Names {
    pub fn new(prefix: &str) -> Names {
        Names {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding every network's bridge.
    pub fn switch(&self) -> String {
        format!("{}switch", self.prefix)
    }

    pub fn lb(&self, lb_id: Uuid) -> String {
        format!("{}lb-{lb_id}", self.prefix)
    }

    pub fn router(&self, router_id: Uuid) -> String {
        format!("{}router-{router_id}", self.prefix)
    }

    /// A network's bridge (in the switch namespace), named as Neutron's
    /// Linux bridge agent names it.
    pub fn bridge(network_id: Uuid) -> String {
        format!("brq{}", short(network_id))
    }

    /// A port's veth end on the bridge side.
    pub fn tap(port_id: Uuid) -> String {
        format!("tap{}", short(port_id))
    }

    /// This host's end of its trunk of a network (agents' hosts).
    pub fn uplink(network_id: Uuid) -> String {
        format!("up{}", short(network_id))
    }

    pub fn vip_dev(port_id: Uuid) -> String {
        format!("vip-{}", short(port_id))
    }

    pub fn gateway_dev(port_id: Uuid) -> String {
        format!("qg-{}", short(port_id))
    }

    pub fn interface_dev(port_id: Uuid) -> String {
        format!("qr-{}", short(port_id))
    }
}

/// One port plugged into its network's bridge.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Leg {
    pub port_id: Uuid,
    pub network_id: Uuid,
    /// The interface's name inside its namespace.
    pub dev: String,
    pub mac: String,
    /// Each fixed IP with its subnet's prefix length.
    pub addresses: Vec<IpNet>,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Route {
    pub destination: IpNet,
    pub via: IpAddr,
}

/// A load balancer's namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LbPlumbing {
    pub lb_id: Uuid,
    pub leg: Leg,
    /// The default route via the subnet's gateway, then its host routes.
    pub routes: Vec<Route>,
    pub filter: LbFilter,
}

/// A router's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterPlumbing {
    pub router_id: Uuid,
    /// The gateway leg; its `addresses` include the floating IPs (as /32).
    pub gateway: Option<Leg>,
    pub interfaces: Vec<Leg>,
    pub routes: Vec<Route>,
    pub nat: Option<RouterNat>,
}

/// Everything the kernel should hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Desired {
    pub networks: Vec<Uuid>,
    pub lbs: Vec<LbPlumbing>,
    pub routers: Vec<RouterPlumbing>,
}

#[derive(Debug, Default)]
struct Applied {
    switch: bool,
    bridges: HashSet<Uuid>,
    lbs: HashMap<Uuid, LbPlumbing>,
    routers: HashMap<Uuid, RouterPlumbing>,
}

/// Kernel objects per kind, as found under the driver's prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inventory {
    pub namespaces: Vec<String>,
    /// Interfaces in the switch namespace (bridges and veth ends).
    pub switch_links: Vec<String>,
}

pub struct Driver {
    names: Names,
    applied: Mutex<Applied>,
}

impl Driver {
    pub fn new(prefix: &str) -> Driver {
        Driver {
            names: Names::new(prefix),
            applied: Mutex::new(Applied::default()),
        }
    }

    pub fn names(&self) -> &Names {
        &self.names
    }

    fn applied(&self) -> std::sync::MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this host can run the driver (root, `ip` and `nft` present).
    pub fn check_host() -> io::Result<()> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(io::Error::other(
                "the netns network driver needs root (CAP_NET_ADMIN, CAP_SYS_ADMIN)",
            ));
        }
        exec::ip(&["-V"])?;
        let mut nft = std::process::Command::new("nft");
        nft.arg("--version");
        exec::run(nft, None)?;
        Ok(())
    }

    fn ensure_switch(&self, applied: &mut Applied) -> io::Result<()> {
        let sw = self.names.switch();
        if !applied.switch || !exec::namespace_exists(&sw) {
            exec::add_namespace(&sw)?;
            applied.switch = true;
            applied.bridges.clear();
        }
        Ok(())
    }

    fn ensure_bridge(&self, applied: &mut Applied, network_id: Uuid) -> io::Result<()> {
        self.ensure_switch(applied)?;
        if applied.bridges.contains(&network_id) {
            return Ok(());
        }
        let sw = self.names.switch();
        let br = Names::bridge(network_id);
        let exists = exec::links(&sw)?.iter().any(|l| l.name == br);
        if !exists {
            exec::ip_batch(
                Some(&sw),
                &[
                    format!("link add {br} type bridge"),
                    format!("link set {br} alias {OWN_ALIAS}"),
                    format!("link set {br} up"),
                ],
            )?;
        }
        applied.bridges.insert(network_id);
        Ok(())
    }

    /// Plugs `leg` into namespace `ns`: the veth into the bridge (made here,
    /// in the switch), and the lines that set it up inside `ns` (MAC, MTU,
    /// addresses with extra ones removed, up), for the caller to run in one
    /// batch with its routes. `fresh`: `ns` was just created, so nothing of
    /// the leg can exist in it yet and nothing needs to be listed.
    fn plug_leg(
        &self,
        applied: &mut Applied,
        ns: &str,
        leg: &Leg,
        fresh: bool,
    ) -> io::Result<Vec<String>> {
        self.ensure_bridge(applied, leg.network_id)?;
        let sw = self.names.switch();
        let tap = Names::tap(leg.port_id);
        let br = Names::bridge(leg.network_id);
        let dev = &leg.dev;
        let mut make_veth = fresh;
        let mut current = Vec::new();
        if !fresh {
            let sw_links = exec::links(&sw)?;
            let plugged = sw_links
                .iter()
                .any(|l| l.name == tap && l.master.as_deref() == Some(br.as_str()));
            let in_ns = exec::links(ns)?.iter().any(|l| l.name == *dev);
            if plugged && in_ns {
                current = addresses(ns, dev)?;
            } else {
                if sw_links.iter().any(|l| l.name == tap) {
                    exec::ip(&["-n", &sw, "link", "del", &tap])?;
                }
                if in_ns {
                    exec::ip(&["-n", ns, "link", "del", dev])?;
                }
                make_veth = true;
            }
        }
        if make_veth {
            let create = [
                format!(
                    "link add {tap} mtu {} type veth peer name {dev} netns {ns}",
                    leg.mtu
                ),
                format!("link set {tap} alias {OWN_ALIAS}"),
                format!("link set {tap} master {br}"),
                format!("link set {tap} up"),
            ];
            if let Err(e) = exec::ip_batch(Some(&sw), &create) {
                // A tap left by a namespace that was deleted while something
                // still held it open: take it out and try once more.
                let _ = exec::ip(&["-n", &sw, "link", "del", &tap]);
                exec::ip_batch(Some(&sw), &create).map_err(|_| e)?;
            }
            // Announce the address (gratuitous ARP) when the link comes up
            // and whenever its MAC changes: neighbours may remember another
            // MAC for it. (A thread call, not a process.)
            exec::sysctl(ns, &format!("ipv4/conf/{dev}/arp_notify"), "1")?;
        }
        let mut lines = vec![
            "link set lo up".to_string(),
            format!("link set {dev} address {}", leg.mac),
            format!("link set {dev} mtu {}", leg.mtu),
        ];
        for a in &current {
            if !leg.addresses.contains(a) {
                lines.push(format!("addr del {a} dev {dev}"));
            }
        }
        for a in &leg.addresses {
            if !current.contains(a) {
                let nodad = if a.addr().is_ipv6() { " nodad" } else { "" };
                lines.push(format!("addr add {a} dev {dev}{nodad}"));
            }
        }
        lines.push(format!("link set {dev} up"));
        Ok(lines)
    }

    /// The lines that make `ns`'s static routes exactly `routes` (listing
    /// what is there unless the namespace is `fresh`).
    fn route_lines(ns: &str, routes: &[Route], fresh: bool) -> io::Result<Vec<String>> {
        let name = |r: &Route| {
            if r.destination.prefix_len() == 0 {
                "default".to_string()
            } else {
                r.destination.trunc().to_string()
            }
        };
        let mut lines = Vec::new();
        if !fresh {
            let out = exec::ip(&["-n", ns, "-o", "route", "show", "proto", "static"])?;
            let wanted: HashSet<String> = routes.iter().map(name).collect();
            for line in out.lines() {
                if let Some(dest) = line.split_whitespace().next()
                    && !wanted.contains(dest)
                {
                    lines.push(format!("route del {dest} proto static"));
                }
            }
        }
        for r in routes {
            lines.push(format!(
                "route replace {} via {} proto static",
                name(r),
                r.via
            ));
        }
        Ok(lines)
    }

    /// Makes `lb`'s namespace exist as described (before the data plane binds
    /// its VIP there).
    pub fn ensure_lb(&self, lb: &LbPlumbing) -> io::Result<()> {
        let mut applied = self.applied();
        self.ensure_lb_locked(&mut applied, lb)
    }

    fn ensure_lb_locked(&self, applied: &mut Applied, lb: &LbPlumbing) -> io::Result<()> {
        let ns = self.names.lb(lb.lb_id);
        let exists = exec::namespace_exists(&ns);
        if exists && applied.lbs.get(&lb.lb_id) == Some(lb) {
            return Ok(());
        }
        let previous = applied.lbs.remove(&lb.lb_id).filter(|_| exists);
        if let Some(prev) = &previous
            && prev.leg.port_id != lb.leg.port_id
        {
            self.remove_leg(&prev.leg);
        }
        let fresh = exec::ensure_namespace(&ns)?;
        let mut lines = Vec::new();
        if previous.as_ref().map(|p| &p.leg) != Some(&lb.leg) {
            lines = self.plug_leg(applied, &ns, &lb.leg, fresh)?;
        }
        if previous.as_ref().map(|p| &p.routes) != Some(&lb.routes) {
            lines.extend(Self::route_lines(&ns, &lb.routes, fresh)?);
        }
        exec::ip_batch(Some(&ns), &lines)?;
        if previous.as_ref().map(|p| &p.filter) != Some(&lb.filter) {
            exec::nft(&ns, &lb.filter.ruleset())?;
        }
        applied.lbs.insert(lb.lb_id, lb.clone());
        Ok(())
    }

    fn remove_leg(&self, leg: &Leg) {
        let sw = self.names.switch();
        let tap = Names::tap(leg.port_id);
        if exec::namespace_exists(&sw) {
            // Deleting one end of a veth deletes both.
            let _ = exec::ip(&["-n", &sw, "link", "del", &tap]);
        }
    }

    /// Removes a load balancer's leg and namespace.
    pub fn remove_lb(&self, lb_id: Uuid) -> io::Result<()> {
        let mut applied = self.applied();
        if let Some(prev) = applied.lbs.remove(&lb_id) {
            self.remove_leg(&prev.leg);
        }
        exec::delete_namespace(&self.names.lb(lb_id))
    }

    fn ensure_router_locked(&self, applied: &mut Applied, r: &RouterPlumbing) -> io::Result<()> {
        let ns = self.names.router(r.router_id);
        let exists = exec::namespace_exists(&ns);
        if exists && applied.routers.get(&r.router_id) == Some(r) {
            return Ok(());
        }
        let previous = applied.routers.remove(&r.router_id).filter(|_| exists);
        let fresh = exec::ensure_namespace(&ns)?;
        if fresh {
            exec::sysctl(&ns, "ipv4/ip_forward", "1")?;
        }
        let legs: Vec<&Leg> = r.gateway.iter().chain(r.interfaces.iter()).collect();
        let mut old_legs: Vec<&Leg> = Vec::new();
        if let Some(prev) = &previous {
            old_legs.extend(prev.gateway.iter().chain(prev.interfaces.iter()));
            for old in &old_legs {
                if !legs.iter().any(|l| l.port_id == old.port_id) {
                    self.remove_leg(old);
                }
            }
        }
        let mut lines = Vec::new();
        for leg in &legs {
            if !old_legs.contains(leg) {
                lines.extend(self.plug_leg(applied, &ns, leg, fresh)?);
            }
        }
        lines.extend(Self::route_lines(&ns, &r.routes, fresh)?);
        exec::ip_batch(Some(&ns), &lines)?;
        let ruleset = match &r.nat {
            Some(nat) => nat.ruleset(),
            None => format!(
                "table ip {t}\ndelete table ip {t}\n",
                t = firewall::ROUTER_TABLE
            ),
        };
        if previous.as_ref().map(|p| &p.nat) != Some(&r.nat) {
            exec::nft(&ns, &ruleset)?;
        }
        applied.routers.insert(r.router_id, r.clone());
        Ok(())
    }

    fn remove_router_locked(&self, applied: &mut Applied, router_id: Uuid) -> io::Result<()> {
        if let Some(prev) = applied.routers.remove(&router_id) {
            for leg in prev.gateway.iter().chain(prev.interfaces.iter()) {
                self.remove_leg(leg);
            }
        }
        exec::delete_namespace(&self.names.router(router_id))
    }

    /// Makes the kernel match `desired`: routers and load balancers not
    /// wanted any more are removed, new or changed ones (re)built, bridges of
    /// deleted networks removed. With `scan`, also removes objects under the
    /// prefix this process did not create (left by a previous run).
    /// Load balancers in `keep` are neither created nor removed here (the
    /// controller owns their life).
    pub fn reconcile(&self, desired: &Desired, keep: &HashSet<Uuid>, scan: bool) -> io::Result<()> {
        let mut applied = self.applied();
        let mut first_error: Option<io::Error> = None;
        let mut note = |r: io::Result<()>, what: &str| {
            if let Err(e) = r {
                tracing::warn!(error = %e, "netns: {what}");
                if first_error.is_none() {
                    first_error = Some(e);
                }
            }
        };
        // 1. Remove what is no longer wanted.
        let lb_ids: HashSet<Uuid> = desired.lbs.iter().map(|l| l.lb_id).collect();
        let router_ids: HashSet<Uuid> = desired.routers.iter().map(|r| r.router_id).collect();
        let stale_lbs: Vec<Uuid> = applied
            .lbs
            .keys()
            .filter(|id| !lb_ids.contains(id) && !keep.contains(id))
            .copied()
            .collect();
        for id in stale_lbs {
            if let Some(prev) = applied.lbs.remove(&id) {
                self.remove_leg(&prev.leg);
            }
            note(
                exec::delete_namespace(&self.names.lb(id)),
                "removing a load balancer namespace",
            );
        }
        let stale_routers: Vec<Uuid> = applied
            .routers
            .keys()
            .filter(|id| !router_ids.contains(id))
            .copied()
            .collect();
        for id in stale_routers {
            let r = self.remove_router_locked(&mut applied, id);
            note(r, "removing a router namespace");
        }
        if scan {
            let r = self.remove_orphans(&mut applied, desired, keep);
            note(r, "removing orphaned kernel objects");
        }
        // 2. Build what is wanted.
        if !desired.networks.is_empty() || !desired.lbs.is_empty() || !desired.routers.is_empty() {
            for net in &desired.networks {
                let r = self.ensure_bridge(&mut applied, *net);
                note(r, "creating a bridge");
            }
        }
        for r in &desired.routers {
            let res = self.ensure_router_locked(&mut applied, r);
            note(res, "plumbing a router");
        }
        for lb in &desired.lbs {
            let res = self.ensure_lb_locked(&mut applied, lb);
            note(res, "plumbing a load balancer");
        }
        // 3. Bridges of networks that are gone (their ports went first).
        let wanted: HashSet<Uuid> = desired.networks.iter().copied().collect();
        let stale_bridges: Vec<Uuid> = applied
            .bridges
            .iter()
            .filter(|n| !wanted.contains(n))
            .copied()
            .collect();
        for net in stale_bridges {
            applied.bridges.remove(&net);
            let sw = self.names.switch();
            let r = exec::ip(&["-n", &sw, "link", "del", &Names::bridge(net)]).map(|_| ());
            note(r, "removing a bridge");
        }
        // 4. Nothing wanted at all: the switch namespace goes too.
        let nothing = desired.networks.is_empty() && desired.lbs.is_empty();
        if nothing && desired.routers.is_empty() && applied.lbs.is_empty() && keep.is_empty() {
            let sw = self.names.switch();
            if exec::namespace_exists(&sw) {
                note(exec::delete_namespace(&sw), "removing the switch namespace");
            }
            applied.switch = false;
            applied.bridges.clear();
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn remove_orphans(
        &self,
        applied: &mut Applied,
        desired: &Desired,
        keep: &HashSet<Uuid>,
    ) -> io::Result<()> {
        let lb_ns: HashSet<String> = desired
            .lbs
            .iter()
            .map(|l| l.lb_id)
            .chain(keep.iter().copied())
            .map(|id| self.names.lb(id))
            .collect();
        let router_ns: HashSet<String> = desired
            .routers
            .iter()
            .map(|r| self.names.router(r.router_id))
            .collect();
        let lb_prefix = format!("{}lb-", self.names.prefix);
        let router_prefix = format!("{}router-", self.names.prefix);
        for ns in exec::list_namespaces()? {
            let orphan = (ns.starts_with(&lb_prefix) && !lb_ns.contains(&ns))
                || (ns.starts_with(&router_prefix) && !router_ns.contains(&ns));
            if orphan {
                tracing::info!(namespace = %ns, "netns: removing an orphaned namespace");
                exec::delete_namespace(&ns)?;
            }
        }
        let sw = self.names.switch();
        if !exec::namespace_exists(&sw) {
            return Ok(());
        }
        let taps: HashSet<String> = desired
            .lbs
            .iter()
            .map(|l| &l.leg)
            .chain(
                desired
                    .routers
                    .iter()
                    .flat_map(|r| r.gateway.iter().chain(r.interfaces.iter())),
            )
            .map(|l| Names::tap(l.port_id))
            .collect();
        let keep_taps: HashSet<String> = applied
            .lbs
            .iter()
            .filter(|(id, _)| keep.contains(id))
            .map(|(_, l)| Names::tap(l.leg.port_id))
            .collect();
        let bridges: HashSet<String> = desired.networks.iter().map(|n| Names::bridge(*n)).collect();
        // Only what the driver made (marked with its alias): the switch also
        // holds the veths of ports others plug (a hypervisor's VMs, tests).
        for link in exec::links(&sw)? {
            if link.alias.as_deref() != Some(OWN_ALIAS) {
                continue;
            }
            let name = link.name;
            let orphan =
                (name.starts_with("tap") && !taps.contains(&name) && !keep_taps.contains(&name))
                    || (name.starts_with("brq") && !bridges.contains(&name));
            if orphan {
                tracing::info!(interface = %name, "netns: removing an orphaned interface");
                exec::ip(&["-n", &sw, "link", "del", &name])?;
            }
        }
        applied.bridges.retain(|n| desired.networks.contains(n));
        Ok(())
    }

    /// Makes a network's bridge exist in the switch namespace (before a
    /// host's trunk is joined to it).
    pub fn ensure_network(&self, network_id: Uuid) -> io::Result<()> {
        let mut applied = self.applied();
        self.ensure_bridge(&mut applied, network_id)
    }

    /// An agent's host: makes `lb`'s namespace exist as described, on this
    /// host's bridge of its network, that bridge joined to the same
    /// network's bridge in `uplink` (the switch namespace; on one machine,
    /// each host is its own switch namespace) — one lock for both, so that
    /// a removal of the network's last other load balancer cannot take the
    /// trunk away in between. The trunk is a veth pair: `up<net>` here, a
    /// name of [`trunk_name`] there, whose alias (`statera-trunk:<host>`)
    /// lets the controller find a host's trunks to fence them. An existing
    /// trunk is left as it is (a fenced one stays down: only the controller
    /// brings it up again).
    pub fn ensure_lb_on_host(&self, lb: &LbPlumbing, uplink: &str, host: &str) -> io::Result<()> {
        if uplink == self.names.switch() {
            return Err(io::Error::other(
                "a host's trunks cannot end in its own switch namespace",
            ));
        }
        let mut applied = self.applied();
        self.ensure_trunk_locked(&mut applied, lb.leg.network_id, lb.leg.mtu, uplink, host)?;
        self.ensure_lb_locked(&mut applied, lb)
    }

    fn ensure_trunk_locked(
        &self,
        applied: &mut Applied,
        network_id: Uuid,
        mtu: u32,
        uplink: &str,
        host: &str,
    ) -> io::Result<()> {
        self.ensure_bridge(applied, network_id)?;
        let sw = self.names.switch();
        let up = Names::uplink(network_id);
        if exec::links(&sw)?.iter().any(|l| l.name == up) {
            return Ok(());
        }
        let br = Names::bridge(network_id);
        let far = trunk_name(host, network_id);
        let alias = format!("{TRUNK_ALIAS}:{host}");
        let uplink_links = exec::links(uplink)?;
        if !uplink_links.iter().any(|l| l.name == br) {
            return Err(io::Error::other(format!(
                "the switch namespace {uplink} has no bridge {br} for network {network_id} (yet)"
            )));
        }
        // This host's switch end left behind (its own end deleted by hand):
        // taken out first. Another host's of the same name is not touched
        // (the creation below then fails).
        if uplink_links
            .iter()
            .any(|l| l.name == far && l.alias.as_deref() == Some(alias.as_str()))
        {
            exec::ip(&["-n", uplink, "link", "del", &far])?;
        }
        exec::ip_batch(
            Some(&sw),
            &[
                format!("link add {up} mtu {mtu} type veth peer name {far} netns {uplink}"),
                format!("link set {up} alias {TRUNK_ALIAS}"),
                format!("link set {up} master {br}"),
                format!("link set {up} up"),
            ],
        )?;
        let joined = exec::ip_batch(
            Some(uplink),
            &[
                format!("link set {far} mtu {mtu}"),
                format!("link set {far} alias {alias}"),
                format!("link set {far} master {br}"),
                format!("link set {far} up"),
            ],
        );
        if joined.is_err() {
            // Half made: not left for a later call to take as done.
            let _ = exec::ip(&["-n", &sw, "link", "del", &up]);
        }
        joined
    }

    /// Whether `lb_id`'s namespace exists.
    pub fn lb_exists(&self, lb_id: Uuid) -> bool {
        exec::namespace_exists(&self.names.lb(lb_id))
    }

    /// Removes `lb_id`'s namespace, and this host's trunk and bridge of its
    /// network when nothing else is plugged into that bridge any more (as
    /// the kernel says: a load balancer restored after a restart may not be
    /// in this process's memory yet).
    pub fn remove_lb_on_host(&self, lb_id: Uuid) -> io::Result<()> {
        let mut applied = self.applied();
        let network = applied.lbs.remove(&lb_id).map(|prev| {
            self.remove_leg(&prev.leg);
            prev.leg.network_id
        });
        exec::delete_namespace(&self.names.lb(lb_id))?;
        if let Some(net) = network
            && !applied.lbs.values().any(|l| l.leg.network_id == net)
        {
            let sw = self.names.switch();
            let (up, br) = (Names::uplink(net), Names::bridge(net));
            let links = exec::links(&sw)?;
            let in_use = links
                .iter()
                .any(|l| l.master.as_deref() == Some(br.as_str()) && l.name != up);
            if !in_use {
                for name in [&up, &br] {
                    if links.iter().any(|l| &l.name == name) {
                        exec::ip(&["-n", &sw, "link", "del", name])?;
                    }
                }
                applied.bridges.remove(&net);
            }
        }
        // The host's last load balancer gone: its switch goes too, once
        // nothing is left in it (unless this process runs in it: the
        // agent's host namespace itself).
        let sw = self.names.switch();
        if applied.lbs.is_empty()
            && exec::namespace_exists(&sw)
            && !exec::is_own_namespace(&sw)
            && exec::links(&sw)?.iter().all(|l| l.name == "lo")
        {
            exec::delete_namespace(&sw)?;
            applied.switch = false;
            applied.bridges.clear();
        }
        Ok(())
    }

    /// Removes the load balancer namespaces under the prefix that are not
    /// in `keep` (an agent's start: what it served and no longer keeps).
    pub fn remove_lb_namespaces_except(&self, keep: &HashSet<Uuid>) -> io::Result<()> {
        let wanted: HashSet<String> = keep.iter().map(|id| self.names.lb(*id)).collect();
        let lb_prefix = format!("{}lb-", self.names.prefix);
        for ns in exec::list_namespaces()? {
            if ns.starts_with(&lb_prefix) && !wanted.contains(&ns) {
                tracing::info!(namespace = %ns, "netns: removing a load balancer namespace nothing serves");
                exec::delete_namespace(&ns)?;
            }
        }
        Ok(())
    }

    /// Removes everything under the prefix (the switch namespace included).
    pub fn teardown(&self) -> io::Result<()> {
        let mut applied = self.applied();
        *applied = Applied::default();
        for ns in exec::list_namespaces()? {
            if ns.starts_with(&self.names.prefix) && ns != self.names.switch() {
                exec::delete_namespace(&ns)?;
            }
        }
        exec::delete_namespace(&self.names.switch())
    }

    /// What exists in the kernel under this driver's prefix.
    pub fn inventory(&self) -> io::Result<Inventory> {
        let mut namespaces: Vec<String> = exec::list_namespaces()?
            .into_iter()
            .filter(|n| n.starts_with(&self.names.prefix))
            .collect();
        namespaces.sort();
        let sw = self.names.switch();
        let mut switch_links = if exec::namespace_exists(&sw) {
            exec::links(&sw)?
                .into_iter()
                .map(|l| l.name)
                .filter(|n| n != "lo")
                .collect()
        } else {
            Vec::new()
        };
        switch_links.sort();
        Ok(Inventory {
            namespaces,
            switch_links,
        })
    }
}

/// The alias of a trunk's ends (the switch's end adds `:<host>`).
pub const TRUNK_ALIAS: &str = "statera-trunk";

/// The switch's end of `host`'s trunk of `network_id`: `t`, 7 hex digits of
/// the host's name's FNV-1a hash, 7 of the network id (15 characters, the
/// kernel's limit). Only named at creation: a trunk is found again by its
/// host's end.
pub fn trunk_name(host: &str, network_id: Uuid) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for b in host.bytes() {
        hash = (hash ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!(
        "t{:07x}{}",
        hash & 0x0fff_ffff,
        &network_id.simple().to_string()[..7]
    )
}

/// Takes every trunk of `host` in the switch namespace `switch` down
/// (`fenced`: the host's load balancers were moved elsewhere while it was
/// away, and what it still plumbs must not answer for their addresses) or up
/// again. Returns how many trunks were set.
pub fn fence_host(switch: &str, host: &str, fenced: bool) -> io::Result<usize> {
    if !exec::namespace_exists(switch) {
        return Ok(0);
    }
    let alias = format!("{TRUNK_ALIAS}:{host}");
    let state = if fenced { "down" } else { "up" };
    let trunks: Vec<String> = exec::links(switch)?
        .into_iter()
        .filter(|l| l.alias.as_deref() == Some(alias.as_str()))
        .map(|l| l.name)
        .collect();
    // One at a time: a trunk its host removes meanwhile is no error, and
    // does not leave the others as they were.
    for name in &trunks {
        if let Err(e) = exec::ip(&["-n", switch, "link", "set", name, state])
            && exec::links(switch)?.iter().any(|l| &l.name == name)
        {
            return Err(e);
        }
    }
    Ok(trunks.len())
}

impl LbPlumbing {
    /// Whether this plumbing can be applied as it is: what a data-plane
    /// agent checks of what its controller sends (the interface's name is
    /// the one its port gives, the MAC a MAC, the MTU in range), before any
    /// of it reaches `ip`.
    pub fn check(&self) -> Result<(), String> {
        let leg = &self.leg;
        if leg.dev != Names::vip_dev(leg.port_id) {
            return Err(format!(
                "the VIP interface is named {:?}, not after its port",
                leg.dev
            ));
        }
        let mac_ok = leg.mac.len() == 17
            && leg.mac.split(':').count() == 6
            && leg
                .mac
                .split(':')
                .all(|b| b.len() == 2 && b.chars().all(|c| c.is_ascii_hexdigit()));
        if !mac_ok {
            return Err(format!("{:?} is not a MAC address", leg.mac));
        }
        if !(576..=9000).contains(&leg.mtu) {
            return Err(format!("MTU {} is out of 576-9000", leg.mtu));
        }
        Ok(())
    }
}

/// The global addresses on `dev` in `ns`.
fn addresses(ns: &str, dev: &str) -> io::Result<Vec<IpNet>> {
    let out = exec::ip(&[
        "-n", ns, "-o", "addr", "show", "dev", dev, "scope", "global",
    ])?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let i = words.iter().position(|w| *w == "inet" || *w == "inet6")?;
            words.get(i + 1)?.parse().ok()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use firewall::{Ingress, LbFilter};

    fn plumbing() -> LbPlumbing {
        let port_id = Uuid::new_v4();
        LbPlumbing {
            lb_id: Uuid::new_v4(),
            leg: Leg {
                port_id,
                network_id: Uuid::new_v4(),
                dev: Names::vip_dev(port_id),
                mac: "fa:16:3e:01:02:03".into(),
                addresses: vec!["10.0.0.5/24".parse().unwrap()],
                mtu: 1500,
            },
            routes: vec![Route {
                destination: "0.0.0.0/0".parse().unwrap(),
                via: "10.0.0.1".parse().unwrap(),
            }],
            filter: LbFilter {
                listeners: Vec::new(),
                ingress: Ingress::ListenersOnly,
            },
        }
    }

    #[test]
    fn plumbing_travels_as_json_and_bad_fields_are_refused_before_ip_sees_them() {
        let good = plumbing();
        let text = serde_json::to_string(&good).unwrap();
        let back: LbPlumbing = serde_json::from_str(&text).unwrap();
        assert_eq!(back, good);
        assert_eq!(good.check(), Ok(()));
        let mut bad = good.clone();
        bad.leg.dev = "eth0\nlink del brq".into();
        assert!(bad.check().is_err());
        let mut bad = good.clone();
        bad.leg.mac = "fa:16:3e:01:02:03 up".into();
        assert!(bad.check().is_err());
        let mut bad = good;
        bad.leg.mtu = 65_000;
        assert!(bad.check().is_err());
    }

    #[test]
    fn trunk_names_fit_the_kernel_and_differ_by_host() {
        let net = Uuid::new_v4();
        let a = trunk_name("host-1", net);
        assert_eq!(a.len(), 15);
        assert_eq!(a, trunk_name("host-1", net));
        assert_ne!(a, trunk_name("host-2", net));
        assert!(Names::uplink(net).len() <= 15);
    }
}
