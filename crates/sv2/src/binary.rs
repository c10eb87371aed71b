//! The spec's binary types and a bounds-checked, zero-copy reader.
//!
//! Every integer is little-endian. Variable-length fields carry a length
//! prefix of 1, 2 or 3 bytes (B0_32/B0_255/STR0_255, B0_64K, B0_16M) and
//! sequences an element count of 1 or 2 bytes (SEQ0_255, SEQ0_64K; OPTION is
//! a sequence of at most one). Decoding checks each length against both its
//! type's maximum and the bytes actually left before it takes or allocates
//! anything, and byte fields share the frame's buffer instead of copying.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;
use std::ops::Deref;

/// U256: 32 bytes, as they appear on the wire (hashes and targets are
/// little-endian numbers).
pub type U256 = [u8; 32];
/// PUBKEY: a 32-byte x-only public key.
pub type PubKey = [u8; 32];
/// SIGNATURE: a 64-byte BIP 340 signature.
pub type Signature = [u8; 64];

/// Why a payload does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload ends inside a field.
    #[error("payload ends early: {need} more bytes needed for {field}, {have} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes it needs.
        need: usize,
        /// Bytes left.
        have: usize,
    },
    /// A length or count prefix is over its type's maximum.
    #[error("{field} states {len}, over its maximum of {max}")]
    TooLong {
        /// The field being read.
        field: &'static str,
        /// The stated length or count.
        len: usize,
        /// The type's maximum.
        max: usize,
    },
    /// A value outside the set the field allows (an OPTION of two elements,
    /// an unknown protocol number).
    #[error("{field} has the invalid value {value}")]
    Invalid {
        /// The field being read.
        field: &'static str,
        /// The value found.
        value: u32,
    },
}

/// A value too long for the bounded type it was put in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{len} is over the maximum of {max}")]
pub struct TooLong {
    /// The length given.
    pub len: usize,
    /// The type's maximum.
    pub max: usize,
}

/// Reads fields off a payload. Byte fields are slices of the same
/// [`Bytes`], so decoding a message copies nothing but its integers.
#[derive(Debug)]
pub struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `buf`.
    pub fn new(buf: &'a Bytes) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], DecodeError> {
        let have = self.remaining();
        if n > have {
            return Err(DecodeError::Truncated {
                field,
                need: n,
                have,
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], DecodeError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn shared(&mut self, n: usize, field: &'static str) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        self.take(n, field)?;
        Ok(self.buf.slice(start..start + n))
    }

    /// A length or count prefix of `width` bytes (1, 2 or 3), checked
    /// against `max`.
    fn prefix(
        &mut self,
        width: usize,
        max: usize,
        field: &'static str,
    ) -> Result<usize, DecodeError> {
        let s = self.take(width, field)?;
        let mut b = [0u8; 4];
        b[..width].copy_from_slice(s);
        let len = u32::from_le_bytes(b) as usize;
        if len > max {
            return Err(DecodeError::TooLong { field, len, max });
        }
        Ok(len)
    }
}

/// A type that has a wire form. Implemented for every binary type; the
/// message structs are built from these.
pub trait Field: Sized {
    /// The fewest bytes one value takes on the wire: bounds how many
    /// elements a sequence's count may claim before anything is allocated.
    const MIN_LEN: usize;
    /// Bytes this value takes on the wire.
    fn wire_len(&self) -> usize;
    /// Appends the wire form.
    fn put(&self, dst: &mut BytesMut);
    /// Reads one value; `field` names it in errors.
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError>;
}

macro_rules! int_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            const MIN_LEN: usize = std::mem::size_of::<$t>();
            fn wire_len(&self) -> usize {
                Self::MIN_LEN
            }
            fn put(&self, dst: &mut BytesMut) {
                dst.put_slice(&self.to_le_bytes());
            }
            fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
                Ok(<$t>::from_le_bytes(r.array(field)?))
            }
        }
    )*};
}
int_field!(u8, u16, u32, u64, f32);

/// BOOL: one byte; only the least significant bit is read, as the spec
/// reserves the other seven.
impl Field for bool {
    const MIN_LEN: usize = 1;
    fn wire_len(&self) -> usize {
        1
    }
    fn put(&self, dst: &mut BytesMut) {
        dst.put_u8(u8::from(*self));
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        Ok(r.take(1, field)?[0] & 1 == 1)
    }
}

impl<const N: usize> Field for [u8; N] {
    const MIN_LEN: usize = N;
    fn wire_len(&self) -> usize {
        N
    }
    fn put(&self, dst: &mut BytesMut) {
        dst.put_slice(self);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        r.array(field)
    }
}

/// U24: an unsigned 24-bit integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct U24(u32);

impl U24 {
    /// Largest value.
    pub const MAX: u32 = 0xff_ffff;

