//! Batched datagram reads for the receive task: `recvmmsg(2)` on Linux (one system call for up
//! to [`SLOTS`] datagrams), one `recv` per datagram elsewhere.
//!
//! Every datagram gets its own slot of one contiguous buffer, allocated once; nothing is
//! allocated per read or per datagram. `nix`'s `recvmmsg` is a safe wrapper, so this module
//! needs no `unsafe` of its own. Its message headers (`MultiHeaders`) hold raw pointers and
//! so are not `Send`, while the receive task that owns the batch may move between the
//! runtime's threads at each `.await`: the headers are therefore kept per thread
//! ([`HEADERS`]), allocated at a thread's first read. They are scratch space: every call
//! points them at this batch's slots again, and no read spans an `.await`.
//!
//! A datagram longer than its slot is truncated by the kernel; the batch reports it as
//! [`Datagram::Truncated`] (the kernel's `MSG_TRUNC`) so it is counted and never parsed: a
//! cut line could otherwise be read as a different, valid value. With the agent's slot size
//! ([`MAX_UDP_PAYLOAD`]) that cannot happen on UDP; the smaller slots of the tests exercise it.

use std::io;

use tokio::net::UdpSocket;

/// Datagrams per read: a system call's cost shared by 32 datagrams is a few nanoseconds each,
/// and more slots would only grow the buffer.
pub(super) const SLOTS: usize = 32;

/// The largest UDP payload (IPv6 without jumbograms: 65,535 − 8; IPv4 allows 20 bytes less).
/// Slots this size never truncate. The slots' pages are touched only as far as datagrams
/// reach, so small datagrams keep one resident page per slot.
pub(super) const MAX_UDP_PAYLOAD: usize = 65_527;

/// One received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Datagram<'a> {
    Whole(&'a [u8]),
    /// Longer than a slot: its tail was discarded by the kernel.
    Truncated,
}

/// Reusable buffers for reading many datagrams at once.
pub(super) struct RecvBatch {
    buf: Box<[u8]>,
    slot_len: usize,
    /// Per slot of the last read: bytes received and whether they were cut.
    lens: Vec<(usize, bool)>,
    received: usize,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
thread_local! {
    /// `recvmmsg`'s message headers for [`SLOTS_MAX`] datagrams (see the module's docs).
    static HEADERS: std::cell::RefCell<nix::sys::socket::MultiHeaders<()>> =
        std::cell::RefCell::new(nix::sys::socket::MultiHeaders::preallocate(SLOTS_MAX, None));
}

impl std::fmt::Debug for RecvBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvBatch")
            .field("slots", &self.lens.len())
            .field("slot_len", &self.slot_len)
            .field("received", &self.received)
            .finish()
    }
}

impl RecvBatch {
    /// `slots` datagrams of at most `slot_len` bytes per read.
    pub fn new(slots: usize, slot_len: usize) -> RecvBatch {
        assert!(
            (1..=SLOTS_MAX).contains(&slots) && slot_len > 0,
            "a batch has 1 to {SLOTS_MAX} non-empty slots"
        );
        RecvBatch {
            // Zeroed memory from the allocator is mapped lazily: untouched slot pages cost
            // no RSS.
            buf: vec![0u8; slots * slot_len].into_boxed_slice(),
            slot_len,
            lens: vec![(0, false); slots],
            received: 0,
        }
    }

    /// Read what the socket holds, up to one datagram per slot. `Ok(n)` with `n >= 1`, then
    /// [`RecvBatch::get`] for `0..n`; `WouldBlock` when the socket is empty (which also
    /// clears tokio's readiness, so the next `readable()` waits).
    pub fn recv(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        self.received = 0;
        let n = self.read(socket)?;
        self.received = n;
        Ok(n)
    }

    /// The `i`th datagram of the last read.
    pub fn get(&self, i: usize) -> Datagram<'_> {
        assert!(
            i < self.received,
            "slot {i} was not filled by the last read"
        );
        match self.lens[i] {
            (_, true) => Datagram::Truncated,
            (len, false) => {
                let start = i * self.slot_len;
                Datagram::Whole(&self.buf[start..start + len])
            }
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // Through `try_io`, so that an empty socket (EAGAIN) clears tokio's readiness.
        socket.try_io(tokio::io::Interest::READABLE, || self.read_many(socket))
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn read_many(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        use std::io::IoSliceMut;
        use std::os::fd::AsRawFd;

        use nix::sys::socket::{MsgFlags, recvmmsg};

        let slot_len = self.slot_len;
        let lens = &mut self.lens;
        let buf = &mut self.buf;
        HEADERS.with_borrow_mut(|headers| {
            // The iovecs point into `buf` only for the duration of the call; building them
            // is a few stores per slot, on the stack.
            let mut slices: [[IoSliceMut<'_>; 1]; SLOTS_MAX] =
                std::array::from_fn(|_| [IoSliceMut::new(&mut [])]);
            let slots = lens.len();
            for (slice, chunk) in slices
                .iter_mut()
                .zip(buf.chunks_exact_mut(slot_len))
                .take(slots)
            {
                *slice = [IoSliceMut::new(chunk)];
            }
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                slices[..slots].iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            let mut n = 0;
            for (msg, len) in results.zip(lens.iter_mut()) {
                *len = (msg.bytes, msg.flags.contains(MsgFlags::MSG_TRUNC));
                n += 1;
            }
            Ok(n)
        })
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn read(&mut self, socket: &UdpSocket) -> io::Result<usize> {
        // No recvmmsg: one datagram per read, reported whole (std cannot see MSG_TRUNC; a
        // datagram longer than the slot arrives cut, as with any plain recv).
        let len = socket.try_recv(&mut self.buf[..self.slot_len])?;
        self.lens[0] = (len, false);
        Ok(1)
    }
}

/// The most slots one read can fill (the stack array of iovecs is this long).
const SLOTS_MAX: usize = 64;
