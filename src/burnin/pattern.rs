//! Seeded data patterns shared by the host and the kernels (`kernels/common.cuh` computes the same).

/// splitmix64's finalizer: a cheap, well-mixed hash.
pub fn mix64(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    x
}

/// The 32-bit word at index `i` of the pattern seeded by `seed`.
pub fn word(i: u64, seed: u32) -> u32 {
    let x = mix64(i ^ (u64::from(seed) << 32));
    ((x >> 32) as u32) ^ (x as u32)
}

/// Fills `out` with the pattern, starting at word index `start`.
pub fn fill(out: &mut [u32], start: u64, seed: u32) {
    for (k, w) in out.iter_mut().enumerate() {
        *w = word(start + k as u64, seed);
    }
}

/// The first word of `data` that differs from the pattern, and how many differ.
pub fn check(data: &[u32], seed: u32) -> (u64, Option<(u64, u32, u32)>) {
    let mut count = 0;
    let mut first = None;
    for (i, &got) in data.iter().enumerate() {
        let want = word(i as u64, seed);
        if got != want {
            count += 1;
            first.get_or_insert((i as u64, want, got));
        }
    }
    (count, first)
}

/// Uniform random numbers in [-1, 1) from a seeded xorshift64*; the GEMM
/// inputs, so that the products are not trivially zero.
pub struct Uniform(u64);

impl Uniform {
    pub fn new(seed: u64) -> Self {
        Uniform(mix64(seed) | 1)
    }

    pub fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // 24 random bits, scaled to [-1, 1).
        ((r >> 40) as f32) / ((1u32 << 23) as f32) - 1.0
    }
}

/// Rounds an f32 to bf16 (round to nearest even), returned as its bits.
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    ((bits + rounding) >> 16) as u16
}

pub fn bf16_to_f64(b: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(b) << 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_deterministic_and_checked() {
        let mut buf = vec![0u32; 1000];
        fill(&mut buf, 0, 7);
        assert_eq!(check(&buf, 7), (0, None));
        assert_ne!(word(1, 7), word(1, 8), "the seed changes the pattern");
        buf[500] ^= 4;
        let (n, first) = check(&buf, 7);
        assert_eq!(n, 1);
        assert_eq!(first.map(|f| f.0), Some(500));
        // A fixed value pins the function, so host and kernel stay in step.
        assert_eq!(mix64(0), 0);
        assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(bf16_to_f64(0x3f80), 1.0);
        // 1 + 2^-8 is halfway between two bf16 values: ties go to even (1.0).
        assert_eq!(f32_to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        assert_eq!(f32_to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(f32_to_bf16(-2.5), 0xc020);
    }

    #[test]
    fn uniform_stays_in_range_and_is_not_constant() {
        let mut u = Uniform::new(3);
        let v: Vec<f32> = (0..10_000).map(|_| u.next_f32()).collect();
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = v.iter().sum::<f32>() / v.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(v.iter().any(|&x| x > 0.9) && v.iter().any(|&x| x < -0.9));
    }
}