    /// `v` if it fits in 24 bits.
    pub fn new(v: u32) -> Result<Self, TooLong> {
        if v > Self::MAX {
            return Err(TooLong {
                len: v as usize,
                max: Self::MAX as usize,
            });
        }
        Ok(U24(v))
    }

    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Field for U24 {
    const MIN_LEN: usize = 3;
    fn wire_len(&self) -> usize {
        3
    }
    fn put(&self, dst: &mut BytesMut) {
        dst.put_slice(&self.0.to_le_bytes()[..3]);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        let b: [u8; 3] = r.array(field)?;
        Ok(U24(u32::from_le_bytes([b[0], b[1], b[2], 0])))
    }
}

/// Bytes with a `PREFIX`-byte length of at most `MAX`: the B0_* types.
/// The bound is checked when the value is made, so encoding never fails.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct BoundedBytes<const PREFIX: usize, const MAX: usize>(Bytes);

/// B0_32: up to 32 bytes (extranonces).
pub type B032 = BoundedBytes<1, 32>;
/// B0_255: up to 255 bytes.
pub type B0255 = BoundedBytes<1, 255>;
/// B0_64K: up to 65,535 bytes (coinbase halves).
pub type B064K = BoundedBytes<2, 65535>;
/// B0_16M: up to 16,777,215 bytes.
pub type B016M = BoundedBytes<3, 16_777_215>;

impl<const PREFIX: usize, const MAX: usize> BoundedBytes<PREFIX, MAX> {
    /// The most bytes this type holds.
    pub const MAX: usize = MAX;

    /// `b` if it is at most `MAX` bytes.
    pub fn new(b: impl Into<Bytes>) -> Result<Self, TooLong> {
        let b = b.into();
        if b.len() > MAX {
            return Err(TooLong {
                len: b.len(),
                max: MAX,
            });
        }
        Ok(BoundedBytes(b))
    }

    /// The bytes, sharing the buffer.
    pub fn bytes(&self) -> &Bytes {
        &self.0
    }

    /// Gives up the bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl<const PREFIX: usize, const MAX: usize> Deref for BoundedBytes<PREFIX, MAX> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl<const PREFIX: usize, const MAX: usize> fmt::Debug for BoundedBytes<PREFIX, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x")?;
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl<const PREFIX: usize, const MAX: usize> Field for BoundedBytes<PREFIX, MAX> {
    const MIN_LEN: usize = PREFIX;
    fn wire_len(&self) -> usize {
        PREFIX + self.0.len()
    }
    fn put(&self, dst: &mut BytesMut) {
        dst.put_slice(&(self.0.len() as u32).to_le_bytes()[..PREFIX]);
        dst.put_slice(&self.0);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        let len = r.prefix(PREFIX, MAX, field)?;
        Ok(BoundedBytes(r.shared(len, field)?))
    }
}

/// STR0_255: a string of up to 255 bytes. The bytes are kept as sent
/// (the reference does not check UTF-8 either); [`Str0255::as_str`] says
/// whether they are UTF-8, so each use can refuse what it cannot read.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Str0255(B0255);

impl Str0255 {
    /// `s` if it is at most 255 bytes.
    pub fn new(s: impl Into<Bytes>) -> Result<Self, TooLong> {
        B0255::new(s).map(Str0255)
    }

    /// A string known to fit, e.g. an error code constant. Longer input is
    /// cut at 255 bytes (on a character boundary).
    pub fn truncating(s: &str) -> Self {
        let mut end = s.len().min(255);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        Str0255(BoundedBytes(Bytes::copy_from_slice(&s.as_bytes()[..end])))
    }

    /// The text, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl From<&'static str> for Str0255 {
    fn from(s: &'static str) -> Self {
        Str0255::truncating(s)
    }
}

impl fmt::Debug for Str0255 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl fmt::Display for Str0255 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

impl Field for Str0255 {
    const MIN_LEN: usize = 1;
    fn wire_len(&self) -> usize {
        self.0.wire_len()
    }
    fn put(&self, dst: &mut BytesMut) {
        self.0.put(dst);
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        B0255::get(r, field).map(Str0255)
    }
}

/// A sequence with a `PREFIX`-byte element count of at most `MAX`.
#[derive(Debug, Clone, PartialEq)]
pub struct Seq<const PREFIX: usize, const MAX: usize, T>(Vec<T>);

impl<const PREFIX: usize, const MAX: usize, T> Default for Seq<PREFIX, MAX, T> {
    fn default() -> Self {
        Seq(Vec::new())
    }
}

/// SEQ0_255[T].
pub type Seq0255<T> = Seq<1, 255, T>;
/// SEQ0_64K[T].
pub type Seq064K<T> = Seq<2, 65535, T>;

impl<const PREFIX: usize, const MAX: usize, T> Seq<PREFIX, MAX, T> {
    /// The most elements this type holds.
    pub const MAX: usize = MAX;

    /// `v` if it has at most `MAX` elements.
    pub fn new(v: Vec<T>) -> Result<Self, TooLong> {
        if v.len() > MAX {
            return Err(TooLong {
                len: v.len(),
                max: MAX,
            });
        }
        Ok(Seq(v))
    }

