//! A Stratum V1 pool test double, written here so a test can make it do
//! what real pools do and what hostile ones might: answer with ckpool's OR
//! rule, stall, go away and come back, redirect the proxy anywhere. It
//! validates every submitted share itself with the `bitcoin` crate's
//! SHA-256d (not sluice's code), so "accepted" means a real pool would
//! have agreed.

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin::hashes::{Hash, sha256d};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// The extranonce2 size the double hands out. Each connection gets an
/// extranonce1 of its own, kept when it resumes a session (its session id
/// is the extranonce1's hex), as ckpool does.
pub const EN2_SIZE: usize = 8;
const PREV: [u8; 32] = [0x42; 32];

/// How the double behaves (changeable while it runs).
#[derive(Clone, Debug)]
pub struct Behaviour {
    /// Job version.
    pub version: u32,
    /// Job nbits (the network target).
    pub nbits: u32,
    /// Share difficulty it sets and credits at.
    pub difficulty: f64,
    /// ckpool's rule: header version = job version | submitted bits.
    /// Otherwise BIP 310's replace rule.
    pub or_rule: bool,
    /// Once a connection has authorized, stop reading from it (checked
    /// before each line, so it can be switched on mid-connection).
    pub stall: bool,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            version: 0x2000_0000,
            // Difficulty 1: no accidental blocks.
            nbits: 0x1d00_ffff,
            difficulty: 1e-6,
            or_rule: false,
            stall: false,
        }
    }
}

/// A share the double received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub user: String,
    pub job: String,
    pub extranonce2: Vec<u8>,
    pub ntime: u32,
    pub nonce: u32,
    pub version: u32,
    /// Meets the double's share target by its own hash.
    pub valid: bool,
    /// Meets the network target.
    pub block: bool,
}

#[derive(Default)]
pub struct State {
    pub behaviour: Mutex<Behaviour>,
    pub submits: Mutex<Vec<Seen>>,
    /// (user, password) of every authorize.
    pub authorizes: Mutex<Vec<(String, String)>>,
    pub connections: AtomicU64,
    pub suggestions: Mutex<Vec<f64>>,
    /// Sessions resumed with their old extranonce1.
    pub resumed: AtomicU64,
    next_en1: AtomicU64,
    down: AtomicBool,
}

pub struct Double {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    push: broadcast::Sender<String>,
    cancel: CancellationToken,
}

impl Drop for Double {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn swap_words(b: &[u8; 32]) -> String {
    let mut out = String::new();
    for w in b.chunks(4) {
        for x in w.iter().rev() {
            out.push_str(&format!("{x:02x}"));
        }
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn coinb1() -> Vec<u8> {
    // A plausible coinbase start: version, one input, null prevout,
    // script length (height push + extranonce space), height 1,000.
    let mut v = vec![1, 0, 0, 0, 1];
    v.extend([0u8; 32]);
    v.extend([0xff; 4]);
    v.push((4 + 4 + EN2_SIZE) as u8);
    v.extend([3, 0xe8, 0x03, 0x00]);
    v
}

fn coinb2() -> Vec<u8> {
    // Sequence, one output of 3.125 BTC to OP_TRUE, lock time.
    let mut v = vec![0xff; 4];
    v.push(1);
    v.extend(312_500_000u64.to_le_bytes());
    v.extend([1, 0x51]);
    v.extend([0; 4]);
    v
}

/// The value of a little-endian 256-bit hash, as a float.
fn hash_value(h: &[u8; 32]) -> f64 {
    h.iter()
        .rev()
        .fold(0.0, |acc, &b| acc * 256.0 + f64::from(b))
}

fn target(difficulty: f64) -> f64 {
    65535.0 * 2f64.powi(208) / difficulty
}

fn nbits_target(nbits: u32) -> f64 {
    let exp = (nbits >> 24) as i32;
    f64::from(nbits & 0x00ff_ffff) * 256f64.powi(exp - 3)
}

/// The header hash of a submitted share under the double's rule.
fn share_hash(
    b: &Behaviour,
    en1: &[u8],
    en2: &[u8],
    ntime: u32,
    nonce: u32,
    version: u32,
) -> [u8; 32] {
    let coinbase = [&coinb1()[..], en1, en2, &coinb2()].concat();
    let root = sha256d::Hash::hash(&coinbase).to_byte_array();
    let mut header = Vec::with_capacity(80);
    header.extend(version.to_le_bytes());
    header.extend(PREV);
    header.extend(root);
    header.extend(ntime.to_le_bytes());
    header.extend(b.nbits.to_le_bytes());
    header.extend(nonce.to_le_bytes());
    sha256d::Hash::hash(&header).to_byte_array()
}

fn line(v: Value) -> Vec<u8> {
    let mut l = v.to_string().into_bytes();
    l.push(b'\n');
    l
}

impl Double {
    /// Starts on 127.0.0.1 (port 0 picks one).
    pub async fn start(b: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), b, None).await
    }

