//! Version rolling (BIP 310 / BIP 320 / BIP 323): how a miner's rolled
//! bits combine with the job's version.
//!
//! Two conventions exist. BIP 310 replaces the bits inside the mask;
//! ckpool ORs the submitted bits into the job version. They differ only
//! when the job version already has bits set inside the mask, so a proxy
//! validates the way its upstream does.

/// BIP 320's general-purpose bits, what most V1 miners negotiate.
pub const BIP320_MASK: u32 = 0x1fff_e000;
/// BIP 323's mask, used by Stratum V2 peers.
pub const BIP323_MASK: u32 = 0x1fff_ffe0;

/// How submitted version bits are combined with the job version.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum RollingRule {
    /// `(job & !mask) | (bits & mask)` (BIP 310).
    #[default]
    Replace,
    /// `job | bits` (ckpool).
    Or,
}

impl RollingRule {
    /// The header version for a share.
    #[inline]
    pub fn apply(self, job_version: u32, mask: u32, bits: u32) -> u32 {
        match self {
            RollingRule::Replace => (job_version & !mask) | (bits & mask),
            RollingRule::Or => job_version | (bits & mask),
        }
    }
}

/// True when `bits` sets anything outside the negotiated `mask`, which the
/// share must be rejected for.
#[inline]
pub fn outside_mask(bits: u32, mask: u32) -> bool {
    bits & !mask != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_agree_unless_job_has_masked_bits() {
        let bits = 0x0000_6000;
        assert_eq!(
            RollingRule::Replace.apply(0x2000_0000, BIP320_MASK, bits),
            0x2000_6000
        );
        assert_eq!(
            RollingRule::Or.apply(0x2000_0000, BIP320_MASK, bits),
            0x2000_6000
        );
        // ckpool's 0x30000000 job version has bit 28 inside the mask.
        assert_eq!(
            RollingRule::Replace.apply(0x3000_0000, BIP320_MASK, bits),
            0x2000_6000
        );
        assert_eq!(
            RollingRule::Or.apply(0x3000_0000, BIP320_MASK, bits),
            0x3000_6000
        );
        assert!(outside_mask(0x0000_1000, BIP320_MASK));
        assert!(!outside_mask(0x1fff_e000, BIP320_MASK));
    }
}
