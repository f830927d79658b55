//! Address rules that keep tenants apart on one host: which subnets share
//! the host's own kernel address space (their addresses must be unique across
//! every project), which ranges only an administrator may build subnets on,
//! and how an address is compared (IPv4-mapped IPv6 as the IPv4 it names).

use ipnet::IpNet;
use std::net::IpAddr;

/// Ranges that belong to the host itself (or to nobody): a subnet overlapping
/// one of them is refused to anyone but an administrator. A load balancer
/// bound there would sit in the host's own address space (loopback, the
/// unspecified address) or in a range no tenant may claim (link-local and
/// its metadata address, multicast, reserved, IPv4-mapped IPv6).
pub const HOST_RESERVED_CIDRS: &[&str] = &[
    "0.0.0.0/8",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "::/128",
    "::1/128",
    "::ffff:0:0/96",
    "fe80::/10",
    "ff00::/8",
];

/// The host-reserved range `cidr` overlaps, if any.
pub fn host_reserved_overlap(cidr: &IpNet) -> Option<IpNet> {
    HOST_RESERVED_CIDRS
        .iter()
        .filter_map(|r| r.parse::<IpNet>().ok())
        .find(|r| overlaps(r, cidr))
}

/// Whether two networks share at least one address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Whether the data plane can listen on addresses of `cidr` without any
/// kernel configuration (the loopback range): such subnets are always served
/// in the host's own network namespace.
pub fn is_loopback_subnet(cidr: &IpNet) -> bool {
    match cidr {
        IpNet::V4(n) => n.network().is_loopback() && n.broadcast().is_loopback(),
        IpNet::V6(n) => n.prefix_len() == 128 && n.network().is_loopback(),
    }
}

/// Which subnets' addresses live in the host's own network namespace, where
/// two load balancers on one address would share (or fight over) the same
/// kernel sockets. Addresses on those subnets are unique across all of them,
/// whatever project or network they belong to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostAddressSpace {
    /// The `host` network driver: every subnet is served in the host's namespace.
    #[default]
    AllSubnets,
    /// The `netns` driver: only loopback subnets stay with the host driver;
    /// every other subnet lives in per-load-balancer namespaces.
    LoopbackSubnets,
}

impl HostAddressSpace {
    /// Whether addresses of `cidr` are the host's own.
    pub fn holds(self, cidr: &IpNet) -> bool {
        match self {
            HostAddressSpace::AllSubnets => true,
            HostAddressSpace::LoopbackSubnets => is_loopback_subnet(cidr),
        }
    }
}

/// `ip` as the kernel routes it: an IPv4-mapped IPv6 address is the IPv4
/// address it names (`::ffff:127.0.0.1` is `127.0.0.1`).
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn reserved_ranges() {
        for bad in [
            "127.100.0.0/16",
            "127.0.0.0/8",
            "0.0.0.0/0",
            "0.0.0.0/24",
            "126.0.0.0/7",
            "169.254.169.0/24",
            "224.0.0.0/24",
            "255.255.255.255/32",
            "::1/128",
            "::/0",
            "::ffff:127.0.0.0/104",
            "fe80::/64",
            "ff02::/16",
        ] {
            assert!(host_reserved_overlap(&net(bad)).is_some(), "{bad}");
        }
        for good in [
            "10.0.0.0/24",
            "192.168.0.0/16",
            "2001:db8::/64",
            "128.0.0.0/8",
        ] {
            assert!(host_reserved_overlap(&net(good)).is_none(), "{good}");
        }
    }

    #[test]
    fn loopback_subnets_and_spaces() {
        assert!(is_loopback_subnet(&net("127.100.0.0/16")));
        assert!(is_loopback_subnet(&net("::1/128")));
        assert!(!is_loopback_subnet(&net("10.0.0.0/24")));
        assert!(!is_loopback_subnet(&net("126.0.0.0/7")));
        assert!(HostAddressSpace::AllSubnets.holds(&net("10.0.0.0/24")));
        assert!(!HostAddressSpace::LoopbackSubnets.holds(&net("10.0.0.0/24")));
        assert!(HostAddressSpace::LoopbackSubnets.holds(&net("127.5.0.0/24")));
    }

    #[test]
    fn canonical_addresses() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(canonical(ip("::ffff:127.0.0.1")), ip("127.0.0.1"));
        assert_eq!(
            canonical(ip("::ffff:169.254.169.254")),
            ip("169.254.169.254")
        );
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(canonical(ip("::1")), ip("::1"));
        assert_eq!(canonical(ip("10.0.0.1")), ip("10.0.0.1"));
    }
}
