//! Newline-delimited framing with a hard line limit.
//!
//! Stratum V1 is one JSON object per `\n`-terminated line. A line longer
//! than the limit is refused *before* it is buffered further: the decoder
//! reports [`LineError::TooLong`] as soon as the buffer holds more than
//! `max_len` bytes without a newline, so a peer cannot make us allocate
//! without bound. An incomplete line is not an error (`Ok(None)`).

use bytes::{Buf, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Default maximum line length for lines from miners: 16 KiB. Real miners'
/// lines are under 1 KiB (ckpool cuts client lines at 1,024 bytes), but
/// `mining.configure` with several extensions and long worker names can
/// approach 1 KiB; 16 KiB leaves room without letting a peer hold much.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024;

/// Default maximum line length for lines from pools: 256 KiB. A pool's
/// `mining.notify` carries the coinbase and merkle branches, and some pools
/// send large coinbases (many payout outputs).
pub const DEFAULT_MAX_UPSTREAM_LINE: usize = 256 * 1024;

/// Framing errors. Both end the connection.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    /// More than the limit arrived without a newline.
    #[error("line exceeds {limit} bytes")]
    TooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// Splits a byte stream into lines (without the `\n` or a trailing `\r`)
/// and writes pre-encoded lines.
#[derive(Debug, Clone)]
pub struct LineCodec {
    /// `u32`s: every miner connection keeps a codec in its task, and 8
    /// bytes less there keeps the task a size class down (lines are
    /// kilobytes; a limit past 4 GiB is taken as 4 GiB).
    max_len: u32,
    /// Bytes of the buffer already scanned for `\n`, so a line arriving in
    /// many small reads is scanned once (at most `max_len`).
    scanned: u32,
}

impl LineCodec {
    /// A codec refusing lines longer than `max_len` bytes (excluding `\n`).
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: u32::try_from(max_len).unwrap_or(u32::MAX),
            scanned: 0,
        }
    }

    /// The limit in force.
    pub fn max_len(&self) -> usize {
        self.max_len as usize
    }
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

/// The caller only appends to the buffer between calls (or starts a new
/// codec with a new buffer): the codec remembers how much of it it has
/// scanned.
impl Decoder for LineCodec {
    type Item = Bytes;
    type Error = LineError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineError> {
        let max_len = self.max_len();
        loop {
            // A buffer shorter than what was scanned was not the one
            // scanned (a caller replaced it): scanned again from its start,
            // not indexed past its end.
            let from = match self.scanned as usize {
                n if n <= buf.len() => n,
                _ => 0,
            };
            let Some(pos) = buf[from..].iter().position(|&b| b == b'\n') else {
                if buf.len() > max_len {
                    return Err(LineError::TooLong { limit: max_len });
                }
                // At most `max_len`, a `u32`.
                self.scanned = u32::try_from(buf.len()).unwrap_or(u32::MAX);
                return Ok(None);
            };
            let end = from + pos;
            self.scanned = 0;
            if end > max_len {
                return Err(LineError::TooLong { limit: max_len });
            }
            let mut line = buf.split_to(end + 1);
            line.truncate(end);
            if line.last() == Some(&b'\r') {
                line.truncate(end - 1);
            }
            // Blank lines (keep-alives from some firmware) are skipped.
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some(line.freeze()));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, LineError> {
        match self.decode(buf)? {
            Some(line) => Ok(Some(line)),
            None => {
                // A final line without `\n` is dropped: a V1 message is only
                // complete with its terminator.
                buf.advance(buf.len());
                self.scanned = 0;
                Ok(None)
            }
        }
    }
}

impl Encoder<Bytes> for LineCodec {
    type Error = LineError;

