//! Every line of the real V1 transcripts in testdata/ (a ckpool session and
//! the SV2 reference translator's V1 side) parses, and jobs re-encode to
//! the same values.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

use std::path::PathBuf;

use sluice_sv1::{ClientRequest, ServerMessage, parse_client, parse_server, parse_submit};

fn lines(name: &str) -> Vec<(char, String)> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(name);
    std::fs::read_to_string(p)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.strip_prefix("> ")
                .map(|r| ('>', r.to_owned()))
                .or_else(|| l.strip_prefix("< ").map(|r| ('<', r.to_owned())))
        })
        .collect()
}

fn replay(name: &str) -> (usize, usize) {
    let (mut notifies, mut submits) = (0, 0);
    for (dir, line) in lines(name) {
        if dir == '>' {
            let r = parse_client(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
            if let ClientRequest::Submit(s) = &r.body {
                submits += 1;
                // The fast path reads the real miner's line identically.
                assert_eq!(parse_submit(line.as_bytes()).unwrap(), s.as_ref(&r.id));
            }
        } else {
            match parse_server(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}")) {
                ServerMessage::Notify(n) => {
                    notifies += 1;
                    let again = n.encode();
                    match parse_server(&again[..again.len() - 1]).unwrap() {
                        ServerMessage::Notify(back) => assert_eq!(back, n),
                        other => panic!("{other:?}"),
                    }
                }
                ServerMessage::Response { .. } | ServerMessage::SetDifficulty(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    (notifies, submits)
}

#[test]
fn ckpool_session() {
    assert_eq!(replay("stratum-v1-ckpool-block204.txt"), (1, 1));
}

#[test]
fn translator_sv2_session() {
    assert_eq!(replay("stratum-v1-translator_sv2-session.txt"), (1, 1));
}
