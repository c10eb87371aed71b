//! Merkle roots the way Stratum computes them: a coinbase txid folded with a
//! list of branch hashes, and the branch list built from a block's txids.

use crate::sha::merkle_node;

/// Folds the coinbase txid up the tree: `acc = sha256d(acc ‖ branch)` for
/// each branch in order. All hashes in internal byte order.
#[inline]
pub fn root_from_branches(coinbase_txid: &[u8; 32], branches: &[[u8; 32]]) -> [u8; 32] {
    let mut acc = *coinbase_txid;
    for b in branches {
        acc = merkle_node(&acc, b);
    }
    acc
}

/// The branch list for the leftmost leaf (the coinbase) given the txids of
/// every *other* transaction in block order. This is what a pool puts in
/// `mining.notify` / `NewExtendedMiningJob`.
pub fn coinbase_branches(other_txids: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut branches = Vec::new();
    // Level holds the hashes right of the coinbase's path at this height.
    let mut level: Vec<[u8; 32]> = other_txids.to_vec();
    while !level.is_empty() {
        branches.push(level[0]);
        // The path node pairs with level[0]; the rest pair among themselves,
        // the last one with itself when their count is odd.
        let rest = &level[1..];
        let mut next = Vec::with_capacity(rest.len().div_ceil(2));
        for pair in rest.chunks(2) {
            let right = pair.get(1).unwrap_or(&pair[0]);
            next.push(merkle_node(&pair[0], right));
        }
        level = next;
    }
    branches
}

/// The merkle root of a full txid list (coinbase first), as in a block.
/// Returns all zeros for an empty list.
pub fn root(txids: &[[u8; 32]]) -> [u8; 32] {
    match txids.split_first() {
        None => [0; 32],
        Some((coinbase, rest)) => root_from_branches(coinbase, &coinbase_branches(rest)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive_root(txids: &[[u8; 32]]) -> [u8; 32] {
        let mut level = txids.to_vec();
        while level.len() > 1 {
            if level.len() % 2 == 1 {
                level.push(*level.last().unwrap());
            }
            level = level.chunks(2).map(|p| merkle_node(&p[0], &p[1])).collect();
        }
        level[0]
    }

    #[test]
    fn branches_agree_with_full_tree() {
        for n in 1..40usize {
            let txids: Vec<[u8; 32]> = (0..n).map(|i| [i as u8 ^ 0x5a; 32]).collect();
            assert_eq!(root(&txids), naive_root(&txids), "n = {n}");
        }
    }

    #[test]
    fn single_transaction_root_is_its_txid() {
        let t = [7u8; 32];
        assert_eq!(root(&[t]), t);
        assert!(coinbase_branches(&[]).is_empty());
    }
}
