//! Block assembly in whole 16-byte lanes.
//!
//! Why this exists: `compress256` reads each block as four 16-byte loads.
//! When those bytes were written moments earlier by narrower stores (a
//! 4-byte nonce, eight 4-byte digest words), the CPU cannot forward the
//! stores to the wide load and stalls until they reach the cache. On the
//! share path that stall sits between two dependent compressions. Building
//! each lane in a register and storing it whole removes it: the midstate
//! header check went from 82 % to 108 % of the chained `compress256` rate
//! on the development machine (`sluice bench hash`).
//!
//! On x86-64 this uses SSE2 only, which every x86-64 CPU has; elsewhere a
//! portable version with the same results is used.

use crate::sha::{Block, State};

/// Writes the state words big-endian into `out` (a digest, or the first
/// half of the block that rehashes it).
#[inline(always)]
pub(crate) fn state_be(state: &State, out: &mut [u8; 32]) {
    imp::state_be(state, out);
}

/// Writes the first lane of a header's second block: the merkle root's
/// last 4 bytes, then time, bits and nonce, all little-endian.
#[inline(always)]
pub(crate) fn header_tail_lane(
    out: &mut Block,
    merkle_tail: u32,
    time: u32,
    bits: u32,
    nonce: u32,
) {
    imp::header_tail_lane(out, merkle_tail, time, bits, nonce);
}

/// Writes a header's first block: version ‖ prev hash ‖ 28 bytes of root.
#[inline(always)]
pub(crate) fn header_first_block(out: &mut Block, version: u32, prev: &[u8; 32], root: &[u8; 32]) {
    imp::header_first_block(out, version, prev, root);
}

#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
#[allow(unsafe_code)]
mod imp {
    use core::arch::x86_64::{
        __m128i, _mm_cvtsi32_si128, _mm_loadu_si128, _mm_or_si128, _mm_set_epi32,
        _mm_shufflehi_epi16, _mm_shufflelo_epi16, _mm_slli_epi16, _mm_slli_si128, _mm_srli_epi16,
        _mm_srli_si128, _mm_storeu_si128,
    };

    use crate::sha::{Block, State};

    #[inline(always)]
    fn load(bytes: &[u8; 16]) -> __m128i {
        // SAFETY: `bytes` is 16 readable bytes; loadu has no alignment need.
        unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) }
    }

    #[inline(always)]
    fn load_words(words: &[u32; 4]) -> __m128i {
        // SAFETY: four u32 are 16 readable bytes; loadu has no alignment need.
        unsafe { _mm_loadu_si128(words.as_ptr().cast()) }
    }

    #[inline(always)]
    fn store(v: __m128i, out: &mut [u8; 16]) {
        // SAFETY: `out` is 16 writable bytes; storeu has no alignment need.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
    }

    // SAFETY (every `unsafe` below that only computes on registers): the
    // module is compiled only when SSE2 is statically enabled, so the SSE2
    // intrinsics' one precondition, CPU support, always holds.

    /// Byte-swaps each 32-bit lane (SSE2: swap 16-bit halves, then bytes).
    #[inline(always)]
    fn bswap32(x: __m128i) -> __m128i {
        // SAFETY: SSE2 is enabled (see above).
        unsafe {
            let halves = _mm_shufflehi_epi16::<0xB1>(_mm_shufflelo_epi16::<0xB1>(x));
            _mm_or_si128(_mm_slli_epi16::<8>(halves), _mm_srli_epi16::<8>(halves))
        }
    }

    #[inline(always)]
    pub(super) fn state_be(state: &State, out: &mut [u8; 32]) {
        let (words, _) = state.as_chunks::<4>();
        let (lanes, _) = out.as_chunks_mut::<16>();
        store(bswap32(load_words(&words[0])), &mut lanes[0]);
        store(bswap32(load_words(&words[1])), &mut lanes[1]);
    }

    #[inline(always)]
    pub(super) fn header_tail_lane(out: &mut Block, tail: u32, time: u32, bits: u32, nonce: u32) {
        let (lanes, _) = out.as_chunks_mut::<16>();
        // SAFETY: SSE2 is enabled (see above).
        let v = unsafe { _mm_set_epi32(nonce as i32, bits as i32, time as i32, tail as i32) };
        store(v, &mut lanes[0]);
    }

    #[inline(always)]
    pub(super) fn header_first_block(
        out: &mut Block,
        version: u32,
        prev: &[u8; 32],
        root: &[u8; 32],
    ) {
        let (p, _) = prev.as_chunks::<16>();
        let (r, _) = root.as_chunks::<16>();
        let (p0, p1, r0, r1) = (load(&p[0]), load(&p[1]), load(&r[0]), load(&r[1]));
        // The block is prev ‖ root moved up 4 bytes, version in front.
        // SAFETY: SSE2 is enabled (see above).
        let up4 = |hi: __m128i, lo: __m128i| unsafe {
            _mm_or_si128(_mm_slli_si128::<4>(hi), _mm_srli_si128::<12>(lo))
        };
        // SAFETY: SSE2 is enabled (see above).
        let lane0 =
            unsafe { _mm_or_si128(_mm_slli_si128::<4>(p0), _mm_cvtsi32_si128(version as i32)) };
        let (lanes, _) = out.as_chunks_mut::<16>();
        store(lane0, &mut lanes[0]);
        store(up4(p1, p0), &mut lanes[1]);
        store(up4(r0, p1), &mut lanes[2]);
        store(up4(r1, r0), &mut lanes[3]);
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
mod imp {
    use crate::sha::{Block, State};

    pub(super) fn state_be(state: &State, out: &mut [u8; 32]) {
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
    }

    pub(super) fn header_tail_lane(out: &mut Block, tail: u32, time: u32, bits: u32, nonce: u32) {
        for (i, w) in [tail, time, bits, nonce].into_iter().enumerate() {
            out[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
    }

    pub(super) fn header_first_block(
        out: &mut Block,
        version: u32,
        prev: &[u8; 32],
        root: &[u8; 32],
    ) {
        out[..4].copy_from_slice(&version.to_le_bytes());
        out[4..36].copy_from_slice(prev);
        out[36..].copy_from_slice(&root[..28]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lanes_match_plain_byte_layout() {
        let state: State = core::array::from_fn(|i| 0x0102_0304u32.wrapping_mul(i as u32 + 7));
        let mut be = [0u8; 32];
        state_be(&state, &mut be);
        for (i, w) in state.iter().enumerate() {
            assert_eq!(&be[4 * i..4 * i + 4], &w.to_be_bytes());
        }

        let mut block = [0xeeu8; 64];
        header_tail_lane(
            &mut block,
            0x1122_3344,
            0x5566_7788,
            0x99aa_bbcc,
            0xddee_ff00,
        );
        let mut expect = [0xeeu8; 64];
        for (i, w) in [0x1122_3344u32, 0x5566_7788, 0x99aa_bbcc, 0xddee_ff00]
            .iter()
            .enumerate()
        {
            expect[4 * i..4 * i + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert_eq!(block, expect);

        let prev: [u8; 32] = core::array::from_fn(|i| i as u8);
        let root: [u8; 32] = core::array::from_fn(|i| 100 + i as u8);
        let mut first = [0u8; 64];
        header_first_block(&mut first, 0x2000_e000, &prev, &root);
        let mut expect = [0u8; 64];
        expect[..4].copy_from_slice(&0x2000_e000u32.to_le_bytes());
        expect[4..36].copy_from_slice(&prev);
        expect[36..].copy_from_slice(&root[..28]);
        assert_eq!(first, expect);
    }
}