    /// Starts on `addr`; with `recv_buffer`, accepted sockets get a small
    /// receive buffer (so a stalled double backs the sender up quickly).
    pub async fn start_on(addr: SocketAddr, b: Behaviour, recv_buffer: Option<u32>) -> Self {
        let state = Arc::new(State::default());
        *state.behaviour.lock().unwrap() = b;
        Self::serve(addr, state, recv_buffer).await
    }

    /// Starts again on the same address with the same state (a pool that
    /// came back).
    pub async fn restart(self) -> Self {
        let (addr, state) = (self.addr, self.state.clone());
        drop(self);
        state.down.store(false, Ordering::SeqCst);
        Self::serve(addr, state, None).await
    }

    async fn serve(addr: SocketAddr, state: Arc<State>, recv_buffer: Option<u32>) -> Self {
        // A port just given up by a stopped double may take a moment.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let listener = loop {
            let sock = TcpSocket::new_v4().unwrap();
            sock.set_reuseaddr(true).unwrap();
            if let Some(n) = recv_buffer {
                sock.set_recv_buffer_size(n).unwrap();
            }
            match sock.bind(addr).and_then(|()| sock.listen(64)) {
                Ok(l) => break l,
                Err(e) => {
                    assert!(std::time::Instant::now() < deadline, "bind {addr}: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
            }
        };
        let addr = listener.local_addr().unwrap();
        let cancel = CancellationToken::new();
        let (push, _) = broadcast::channel(16);
        let (st, c, p) = (state.clone(), cancel.clone(), push.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                    _ = c.cancelled() => return,
                };
                st.connections.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(connection(stream, st.clone(), p.subscribe(), c.clone()));
            }
        });
        Self {
            addr,
            state,
            push,
            cancel,
        }
    }

    /// Sends a line to every live connection.
    pub fn push(&self, v: Value) {
        let _ = self.push.send(v.to_string());
    }

    /// Shares received.
    pub fn submits(&self) -> Vec<Seen> {
        self.state.submits.lock().unwrap().clone()
    }

    pub fn set(&self, f: impl FnOnce(&mut Behaviour)) {
        f(&mut self.state.behaviour.lock().unwrap());
    }
}

