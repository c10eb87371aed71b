//! The `mining.submit` fast path: a byte scanner that reads the shape every
//! miner sends without building a `serde_json::Value` and without
//! allocating. Lines it does not recognise fall back to the general parser
//! in [`crate::message`], so unusual but valid JSON is still accepted.
//!
//! The rule: whatever [`parse_submit`] accepts is valid JSON, and the fields
//! it returns are exactly what the general parser ([`crate::parse_client`],
//! through `serde_json`) reads from the same line, the id included, byte
//! for byte. Everything else is declined (`None`); the general parser then
//! either reads the line or gives the precise error.
//!
//! Recognised shape:
//! `{"id": <id>, "method": "mining.submit",
//!   "params": ["worker", "job", "en2", "ntime", "nonce"(, "vbits")]}`
//! - JSON whitespace (space, tab, CR, LF) between tokens and around the
//!   object; nothing else after the closing brace.
//! - Keys in any order; `id`, `method` and `params` each exactly once.
//!   (`serde_json` keeps the last of duplicate keys; rather than mirror
//!   that, a duplicate is declined.)
//! - `<id>`: a plain string, `null`, `true`, `false`, or an integer written
//!   the way `serde_json` prints it back: no fraction, no exponent, not
//!   `-0`, within `u64` (or `i64` when negative). Other valid numbers
//!   (`1.0`, `1e2`, `18446744073709551616`) are declined: `serde_json`
//!   reads them as floats and the general parser's id would be `1.0`,
//!   `100.0`, `1.8446744073709552e+19`, not the text sent.
//! - Unknown keys: a plain string, `null`, `true`, `false`, or a number in
//!   the exact JSON grammar without an exponent and with at most 64 digits
//!   (always within `f64` range; `serde_json` refuses e.g. `1e400`).
//!   Objects and arrays are declined.
//! - A "plain string" has no escapes (declined) and no control characters
//!   (below 0x20: invalid JSON). The whole line must be UTF-8, as
//!   `serde_json` requires.

use std::ops::Range;

/// A submit borrowed from its line. Hex fields are still text; the engine
/// decodes them into fixed buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitRef<'a> {
    /// The request id as raw JSON (echoed verbatim in the response). From
    /// [`parse_submit`] it is always valid JSON and equal to the general
    /// parser's [`crate::Id`] for the same line.
    pub id: &'a [u8],
    /// Worker name, as authorized.
    pub worker: &'a str,
    /// Job id from `mining.notify`.
    pub job_id: &'a str,
    /// extranonce2, hex.
    pub extranonce2: &'a [u8],
    /// ntime, 8 hex digits big-endian.
    pub ntime: &'a [u8],
    /// nonce, 8 hex digits big-endian.
    pub nonce: &'a [u8],
    /// Rolled version bits, 8 hex digits big-endian (BIP 310), if sent.
    pub version_bits: Option<&'a [u8]>,
}

/// Most digits a number under an unknown key may have: 64 digits without
/// an exponent stay far inside `f64` range, so `serde_json` accepts them.
const MAX_SKIPPED_NUMBER_DIGITS: usize = 64;

/// Tries the fast path. `None` means "not this shape" (see the module
/// documentation); the caller then uses the general parser, which gives
/// the precise error if the line is bad.
pub fn parse_submit(line: &[u8]) -> Option<SubmitRef<'_>> {
    // serde_json refuses invalid UTF-8 anywhere. Outside strings the scanner
    // accepts only ASCII, so this one pass covers every string in the line,
    // and lets worker and job id be borrowed as `&str` without another.
    let text = std::str::from_utf8(line).ok()?;
    let mut p = Scanner { s: line, i: 0 };
    p.ws();
    p.eat(b'{')?;
    let mut id = None;
    let mut method = None;
    let mut params = None;
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match &line[key] {
            b"id" if id.is_none() => id = Some(p.id()?),
            b"method" if method.is_none() => method = Some(p.string()?),
            b"params" if params.is_none() => params = Some(p.string_array()?),
            // A duplicate: serde_json would keep the last; we decline.
            b"id" | b"method" | b"params" => return None,
            _ => p.skip_scalar()?,
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != line.len() || line.get(method?)? != b"mining.submit" {
        return None;
    }
    let (params, n) = params?;
    if !(5..=6).contains(&n) {
        return None;
    }
    let [worker, job_id, en2, ntime, nonce, vbits] = params;
    Some(SubmitRef {
        id: id?,
        worker: text.get(worker)?,
        job_id: text.get(job_id)?,
        extranonce2: line.get(en2)?,
        ntime: line.get(ntime)?,
        nonce: line.get(nonce)?,
        version_bits: if n == 6 { Some(line.get(vbits)?) } else { None },
    })
}

