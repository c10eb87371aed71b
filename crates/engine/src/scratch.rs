//! What a worker thread lends the connections it polls, so that an idle
//! connection holds none of it: the read buffer, and the vectors a wake-up
//! gathers its outputs in.
//!
//! A connection spends most of its life waiting; anything it kept between
//! wake-ups is paid 100,000 times on a big farm. Each is taken before the
//! work and given back after it (a connection that moves to another
//! thread across an await just gives it back there).

use std::cell::Cell;
use std::thread::LocalKey;

use bytes::{Bytes, BytesMut};

use crate::session::Output;

/// Largest read into a worker thread's scratch buffer: several shares, a
/// V2 frame of the usual sizes, or a good part of a long line.
const SCRATCH_LEN: usize = 16 * 1024;

thread_local! {
    /// Each runtime thread's read buffer, shared by the connections it
    /// polls (a read is taken out of it before the poll returns).
    static SCRATCH: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH_LEN].into_boxed_slice());
}

/// Reads what the socket has, through the thread's scratch buffer, and
/// appends it to `buf`; `Ok(0)` is the peer closing.
///
/// Why not `read_buf(buf)`: a connection would hold a read buffer of its
/// own while it waits (most of its life), and a buffer with little room
/// left takes a line in two reads (two syscalls for one share). Read
/// here, the socket is drained in one call (a short read tells tokio it is
/// empty), and `buf` holds only what the lines did not use.
pub(crate) fn poll_read_into(
    rd: &mut tokio::net::tcp::ReadHalf<'_>,
    cx: &mut std::task::Context<'_>,
    buf: &mut BytesMut,
) -> std::task::Poll<std::io::Result<usize>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut rb = tokio::io::ReadBuf::new(scratch);
        match tokio::io::AsyncRead::poll_read(std::pin::Pin::new(rd), cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => {
                buf.extend_from_slice(rb.filled());
                std::task::Poll::Ready(Ok(rb.filled().len()))
            }
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    })
}

/// The most outputs a lent vector keeps room for when it is given back:
/// a burst (a failover's refusals) is not kept for the thread's life.
const KEPT: usize = 64;

thread_local! {
    /// A wake-up's outputs.
    pub(crate) static OUTPUTS: Cell<Vec<Output>> = const { Cell::new(Vec::new()) };
    /// A wake-up's lines to write.
    pub(crate) static SENDS: Cell<Vec<Bytes>> = const { Cell::new(Vec::new()) };
}

/// An empty vector from `key`, with the room the thread's last one had.
pub(crate) fn lend<T: 'static>(key: &'static LocalKey<Cell<Vec<T>>>) -> Vec<T> {
    key.take()
}

/// Gives a lent vector back to `key` (emptied; a burst's is dropped).
pub(crate) fn give_back<T: 'static>(key: &'static LocalKey<Cell<Vec<T>>>, mut v: Vec<T>) {
    v.clear();
    if v.capacity() <= KEPT {
        key.set(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vector_given_back_is_lent_again_and_a_burst_is_not_kept() {
        let mut v = lend(&SENDS);
        v.extend((0..10).map(|_| Bytes::from_static(b"x")));
        let cap = v.capacity();
        give_back(&SENDS, v);
        let again = lend(&SENDS);
        assert!(again.is_empty());
        assert_eq!(again.capacity(), cap);
        // Taken: the next one lent is a new, empty one.
        assert_eq!(lend(&SENDS).capacity(), 0);
        give_back(&SENDS, again);
        let mut burst = lend(&SENDS);
        burst.extend((0..1000).map(|_| Bytes::from_static(b"x")));
        give_back(&SENDS, burst);
        assert!(lend(&SENDS).capacity() <= KEPT);
    }
}
