//! The submit fast path against the general parser, on arbitrary bytes:
//! whatever `parse_submit` accepts must be valid JSON (serde_json), and
//! `parse_client` must read the same submit from it, id included, byte for
//! byte. `parse_client` runs on every input too, so its panics show up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_sv1::{ClientRequest, parse_client, parse_submit};

fuzz_target!(|line: &[u8]| {
    let general = parse_client(line);
    let Some(fast) = parse_submit(line) else {
        return;
    };
    let show = String::from_utf8_lossy(line);
    if let Err(e) = serde_json::from_slice::<serde_json::Value>(line) {
        panic!("fast path accepted invalid JSON ({e}): {show:?}");
    }
    let r = match general {
        Ok(r) => r,
        Err(e) => panic!("parse_client refused ({e}) a fast-path line: {show:?}"),
    };
    match &r.body {
        ClientRequest::Submit(s) => assert_eq!(s.as_ref(&r.id), fast, "{show:?}"),
        other => panic!("parse_client read {other:?} from a fast-path line: {show:?}"),
    }
});
