//! The seeded pseudo-random generator behind `numgen random`, `meta random` and iptables'
//! `-m statistic --mode random`: where the kernel draws `get_random_u32()`, every engine draws
//! from this generator in its state, so a replay with the same seed repeats (SplitMix64).

/// Seed used when none is given (`nfc run pcap --seed`).
pub const DEFAULT_SEED: u64 = 0x6e66_635f_7365_6564;

/// A SplitMix64 generator.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prandom {
    pub state: u64,
}

impl Default for Prandom {
    fn default() -> Prandom {
        Prandom::new(DEFAULT_SEED)
    }
}

impl Prandom {
    pub fn new(seed: u64) -> Prandom {
        Prandom { state: seed }
    }

    /// The next 32 random bits (`get_random_u32`).
    pub fn next_u32(&mut self) -> u32 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 32) as u32
    }

    /// `reciprocal_scale(get_random_u32(), n)`: a number in `0..n` (`nft_ng_random_gen`).
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.next_u32()) * u64::from(n)) >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_and_values_spread() {
        let (mut a, mut b) = (Prandom::new(7), Prandom::new(7));
        let mut hist = [0u32; 4];
        for _ in 0..4000 {
            let v = a.below(4);
            assert_eq!(v, b.below(4));
            hist[v as usize] += 1;
        }
        assert!(hist.iter().all(|&n| (900..1100).contains(&n)), "{hist:?}");
        assert_ne!(Prandom::new(8).next_u32(), Prandom::new(7).next_u32());
    }
}
