//! The 80-byte block header and its double SHA-256, with and without a
//! cached midstate of the first 64 bytes.

use crate::sha::{self, Block, H0, State};

/// Length of a serialised header.
pub const HEADER_LEN: usize = 80;

/// A block header. Hashes are in internal byte order (as serialised).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Block version, including any rolled bits.
    pub version: u32,
    /// Hash of the previous block, internal byte order.
    pub prev_hash: [u8; 32],
    /// Merkle root of the block's transactions, internal byte order.
    pub merkle_root: [u8; 32],
    /// Block time (`ntime`), seconds since the epoch.
    pub time: u32,
    /// Compact network target (`nbits`).
    pub bits: u32,
    /// The nonce.
    pub nonce: u32,
}

impl Header {
    /// Serialises as the 80 consensus bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..4].copy_from_slice(&self.version.to_le_bytes());
        b[4..36].copy_from_slice(&self.prev_hash);
        b[36..68].copy_from_slice(&self.merkle_root);
        b[68..72].copy_from_slice(&self.time.to_le_bytes());
        b[72..76].copy_from_slice(&self.bits.to_le_bytes());
        b[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        b
    }

    /// Parses the 80 consensus bytes.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Self {
        let word = |at: usize| u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        let mut prev_hash = [0u8; 32];
        prev_hash.copy_from_slice(&b[4..36]);
        let mut merkle_root = [0u8; 32];
        merkle_root.copy_from_slice(&b[36..68]);
        Self {
            version: word(0),
            prev_hash,
            merkle_root,
            time: word(68),
            bits: word(72),
            nonce: word(76),
        }
    }

    /// The block hash: sha256d of the header (three compressions).
    pub fn block_hash(&self) -> [u8; 32] {
        hash_header_bytes(&self.to_bytes())
    }

    /// The midstate of the first 64 bytes (version, prev hash and 28 bytes
    /// of merkle root); valid while those fields stay the same.
    pub fn midstate(&self) -> HeaderMidstate {
        let bytes = self.to_bytes();
        HeaderMidstate::new(first_block(&bytes), tail_word(&bytes))
    }
}

/// sha256d of a serialised header (three compressions).
#[inline]
pub fn hash_header_bytes(bytes: &[u8; HEADER_LEN]) -> [u8; 32] {
    let mut blocks = [[0u8; 64]; 2];
    blocks[0] = first_block(bytes);
    blocks[1][..16].copy_from_slice(&bytes[64..80]);
    finish_second_block(&mut blocks[1]);
    let mut s = H0;
    // One call for both blocks: the backend loads the state once.
    sha::compress(&mut s, &blocks);
    sha::state_to_digest(&sha::rehash_digest(&s))
}

#[inline(always)]
fn first_block(bytes: &[u8; HEADER_LEN]) -> Block {
    let mut b = [0u8; 64];
    b.copy_from_slice(&bytes[..64]);
    b
}

#[inline(always)]
fn tail_word(bytes: &[u8; HEADER_LEN]) -> [u8; 4] {
    [bytes[64], bytes[65], bytes[66], bytes[67]]
}

/// A header's second block with only the padding written.
const SECOND_BLOCK_PADDING: Block = {
    let mut b = [0u8; 64];
    b[16] = 0x80;
    b[62] = 0x02;
    b[63] = 0x80;
    b
};

/// Writes the fixed padding of the header's second block (bytes 16..64):
/// `0x80`, zeros, bit length 640.
#[inline(always)]
fn finish_second_block(block: &mut Block) {
    block[16] = 0x80;
    block[62] = 0x02; // 640 = 0x0280
    block[63] = 0x80;
}

/// SHA-256 state after a header's first 64 bytes plus the 4 merkle-root
/// bytes that spill into the second block. Checking a header from it costs
/// two compressions instead of three.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderMidstate {
    state: State,
    /// Last 4 bytes of the merkle root, little-endian.
    merkle_tail: u32,
}

impl HeaderMidstate {
    /// From the header's first block and the last 4 bytes of its merkle root.
    #[inline]
    pub fn new(first: Block, merkle_tail: [u8; 4]) -> Self {
        Self {
            state: sha::midstate(&first),
            merkle_tail: u32::from_le_bytes(merkle_tail),
        }
    }

    /// From the fields the first block depends on.
    #[inline]
    pub fn from_parts(version: u32, prev_hash: &[u8; 32], merkle_root: &[u8; 32]) -> Self {
        let mut first = [0u8; 64];
        crate::lanes::header_first_block(&mut first, version, prev_hash, merkle_root);
        Self::new(
            first,
            [
                merkle_root[28],
                merkle_root[29],
                merkle_root[30],
                merkle_root[31],
            ],
        )
    }

    /// The cached SHA-256 state after the first block.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The block hash for the given time, bits and nonce (two compressions).
    #[inline(always)]
    pub fn hash(&self, time: u32, bits: u32, nonce: u32) -> [u8; 32] {
        let mut block = SECOND_BLOCK_PADDING;
        crate::lanes::header_tail_lane(&mut block, self.merkle_tail, time, bits, nonce);
        let mut s = self.state;
        sha::compress(&mut s, core::slice::from_ref(&block));
        sha::state_to_digest(&sha::rehash_digest(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn genesis_hash_all_paths() {
        let bytes: [u8; 80] = hex::decode(GENESIS).unwrap().try_into().unwrap();
        let h = Header::from_bytes(&bytes);
        assert_eq!(h.to_bytes(), bytes);
        assert_eq!(
            (h.version, h.time, h.bits, h.nonce),
            (1, 1231006505, 0x1d00ffff, 2083236893)
        );
        let expect = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
        assert_eq!(hex::encode_reversed(&h.block_hash()), expect);
        assert_eq!(
            hex::encode_reversed(&h.midstate().hash(h.time, h.bits, h.nonce)),
            expect
        );
        let m = HeaderMidstate::from_parts(h.version, &h.prev_hash, &h.merkle_root);
        assert_eq!(m, h.midstate());
        assert_eq!(
            hex::encode_reversed(&m.hash(h.time, h.bits, h.nonce)),
            expect
        );
    }
}
