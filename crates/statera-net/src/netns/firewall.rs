//! The nftables rulesets the `netns` driver loads: a load balancer's ingress
//! filter (security groups, listener ports, `allowed_cidrs`) and a router's
//! address translation (floating IPs, source NAT).
//!
//! Each ruleset replaces its table in one transaction (`table …; delete
//! table …; table … { … }`), so a change never leaves a half-loaded filter.

use ipnet::IpNet;
use std::fmt::Write;
use std::net::IpAddr;

/// The table the load balancer filter lives in (family inet).
pub const LB_TABLE: &str = "statera";
/// The table a router's translations live in (family ip).
pub const ROUTER_TABLE: &str = "statera-nat";

/// A port the load balancer listens on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ListenerPort {
    /// IP protocol: 6 (TCP) or 17 (UDP).
    pub protocol: u8,
    pub port: u16,
    /// Empty = any source.
    pub allowed_cidrs: Vec<IpNet>,
}

/// An ingress security group rule, resolved to prefixes.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IngressRule {
    pub ipv6: bool,
    /// IP protocol number; `None` = any.
    pub protocol: Option<u8>,
    /// Port range for TCP/UDP/SCTP/UDP-Lite; ICMP type (min) and code (max).
    pub port_range_min: Option<u16>,
    pub port_range_max: Option<u16>,
    /// Sources; empty = any (of the rule's family).
    pub sources: Vec<IpNet>,
    /// A remote group with no member addresses: matches nothing.
    pub matches_nothing: bool,
}

/// What ingress the VIP port lets in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Ingress {
    /// No security group on the port: what the load balancer listens on
    /// (Octavia's own VIP security group).
    ListenersOnly,
    /// Port security disabled: no filtering beyond `allowed_cidrs`.
    Everything,
    /// The union of the port's security groups' ingress rules.
    Rules(Vec<IngressRule>),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LbFilter {
    pub listeners: Vec<ListenerPort>,
    pub ingress: Ingress,
}

fn set<T: std::fmt::Display>(items: &[T]) -> String {
    let parts: Vec<String> = items.iter().map(|i| i.to_string()).collect();
    format!("{{ {} }}", parts.join(", "))
}

fn proto_name(p: u8) -> String {
    match p {
        6 => "tcp".into(),
        17 => "udp".into(),
        other => other.to_string(),
    }
}

fn has_ports(protocol: u8) -> bool {
    matches!(protocol, 6 | 17 | 132 | 136)
}

impl LbFilter {
    /// The ruleset text `nft -f` loads.
    pub fn ruleset(&self) -> String {
        let mut r = String::new();
        let _ = writeln!(r, "table inet {LB_TABLE}");
        let _ = writeln!(r, "delete table inet {LB_TABLE}");
        let _ = writeln!(r, "table inet {LB_TABLE} {{");
        let _ = writeln!(r, "  chain input {{");
        let _ = writeln!(
            r,
            "    type filter hook input priority filter; policy drop;"
        );
        let _ = writeln!(r, "    ct state established,related accept");
        let _ = writeln!(r, "    ct state invalid drop");
        let _ = writeln!(r, "    iif \"lo\" accept");
        // Neighbour discovery is IPv6's ARP: without it nothing answers.
        let _ = writeln!(
            r,
            "    icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert, nd-router-advert }} accept"
        );
        // allowed_cidrs: sources outside a listener's list never reach it.
        for l in &self.listeners {
            if l.allowed_cidrs.is_empty() {
                continue;
            }
            let v4: Vec<&IpNet> = l
                .allowed_cidrs
                .iter()
                .filter(|c| matches!(c, IpNet::V4(_)))
                .collect();
            let v6: Vec<&IpNet> = l
                .allowed_cidrs
                .iter()
                .filter(|c| matches!(c, IpNet::V6(_)))
                .collect();
            let p = proto_name(l.protocol);
            if v4.is_empty() {
                let _ = writeln!(r, "    meta nfproto ipv4 {p} dport {} drop", l.port);
            } else {
                let _ = writeln!(r, "    {p} dport {} ip saddr != {} drop", l.port, set(&v4));
            }
            if v6.is_empty() {
                let _ = writeln!(r, "    meta nfproto ipv6 {p} dport {} drop", l.port);
            } else {
                let _ = writeln!(r, "    {p} dport {} ip6 saddr != {} drop", l.port, set(&v6));
            }
        }
        match &self.ingress {
            Ingress::Everything => {
                let _ = writeln!(r, "    accept");
            }
            Ingress::ListenersOnly => {
                for proto in [6u8, 17] {
                    let ports: Vec<u16> = self
                        .listeners
                        .iter()
                        .filter(|l| l.protocol == proto)
                        .map(|l| l.port)
                        .collect();
                    if !ports.is_empty() {
                        let _ =
                            writeln!(r, "    {} dport {} accept", proto_name(proto), set(&ports));
                    }
                }
            }
            Ingress::Rules(rules) => {
                for rule in rules {
                    if let Some(line) = rule.nft() {
                        let _ = writeln!(r, "    {line}");
                    }
                }
            }
        }
        let _ = writeln!(r, "  }}");
        let _ = writeln!(r, "}}");
        r
    }
}

