//! A small deterministic generator for tests: results must not depend on
//! luck, and the same seed gives the same run.

/// Linear congruential generator (Knuth's MMIX constants).
pub(crate) struct Lcg(pub(crate) u64);

impl Lcg {
    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Roughly standard normal (sum of 12 uniforms).
    pub(crate) fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.unit()).sum::<f64>() - 6.0
    }

    /// Poisson with mean 1, by inversion.
    pub(crate) fn poisson1(&mut self) -> u32 {
        let u = self.unit();
        let (mut k, mut p, mut cdf) = (0u32, (-1.0f64).exp(), (-1.0f64).exp());
        while u > cdf && k < 20 {
            k += 1;
            p /= f64::from(k);
            cdf += p;
        }
        k
    }
}
