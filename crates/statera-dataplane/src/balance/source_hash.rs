//! `SOURCE_IP` and `SOURCE_IP_PORT`: weighted rendezvous (highest random
//! weight) hashing of the client's address.
//!
//! Every candidate gets a score from a hash of (client key, member id), and
//! the highest score wins. A client's scores do not depend on which other
//! members exist, so:
//!
//! - the same client goes to the same member as long as that member is a
//!   candidate;
//! - when a member leaves (removed, down, disabled, weight 0), only the
//!   clients it had move, each to its next-best member; everyone else stays.
//!   When it comes back, exactly those clients return;
//! - a retry after a failed connect naturally goes to the client's
//!   second-best member.
//!
//! Weights: the score is `weight / -ln(u)`, with `u` the hash mapped to
//! (0, 1). That makes a member win with probability `weight / sum(weights)`
//! (the usual weighted rendezvous construction), without any table to
//! rebuild.
//!
//! The client key is the IP (`SOURCE_IP`) or the IP and port
//! (`SOURCE_IP_PORT`); IPv4-mapped IPv6 addresses count as the IPv4 address
//! they carry. The hash is defined here (FNV-1a, then the splitmix64
//! finalizer) rather than taken from std, whose `DefaultHasher` may change
//! between Rust releases: an upgrade must not reshuffle every client.

use super::{BalancedMember, Balancer, PickContext};
use std::net::{IpAddr, SocketAddr};

/// What part of the client's address is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `SOURCE_IP`.
    Ip,
    /// `SOURCE_IP_PORT`.
    IpAndPort,
}

#[derive(Debug)]
pub struct SourceHash {
    key: Key,
    /// Per member: a seed derived from its id, and its weight.
    members: Vec<(u64, f64)>,
}

impl SourceHash {
    pub fn new(key: Key, members: &[BalancedMember]) -> Self {
        SourceHash {
            key,
            members: members
                .iter()
                .map(|m| {
                    let id = m.id.as_u128();
                    (mix((id >> 64) as u64 ^ mix(id as u64)), f64::from(m.weight))
                })
                .collect(),
        }
    }

    /// The client's hash, before any member is mixed in.
    fn client_hash(&self, client: SocketAddr) -> u64 {
        let mut h = Fnv::new();
        match client.ip().to_canonical() {
            IpAddr::V4(ip) => h.write(&ip.octets()),
            IpAddr::V6(ip) => h.write(&ip.octets()),
        }
        if self.key == Key::IpAndPort {
            h.write(&client.port().to_be_bytes());
        }
        mix(h.0)
    }

    /// The member's score for a client hash: higher wins.
    fn score(client: u64, seed: u64, weight: f64) -> f64 {
        let h = mix(client ^ seed);
        // The top 53 bits as a float strictly inside (0, 1).
        let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        weight / -u.ln()
    }
}

impl Balancer for SourceHash {
    fn pick(&self, candidates: &[usize], ctx: &PickContext<'_>) -> Option<usize> {
        let client = self.client_hash(ctx.client);
        let mut best: Option<(usize, f64)> = None;
        for &i in candidates {
            let Some(&(seed, weight)) = self.members.get(i) else {
                continue;
            };
            if weight <= 0.0 {
                continue;
            }
            let score = Self::score(client, seed, weight);
            if best.is_none_or(|(_, b)| score > b) {
                best = Some((i, score));
            }
        }
        best.map(|(i, _)| i)
    }
}

