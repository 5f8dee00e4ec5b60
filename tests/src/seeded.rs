//! Deterministic bytes and choices from a seed. The corpus and the concurrent checker's versions
//! are functions of a seed and a label, so any failure reproduces byte for byte.

/// `len` pseudo-random bytes named by `seed` and `label` (blake3 in extendable-output mode:
/// incompressible, and fast enough to make tens of MiB in a debug build).
pub fn bytes(seed: u64, label: &str, len: usize) -> Vec<u8> {
    let mut h = blake3::Hasher::new_derive_key("aether-tests seeded bytes v1");
    h.update(&seed.to_le_bytes());
    h.update(label.as_bytes());
    let mut out = vec![0; len];
    h.finalize_xof().fill(&mut out);
    out
}

/// SplitMix64: small, fast choices (which file, which size) from a seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
