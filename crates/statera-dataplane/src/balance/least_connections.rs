//! Weighted least connections.
//!
//! The candidate with the smallest `(in_flight + 1) / weight` wins: the load
//! it would carry once it takes this connection, relative to its share. A
//! member of weight 2 thus carries about twice the connections of a member of
//! weight 1 under steady load. The `+ 1` makes weights count even when
//! nothing is in flight: an idle weight-2 member is preferred to an idle
//! weight-1 member.
//!
//! Ties go round robin: among equally loaded candidates, the first one after
//! the member picked last (in member order, wrapping) wins, so members with
//! equal load and weight share new connections in turn instead of the first
//! one taking them all (which matters most for short HTTP requests, where
//! nothing is in flight between two requests).

use super::{Balancer, PickContext};
use std::sync::atomic::{AtomicUsize, Ordering};

/// `last` before the first pick: ties start with the first member.
const NONE: usize = usize::MAX;

#[derive(Debug)]
pub struct LeastConnections {
    weights: Vec<u64>,
    /// The member picked last, or [`NONE`].
    last: AtomicUsize,
}

impl LeastConnections {
    pub fn new(weights: &[u16]) -> Self {
        LeastConnections {
            weights: weights.iter().map(|w| u64::from(*w)).collect(),
            last: AtomicUsize::new(NONE),
        }
    }
}

impl Balancer for LeastConnections {
    fn pick(&self, candidates: &[usize], ctx: &PickContext<'_>) -> Option<usize> {
        let n = self.weights.len();
        let last = self.last.load(Ordering::Relaxed);
        // Position after the last pick, wrapping: the round-robin tie-break.
        let turn = |i: usize| {
            if last == NONE {
                i
            } else {
                (i + n - (last + 1) % n) % n
            }
        };
        let mut best: Option<(usize, u128, u128)> = None;
        for &i in candidates {
            let Some(&weight) = self.weights.get(i) else {
                continue;
            };
            if weight == 0 {
                continue;
            }
            let load = u128::from((ctx.in_flight)(i)) + 1;
            let weight = u128::from(weight);
            let better = match best {
                None => true,
                // load/weight < best_load/best_weight, without division.
                Some((b, b_load, b_weight)) => {
                    let (mine, theirs) = (load * b_weight, b_load * weight);
                    mine < theirs || (mine == theirs && turn(i) < turn(b))
                }
            };
            if better {
                best = Some((i, load, weight));
            }
        }
        let (best, _, _) = best?;
        self.last.store(best, Ordering::Relaxed);
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Picks `n` times among all members, each pick adding one connection to
    /// the winner (nothing ever finishes), starting from `load`.
    fn held(weights: &[u16], load: &[u64], n: usize) -> Vec<usize> {
        let lc = LeastConnections::new(weights);
        let load = RefCell::new(load.to_vec());
        let all: Vec<usize> = (0..weights.len()).collect();
        (0..n)
            .map(|_| {
                let in_flight = |i: usize| load.borrow()[i];
                let ctx = PickContext {
                    client: "127.0.0.1:1".parse().unwrap(),
                    in_flight: &in_flight,
                };
                let p = lc.pick(&all, &ctx).unwrap();
                load.borrow_mut()[p] += 1;
                p
            })
            .collect()
    }

    #[test]
    fn held_connections_follow_load_and_weight() {
        // (weights, initial load, expected picks while every connection is held)
        let table: &[(&[u16], &[u64], &[usize])] = &[
            // Equal and idle: strict rotation.
            (&[1, 1, 1], &[0, 0, 0], &[0, 1, 2, 0, 1, 2]),
            // Uneven load: the idle members fill up first.
            (&[1, 1, 1], &[3, 0, 0], &[1, 2, 1, 2, 1, 2, 0, 1, 2]),
            (&[1, 1], &[5, 0], &[1, 1, 1, 1, 1, 0, 1]),
            // Weight 2 carries twice the connections of weight 1.
            (&[2, 1], &[0, 0], &[0, 1, 0, 0, 1, 0]),
            (&[3, 1], &[0, 0], &[0, 0, 1, 0, 0, 0, 1, 0]),
            // Big weights, no overflow.
            (&[256, 256], &[u64::MAX - 1, 0], &[1, 1]),
        ];
        for (weights, load, expected) in table {
            assert_eq!(
                &held(weights, load, expected.len()),
                expected,
                "weights {weights:?} load {load:?}"
            );
        }
    }

    #[test]
    fn idle_members_share_short_requests_in_turn() {
        // Nothing in flight between picks (short HTTP requests).
        let lc = LeastConnections::new(&[1, 1, 1]);
        let ctx = crate::balance::testing::idle_ctx("127.0.0.1:1".parse().unwrap());
        let picks: Vec<usize> = (0..6).map(|_| lc.pick(&[0, 1, 2], &ctx).unwrap()).collect();
        assert_eq!(picks, [0, 1, 2, 0, 1, 2]);
        // A member out of the candidates (down, tried) is skipped in turn.
        let picks: Vec<usize> = (0..4).map(|_| lc.pick(&[0, 2], &ctx).unwrap()).collect();
        assert_eq!(picks, [0, 2, 0, 2]);
    }

    #[test]
    fn picks_only_among_candidates() {
        let lc = LeastConnections::new(&[1, 1, 0]);
        let ctx = crate::balance::testing::idle_ctx("127.0.0.1:1".parse().unwrap());
        assert_eq!(lc.pick(&[1], &ctx), Some(1));
        assert_eq!(lc.pick(&[], &ctx), None);
        assert_eq!(lc.pick(&[9], &ctx), None);
        // Weight 0 never wins (the pool does not offer it anyway).
        assert_eq!(lc.pick(&[2], &ctx), None);
    }
}