    /// Gives up the elements.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
}

impl<const PREFIX: usize, const MAX: usize, T> Deref for Seq<PREFIX, MAX, T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<const PREFIX: usize, const MAX: usize, T: Field> Field for Seq<PREFIX, MAX, T> {
    const MIN_LEN: usize = PREFIX;
    fn wire_len(&self) -> usize {
        PREFIX + self.0.iter().map(Field::wire_len).sum::<usize>()
    }
    fn put(&self, dst: &mut BytesMut) {
        dst.put_slice(&(self.0.len() as u32).to_le_bytes()[..PREFIX]);
        for e in &self.0 {
            e.put(dst);
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        let n = r.prefix(PREFIX, MAX, field)?;
        // A count the rest of the payload cannot hold is refused before the
        // vector is sized by it.
        let need = n.saturating_mul(T::MIN_LEN.max(1));
        if need > r.remaining() {
            return Err(DecodeError::Truncated {
                field,
                need,
                have: r.remaining(),
            });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::get(r, field)?);
        }
        Ok(Seq(v))
    }
}

/// OPTION[T]: a sequence of zero or one element, count in one byte.
impl<T: Field> Field for Option<T> {
    const MIN_LEN: usize = 1;
    fn wire_len(&self) -> usize {
        1 + self.as_ref().map_or(0, Field::wire_len)
    }
    fn put(&self, dst: &mut BytesMut) {
        match self {
            None => dst.put_u8(0),
            Some(v) => {
                dst.put_u8(1);
                v.put(dst);
            }
        }
    }
    fn get(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        match r.take(1, field)?[0] {
            0 => Ok(None),
            1 => T::get(r, field).map(Some),
            n => Err(DecodeError::Invalid {
                field,
                value: u32::from(n),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode<T: Field>(v: &T) -> Bytes {
        let mut b = BytesMut::new();
        v.put(&mut b);
        assert_eq!(b.len(), v.wire_len());
        b.freeze()
    }

    fn decode<T: Field>(b: &Bytes) -> Result<T, DecodeError> {
        T::get(&mut Reader::new(b), "x")
    }

    #[test]
    fn integers_are_little_endian() {
        assert_eq!(&encode(&0x0102_0304u32)[..], &[4, 3, 2, 1]);
        assert_eq!(
            &encode(&U24::new(0x0a0b0c).unwrap())[..],
            &[0x0c, 0x0b, 0x0a]
        );
        assert_eq!(&encode(&1.0f32)[..], &[0, 0, 0x80, 0x3f]);
        assert!(U24::new(1 << 24).is_err());
    }

    #[test]
    fn bool_reads_only_the_low_bit() {
        assert_eq!(decode::<bool>(&Bytes::from_static(&[0xfe])), Ok(false));
        assert_eq!(decode::<bool>(&Bytes::from_static(&[0x03])), Ok(true));
    }

    #[test]
    fn byte_fields_share_the_buffer_and_bound_their_length() {
        let wire = Bytes::from_static(&[3, b'a', b'b', b'c', 9]);
        let v: B032 = decode(&wire).unwrap();
        assert_eq!(&v[..], b"abc");
        assert_eq!(v.bytes().as_ptr(), wire[1..].as_ptr(), "no copy");

        let long = Bytes::from_static(&[33; 40]);
        assert_eq!(
            decode::<B032>(&long),
            Err(DecodeError::TooLong {
                field: "x",
                len: 33,
                max: 32
            })
        );
        assert!(B032::new(vec![0u8; 33]).is_err());
        let wide = encode(&B064K::new(vec![7u8; 300]).unwrap());
        assert_eq!(&wide[..2], &[0x2c, 0x01]);
        let huge = encode(&B016M::new(vec![1u8; 70_000]).unwrap());
        assert_eq!(&huge[..3], &[0x70, 0x11, 0x01]);
        assert_eq!(decode::<B016M>(&huge).unwrap().len(), 70_000);
    }

    #[test]
    fn sequences_refuse_counts_the_payload_cannot_hold() {
        // 255 U256 elements claimed, 1 byte present: refused up front.
        let b = Bytes::from_static(&[255, 0]);
        assert!(matches!(
            decode::<Seq0255<U256>>(&b),
            Err(DecodeError::Truncated { need: 8160, .. })
        ));
        let s = Seq064K::new(vec![1u32, 2, 3]).unwrap();
        let w = encode(&s);
        assert_eq!(&w[..2], &[3, 0]);
        assert_eq!(decode::<Seq064K<u32>>(&w).unwrap(), s);
    }

    #[test]
    fn option_is_a_sequence_of_at_most_one() {
        assert_eq!(&encode(&Some(5u32))[..], &[1, 5, 0, 0, 0]);
        assert_eq!(&encode(&None::<u32>)[..], &[0]);
        assert_eq!(
            decode::<Option<u32>>(&Bytes::from_static(&[2, 0, 0, 0, 0])),
            Err(DecodeError::Invalid {
                field: "x",
                value: 2
            })
        );
    }

    #[test]
    fn strings_keep_their_bytes_and_truncate_on_a_char_boundary() {
        let s = Str0255::truncating(&"é".repeat(200));
        assert_eq!(s.as_bytes().len(), 254);
        assert!(s.as_str().is_some());
        let bad: Str0255 = decode(&Bytes::from_static(&[2, 0xff, 0xfe])).unwrap();
        assert_eq!(bad.as_str(), None);
    }
}
