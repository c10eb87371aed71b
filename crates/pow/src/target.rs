//! 256-bit proof-of-work targets: compact `nbits`, Stratum difficulty
//! (fractional allowed) and the hash ≤ target test.
//!
//! A target is an unsigned 256-bit integer kept as four little-endian `u64`
//! limbs. A block hash, in its internal byte order, is a little-endian
//! number, so comparing it with a target needs no byte reversal.

use std::cmp::Ordering;
use std::fmt;

/// Why a compact target or a difficulty was refused.
#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
pub enum TargetError {
    /// The compact form had its sign bit set with a non-zero mantissa.
    #[error("compact target {0:#010x} is negative")]
    NegativeCompact(u32),
    /// The compact form encodes a number wider than 256 bits.
    #[error("compact target {0:#010x} overflows 256 bits")]
    OverflowCompact(u32),
    /// The compact form encodes zero, which no hash can meet.
    #[error("compact target {0:#010x} is zero")]
    ZeroCompact(u32),
    /// Difficulty must be a finite number greater than zero.
    #[error("difficulty {0} is not a finite positive number")]
    BadDifficulty(f64),
}

/// A 256-bit target; a hash meets it when `hash <= target`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    /// Little-endian limbs: `limbs[0]` is the least significant.
    limbs: [u64; 4],
}

/// `2^256 / 2^32`-ish: the difficulty-1 target `0xFFFF << 208` used by
/// Stratum pools and by Bitcoin's `bdiff` (nbits `0x1d00ffff`).
pub const DIFF1: Target = Target {
    limbs: [0, 0, 0, 0x0000_0000_FFFF_0000],
};

/// [`DIFF1`] as a float, for difficulty arithmetic.
const DIFF1_F64: f64 =
    65535.0 * 411_376_139_330_301_510_538_742_295_639_337_626_245_683_966_408_394_965_837_152_256.0; // 0xFFFF * 2^208

impl Target {
    /// The largest target (every hash meets it).
    pub const MAX: Target = Target {
        limbs: [u64::MAX; 4],
    };
    /// The zero target (only the zero hash meets it).
    pub const ZERO: Target = Target { limbs: [0; 4] };

    /// Builds a target from little-endian limbs.
    pub const fn from_limbs(limbs: [u64; 4]) -> Self {
        Self { limbs }
    }

    /// The little-endian limbs.
    pub const fn limbs(&self) -> [u64; 4] {
        self.limbs
    }

    /// Reads 32 little-endian bytes (the internal byte order of a hash).
    pub fn from_le_bytes(bytes: &[u8; 32]) -> Self {
        Self {
            limbs: le_limbs(bytes),
        }
    }

