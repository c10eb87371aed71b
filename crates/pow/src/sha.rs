//! SHA-256 built directly on `sha2::block_api::compress256`.
//!
//! Everything here works on the raw eight-word state so callers can cache a
//! state part-way through a message (a *midstate*) and resume from it. The
//! `sha2` backend picks SHA-NI at run time when the CPU has it.

use sha2::block_api::compress256;

/// A SHA-256 chaining state: eight big-endian words.
pub type State = [u32; 8];

/// One 64-byte SHA-256 block.
pub type Block = [u8; 64];

/// The SHA-256 initial state (FIPS 180-4 §5.3.3).
pub const H0: State = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// The padding block that follows a message of exactly 64 bytes: `0x80`,
/// zeros, then the bit length 512. A merkle node is such a message.
const PAD_AFTER_64: Block = {
    let mut b = [0u8; 64];
    b[0] = 0x80;
    b[62] = 0x02; // 512 = 0x0200
    b
};

/// The second block of a digest's hash, digest bytes left zero: `0x80`
/// after the 32 digest bytes, bit length 256.
const PAD_AFTER_32: Block = {
    let mut b = [0u8; 64];
    b[32] = 0x80;
    b[62] = 0x01; // 256 = 0x0100
    b
};

/// Runs the compression function over `blocks`, updating `state`.
#[inline(always)]
pub fn compress(state: &mut State, blocks: &[Block]) {
    compress256(state, blocks);
}

/// True when the running CPU has the SHA extensions (`sha` + `sse4.1`) that
/// the `sha2` backend uses; it makes the same check.
pub fn sha_ni_available() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        std::is_x86_feature_detected!("sha") && std::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

/// The state after compressing one block from the initial state.
#[inline]
pub fn midstate(block: &Block) -> State {
    let mut s = H0;
    compress(&mut s, core::slice::from_ref(block));
    s
}

/// Serialises a final state as the 32-byte digest.
#[inline(always)]
pub fn state_to_digest(state: &State) -> [u8; 32] {
    let mut out = [0u8; 32];
    crate::lanes::state_be(state, &mut out);
    out
}

/// Second pass of a double SHA-256: hashes the 32-byte digest held in
/// `state` (one compression, the padding is fixed).
#[inline(always)]
pub fn rehash_digest(state: &State) -> State {
    let mut block = PAD_AFTER_32;
    let (digest, _) = block
        .split_first_chunk_mut::<32>()
        .unwrap_or_else(|| unreachable!());
    crate::lanes::state_be(state, digest);
    let mut s = H0;
    compress(&mut s, core::slice::from_ref(&block));
    s
}

/// sha256d of exactly 64 bytes, e.g. two concatenated hashes in a merkle
/// tree. Three compressions.
#[inline]
pub fn sha256d_64(data: &Block) -> [u8; 32] {
    let mut s = H0;
    compress(&mut s, &[*data, PAD_AFTER_64]);
    state_to_digest(&rehash_digest(&s))
}

/// sha256d of the concatenation `left ‖ right` (a merkle node).
#[inline]
pub fn merkle_node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut block = [0u8; 64];
    block[..32].copy_from_slice(left);
    block[32..].copy_from_slice(right);
    sha256d_64(&block)
}

/// An incremental SHA-256 that never allocates and can be copied to fork a
/// hash part-way (the copy *is* the midstate).
#[derive(Clone, Copy, Debug)]
pub struct Sha256 {
    state: State,
    buf: Block,
    buf_len: usize,
    /// Bytes compressed into `state` so far (excludes `buf`).
    compressed: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// A hash of the empty message so far.
    pub const fn new() -> Self {
        Self {
            state: H0,
            buf: [0; 64],
            buf_len: 0,
            compressed: 0,
        }
    }

    /// Total message bytes absorbed so far.
    pub fn len(&self) -> u64 {
        self.compressed + self.buf_len as u64
    }

    /// True when nothing has been absorbed yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state, the unhashed tail (in the first `len % 64` bytes of the
    /// block) and the length: what [`Sha256::resume`] takes back, for a
    /// holder that keeps the length in fewer bytes.
    pub fn into_parts(self) -> (State, Block, u64) {
        (self.state, self.buf, self.len())
    }

