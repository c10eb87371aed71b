//! The floor again, on io_uring instead of epoll: one thread, one ring,
//! every connection's receive and send submitted to the kernel together
//! and reaped together, so one `io_uring_enter` serves every share that
//! arrived since the last. It answers exactly as the epoll floor does
//! (`floor::answer`).
//!
//! It asks whether a completion-based design would take a share under
//! sluice's 6 µs target where the readiness-based floor cannot (the
//! README's "Memory and CPU per share" has the profile). Run as a child
//! of the bench (`load --floor-server-uring`), it prints `listening on
//! 127.0.0.1:PORT` as sluice does, or `no io_uring: …` and exits.

// The ring's entries carry raw pointers into buffers the kernel writes
// later; io-uring's submission API is unsafe for that reason. Each use
// says what keeps its buffer alive and unmoved.
#![allow(unsafe_code)]

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};

use io_uring::{IoUring, opcode, squeue, types};

const ACCEPT: u64 = 0;
const RECV: u64 = 1;
const SEND: u64 = 2;

/// A connection: its socket, what it has read and not yet answered, the
/// replies waiting, and the replies the kernel is sending.
struct Conn {
    sock: TcpStream,
    en1: u32,
    inbuf: Vec<u8>,
    filled: usize,
    pending: Vec<u8>,
    sending: Vec<u8>,
    sent: usize,
    /// Operations the kernel holds a buffer of: the connection is freed
    /// only when none is left.
    inflight: u8,
    closing: bool,
}

const CHUNK: usize = 16 * 1024;

fn tag(idx: usize, op: u64) -> u64 {
    ((idx as u64) << 2) | op
}

/// Queues an entry, submitting what is queued first if the ring is full.
fn push(ring: &mut IoUring, e: &squeue::Entry) -> std::io::Result<()> {
    loop {
        // SAFETY: every entry built below points into a buffer owned by a
        // `Conn` that stays in `conns` until its operations complete (a
        // closed connection is dropped only from its last completion),
        // and the buffer is neither resized nor moved while in flight.
        if unsafe { ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        ring.submit()?;
    }
}

fn recv(ring: &mut IoUring, idx: usize, c: &mut Conn) -> std::io::Result<()> {
    if c.inbuf.len() - c.filled < CHUNK / 2 {
        c.inbuf.resize(c.filled + CHUNK, 0);
    }
    let spare = &mut c.inbuf[c.filled..];
    let e = opcode::Recv::new(
        types::Fd(c.sock.as_raw_fd()),
        spare.as_mut_ptr(),
        spare.len() as u32,
    )
    .build()
    .user_data(tag(idx, RECV));
    post(ring, c, &e)
}

fn send(ring: &mut IoUring, idx: usize, c: &mut Conn) -> std::io::Result<()> {
    let rest = &c.sending[c.sent..];
    let e = opcode::Send::new(
        types::Fd(c.sock.as_raw_fd()),
        rest.as_ptr(),
        rest.len() as u32,
    )
    .build()
    .user_data(tag(idx, SEND));
    post(ring, c, &e)
}

/// Queues one of `c`'s operations, counted until its completion.
fn post(ring: &mut IoUring, c: &mut Conn, e: &squeue::Entry) -> std::io::Result<()> {
    c.inflight += 1;
    push(ring, e)
}

/// A ring that has every operation the floor uses, or why not.
fn ring() -> Result<IoUring, String> {
    let ring = IoUring::new(8192).map_err(|e| e.to_string())?;
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("probe: {e}"))?;
    for (code, name) in [
        (opcode::Accept::CODE, "accept"),
        (opcode::Recv::CODE, "recv"),
        (opcode::Send::CODE, "send"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("no {name} operation"));
        }
    }
    Ok(ring)
}

/// Serves until killed.
pub(crate) fn serve() {
    let mut ring = match ring() {
        Ok(r) => r,
        Err(e) => {
            println!("no io_uring: {e}");
            return;
        }
    };
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    println!("listening on {}", listener.local_addr().expect("address"));
    if let Err(e) = run(&mut ring, &listener) {
        eprintln!("io_uring floor: {e}");
        // Exit without dropping the connections: the kernel may still
        // hold their buffers.
        std::process::exit(1);
    }
}

fn run(ring: &mut IoUring, listener: &TcpListener) -> std::io::Result<()> {
    let accept = opcode::Accept::new(
        types::Fd(listener.as_raw_fd()),
        std::ptr::null_mut(),
        std::ptr::null_mut(),
    )
    .build()
    .user_data(ACCEPT);
    push(ring, &accept)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut done = Vec::new();
    loop {
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            let idx = (ud >> 2) as usize;
            match ud & 3 {
                ACCEPT => {
                    if res >= 0 {
                        // SAFETY: a completed accept's result is a new
                        // socket this process owns and nothing else holds.
                        let sock = unsafe { TcpStream::from_raw_fd(res) };
                        let _ = sock.set_nodelay(true);
                        let idx = conns.len();
                        conns.push(Some(Conn {
                            sock,
                            en1: idx as u32 + 1,
                            inbuf: Vec::new(),
                            filled: 0,
                            pending: Vec::with_capacity(4096),
                            sending: Vec::with_capacity(4096),
                            sent: 0,
                            inflight: 0,
                            closing: false,
                        }));
                        if let Some(c) = conns[idx].as_mut() {
                            recv(ring, idx, c)?;
                        }
                    } else {
                        // Out of files: back off rather than spin (which
                        // would count as the floor's CPU), as the epoll
                        // floor does.
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    push(ring, &accept)?;
                }
                op => {
                    let Some(c) = conns.get_mut(idx).and_then(Option::as_mut) else {
                        continue;
                    };
                    c.inflight -= 1;
                    if !c.closing && (res < 0 || (op == RECV && res == 0)) {
                        c.closing = true;
                        // The other operation, if one is posted, ends now
                        // rather than when the peer next sends.
                        let _ = c.sock.shutdown(std::net::Shutdown::Both);
                    }
                    if c.closing {
                        if c.inflight == 0 {
                            conns[idx] = None;
                        }
                        continue;
                    }
                    if op == RECV {
                        c.filled += res as usize;
                        let mut used = 0;
                        while let Some(end) =
                            c.inbuf[used..c.filled].iter().position(|&b| b == b'\n')
                        {
                            super::floor::answer(&c.inbuf[used..used + end], c.en1, &mut c.pending);
                            used += end + 1;
                        }
                        c.inbuf.copy_within(used..c.filled, 0);
                        c.filled -= used;
                        recv(ring, idx, c)?;
                    } else {
                        c.sent += res as usize;
                        if c.sent < c.sending.len() {
                            send(ring, idx, c)?;
                            continue;
                        }
                        c.sending.clear();
                    }
                    if c.sending.is_empty() && !c.pending.is_empty() {
                        std::mem::swap(&mut c.sending, &mut c.pending);
                        c.sent = 0;
                        send(ring, idx, c)?;
                    }
                }
            }
        }
    }
}
