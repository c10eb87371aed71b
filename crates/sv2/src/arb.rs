//! Value generators for property tests, differential tests, fuzzing and
//! benches (feature `arb`; always on in this crate's tests).
//!
//! One generator serves all of them: [`Source`] is a small deterministic
//! random source seeded from a number (proptest) or from fuzzer bytes, and
//! lengths are drawn with extra weight on the edges (empty, the type's
//! maximum, one past a chunk) where codecs break.

use crate::binary::{BoundedBytes, Seq, Str0255, U24};
use bytes::Bytes;

/// A deterministic random source (xorshift64*).
#[derive(Debug, Clone)]
pub struct Source(u64);

impl Source {
    /// A source seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Source(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    /// A source seeded from arbitrary bytes (a fuzzer's input).
    pub fn from_bytes(data: &[u8]) -> Self {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        for &b in data {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
        Source::new(h)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max`.
    pub fn upto(&mut self, max: usize) -> usize {
        (self.next_u64() % (max as u64 + 1)) as usize
    }

    /// A length in `0..=max`: a quarter of the time 0, a quarter `max`,
    /// else uniform below `cap` (so huge types stay quick to generate).
    pub fn len(&mut self, max: usize, cap: usize) -> usize {
        match self.next_u64() % 4 {
            0 => 0,
            1 if max <= cap => max,
            _ => self.upto(max.min(cap)),
        }
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// A type whose values can be generated.
pub trait Gen: Sized {
    /// A value drawn from `src`.
    fn generate(src: &mut Source) -> Self;
}

macro_rules! gen_int {
    ($($t:ty),*) => {$(
        impl Gen for $t {
            fn generate(src: &mut Source) -> Self {
                // Edges a quarter of the time.
                match src.next_u64() % 8 {
                    0 => 0,
                    1 => <$t>::MAX,
                    _ => src.next_u64() as $t,
                }
            }
        }
    )*};
}
gen_int!(u8, u16, u32, u64);

impl Gen for bool {
    fn generate(src: &mut Source) -> Self {
        src.next_u64() & 1 == 1
    }
}

impl Gen for f32 {
    fn generate(src: &mut Source) -> Self {
        // Any bit pattern but NaN, which is not equal to itself.
        let v = f32::from_bits(src.next_u64() as u32);
        if v.is_nan() { 0.0 } else { v }
    }
}

impl<const N: usize> Gen for [u8; N] {
    fn generate(src: &mut Source) -> Self {
        let mut a = [0u8; N];
        a.copy_from_slice(&src.bytes(N));
        a
    }
}

impl Gen for U24 {
    fn generate(src: &mut Source) -> Self {
        U24::new(src.upto(U24::MAX as usize) as u32).unwrap_or_default()
    }
}

impl<const P: usize, const MAX: usize> Gen for BoundedBytes<P, MAX> {
    fn generate(src: &mut Source) -> Self {
        let n = src.len(MAX, 70_000);
        BoundedBytes::new(Bytes::from(src.bytes(n))).unwrap_or_default()
    }
}

impl Gen for Str0255 {
    fn generate(src: &mut Source) -> Self {
        let n = src.len(255, 255);
        Str0255::new(src.bytes(n)).unwrap_or_default()
    }
}

impl<const P: usize, const MAX: usize, T: Gen> Gen for Seq<P, MAX, T> {
    fn generate(src: &mut Source) -> Self {
        let n = src.len(MAX, 300);
        Seq::new((0..n).map(|_| T::generate(src)).collect()).unwrap_or_default()
    }
}

impl<T: Gen> Gen for Option<T> {
    fn generate(src: &mut Source) -> Self {
        (src.next_u64() & 1 == 1).then(|| T::generate(src))
    }
}
