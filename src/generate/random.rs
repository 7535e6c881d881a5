//! Seeded random streams and the few samplers the generator needs.
//!
//! Every table draws from its own stream, and every entity (an account, a user) inside a table
//! from its own generator seeded by (table seed, entity id). That keeps the output identical for a
//! seed however rayon splits the work, and lets a table be added later without shifting the draws
//! of any other. The samplers are written here, on top of `next_u64`, rather than taken from
//! `rand_distr`, so that their results depend only on this file and on xoshiro's fixed algorithm.

use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};

/// The SplitMix64 finaliser: a cheap bijective mix that spreads nearby inputs over all 64 bits.
const fn mix64(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The seed of one table's stream, from the run's seed and the table's name (FNV-1a of the name,
/// so that the mapping is fixed forever and does not depend on Rust's hasher).
pub(crate) fn table_seed(seed: u64, table: &str) -> u64 {
    let name_hash = table.bytes().fold(0xCBF2_9CE4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    });
    mix64(seed ^ mix64(name_hash))
}

/// A generator for one entity of a table: an account, a user, a feature.
pub(crate) struct Draw {
    rng: Xoshiro256PlusPlus,
}

impl Draw {
    /// The stream of entity `id` in the table whose seed is `table_seed`.
    pub(crate) fn for_entity(table_seed: u64, id: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(mix64(table_seed ^ mix64(id))),
        }
    }

    /// Uniform in [0, 1), from the top 53 bits (the exact precision of an f64).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }

    /// Uniform integer in [0, n) by a widening multiply; the bias, below n / 2^64, is irrelevant
    /// for the small ranges drawn here. `n` must be positive.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.rng.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean (inverse transform).
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// Geometric count of failures before the first success, with the given mean (0, 1, 2, ...).
    pub(crate) fn geometric(&mut self, mean: f64) -> u32 {
        if mean <= 0.0 {
            return 0;
        }
        let p_success = 1.0 / (1.0 + mean);
        let draw = ((1.0 - self.unit()).ln() / (1.0 - p_success).ln()).floor();
        // Saturate: the far tail is astronomically unlikely and callers cap counts anyway.
        if draw >= f64::from(u32::MAX) {
            u32::MAX
        } else {
            draw as u32
        }
    }

    /// An index into `weights`, each chosen with probability proportional to its weight.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&weight| u64::from(weight)).sum();
        let mut pick = self.below(total);
        for (index, &weight) in weights.iter().enumerate() {
            let weight = u64::from(weight);
            if pick < weight {
                return index;
            }
            pick -= weight;
        }
        weights.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of(samples: impl Iterator<Item = f64>) -> f64 {
        let (sum, count) = samples.fold((0.0, 0_u32), |(sum, count), x| (sum + x, count + 1));
        sum / f64::from(count)
    }

    #[test]
    fn same_table_and_entity_give_the_same_stream() {
        let seed = table_seed(42, "events");
        let mut first = Draw::for_entity(seed, 7);
        let mut second = Draw::for_entity(seed, 7);
        for _ in 0..100 {
            assert_eq!(first.below(1_000_000), second.below(1_000_000));
        }
    }

    #[test]
    fn tables_and_entities_get_distinct_streams() {
        assert_ne!(table_seed(42, "events"), table_seed(42, "accounts"));
        assert_ne!(table_seed(42, "events"), table_seed(43, "events"));
        let seed = table_seed(42, "events");
        let a: Vec<u64> = (0..8)
            .map(|_| Draw::for_entity(seed, 1).below(u64::MAX))
            .collect();
        let b: Vec<u64> = (0..8)
            .map(|_| Draw::for_entity(seed, 2).below(u64::MAX))
            .collect();
        assert_ne!(a, b);
    }

    #[test]
    fn unit_stays_in_the_half_open_interval_and_averages_one_half() {
        let mut draw = Draw::for_entity(1, 1);
        let samples: Vec<f64> = (0..100_000).map(|_| draw.unit()).collect();
        assert!(samples.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = mean_of(samples.into_iter());
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
    }

    #[test]
    fn below_covers_the_whole_range_and_nothing_else() {
        let mut draw = Draw::for_entity(1, 2);
        let mut seen = [0_u32; 6];
        for _ in 0..60_000 {
            seen[draw.below(6) as usize] += 1;
        }
        assert!(
            seen.iter().all(|&count| (9_000..11_000).contains(&count)),
            "{seen:?}"
        );
    }

    #[test]
    fn exponential_and_geometric_have_the_requested_means() {
        let mut draw = Draw::for_entity(1, 3);
        let exponential = mean_of((0..200_000).map(|_| draw.exponential(4.0)));
        assert!(
            (exponential - 4.0).abs() < 0.1,
            "exponential mean {exponential}"
        );
        let geometric = mean_of((0..200_000).map(|_| f64::from(draw.geometric(2.5))));
        assert!((geometric - 2.5).abs() < 0.1, "geometric mean {geometric}");
        assert_eq!(draw.geometric(0.0), 0);
    }

    #[test]
    fn weighted_choice_follows_the_weights_and_never_picks_a_zero_weight() {
        let mut draw = Draw::for_entity(1, 4);
        let mut seen = [0_u32; 3];
        for _ in 0..40_000 {
            seen[draw.weighted(&[1, 0, 3])] += 1;
        }
        assert_eq!(seen[1], 0);
        let share = f64::from(seen[2]) / 40_000.0;
        assert!((share - 0.75).abs() < 0.02, "share {share}");
    }
}