    /// A hash resumed from [`Sha256::into_parts`].
    #[inline]
    pub fn resume(state: State, buf: Block, len: u64) -> Self {
        let buf_len = (len % 64) as usize;
        Self {
            state,
            buf,
            buf_len,
            compressed: len - buf_len as u64,
        }
    }

    /// Absorbs `data`.
    #[inline]
    pub fn update(&mut self, mut data: &[u8]) {
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            compress(&mut self.state, core::slice::from_ref(&self.buf));
            self.compressed += 64;
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            compress(&mut self.state, blocks);
            self.compressed += 64 * blocks.len() as u64;
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads and returns the final state (the digest as words).
    #[inline]
    pub fn finalize_state(mut self) -> State {
        let bit_len = self.len().wrapping_mul(8);
        self.buf[self.buf_len] = 0x80;
        self.buf[self.buf_len + 1..].fill(0);
        if self.buf_len >= 56 {
            compress(&mut self.state, core::slice::from_ref(&self.buf));
            self.buf = [0; 64];
        }
        self.buf[56..].copy_from_slice(&bit_len.to_be_bytes());
        compress(&mut self.state, core::slice::from_ref(&self.buf));
        self.state
    }

    /// Pads and returns the digest.
    pub fn finalize(self) -> [u8; 32] {
        state_to_digest(&self.finalize_state())
    }

    /// Pads and returns sha256d (the digest of the digest).
    #[inline]
    pub fn finalize_double(self) -> [u8; 32] {
        state_to_digest(&rehash_digest(&self.finalize_state()))
    }
}

/// SHA-256 of `data`.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}

/// Double SHA-256 of `data`, as Bitcoin uses for txids, merkle nodes and
/// block hashes.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize_double()
}

/// Number of compressions a SHA-256 of `len` bytes costs.
pub const fn compressions_for(len: usize) -> usize {
    (len + 9).div_ceil(64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn reference(data: &[u8]) -> [u8; 32] {
        sha2::Sha256::digest(data).into()
    }

    #[test]
    fn matches_sha2_at_every_length_around_block_edges() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 7 + 3) as u8).collect();
        for len in 0..data.len() {
            assert_eq!(sha256(&data[..len]), reference(&data[..len]), "len {len}");
        }
    }

    #[test]
    fn split_updates_match_one_update() {
        let data: Vec<u8> = (0..257u32).map(|i| (i * 13) as u8).collect();
        for cut in [0, 1, 55, 56, 63, 64, 65, 128, 200, 257] {
            for cut2 in [cut, (cut + 3).min(257), 257] {
                let mut h = Sha256::new();
                h.update(&data[..cut]);
                h.update(&data[cut..cut2]);
                h.update(&data[cut2..]);
                assert_eq!(h.finalize(), reference(&data), "cut {cut} {cut2}");
            }
        }
    }

    #[test]
    fn double_and_64_byte_paths_agree() {
        let block: Block = core::array::from_fn(|i| i as u8);
        let expect = reference(&reference(&block));
        assert_eq!(sha256d(&block), expect);
        assert_eq!(sha256d_64(&block), expect);
        let (l, r) = block.split_at(32);
        assert_eq!(
            merkle_node(&l.try_into().unwrap(), &r.try_into().unwrap()),
            expect
        );
    }

    #[test]
    fn midstate_resumes() {
        let block: Block = [0xab; 64];
        let mut h = Sha256::new();
        h.update(&block);
        let (state, _, len) = h.into_parts();
        assert_eq!((state, len), (midstate(&block), 64));
        // Taken apart and resumed anywhere inside a block, a hash goes on
        // as if it had never stopped.
        let data: Vec<u8> = (0..200u8).collect();
        for cut in [0, 1, 63, 64, 65, 130] {
            let mut h = Sha256::new();
            h.update(&data[..cut]);
            let (state, buf, len) = h.into_parts();
            let mut r = Sha256::resume(state, buf, len);
            r.update(&data[cut..]);
            assert_eq!(r.finalize(), reference(&data), "cut at {cut}");
        }
    }

    #[test]
    fn compression_counts() {
        assert_eq!(compressions_for(0), 1);
        assert_eq!(compressions_for(55), 1);
        assert_eq!(compressions_for(56), 2);
        assert_eq!(compressions_for(80), 2);
        assert_eq!(compressions_for(64), 2);
    }
}
