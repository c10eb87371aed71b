//! The floor for CPU per share: a Stratum V1 server that answers every
//! share `true` and does nothing else. It does no check, no books and no
//! pool; it reads a line, finds its id and method by byte search, and
//! answers. It has the same runtime as sluice (tokio, a worker thread
//! per core, one task per connection, the replies of one read in one
//! write).
//!
//! Measured beside sluice in the `cpu` series, it shows what any server
//! on this kernel's loopback TCP pays per share: sluice's CPU above it is
//! sluice's own work. Run as a child of the bench (`load --floor-server`),
//! it prints `listening on 127.0.0.1:PORT` as sluice does.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The difficulty the bench's proxies give miners.
const DIFFICULTY: &str = "0.00000001";

/// Serves until killed.
pub(crate) fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("listening on {}", listener.local_addr().expect("address"));
        let next = std::sync::Arc::new(AtomicU32::new(1));
        loop {
            let Ok((s, _)) = listener.accept().await else {
                // Out of files: back off rather than spin (which would
                // count as the floor's CPU).
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            };
            let en1 = next.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(connection(s, en1));
        }
    });
}

async fn connection(s: tokio::net::TcpStream, en1: u32) {
    let _ = s.set_nodelay(true);
    let (mut rd, mut wr) = s.into_split();
    let mut buf = Vec::with_capacity(4096);
    let mut out = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        let mut used = 0;
        while let Some(end) = buf[used..].iter().position(|&b| b == b'\n') {
            answer(&buf[used..used + end], en1, &mut out);
            used += end + 1;
        }
        buf.drain(..used);
        if !out.is_empty() {
            if wr.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
    }
}

/// The value after `"key":`, as its JSON text (a string keeps its
/// quotes), up to the next `,` or `}`.
fn field<'a>(line: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let at = line.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &line[at..];
    let rest = &rest[rest.iter().position(|&b| b != b' ' && b != b':')?..];
    let end = match rest.first() {
        Some(b'"') => rest[1..].iter().position(|&b| b == b'"')? + 2,
        _ => rest
            .iter()
            .position(|&b| matches!(b, b',' | b'}' | b' '))
            .unwrap_or(rest.len()),
    };
    Some(&rest[..end])
}

/// Appends the replies to one line, as a minimal V1 pool would.
pub(crate) fn answer(line: &[u8], en1: u32, out: &mut Vec<u8>) {
    let id = field(line, b"\"id\"").unwrap_or(b"null");
    let method = field(line, b"\"method\"").unwrap_or_default();
    let method = method
        .strip_prefix(b"\"")
        .and_then(|m| m.strip_suffix(b"\""))
        .unwrap_or(method);
    // Copied in pieces: a share's reply allocates nothing, so the floor
    // is not raised by work sluice does not do either.
    let reply = |out: &mut Vec<u8>, result: &str| {
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(id);
        out.extend_from_slice(b",\"result\":");
        out.extend_from_slice(result.as_bytes());
        out.extend_from_slice(b",\"error\":null}\n");
    };
    match method {
        b"mining.submit" => reply(out, "true"),
        b"mining.subscribe" => reply(
            out,
            &format!(
                "[[[\"mining.set_difficulty\",\"1\"],[\"mining.notify\",\"1\"]],\"{en1:08x}\",4]"
            ),
        ),
        b"mining.configure" => reply(
            out,
            "{\"version-rolling\":true,\"version-rolling.mask\":\"1fffe000\"}",
        ),
        b"mining.authorize" => {
            reply(out, "true");
            let ntime = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as u32);
            out.extend_from_slice(
                format!(
                    "{{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[{DIFFICULTY}]}}\n\
                     {{\"id\":null,\"method\":\"mining.notify\",\"params\":[\"1\",\"{prev}\",\"{coinb1}\",\"{coinb2}\",[],\"20000000\",\"1d00ffff\",\"{ntime:08x}\",true]}}\n",
                    prev = "00".repeat(32),
                    coinb1 = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff1503a08601",
                    coinb2 = "ffffffff0100f2052a010000000000000000",
                )
                .as_bytes(),
            );
        }
        _ => reply(out, "null"),
    }
}