    /// The 32 little-endian bytes.
    pub fn to_le_bytes(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(&self.limbs) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Reads 32 big-endian bytes (how targets are usually written).
    pub fn from_be_bytes(bytes: &[u8; 32]) -> Self {
        let mut le = *bytes;
        le.reverse();
        Self::from_le_bytes(&le)
    }

    /// The 32 big-endian bytes.
    pub fn to_be_bytes(&self) -> [u8; 32] {
        let mut b = self.to_le_bytes();
        b.reverse();
        b
    }

    /// Decodes a compact `nbits` value, refusing negative, overflowing and
    /// zero encodings (none of which a valid block header carries).
    pub fn from_compact(bits: u32) -> Result<Self, TargetError> {
        let size = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if bits & 0x0080_0000 != 0 && mantissa != 0 {
            return Err(TargetError::NegativeCompact(bits));
        }
        let value = if size <= 3 {
            Target::from_u64(u64::from(mantissa >> (8 * (3 - size))))
        } else {
            let shift = 8 * (size - 3);
            let bits_needed = 32 - mantissa.leading_zeros() + shift;
            if mantissa != 0 && bits_needed > 256 {
                return Err(TargetError::OverflowCompact(bits));
            }
            Target::from_u64(u64::from(mantissa)).shl(shift)
        };
        if value == Target::ZERO {
            return Err(TargetError::ZeroCompact(bits));
        }
        Ok(value)
    }

    /// Encodes as compact `nbits`, rounding down to 3 significant bytes as
    /// Bitcoin Core's `GetCompact` does.
    pub fn to_compact(&self) -> u32 {
        let bits = self.bit_len();
        let mut size = bits.div_ceil(8);
        let mut mantissa = if size <= 3 {
            (self.low_u64() << (8 * (3 - size))) as u32
        } else {
            self.shr(8 * (size - 3)).low_u64() as u32
        };
        if mantissa & 0x0080_0000 != 0 {
            mantissa >>= 8;
            size += 1;
        }
        mantissa | (size << 24)
    }

    /// The share target for a Stratum difficulty: `floor(DIFF1 / d)`,
    /// computed exactly from the float's binary value. Fractional
    /// difficulty works (0.001 gives a target 1000× DIFF1); a difficulty so
    /// small that the target would exceed 256 bits gives [`Target::MAX`].
    pub fn from_difficulty(difficulty: f64) -> Result<Self, TargetError> {
        if !(difficulty.is_finite() && difficulty > 0.0) {
            return Err(TargetError::BadDifficulty(difficulty));
        }
        // difficulty = m · 2^e exactly, with m odd.
        let (mut m, mut e) = decompose(difficulty);
        let tz = m.trailing_zeros();
        m >>= tz;
        e += tz as i32;
        // DIFF1 / d = (0xFFFF · 2^(208 − e)) / m
        let s = 208 - e;
        if s < 0 {
            let shift = s.unsigned_abs();
            let n = if shift >= 16 { 0 } else { 0xFFFFu64 >> shift };
            return Ok(Target::from_u64(n / m));
        }
        let s = s as u32;
        // The quotient is at least 2^(16 + s − 53): past 256 bits, saturate.
        if 16 + s > 256 + 53 {
            return Ok(Target::MAX);
        }
        // 0xFFFF << s fits in six limbs (≤ 325 bits); long division by m.
        let mut num = [0u64; 6];
        let (limb, off) = ((s / 64) as usize, s % 64);
        let wide = u128::from(0xFFFFu64) << off;
        num[limb] = wide as u64;
        if limb + 1 < 6 {
            num[limb + 1] = (wide >> 64) as u64;
        }
        let mut quo = [0u64; 6];
        let mut rem: u128 = 0;
        for i in (0..6).rev() {
            let cur = (rem << 64) | u128::from(num[i]);
            quo[i] = (cur / u128::from(m)) as u64;
            rem = cur % u128::from(m);
        }
        if quo[4] != 0 || quo[5] != 0 {
            return Ok(Target::MAX);
        }
        Ok(Target {
            limbs: [quo[0], quo[1], quo[2], quo[3]],
        })
    }

    /// The Stratum difficulty of this target: `DIFF1 / target`.
    pub fn difficulty(&self) -> f64 {
        let t = self.to_f64();
        if t == 0.0 {
            f64::INFINITY
        } else {
            DIFF1_F64 / t
        }
    }

    /// True when a hash (internal byte order) is at or below this target.
    #[inline(always)]
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        cmp_limbs(&le_limbs(hash), &self.limbs) != Ordering::Greater
    }

    /// The value as a float (rounded).
    pub fn to_f64(&self) -> f64 {
        limbs_to_f64(&self.limbs)
    }

    /// Number of significant bits.
    pub fn bit_len(&self) -> u32 {
        for i in (0..4).rev() {
            if self.limbs[i] != 0 {
                return 64 * i as u32 + 64 - self.limbs[i].leading_zeros();
            }
        }
        0
    }

    fn from_u64(v: u64) -> Self {
        Self {
            limbs: [v, 0, 0, 0],
        }
    }

    fn low_u64(&self) -> u64 {
        self.limbs[0]
    }

    fn shl(&self, n: u32) -> Self {
        let mut out = [0u64; 4];
        let (w, b) = ((n / 64) as usize, n % 64);
        for i in (w..4).rev() {
            out[i] = self.limbs[i - w] << b;
            if b != 0 && i > w {
                out[i] |= self.limbs[i - w - 1] >> (64 - b);
            }
        }
        Self { limbs: out }
    }