    /// Writes an already-terminated line (see [`crate::encode`]); encoding
    /// is done once, before fan-out, not here.
    fn encode(&mut self, line: Bytes, dst: &mut BytesMut) -> Result<(), LineError> {
        dst.extend_from_slice(&line);
        Ok(())
    }
}

/// What the codec promises for `data`, whatever the chunking: the lines
/// it yields, and whether it ends with `TooLong`. Segments are split at
/// `\n`; one longer than the limit (its `\r` counted), or an unterminated
/// tail longer than the limit, ends the stream; the others lose one
/// trailing `\r` and are skipped when only whitespace. The codec's tests
/// and the fuzz target `line_codec` check it against this.
#[doc(hidden)]
pub fn reference_lines(data: &[u8], max: usize) -> (Vec<&[u8]>, bool) {
    let mut lines = Vec::new();
    let mut rest = data;
    while let Some(pos) = rest.iter().position(|&b| b == b'\n') {
        let seg = &rest[..pos];
        if seg.len() > max {
            return (lines, true);
        }
        let seg = seg.strip_suffix(b"\r").unwrap_or(seg);
        if !seg.iter().all(u8::is_ascii_whitespace) {
            lines.push(seg);
        }
        rest = &rest[pos + 1..];
    }
    (lines, rest.len() > max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(codec: &mut LineCodec, buf: &mut BytesMut, data: &[u8]) -> Vec<Bytes> {
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        while let Some(l) = codec.decode(buf).unwrap() {
            out.push(l);
        }
        out
    }

    #[test]
    fn a_replaced_buffer_is_scanned_from_its_start() {
        let mut c = LineCodec::default();
        let mut buf = BytesMut::new();
        assert!(feed(&mut c, &mut buf, b"{\"id\":1").is_empty());
        // The caller starts over with a shorter buffer: no panic, no line
        // lost.
        let mut fresh = BytesMut::new();
        assert_eq!(feed(&mut c, &mut fresh, b"x\n"), vec![Bytes::from("x")]);
    }

    #[test]
    fn limits_past_four_gib_are_four_gib() {
        // The limit is kept in 32 bits (see `LineCodec`).
        assert_eq!(LineCodec::new(1 << 20).max_len(), 1 << 20);
        assert_eq!(LineCodec::new(usize::MAX).max_len(), u32::MAX as usize);
    }

    #[test]
    fn splits_lines_across_reads() {
        let mut c = LineCodec::new(64);
        let mut b = BytesMut::new();
        assert!(feed(&mut c, &mut b, b"{\"a\":").is_empty());
        assert!(feed(&mut c, &mut b, b"1}").is_empty());
        let got = feed(&mut c, &mut b, b"\r\n\n  \n{\"b\":2}\n{\"c\"");
        assert_eq!(
            got,
            vec![
                Bytes::from_static(b"{\"a\":1}"),
                Bytes::from_static(b"{\"b\":2}")
            ]
        );
        assert_eq!(&b[..], b"{\"c\"");
    }

    #[test]
    fn refuses_long_line_before_newline_arrives() {
        let mut c = LineCodec::new(16);
        let mut b = BytesMut::new();
        b.extend_from_slice(&[b'x'; 16]);
        assert!(c.decode(&mut b).unwrap().is_none());
        b.extend_from_slice(b"y");
        assert!(matches!(
            c.decode(&mut b),
            Err(LineError::TooLong { limit: 16 })
        ));
    }

    #[test]
    fn refuses_long_line_that_arrives_whole() {
        let mut c = LineCodec::new(8);
        let mut b = BytesMut::from(&b"0123456789\n"[..]);
        assert!(matches!(c.decode(&mut b), Err(LineError::TooLong { .. })));
        // Exactly at the limit is fine.
        let mut c = LineCodec::new(10);
        let mut b = BytesMut::from(&b"0123456789\n"[..]);
        assert_eq!(c.decode(&mut b).unwrap().unwrap().len(), 10);
    }

    proptest::proptest! {
        #[test]
        fn any_chunking_yields_what_the_model_says(
            max in 0usize..24,
            data in proptest::collection::vec(
                proptest::sample::select(b"ab \t\r\n{}".to_vec()), 0..160),
            cuts in proptest::collection::vec(1usize..20, 1..8),
        ) {
            let mut c = LineCodec::new(max);
            let mut b = BytesMut::new();
            let (mut got, mut failed, mut fed) = (Vec::new(), false, 0);
            let mut cut = cuts.iter().cycle();
            'feed: while fed < data.len() {
                let end = (fed + cut.next().copied().unwrap_or(1)).min(data.len());
                b.extend_from_slice(&data[fed..end]);
                fed = end;
                loop {
                    match c.decode(&mut b) {
                        Ok(Some(line)) => got.push(line),
                        Ok(None) => break,
                        Err(LineError::TooLong { limit }) => {
                            proptest::prop_assert_eq!(limit, max);
                            failed = true;
                            break 'feed;
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            if !failed {
                proptest::prop_assert!(c.decode_eof(&mut b).unwrap().is_none());
                proptest::prop_assert!(b.is_empty());
            }
            let (want, want_failed) = reference_lines(&data, max);
            proptest::prop_assert_eq!(failed, want_failed);
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    fn eof_drops_unterminated_tail() {
        let mut c = LineCodec::new(64);
        let mut b = BytesMut::from(&b"{}\n{\"half"[..]);
        assert_eq!(
            c.decode_eof(&mut b).unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        assert!(c.decode_eof(&mut b).unwrap().is_none());
        assert!(b.is_empty());
    }
}