impl IngressRule {
    fn nft(&self) -> Option<String> {
        if self.matches_nothing {
            return None;
        }
        let mut m = vec![if self.ipv6 {
            "meta nfproto ipv6".to_string()
        } else {
            "meta nfproto ipv4".to_string()
        }];
        if !self.sources.is_empty() {
            let family: Vec<&IpNet> = self
                .sources
                .iter()
                .filter(|s| matches!(s, IpNet::V6(_)) == self.ipv6)
                .collect();
            if family.is_empty() {
                return None;
            }
            m.push(format!(
                "{} saddr {}",
                if self.ipv6 { "ip6" } else { "ip" },
                set(&family)
            ));
        }
        if let Some(p) = self.protocol {
            m.push(format!("meta l4proto {p}"));
            if has_ports(p) {
                match (self.port_range_min, self.port_range_max) {
                    (Some(a), Some(b)) if a == b => m.push(format!("th dport {a}")),
                    (Some(a), Some(b)) => m.push(format!("th dport {a}-{b}")),
                    (Some(a), None) => m.push(format!("th dport {a}")),
                    _ => {}
                }
            } else if p == 1 || p == 58 {
                let kw = if p == 1 { "icmp" } else { "icmpv6" };
                if let Some(t) = self.port_range_min {
                    m.push(format!("{kw} type {t}"));
                    if let Some(c) = self.port_range_max {
                        m.push(format!("{kw} code {c}"));
                    }
                }
            }
        }
        m.push("accept".into());
        Some(m.join(" "))
    }
}

/// A floating IP's translation on a router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingNat {
    pub floating_ip: IpAddr,
    pub fixed_ip: IpAddr,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterNat {
    /// The gateway leg's interface name.
    pub gateway_dev: String,
    pub floating: Vec<FloatingNat>,
    /// Source NAT of the attached subnets out of this address (enable_snat).
    pub snat: Option<(IpAddr, Vec<IpNet>)>,
}