    fn shr(&self, n: u32) -> Self {
        let mut out = [0u64; 4];
        let (w, b) = ((n / 64) as usize, n % 64);
        for (i, o) in out.iter_mut().enumerate().take(4usize.saturating_sub(w)) {
            *o = self.limbs[i + w] >> b;
            if b != 0 && i + w + 1 < 4 {
                *o |= self.limbs[i + w + 1] << (64 - b);
            }
        }
        Self { limbs: out }
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> Ordering {
        cmp_limbs(&self.limbs, &other.limbs)
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl fmt::Display for Target {
    /// Big-endian hex, 64 digits, as targets are conventionally written.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for limb in self.limbs.iter().rev() {
            write!(f, "{limb:016x}")?;
        }
        Ok(())
    }
}

/// Stratum difficulty of a hash (internal byte order): `DIFF1 / hash`.
/// A hash of zero has infinite difficulty.
#[inline]
pub fn hash_difficulty(hash: &[u8; 32]) -> f64 {
    let v = limbs_to_f64(&le_limbs(hash));
    if v == 0.0 {
        f64::INFINITY
    } else {
        DIFF1_F64 / v
    }
}

/// Network difficulty of a compact `nbits` value (Bitcoin's `difficulty`
/// RPC field).
pub fn nbits_difficulty(bits: u32) -> Result<f64, TargetError> {
    Target::from_compact(bits).map(|t| t.difficulty())
}

#[inline(always)]
fn le_limbs(bytes: &[u8; 32]) -> [u64; 4] {
    let (chunks, _) = bytes.as_chunks::<8>();
    [
        u64::from_le_bytes(chunks[0]),
        u64::from_le_bytes(chunks[1]),
        u64::from_le_bytes(chunks[2]),
        u64::from_le_bytes(chunks[3]),
    ]
}

#[inline(always)]
fn cmp_limbs(a: &[u64; 4], b: &[u64; 4]) -> Ordering {
    // Most significant first; for a random hash the top limb decides.
    a[3].cmp(&b[3])
        .then(a[2].cmp(&b[2]))
        .then(a[1].cmp(&b[1]))
        .then(a[0].cmp(&b[0]))
}

#[inline]
fn limbs_to_f64(l: &[u64; 4]) -> f64 {
    const TWO64: f64 = 18_446_744_073_709_551_616.0;
    ((l[3] as f64 * TWO64 + l[2] as f64) * TWO64 + l[1] as f64) * TWO64 + l[0] as f64
}

/// Splits a finite positive float into `(m, e)` with value `m · 2^e`.
fn decompose(x: f64) -> (u64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if exp == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), exp - 1075)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff1_constant_matches() {
        assert_eq!(DIFF1.to_compact(), 0x1d00ffff);
        assert_eq!(Target::from_compact(0x1d00ffff), Ok(DIFF1));
        assert_eq!(DIFF1_F64, DIFF1.to_f64());
        assert_eq!(Target::from_difficulty(1.0), Ok(DIFF1));
        assert_eq!(DIFF1.difficulty(), 1.0);
    }

    #[test]
    fn fractional_difficulty_is_exact() {
        // 0.5 and 0.25 are exact binary fractions: the target doubles.
        assert_eq!(Target::from_difficulty(0.5).unwrap(), DIFF1.shl(1));
        assert_eq!(Target::from_difficulty(0.25).unwrap(), DIFF1.shl(2));
        assert_eq!(Target::from_difficulty(2.0).unwrap(), DIFF1.shr(1));
        let t = Target::from_difficulty(0.001).unwrap();
        let ratio = t.to_f64() / DIFF1.to_f64();
        assert!((ratio - 1000.0).abs() < 1e-9, "{ratio}");
        assert!((t.difficulty() - 0.001).abs() < 1e-15);
    }

    #[test]
    fn integer_difficulty_matches_integer_division() {
        for d in [3u64, 7, 1000, 4096, 65536, 1_000_003, 1 << 40] {
            let t = Target::from_difficulty(d as f64).unwrap();
            // DIFF1 / d computed by hand: (0xFFFF << 208) / d.
            let mut rem: u128 = 0;
            let mut q = [0u64; 4];
            for i in (0..4).rev() {
                let cur = (rem << 64) | u128::from(DIFF1.limbs[i]);
                q[i] = (cur / u128::from(d)) as u64;
                rem = cur % u128::from(d);
            }
            assert_eq!(t, Target::from_limbs(q), "d = {d}");
        }
    }

    #[test]
    fn extreme_difficulties_saturate_or_fail() {
        assert_eq!(Target::from_difficulty(1e-80), Ok(Target::MAX));
        assert_eq!(Target::from_difficulty(f64::MIN_POSITIVE), Ok(Target::MAX));
        assert_eq!(Target::from_difficulty(1e80), Ok(Target::ZERO));
        assert_eq!(Target::from_difficulty(1e70), Ok(Target::ZERO));
        assert!(Target::from_difficulty(0.0).is_err());
        assert!(Target::from_difficulty(-1.0).is_err());
        assert!(Target::from_difficulty(f64::NAN).is_err());
        assert!(Target::from_difficulty(f64::INFINITY).is_err());
        // DIFF1 / 2^-32 = 0xFFFF << 240 still fits in 256 bits; 2^-33 does not.
        let t = Target::from_difficulty(1.0 / (1u64 << 32) as f64).unwrap();
        assert_eq!(t, DIFF1.shl(32));
        assert_eq!(t.bit_len(), 256);
        assert_eq!(
            Target::from_difficulty(1.0 / (1u64 << 33) as f64),
            Ok(Target::MAX)
        );
    }

    #[test]
    fn compact_rejects_invalid() {
        assert_eq!(
            Target::from_compact(0x04923456),
            Err(TargetError::NegativeCompact(0x04923456))
        );
        assert_eq!(
            Target::from_compact(0xff123456),
            Err(TargetError::OverflowCompact(0xff123456))
        );
        assert_eq!(
            Target::from_compact(0x01003456),
            Err(TargetError::ZeroCompact(0x01003456))
        );
        // Regtest's limit and mainnet's genesis value are fine.
        assert!(Target::from_compact(0x207fffff).is_ok());
        assert_eq!(Target::from_compact(0x01123456).unwrap().limbs[0], 0x12);
    }

    #[test]
    fn meets_is_inclusive() {
        let t = Target::from_compact(0x1d00ffff).unwrap();
        let at = t.to_le_bytes();
        assert!(t.is_met_by(&at));
        let mut above = at;
        above[0] = 1;
        above[26] = 0xff;
        above[27] = 0xff;
        above[28] = 0x01;
        assert!(!t.is_met_by(&above));
        assert!(t.is_met_by(&[0u8; 32]));
    }

    #[test]
    fn display_is_big_endian_hex() {
        assert_eq!(
            DIFF1.to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::from_be_bytes(&DIFF1.to_be_bytes()), DIFF1);
    }

    #[test]
    fn fast_hash_difficulty_matches_full_conversion() {
        let mut h = [0u8; 32];
        for i in 0..32 {
            h[i] = 0x9d;
            h[(i * 7) % 32] ^= 0x31;
            let full = DIFF1_F64 / limbs_to_f64(&le_limbs(&h));
            let fast = hash_difficulty(&h);
            assert!((fast / full - 1.0).abs() < 1e-15, "{i}: {fast} vs {full}");
        }
        let mut one = [0u8; 32];
        one[0] = 1;
        assert_eq!(hash_difficulty(&one), DIFF1_F64);
    }

    #[test]
    fn hash_difficulty_of_diff1_is_one() {
        assert_eq!(hash_difficulty(&DIFF1.to_le_bytes()), 1.0);
        assert_eq!(hash_difficulty(&[0; 32]), f64::INFINITY);
        assert_eq!(nbits_difficulty(0x1d00ffff), Ok(1.0));
    }
}
