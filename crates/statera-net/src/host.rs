//! The `host` network driver.

use ipnet::IpNet;
use statera_model::{AllocationPool, Network, Subnet, Timestamp};
use std::net::IpAddr;
use uuid::Uuid;

pub const NETWORK_NAME: &str = "host-net";
pub const SUBNET_NAME: &str = "host-subnet";

/// Whether the data plane can listen on addresses of `cidr` without any
/// kernel configuration (the loopback range).
pub fn is_bindable_without_setup(cidr: &IpNet) -> bool {
    statera_model::addressing::is_loopback_subnet(cidr)
}

fn offset(ip: IpAddr, by: i128) -> Option<IpAddr> {
    match ip {
        IpAddr::V4(a) => u32::try_from(i128::from(u32::from(a)) + by)
            .ok()
            .map(|n| IpAddr::V4(n.into())),
        IpAddr::V6(a) => u128::try_from(i128::try_from(u128::from(a)).ok()? + by)
            .ok()
            .map(|n| IpAddr::V6(n.into())),
    }
}

/// The ready-made network and subnet VIPs are allocated from: the gateway is
/// the subnet's first address, the pool the rest (minus the broadcast).
pub fn default_network(
    project_id: &str,
    cidr: IpNet,
    now: Timestamp,
) -> Result<(Network, Subnet), String> {
    if !is_bindable_without_setup(&cidr) {
        return Err(format!(
            "the host network's subnet must be inside 127.0.0.0/8, not {cidr}"
        ));
    }
    let cidr = cidr.trunc();
    let gateway = offset(cidr.network(), 1).ok_or("subnet too small")?;
    let start = offset(cidr.network(), 2).ok_or("subnet too small")?;
    let end = offset(cidr.broadcast(), -1).ok_or("subnet too small")?;
    if start > end {
        return Err(format!("subnet {cidr} is too small to hold VIPs"));
    }
    let network = Network {
        id: Uuid::new_v4(),
        project_id: project_id.to_string(),
        name: NETWORK_NAME.to_string(),
        description: "VIPs on this host's loopback range (network driver: host)".to_string(),
        admin_state_up: true,
        shared: true,
        external: false,
        mtu: 65536,
        tags: Vec::new(),
        created_at: now,
        updated_at: None,
    };
    let subnet = Subnet {
        id: Uuid::new_v4(),
        project_id: project_id.to_string(),
        network_id: network.id,
        name: SUBNET_NAME.to_string(),
        description: String::new(),
        cidr,
        gateway_ip: Some(gateway),
        allocation_pools: vec![AllocationPool { start, end }],
        enable_dhcp: false,
        dns_nameservers: Vec::new(),
        host_routes: Vec::new(),
        tags: Vec::new(),
        created_at: now,
        updated_at: None,
    };
    Ok((network, subnet))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_network_on_loopback() {
        let (n, s) =
            default_network("p", "127.100.0.0/16".parse().unwrap(), statera_model::now()).unwrap();
        assert_eq!(s.network_id, n.id);
        assert_eq!(s.gateway_ip, Some("127.100.0.1".parse().unwrap()));
        assert_eq!(
            s.allocation_pools[0].start,
            "127.100.0.2".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            s.allocation_pools[0].end,
            "127.100.255.254".parse::<IpAddr>().unwrap()
        );
        assert!(
            default_network("p", "10.0.0.0/24".parse().unwrap(), statera_model::now()).is_err()
        );
        assert!(
            default_network("p", "127.1.2.3/32".parse().unwrap(), statera_model::now()).is_err()
        );
    }
}

/// Every IPv4 and IPv6 address configured on this host's interfaces (in the
/// caller's network namespace), read with `getifaddrs(3)` at each call, so
/// addresses added after start are seen. The API refuses tenant subnets over
/// them under the host driver.
pub fn interface_addresses() -> std::io::Result<Vec<IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we own and free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not freed yet.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its size.
            match i32::from(unsafe { (*ifa.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                    out.push(IpAddr::V4(u32::from_be(sin.sin_addr.s_addr).into()));
                }
                libc::AF_INET6 => {
                    let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                    out.push(IpAddr::V6(sin6.sin6_addr.s6_addr.into()));
                }
                _ => {}
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod interface_tests {
    use super::*;

    #[test]
    fn interface_addresses_include_loopback() {
        let addresses = interface_addresses().expect("getifaddrs");
        assert!(
            addresses.contains(&IpAddr::from([127, 0, 0, 1])),
            "127.0.0.1 missing from {addresses:?}"
        );
    }
}