impl RouterNat {
    pub fn ruleset(&self) -> String {
        let mut r = String::new();
        let t = ROUTER_TABLE;
        let dev = &self.gateway_dev;
        let _ = writeln!(r, "table ip {t}");
        let _ = writeln!(r, "delete table ip {t}");
        let _ = writeln!(r, "table ip {t} {{");
        let _ = writeln!(r, "  chain prerouting {{");
        let _ = writeln!(
            r,
            "    type nat hook prerouting priority dstnat; policy accept;"
        );
        for f in self.floating.iter().filter(|f| f.floating_ip.is_ipv4()) {
            let _ = writeln!(r, "    ip daddr {} dnat to {}", f.floating_ip, f.fixed_ip);
        }
        let _ = writeln!(r, "  }}");
        let _ = writeln!(r, "  chain postrouting {{");
        let _ = writeln!(
            r,
            "    type nat hook postrouting priority srcnat; policy accept;"
        );
        for f in self.floating.iter().filter(|f| f.floating_ip.is_ipv4()) {
            let _ = writeln!(
                r,
                "    oifname \"{dev}\" ip saddr {} snat to {}",
                f.fixed_ip, f.floating_ip
            );
        }
        if let Some((address, subnets)) = &self.snat {
            let v4: Vec<&IpNet> = subnets
                .iter()
                .filter(|s| matches!(s, IpNet::V4(_)))
                .collect();
            if address.is_ipv4() && !v4.is_empty() {
                let _ = writeln!(
                    r,
                    "    oifname \"{dev}\" ip saddr {} snat to {address}",
                    set(&v4)
                );
            }
        }
        let _ = writeln!(r, "  }}");
        let _ = writeln!(r, "}}");
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_only_opens_listener_ports_and_applies_cidrs() {
        let f = LbFilter {
            listeners: vec![
                ListenerPort {
                    protocol: 6,
                    port: 80,
                    allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                },
                ListenerPort {
                    protocol: 17,
                    port: 53,
                    allowed_cidrs: vec![],
                },
            ],
            ingress: Ingress::ListenersOnly,
        };
        let text = f.ruleset();
        assert!(text.contains("policy drop;"));
        assert!(text.contains("tcp dport 80 ip saddr != { 10.0.0.0/8 } drop"));
        assert!(text.contains("meta nfproto ipv6 tcp dport 80 drop"));
        assert!(text.contains("tcp dport { 80 } accept"));
        assert!(text.contains("udp dport { 53 } accept"));
    }

    #[test]
    fn rules_become_accepts() {
        let f = LbFilter {
            listeners: vec![],
            ingress: Ingress::Rules(vec![
                IngressRule {
                    ipv6: false,
                    protocol: Some(6),
                    port_range_min: Some(80),
                    port_range_max: Some(81),
                    sources: vec!["0.0.0.0/0".parse().unwrap()],
                    matches_nothing: false,
                },
                IngressRule {
                    ipv6: false,
                    protocol: Some(1),
                    port_range_min: Some(8),
                    port_range_max: None,
                    sources: vec![],
                    matches_nothing: false,
                },
                IngressRule {
                    ipv6: true,
                    protocol: None,
                    port_range_min: None,
                    port_range_max: None,
                    sources: vec!["10.0.0.0/8".parse().unwrap()],
                    matches_nothing: false,
                },
            ]),
        };
        let text = f.ruleset();
        assert!(text.contains(
            "meta nfproto ipv4 ip saddr { 0.0.0.0/0 } meta l4proto 6 th dport 80-81 accept"
        ));
        assert!(text.contains("meta nfproto ipv4 meta l4proto 1 icmp type 8 accept"));
        // An IPv6 rule with only IPv4 sources matches nothing: no line.
        assert!(!text.contains("ip6 saddr"));
    }

    #[test]
    fn router_nat() {
        let n = RouterNat {
            gateway_dev: "qg-123".into(),
            floating: vec![FloatingNat {
                floating_ip: "172.24.4.100".parse().unwrap(),
                fixed_ip: "10.20.0.10".parse().unwrap(),
            }],
            snat: Some((
                "172.24.4.1".parse().unwrap(),
                vec!["10.20.0.0/24".parse().unwrap()],
            )),
        };
        let text = n.ruleset();
        assert!(text.contains("ip daddr 172.24.4.100 dnat to 10.20.0.10"));
        assert!(text.contains("oifname \"qg-123\" ip saddr 10.20.0.10 snat to 172.24.4.100"));
        assert!(text.contains("oifname \"qg-123\" ip saddr { 10.20.0.0/24 } snat to 172.24.4.1"));
    }
}
