//! Smooth weighted round robin (the algorithm nginx uses for `weight=`).
//!
//! Each member carries a running score. On every pick, each candidate's score
//! grows by its weight, the highest score wins (the first one on a tie), and
//! the winner's score drops by the sum of the candidates' weights. Over any
//! window of `sum(weights)` picks each member is chosen `weight` times, and
//! heavy members are spread out instead of chosen in a burst: weights 5/1/1
//! give `a a b a c a a`, not `a a a a a b c`.
//!
//! Scores are kept for every member, so a member that leaves the candidate
//! set for a while (down, or tried already) keeps its place in the rotation.

use super::{Balancer, PickContext};
use std::sync::Mutex;

#[derive(Debug)]
pub struct SmoothWeightedRoundRobin {
    weights: Vec<i64>,
    /// Running scores, index-aligned with `weights`. The lock is held for one
    /// pass over the candidates, never across an await.
    scores: Mutex<Vec<i64>>,
}

impl SmoothWeightedRoundRobin {
    pub fn new(weights: &[u16]) -> Self {
        SmoothWeightedRoundRobin {
            weights: weights.iter().map(|w| i64::from(*w)).collect(),
            scores: Mutex::new(vec![0; weights.len()]),
        }
    }
}

impl Balancer for SmoothWeightedRoundRobin {
    fn pick(&self, candidates: &[usize], _ctx: &PickContext<'_>) -> Option<usize> {
        // A poisoned lock only means another pick panicked mid-update; the
        // scores are still plain integers, so keep going with them.
        let mut scores = self.scores.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for &i in candidates {
            let Some(&weight) = self.weights.get(i) else {
                continue;
            };
            scores[i] += weight;
            total += weight;
            if best.is_none_or(|b| scores[i] > scores[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        scores[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> PickContext<'static> {
        crate::balance::testing::idle_ctx("127.0.0.1:40000".parse().unwrap())
    }

    fn sequence(weights: &[u16], candidates: &[usize], n: usize) -> Vec<usize> {
        let rr = SmoothWeightedRoundRobin::new(weights);
        (0..n)
            .map(|_| rr.pick(candidates, &ctx()).unwrap())
            .collect()
    }

    #[test]
    fn sequences_follow_the_weights_and_spread_heavy_members() {
        let table: &[(&[u16], &[usize])] = &[
            (&[1, 1, 1], &[0, 1, 2, 0, 1, 2]),
            (&[3, 1], &[0, 0, 1, 0, 0, 0, 1, 0]),
            (&[5, 1, 1], &[0, 0, 1, 0, 2, 0, 0]),
            (&[2, 2], &[0, 1, 0, 1]),
            (&[1], &[0, 0, 0]),
        ];
        for (weights, expected) in table {
            let all: Vec<usize> = (0..weights.len()).collect();
            assert_eq!(
                &sequence(weights, &all, expected.len()),
                expected,
                "weights {weights:?}"
            );
        }
    }

    #[test]
    fn each_member_gets_its_share_over_a_full_cycle() {
        let weights = [7u16, 3, 256, 1];
        let all = [0, 1, 2, 3];
        let total: usize = weights.iter().map(|w| *w as usize).sum();
        let picks = sequence(&weights, &all, total * 3);
        for (i, w) in weights.iter().enumerate() {
            let got = picks.iter().filter(|p| **p == i).count();
            assert_eq!(got, *w as usize * 3, "member {i}");
        }
    }

    #[test]
    fn picks_only_among_candidates() {
        let rr = SmoothWeightedRoundRobin::new(&[1, 1, 1]);
        for _ in 0..10 {
            let p = rr.pick(&[0, 2], &ctx()).unwrap();
            assert!(p == 0 || p == 2);
        }
        assert_eq!(rr.pick(&[1], &ctx()), Some(1));
        assert_eq!(rr.pick(&[], &ctx()), None);
        // An index the balancer was not built for is ignored, not a panic.
        assert_eq!(rr.pick(&[9], &ctx()), None);
    }
}
