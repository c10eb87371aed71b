//! Hex without allocation on the decode side, and the byte-order helpers
//! Stratum needs (reversed hashes, word-swapped prev hashes).

/// Why a hex string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HexError {
    /// The string has the wrong number of digits for the field.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Digits the field needs.
        expected: usize,
        /// Digits received.
        got: usize,
    },
    /// A character outside `0-9a-fA-F`.
    #[error("invalid hex digit at position {0}")]
    Digit(usize),
}

#[inline(always)]
fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `src` into exactly `out.len()` bytes.
#[inline]
pub fn decode_to_slice(src: &[u8], out: &mut [u8]) -> Result<(), HexError> {
    if src.len() != out.len() * 2 {
        return Err(HexError::Length {
            expected: out.len() * 2,
            got: src.len(),
        });
    }
    for (i, (pair, o)) in src
        .as_chunks::<2>()
        .0
        .iter()
        .zip(out.iter_mut())
        .enumerate()
    {
        let hi = nibble(pair[0]).ok_or(HexError::Digit(2 * i))?;
        let lo = nibble(pair[1]).ok_or(HexError::Digit(2 * i + 1))?;
        *o = (hi << 4) | lo;
    }
    Ok(())
}

/// Decodes a fixed-size array.
#[inline]
pub fn decode_array<const N: usize>(src: &[u8]) -> Result<[u8; N], HexError> {
    let mut out = [0u8; N];
    decode_to_slice(src, &mut out)?;
    Ok(out)
}

/// Decodes a big-endian `u32` written as 8 hex digits (Stratum's version,
/// nbits, ntime and nonce fields).
#[inline]
pub fn decode_u32_be(src: &[u8]) -> Result<u32, HexError> {
    decode_array::<4>(src).map(u32::from_be_bytes)
}

/// Decodes a hex string of any even length.
pub fn decode(src: &str) -> Result<Vec<u8>, HexError> {
    if !src.len().is_multiple_of(2) {
        return Err(HexError::Length {
            expected: src.len() + 1,
            got: src.len(),
        });
    }
    let mut out = vec![0u8; src.len() / 2];
    decode_to_slice(src.as_bytes(), &mut out)?;
    Ok(out)
}

/// Lower-case hex of `bytes`.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    s
}

/// Hex of a hash in display order (byte-reversed), as block explorers and
/// Bitcoin Core print block hashes and txids.
pub fn encode_reversed(hash: &[u8; 32]) -> String {
    let mut r = *hash;
    r.reverse();
    encode(&r)
}

/// Parses a display-order (reversed) hash.
pub fn decode_reversed(src: &str) -> Result<[u8; 32], HexError> {
    let mut h = decode_array::<32>(src.as_bytes())?;
    h.reverse();
    Ok(h)
}

/// Stratum V1's `prevhash` field: the header's 32 bytes with each 4-byte
/// word byte-swapped. The transform is its own inverse.
pub fn swap_words(bytes: &[u8; 32]) -> [u8; 32] {
    let mut out = *bytes;
    for w in out.chunks_exact_mut(4) {
        w.reverse();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(decode("00ff10Ab").unwrap(), vec![0, 0xff, 0x10, 0xab]);
        assert_eq!(encode(&[0, 0xff, 0x10, 0xab]), "00ff10ab");
        assert_eq!(
            decode("abc"),
            Err(HexError::Length {
                expected: 4,
                got: 3
            })
        );
        assert_eq!(decode("zz"), Err(HexError::Digit(0)));
        assert_eq!(decode("0g"), Err(HexError::Digit(1)));
        assert_eq!(decode_u32_be(b"207fffff"), Ok(0x207fffff));
        assert!(decode_u32_be(b"207ffff").is_err());
        let mut out = [0u8; 2];
        assert_eq!(
            decode_to_slice(b"001122", &mut out),
            Err(HexError::Length {
                expected: 4,
                got: 6
            })
        );
    }

    #[test]
    fn word_swap_is_an_involution() {
        let b: [u8; 32] = core::array::from_fn(|i| i as u8);
        assert_eq!(&swap_words(&b)[..4], &[3, 2, 1, 0]);
        assert_eq!(swap_words(&swap_words(&b)), b);
    }
}
