//! The `mining.submit` fast path: a byte scanner that reads the shape every
//! miner sends without building a `serde_json::Value` and without
//! allocating. Lines it does not recognise fall back to the general parser
//! in [`crate::message`], so unusual but valid JSON is still accepted.
//!
//! Recognised shape (whitespace allowed between tokens, keys in any order,
//! unknown keys skipped if they hold scalars):
//! `{"id": <number|string|null>, "method": "mining.submit",
//!   "params": ["worker", "job", "en2", "ntime", "nonce"(, "vbits")]}`

/// A submit borrowed from its line. Hex fields are still text; the engine
/// decodes them into fixed buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubmitRef<'a> {
    /// The request id as raw JSON (echoed verbatim in the response).
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

/// Tries the fast path. `None` means "not this shape"; the caller then uses
/// the general parser, which gives the precise error if the line is bad.
pub fn parse_submit(line: &[u8]) -> Option<SubmitRef<'_>> {
    let mut p = Scanner { s: line, i: 0 };
    p.ws();
    p.eat(b'{')?;
    let mut id = None;
    let mut is_submit = false;
    let mut params: Option<[&[u8]; 6]> = None;
    let mut nparams = 0;
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key {
            b"id" => id = Some(p.scalar()?),
            b"method" => is_submit = p.string()? == b"mining.submit",
            b"params" => {
                let (arr, n) = p.string_array()?;
                params = Some(arr);
                nparams = n;
            }
            _ => {
                p.scalar()?;
            }
        }
        p.ws();
        match p.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    p.ws();
    if p.i != line.len() || !is_submit || !(5..=6).contains(&nparams) {
        return None;
    }
    let params = params?;
    Some(SubmitRef {
        id: id?,
        worker: std::str::from_utf8(params[0]).ok()?,
        job_id: std::str::from_utf8(params[1]).ok()?,
        extranonce2: params[2],
        ntime: params[3],
        nonce: params[4],
        version_bits: (nparams == 6).then_some(params[5]),
    })
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
    fn next(&mut self) -> Option<u8> {
        let b = *self.s.get(self.i)?;
        self.i += 1;
        Some(b)
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// A string without escapes (escapes send us to the general parser).
    #[inline]
    fn string(&mut self) -> Option<&'a [u8]> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => return Some(&self.s[start..self.i - 1]),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    /// A number, a plain string, `null`, `true` or `false`, as raw JSON.
    fn scalar(&mut self) -> Option<&'a [u8]> {
        let start = self.i;
        match *self.s.get(self.i)? {
            b'"' => {
                self.string()?;
            }
            b'-' | b'0'..=b'9' => {
                while self.i < self.s.len()
                    && matches!(
                        self.s[self.i],
                        b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'
                    )
                {
                    self.i += 1;
                }
            }
            b'n' | b't' | b'f' => {
                while self.i < self.s.len() && self.s[self.i].is_ascii_lowercase() {
                    self.i += 1;
                }
                if !matches!(&self.s[start..self.i], b"null" | b"true" | b"false") {
                    return None;
                }
            }
            _ => return None,
        }
        Some(&self.s[start..self.i])
    }

    /// An array of at most 6 plain strings.
    fn string_array(&mut self) -> Option<([&'a [u8]; 6], usize)> {
        let mut out: [&[u8]; 6] = [&[]; 6];
        let mut n = 0;
        self.eat(b'[')?;
        self.ws();
        if self.s.get(self.i) == Some(&b']') {
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
    }

    #[test]
    fn parses_version_bits_and_string_id() {
        let line = br#"{"id":"a7","method":"mining.submit","params":["w","1","00000000","6b0162f2","76f4b813","00002000"]}"#;
        let s = parse_submit(line).unwrap();
        assert_eq!(s.id, br#""a7""#);
        assert_eq!(s.version_bits, Some(&b"00002000"[..]));
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
            br#"[1,2]"#,
            b"",
        ] {
            assert!(
                parse_submit(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(line in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_submit(&line);
        }
    }
}