/// What [`Scanner::number`] saw.
struct Number {
    negative: bool,
    /// Digits before any exponent (integer and fraction parts).
    digits: usize,
    fraction: bool,
    exponent: bool,
}

struct Scanner<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\r' | b'\n') {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.i += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// A string without escapes (escapes send us to the general parser;
    /// control characters are invalid JSON). Returns the range of its
    /// contents, without the quotes.
    #[inline]
    fn string(&mut self) -> Option<Range<usize>> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(start..self.i - 1),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// Runs of ASCII digits; returns how many.
    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
        self.i - start
    }

    /// A number in the exact JSON grammar,
    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`. A leading zero
    /// ends the integer part, so `01` leaves `1` for the caller to refuse.
    fn number(&mut self) -> Option<Number> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        let mut digits = match self.peek()? {
            b'0' => {
                self.i += 1;
                1
            }
            b'1'..=b'9' => self.digits(),
            _ => return None,
        };
        let fraction = self.peek() == Some(b'.');
        if fraction {
            self.i += 1;
            match self.digits() {
                0 => return None,
                n => digits += n,
            }
        }
        let exponent = matches!(self.peek(), Some(b'e' | b'E'));
        if exponent {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(Number {
            negative,
            digits,
            fraction,
            exponent,
        })
    }

    /// `null`, `true` or `false`.
    fn literal(&mut self) -> Option<()> {
        let rest = self.s.get(self.i..)?;
        let len = [&b"null"[..], b"true", b"false"]
            .into_iter()
            .find(|l| rest.starts_with(l))?
            .len();
        self.i += len;
        Some(())
    }

    /// The id, as raw JSON, when `serde_json` would print it back as the
    /// same text: a plain string, a literal, or a canonical integer that
    /// fits `u64` (or `i64` when negative) other than `-0`.
    fn id(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        match self.peek()? {
            b'"' => {
                self.string()?;
            }
            b'-' | b'0'..=b'9' => {
                let n = self.number()?;
                if n.fraction || n.exponent {
                    return None;
                }
                let digits = &self.s[start + usize::from(n.negative)..self.i];
                let v = digits.iter().try_fold(0u64, |v, &d| {
                    v.checked_mul(10)?.checked_add(u64::from(d - b'0'))
                })?;
                if n.negative && !(1..=(1u64 << 63)).contains(&v) {
                    return None;
                }
            }
            _ => self.literal()?,
        }
        Some(&self.s[start..self.i])
    }

    /// The value of a key we do not use: a plain string, a literal, or a
    /// number `serde_json` is sure to accept (see the module docs).
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'-' | b'0'..=b'9' => {
                let n = self.number()?;
                (!n.exponent && n.digits <= MAX_SKIPPED_NUMBER_DIGITS).then_some(())
            }
            _ => self.literal(),
        }
    }

    /// An array of at most 6 plain strings: their ranges and count.
    fn string_array(&mut self) -> Option<([Range<usize>; 6], usize)> {
        let mut out: [Range<usize>; 6] = Default::default();
        let mut n = 0;
        self.eat(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Some((out, 0));
        }
        loop {
            self.ws();
            if n == out.len() {
                return None;
            }
            out[n] = self.string()?;
            n += 1;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some((out, n)),
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{ClientRequest, Id, ParseError, Request, parse_client};
    use proptest::prelude::*;
    use proptest::sample::{Index, select};

    const PARAMS: &str = r#"["w","j","00000000","6b0162f2","76f4b813"]"#;

    /// `{"id":<id>,"method":"mining.submit","params":[…5 params…]}`.
    fn with_id(id: &[u8]) -> Vec<u8> {
        [br#"{"id":"#, id, br#","method":"mining.submit","params":"#]
            .concat()
            .into_iter()
            .chain(PARAMS.bytes())
            .chain([b'}'])
            .collect()
    }

    /// A good submit with an extra key `"x":<value>`.
    fn with_extra(value: &[u8]) -> Vec<u8> {
        [
            br#"{"id":1,"x":"#,
            value,
            br#","method":"mining.submit","params":"#,
            PARAMS.as_bytes(),
            b"}",
        ]
        .concat()
    }

    fn show(line: &[u8]) -> String {
        format!("{:?}", String::from_utf8_lossy(line))
    }

    /// The rule, on one line: whatever the fast path accepts is valid JSON
    /// and the general parser reads the same submit from it, field by
    /// field, id included.
    fn assert_agrees(line: &[u8]) {
        let Some(fast) = parse_submit(line) else {
            return;
        };
        let l = show(line);
        assert!(
            serde_json::from_slice::<serde_json::Value>(line).is_ok(),
            "fast path accepted invalid JSON: {l}"
        );
        let r = parse_client(line)
            .unwrap_or_else(|e| panic!("general parser refused ({e}) a fast-path line: {l}"));
        match &r.body {
            ClientRequest::Submit(s) => assert_eq!(s.as_ref(&r.id), fast, "{l}"),
            other => panic!("general parser read {other:?} from a fast-path line: {l}"),
        }
    }

    /// Not JSON: the fast path declines and the general parser says so.
    fn assert_invalid(line: &[u8]) {
        let l = show(line);
        assert!(
            serde_json::from_slice::<serde_json::Value>(line).is_err(),
            "test input is valid JSON: {l}"
        );
        assert_eq!(parse_submit(line), None, "{l}");
        assert_eq!(parse_client(line), Err(ParseError::Json), "{l}");
    }

    /// Valid JSON the fast path leaves to the general parser; its reading.
    fn declined_but_valid(line: &[u8]) -> Request {
        let l = show(line);
        assert_eq!(parse_submit(line), None, "{l}");
        parse_client(line).unwrap_or_else(|e| panic!("{e}: {l}"))
    }

    #[test]
    fn parses_cpuminer_submit() {
        let line = br#"{"method": "mining.submit", "params": ["bcrt1q.cpu1", "6b01596d00000013", "0000000000000000", "6b015b89", "8d80df11"], "id":4}"#;
        let s = parse_submit(line).unwrap();
        assert_eq!(s.id, b"4");
        assert_eq!(s.worker, "bcrt1q.cpu1");
        assert_eq!(s.job_id, "6b01596d00000013");
        assert_eq!(s.extranonce2, b"0000000000000000");
        assert_eq!(s.ntime, b"6b015b89");
        assert_eq!(s.nonce, b"8d80df11");
        assert_eq!(s.version_bits, None);
        assert_agrees(line);
    }

    #[test]
    fn parses_version_bits_and_string_id() {
        let line = br#"{"id":"a7","method":"mining.submit","params":["w","1","00000000","6b0162f2","76f4b813","00002000"]}"#;
        let s = parse_submit(line).unwrap();
        assert_eq!(s.id, br#""a7""#);
        assert_eq!(s.version_bits, Some(&b"00002000"[..]));
        assert_agrees(line);
    }

    #[test]
    fn declines_what_it_does_not_know() {
        for line in [
            &br#"{"id":1,"method":"mining.subscribe","params":["x","y","z","a","b"]}"#[..],
            br#"{"id":1,"method":"mining.submit","params":["w","1","00","00"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w","1","00","00","00","00","00"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w\"x","1","00","00","00"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w",1,"00","00","00"]}"#,
            br#"{"id":1,"method":"mining.submit","params":["w","1","00","00","00"]} trailing"#,
            br#"{"id":1,"method":"mining.submit","params":["w","1","00","00","00"]"#,
            br#"{"id":{"x":1},"method":"mining.submit","params":["w","1","00","00","00"]}"#,
            br#"{"id":nul,"method":"mining.submit","params":["w","1","00","00","00"]}"#,
            br#"{"method":"mining.submit","params":["w","1","00","00","00"]}"#,
            br#"[1,2]"#,
            b"",
        ] {
            assert!(parse_submit(line).is_none(), "{}", show(line));
        }
    }

    /// The bug this module was fixed for: any run of `-+.eE0-9` was taken
    /// as a number, so `1.2.3` was echoed in a reply that was not JSON.
    #[test]
    fn malformed_numbers_are_refused_everywhere() {
        for n in [
            "1.2.3",
            "--",
            "01",
            "00",
            "-01",
            "+1",
            "1.",
            "-",
            ".5",
            "-.5",
            "1e",
            "1e+",
            "1E-",
            "1.e5",
            "1.5e",
            "1e5e5",
            "1ee5",
            "0x1",
            "1_0",
            "- 1",
            "1-",
            "1+1",
            "2-1",
            "NaN",
            "Infinity",
            "-Infinity",
            "inf",
            "0.",
            "-0.",
            "1.5.",
            "1e5.0",
        ] {
            assert_invalid(&with_id(n.as_bytes()));
            assert_invalid(&with_extra(n.as_bytes()));
        }
    }

    /// serde_json refuses numbers beyond `f64` range; the fast path never
    /// skips a number it cannot be sure of.
    #[test]
    fn out_of_range_numbers_are_refused() {
        let huge = format!("1{}", "0".repeat(400));
        for n in ["1e400", "-1e400", "1.7976931348623159e308", &huge] {
            assert_invalid(&with_id(n.as_bytes()));
            assert_invalid(&with_extra(n.as_bytes()));
        }
    }

    #[test]
    fn literals_are_exact() {
        for l in [
            "nul", "nulll", "NULL", "Null", "tru", "truee", "True", "fals", "falsey", "n",
        ] {
            assert_invalid(&with_id(l.as_bytes()));
            assert_invalid(&with_extra(l.as_bytes()));
        }
        for l in ["null", "true", "false"] {
            let line = with_id(l.as_bytes());
            assert_eq!(parse_submit(&line).unwrap().id, l.as_bytes());
            assert_agrees(&line);
            let line = with_extra(l.as_bytes());
            assert!(parse_submit(&line).is_some());
            assert_agrees(&line);
        }
    }

    #[test]
    fn control_characters_in_strings_are_refused() {
        let good = br#"{"id":"a","x":"b","method":"mining.submit","params":["w","j","00000000","6b0162f2","76f4b813"]}"#;
        assert_agrees(good);
        // Each string in turn (id, key, unknown value, method, a param)
        // gets a control character.
        for at in [7, 11, 16, 28, 54] {
            for c in [0u8, 0x01, b'\t', b'\n', b'\r', 0x1f] {
                let mut line = good.to_vec();
                line.insert(at, c);
                assert_invalid(&line);
            }
        }
        // DEL and other non-control bytes are fine, and echoed as sent.
        let line = with_id("\"a\u{7f}b\"".as_bytes());
        assert_eq!(parse_submit(&line).unwrap().id, "\"a\u{7f}b\"".as_bytes());
        assert_agrees(&line);
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let good = br#"{"id":"a","x":"b","method":"mining.submit","params":["w","j","00000000","6b0162f2","76f4b813"]}"#;
        for at in [7, 11, 16, 28, 54] {
            for bad in [
                &[0xffu8][..],
                &[0x80],
                &[0xc3],
                &[0xc0, 0xaf],
                &[0xed, 0xa0, 0x80],
            ] {
                let mut line = good.to_vec();
                line.splice(at..at, bad.iter().copied());
                assert_invalid(&line);
            }
        }
        // Valid UTF-8 is kept as sent, in the id and in the worker name.
        let line = r#"{"id":"é😀","method":"mining.submit","params":["wé","j","00","00","00"]}"#;
        let s = parse_submit(line.as_bytes()).unwrap();
        assert_eq!((s.id, s.worker), ("\"é😀\"".as_bytes(), "wé"));
        assert_agrees(line.as_bytes());
    }

    #[test]
    fn broken_structure_is_refused() {
        let p = PARAMS;
        for line in [
            format!(r#"{{"id":1,"method":"mining.submit","params":{p}}} x"#),
            format!(r#"{{"id":1,"method":"mining.submit","params":{p}}}}}"#),
            format!(r#"{{"id":1,"method":"mining.submit","params":{p}}}{{}}"#),
            format!(r#"{{"id":1,"method":"mining.submit","params":{p}"#),
            format!(r#"{{"id":1,"method":"mining.submit","params":{p},}}"#),
            format!(r#"{{"id":1,,"method":"mining.submit","params":{p}}}"#),
            format!(r#"{{"id":1 "method":"mining.submit","params":{p}}}"#),
            format!(r#"{{"id" 1,"method":"mining.submit","params":{p}}}"#),
            format!(r#"{{"id":1,"method":"mining.submit","params":{p}]}}"#),
            format!(r#"{{'id':1,"method":"mining.submit","params":{p}}}"#),
            format!(r#"{{id:1,"method":"mining.submit","params":{p}}}"#),
            r#"{"id":1,"method":"mining.submit","params":["w","j","00","00","00",]}"#.to_owned(),
            r#"{"id":1,"method":"mining.submit","params":["w","j","00","00","00"}"#.to_owned(),
            r#"{"id":1,"method":"mining.submit","params":["w""j","00","00","00"]}"#.to_owned(),
            // Form feed and vertical tab are not JSON whitespace.
            format!("{{\"id\":1,\x0c\"method\":\"mining.submit\",\"params\":{p}}}"),
            format!("{{\"id\":1,\"method\":\"mining.submit\",\"params\":{p}}}\x0b"),
            format!("\u{feff}{{\"id\":1,\"method\":\"mining.submit\",\"params\":{p}}}"),
            format!("{{\"id\":1,\"method\":\"mining.submit\",\"params\":{p}}}\0"),
        ] {
            assert_invalid(line.as_bytes());
        }
    }

    /// serde_json keeps the last of duplicate keys, so the general parser
    /// reads the last `id`, `method` and `params`. The fast path declines
    /// instead of guessing.
    #[test]
    fn duplicate_keys_are_left_to_the_general_parser() {
        let r = declined_but_valid(
            br#"{"id":1,"id":2,"method":"mining.submit","params":["w","j","00","00","00"]}"#,
        );
        assert_eq!(r.id, Id::num(2));
        let r = declined_but_valid(
            br#"{"id":1,"method":"mining.subscribe","method":"mining.submit","params":["w","j","00","00","00"]}"#,
        );
        assert!(matches!(r.body, ClientRequest::Submit(_)));
        let r = declined_but_valid(
            br#"{"id":1,"method":"mining.submit","method":"mining.subscribe","params":["w","j","00","00","00"]}"#,
        );
        assert!(matches!(r.body, ClientRequest::Subscribe { .. }));
        let r = declined_but_valid(
            br#"{"id":1,"method":"mining.submit","params":["a","j","00","00","00"],"params":["b","j","00","00","00","01"]}"#,
        );
        match r.body {
            ClientRequest::Submit(s) => {
                assert_eq!((&*s.worker, s.version_bits.is_some()), ("b", true))
            }
            other => panic!("{other:?}"),
        }
        // A duplicate unknown key changes nothing the fast path returns.
        let line =
            br#"{"id":1,"x":1,"x":"y","method":"mining.submit","params":["w","j","00","00","00"]}"#;
        assert!(parse_submit(line).is_some());
        assert_agrees(line);
    }

    /// Valid ids that serde_json does not print back as sent: the general
    /// parser answers with its own spelling, so the fast path declines.
    #[test]
    fn ids_the_general_parser_rewrites_are_declined() {
        for (sent, read) in [
            ("-0", "-0.0"),
            ("1.0", "1.0"),
            ("1.50", "1.5"),
            ("1e2", "100.0"),
            ("0e0", "0.0"),
            ("18446744073709551616", "1.8446744073709552e+19"),
            ("-9223372036854775809", "-9.223372036854776e+18"),
            (r#""\u0041""#, r#""A""#),
            (r#""\/""#, r#""/""#),
            (r#"{"a":1}"#, r#"{"a":1}"#),
            ("[1]", "[1]"),
        ] {
            let r = declined_but_valid(&with_id(sent.as_bytes()));
            assert_eq!(r.id.as_bytes(), read.as_bytes(), "{sent}");
        }
    }

    #[test]
    fn ids_echoed_exactly() {
        for id in [
            "0",
            "7",
            "-1",
            "18446744073709551615",
            "-9223372036854775808",
            r#""""#,
            r#""a7""#,
            r#""/ '""#,
            "null",
        ] {
            let line = with_id(id.as_bytes());
            assert_eq!(parse_submit(&line).unwrap().id, id.as_bytes());
            assert_agrees(&line);
        }
    }

    #[test]
    fn unknown_keys_hold_only_scalars_the_fast_path_can_vouch_for() {
        let digits64 = "9".repeat(64);
        for v in ["1.5", "-0.0", "0", "-12.25", &digits64, r#""2.0""#, r#""""#] {
            let line = with_extra(v.as_bytes());
            assert!(parse_submit(&line).is_some(), "{v}");
            assert_agrees(&line);
        }
        let digits65 = "9".repeat(65);
        for v in ["1e5", "0E0", &digits65, "{}", "[]", r#"{"a":1}"#, r#""\n""#] {
            declined_but_valid(&with_extra(v.as_bytes()));
        }
    }

    #[test]
    fn whitespace_anywhere_between_tokens() {
        let line = b" \t{ \"id\" :\r\n 5 ,\n\"method\"\t: \"mining.submit\" , \"params\" : [ \"w\" , \"j\" ,\"00\", \"00\" , \"00\" ] } \r\n";
        assert_eq!(parse_submit(line).unwrap().id, b"5");
        assert_agrees(line);
    }

    // Generators for the differential test: near-valid submit lines.

    fn text(s: &str) -> Vec<u8> {
        s.as_bytes().to_vec()
    }

    /// Numbers as miners, fuzzers and typos write them.
    fn number() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            any::<u64>().prop_map(|n| n.to_string().into_bytes()),
            any::<i64>().prop_map(|n| n.to_string().into_bytes()),
            (0u32..1000).prop_map(|n| n.to_string().into_bytes()),
            // Display writes every digit (1e300 is 301 of them).
            any::<f64>().prop_map(|f| f.to_string().into_bytes()),
            any::<f64>().prop_map(|f| format!("{f:e}").into_bytes()),
            proptest::collection::vec(select(b"-+.eE0123456789".to_vec()), 1..10),
            select(vec![
                "-0",
                "-0.0",
                "0.0",
                "1e400",
                "-1e400",
                "0e400",
                "1e-400",
                "18446744073709551616",
                "-9223372036854775808",
                "-9223372036854775809",
                "1.7976931348623157e308",
                "1.7976931348623159e308",
            ])
            .prop_map(text),
        ]
    }

    /// A string token: plain text, escapes, control characters, non-ASCII
    /// and invalid UTF-8.
    fn string() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            40 => select(vec!["w", "a7", "00000000", "6b0162f2", "bc1q.rig", " ", "/", "'"]).prop_map(text),
            1 => select(vec!["\\\"", "\\\\", "\\u0041", "\\n", "\\x", "\\"]).prop_map(text),
            1 => (0u8..0x20).prop_map(|c| vec![c]),
            1 => select(vec!["é", "\u{7f}", "\u{2028}", "😀"]).prop_map(text),
            1 => select(vec![vec![0xff], vec![0xc3], vec![0xed, 0xa0, 0x80], vec![0xc0, 0xaf], vec![0x80]]),
        ];
        proptest::collection::vec(piece, 0..4).prop_map(|parts| {
            let mut s = vec![b'"'];
            parts.into_iter().for_each(|p| s.extend(p));
            s.push(b'"');
            s
        })
    }

    /// Any JSON value, or something close to one.
    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            3 => number(),
            3 => string(),
            1 => select(vec!["null", "true", "false", "nul", "nulll", "True", "tru"]).prop_map(text),
            1 => select(vec!["{}", r#"{"a":1}"#, "[]", r#"[1,"x"]"#, "", "[", "{"]).prop_map(text),
        ]
    }

    fn hex_param() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            40 => select(vec![r#""00000000""#, r#""6b0162f2""#, r#""w.1""#, r#""""#]).prop_map(text),
            1 => value(),
        ]
    }

    fn params() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => (5usize..=6).prop_flat_map(|n| proptest::collection::vec(hex_param(), n)),
            2 => proptest::collection::vec(hex_param(), 0..9),
        ]
        .prop_map(|items| {
            let mut s = vec![b'['];
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    s.push(b',');
                }
                s.extend(item);
            }
            s.push(b']');
            s
        })
    }

    fn whitespace() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            150 => Just(Vec::new()),
            40 => select(vec![" ", " \t", "\r\n", "\n"]).prop_map(text),
            1 => select(vec!["\x0c", "\x0b", "\u{a0}", "\0"]).prop_map(text),
        ]
    }

    /// Key/value pairs: usually id, method and params, plus extra keys
    /// (sometimes repeating a known one), in any order.
    fn entries() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
        let id_value = prop_oneof![
            2 => (0u32..1000).prop_map(|n| n.to_string().into_bytes()),
            1 => string(),
            2 => value(),
        ];
        let id = prop::option::weighted(0.95, id_value.prop_map(|v| (text(r#""id""#), v)));
        let method = prop::option::weighted(
            0.95,
            prop_oneof![
                16 => Just(text(r#""mining.submit""#)),
                1 => select(vec![r#""mining.subscribe""#, r#""mining.su\u0062mit""#, "1", "null"]).prop_map(text),
            ]
            .prop_map(|v| (text(r#""method""#), v)),
        );
        let ps = prop::option::weighted(0.95, params().prop_map(|v| (text(r#""params""#), v)));
        let extra_key = prop_oneof![
            3 => select(vec![r#""x""#, r#""jsonrpc""#, r#""id""#, r#""method""#, r#""params""#]).prop_map(text),
            1 => string(),
        ];
        let extras = proptest::collection::vec((extra_key, value()), 0..3);
        let extras = prop_oneof![2 => Just(Vec::new()), 1 => extras];
        (id, method, ps, extras)
            .prop_map(|(id, method, ps, mut extras)| {
                extras.extend([id, method, ps].into_iter().flatten());
                extras
            })
            .prop_shuffle()
    }

    /// A near-valid line, then maybe one mutation: truncation, a byte set,
    /// inserted or removed.
    fn near_valid_line() -> impl Strategy<Value = Vec<u8>> {
        let byte = prop_oneof![any::<u8>(), select(b"\"\\,:{}[]0-.e \x00\xff".to_vec())];
        (
            entries(),
            proptest::collection::vec(whitespace(), 32),
            (0u8..16, any::<Index>(), byte),
        )
            .prop_map(|(entries, ws, (kind, at, b))| {
                let mut ws = ws.into_iter().cycle();
                let mut line = ws.next().unwrap_or_default();
                line.push(b'{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        line.push(b',');
                    }
                    for part in [
                        ws.next(),
                        Some(k),
                        ws.next(),
                        Some(vec![b':']),
                        ws.next(),
                        Some(v),
                        ws.next(),
                    ] {
                        line.extend(part.unwrap_or_default());
                    }
                }
                line.push(b'}');
                line.extend(ws.next().unwrap_or_default());
                match kind {
                    0 => line.truncate(at.index(line.len() + 1)),
                    1 => {
                        let i = at.index(line.len());
                        line[i] = b;
                    }
                    2 => line.insert(at.index(line.len() + 1), b),
                    3 => {
                        line.remove(at.index(line.len()));
                    }
                    _ => {}
                }
                line
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]

        #[test]
        fn fast_path_agrees_with_serde_on_near_valid_lines(line in near_valid_line()) {
            assert_agrees(&line);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn fast_path_agrees_with_serde_on_arbitrary_bytes(
            line in proptest::collection::vec(any::<u8>(), 0..200)
        ) {
            assert_agrees(&line);
        }
    }
}
