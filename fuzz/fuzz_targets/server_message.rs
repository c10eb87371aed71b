//! `parse_server` (lines from a pool, untrusted) on arbitrary bytes: never
//! panics, and what it returns stays within the documented bounds. A
//! notify re-encodes to a line that parses back to the same job.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_sv1::message::{
    MAX_COINBASE_BYTES, MAX_EXTRANONCE1_LEN, MAX_JOB_ID_LEN, MAX_MERKLE_BRANCHES,
};
use sluice_sv1::{ServerMessage, SubscribeResult, parse_server};

fuzz_target!(|line: &[u8]| {
    let Ok(m) = parse_server(line) else {
        return;
    };
    match m {
        ServerMessage::Notify(n) => {
            assert!(n.branches.len() <= MAX_MERKLE_BRANCHES);
            assert!(n.coinb1.len() + n.coinb2.len() <= MAX_COINBASE_BYTES);
            assert!(n.job_id.len() <= MAX_JOB_ID_LEN);
            let again = n.encode();
            let back = parse_server(&again[..again.len() - 1]);
            assert_eq!(back, Ok(ServerMessage::Notify(n)));
        }
        ServerMessage::SetExtranonce {
            extranonce1,
            extranonce2_size,
        } => {
            assert!(extranonce1.len() <= MAX_EXTRANONCE1_LEN);
            assert!((1..=32).contains(&extranonce2_size));
        }
        ServerMessage::Response { result, .. } => {
            // Any response may be the subscribe reply.
            if let Ok(s) = SubscribeResult::from_value(&result) {
                assert!(s.extranonce1.len() <= MAX_EXTRANONCE1_LEN);
                assert!((1..=32).contains(&s.extranonce2_size));
            }
        }
        ServerMessage::SetDifficulty(d) => assert!(d.is_finite() && d > 0.0),
        _ => {}
    }
});