async fn connection(
    stream: tokio::net::TcpStream,
    st: Arc<State>,
    mut push: broadcast::Receiver<String>,
    cancel: CancellationToken,
) {
    let (rd, mut wr) = stream.into_split();
    let mut lines = BufReader::new(rd).lines();
    let mut user = String::new();
    let mut en1 = (0x1000_0000 + st.next_en1.fetch_add(1, Ordering::SeqCst) as u32).to_be_bytes();
    loop {
        let l = tokio::select! {
            l = lines.next_line() => match l { Ok(Some(l)) => l, _ => return },
            p = push.recv() => {
                if let Ok(p) = p {
                    let _ = wr.write_all(format!("{p}\n").as_bytes()).await;
                }
                continue;
            }
            _ = cancel.cancelled() => return,
        };
        if st.behaviour.lock().unwrap().stall && !user.is_empty() {
            // Stalled: this line and everything after it go unread and
            // unanswered (the sender's buffers fill up) until the double
            // is stopped.
            cancel.cancelled().await;
            return;
        }
        let Ok(m) = serde_json::from_str::<Value>(&l) else {
            continue;
        };
        let id = m["id"].clone();
        let b = st.behaviour.lock().unwrap().clone();
        let mut out = Vec::new();
        match m["method"].as_str().unwrap_or("") {
            "mining.configure" => out.extend(line(json!({"id": id, "error": null,
                "result": {"version-rolling": true, "version-rolling.mask": "1fffe000"}}))),
            "mining.subscribe" => {
                // Resuming a session: the extranonce1 it had (the id is
                // its hex).
                if let Some(old) = m["params"][1]
                    .as_str()
                    .and_then(unhex)
                    .filter(|o| o.len() == 4)
                {
                    en1.copy_from_slice(&old);
                    st.resumed.fetch_add(1, Ordering::SeqCst);
                }
                out.extend(line(json!({"id": id, "error": null,
                    "result": [[["mining.notify", hex(&en1)]], hex(&en1), EN2_SIZE]})));
            }
            "mining.suggest_difficulty" => {
                if let Some(d) = m["params"][0].as_f64() {
                    st.suggestions.lock().unwrap().push(d);
                }
                out.extend(line(json!({"id": id, "error": null, "result": true})));
            }
            "mining.authorize" => {
                user = m["params"][0].as_str().unwrap_or("").to_string();
                let pass = m["params"][1].as_str().unwrap_or("").to_string();
                st.authorizes.lock().unwrap().push((user.clone(), pass));
                out.extend(line(json!({"id": id, "error": null, "result": true})));
                out.extend(line(json!({"id": null, "method": "mining.set_difficulty", "params": [b.difficulty]})));
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs() as u32;
                out.extend(line(
                    json!({"id": null, "method": "mining.notify", "params": [
                    "j1", swap_words(&PREV), hex(&coinb1()), hex(&coinb2()), [],
                    format!("{:08x}", b.version), format!("{:08x}", b.nbits),
                    format!("{now:08x}"), true]}),
                ));
            }
            "mining.submit" => {
                let p = &m["params"];
                let en2 = unhex(p[2].as_str().unwrap_or("")).unwrap_or_default();
                let ntime = u32::from_str_radix(p[3].as_str().unwrap_or(""), 16).unwrap_or(0);
                let nonce = u32::from_str_radix(p[4].as_str().unwrap_or(""), 16).unwrap_or(0);
                let bits = p[5]
                    .as_str()
                    .and_then(|v| u32::from_str_radix(v, 16).ok())
                    .unwrap_or(0);
                let version = if b.or_rule {
                    b.version | bits
                } else {
                    (b.version & !0x1fff_e000) | (bits & 0x1fff_e000)
                };
                let h = share_hash(&b, &en1, &en2, ntime, nonce, version);
                let v = hash_value(&h);
                let valid = en2.len() == EN2_SIZE && v <= target(b.difficulty);
                let block = en2.len() == EN2_SIZE && v <= nbits_target(b.nbits);
                st.submits.lock().unwrap().push(Seen {
                    user: user.clone(),
                    job: p[1].as_str().unwrap_or("").to_string(),
                    extranonce2: en2,
                    ntime,
                    nonce,
                    version,
                    valid: valid || block,
                    block,
                });
                out.extend(if valid || block {
                    line(json!({"id": id, "error": null, "result": true}))
                } else {
                    line(json!({"id": id, "result": false, "error": null, "reject-reason": "Above target"}))
                });
            }
            _ => {}
        }
        if !out.is_empty() && wr.write_all(&out).await.is_err() {
            return;
        }
    }
}