/// The splitmix64 finalizer: every input bit flips about half the output
/// bits.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::idle_ctx;
    use uuid::Uuid;

    fn members(weights: &[u16]) -> Vec<BalancedMember> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| BalancedMember {
                // Fixed ids: the expectations below do not depend on luck.
                id: Uuid::from_u128(0x5ca1ab1e_0000_4000_8000_000000000000 + i as u128),
                weight: *w,
            })
            .collect()
    }

    /// 200 client addresses, distinct IPs, fixed port.
    fn clients() -> Vec<SocketAddr> {
        (0..200u32)
            .map(|n| SocketAddr::from(([127, 102, (n / 250) as u8, (n % 250 + 1) as u8], 40000)))
            .collect()
    }

    fn assign(hash: &SourceHash, candidates: &[usize], clients: &[SocketAddr]) -> Vec<usize> {
        clients
            .iter()
            .map(|c| hash.pick(candidates, &idle_ctx(*c)).unwrap())
            .collect()
    }

    #[test]
    fn removing_a_member_moves_only_its_clients() {
        // (weights, member that leaves)
        let table: &[(&[u16], usize)] = &[
            (&[1, 1, 1], 0),
            (&[1, 1, 1], 1),
            (&[1, 1, 1], 2),
            (&[5, 1, 2], 0),
            (&[1, 256, 3], 2),
        ];
        for (weights, leaving) in table {
            let hash = SourceHash::new(Key::Ip, &members(weights));
            let all: Vec<usize> = (0..weights.len()).collect();
            let rest: Vec<usize> = all.iter().copied().filter(|i| i != leaving).collect();
            let before = assign(&hash, &all, &clients());
            let after = assign(&hash, &rest, &clients());
            let mut moved = 0;
            for (b, a) in before.iter().zip(&after) {
                if b == leaving {
                    moved += 1;
                    assert_ne!(a, leaving);
                } else {
                    assert_eq!(a, b, "a client of a staying member moved");
                }
            }
            let had = before.iter().filter(|b| *b == leaving).count();
            assert_eq!(moved, had, "weights {weights:?}");

            // The same member, rebuilt from a config without the leaving
            // member (indices shift), gives the same answers: ids, not
            // positions, are hashed.
            let kept: Vec<BalancedMember> = rest.iter().map(|i| members(weights)[*i]).collect();
            let rebuilt = SourceHash::new(Key::Ip, &kept);
            let rebuilt_after: Vec<usize> =
                assign(&rebuilt, &(0..kept.len()).collect::<Vec<_>>(), &clients())
                    .into_iter()
                    .map(|k| rest[k])
                    .collect();
            assert_eq!(rebuilt_after, after, "weights {weights:?}");
        }
    }

    #[test]
    fn shares_follow_the_weights() {
        // (weights, tolerance in percentage points over 6000 clients)
        let table: &[(&[u16], f64)] = &[(&[1, 1, 1], 3.0), (&[1, 2, 1], 3.0), (&[10, 1], 3.0)];
        let many: Vec<SocketAddr> = (0..6000u32)
            .map(|n| SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 1)))
            .collect();
        for (weights, tolerance) in table {
            let hash = SourceHash::new(Key::Ip, &members(weights));
            let all: Vec<usize> = (0..weights.len()).collect();
            let picks = assign(&hash, &all, &many);
            let total: f64 = weights.iter().map(|w| f64::from(*w)).sum();
            for (i, w) in weights.iter().enumerate() {
                let got = picks.iter().filter(|p| **p == i).count() as f64 * 100.0 / 6000.0;
                let want = f64::from(*w) * 100.0 / total;
                assert!(
                    (got - want).abs() < *tolerance,
                    "weights {weights:?}: member {i} got {got:.1}%, want {want:.1}%"
                );
            }
        }
    }

    #[test]
    fn the_key_is_the_ip_or_the_ip_and_port() {
        let ms = members(&[1, 1, 1, 1]);
        let all = [0, 1, 2, 3];
        let by_ip = SourceHash::new(Key::Ip, &ms);
        let by_port = SourceHash::new(Key::IpAndPort, &ms);
        let ports: Vec<SocketAddr> = (0..64u16)
            .map(|p| SocketAddr::from(([127, 102, 0, 7], 30000 + p)))
            .collect();
        let ip_picks = assign(&by_ip, &all, &ports);
        assert!(
            ip_picks.iter().all(|p| *p == ip_picks[0]),
            "one IP, one member"
        );
        let port_picks = assign(&by_port, &all, &ports);
        let distinct = (0..4).filter(|i| port_picks.contains(i)).count();
        assert_eq!(distinct, 4, "ports of one IP spread over the members");
        // Deterministic: the same address, the same member.
        assert_eq!(assign(&by_port, &all, &ports), port_picks);
        // An IPv4-mapped IPv6 client is its IPv4 address.
        let v4: SocketAddr = "127.102.0.7:1".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:127.102.0.7]:1".parse().unwrap();
        assert_eq!(assign(&by_ip, &all, &[v4]), assign(&by_ip, &all, &[mapped]));
    }

    #[test]
    fn a_retry_goes_to_the_next_best_member() {
        let hash = SourceHash::new(Key::Ip, &members(&[1, 1, 1]));
        for client in clients() {
            let ctx = idle_ctx(client);
            let first = hash.pick(&[0, 1, 2], &ctx).unwrap();
            let rest: Vec<usize> = [0, 1, 2].into_iter().filter(|i| *i != first).collect();
            let second = hash.pick(&rest, &ctx).unwrap();
            assert_ne!(first, second);
            // Always the same second choice for the same client.
            assert_eq!(hash.pick(&rest, &ctx), Some(second));
        }
        assert_eq!(hash.pick(&[7], &idle_ctx(clients()[0])), None);
    }
}
