//! The image proxy's socket: one `SOCK_SEQPACKET` end of a socketpair the client made,
//! one JSON message per packet, and pipe read ends passed beside a reply (`SCM_RIGHTS`).
//!
//! Everything goes through rustix's safe wrappers: the socket is taken from the fd the
//! client named with `pidfd_getfd` on tako's own process (a duplicate, so no `unsafe`
//! `from_raw_fd`), and ancillary data is built and sent with `SendAncillaryBuffer`.

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{
    RecvFlags, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketType, recv, sendmsg,
};

use crate::format::oci::proxy::MAX_MESSAGE;

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("cannot take file descriptor {fd} as the socket: {source}")]
    Take {
        fd: u32,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "file descriptor {fd} is not a SOCK_SEQPACKET socket (the client makes one with socketpair(AF_UNIX, SOCK_SEQPACKET))"
    )]
    NotSeqpacket { fd: u32 },
    #[error("cannot read a request from the socket: {0}")]
    Receive(#[source] std::io::Error),
    #[error("cannot send a reply on the socket: {0}")]
    Send(#[source] std::io::Error),
}

/// What one receive brought.
pub enum Received {
    /// One whole packet.
    Packet(Vec<u8>),
    /// A packet larger than [`MAX_MESSAGE`], of this many bytes; dropped.
    TooLarge(usize),
    /// The client closed its end.
    Closed,
}

/// The server's end of the socketpair.
pub struct Socket(OwnedFd);

impl Socket {
    /// The socket at file descriptor `fd` of this process (0: standard input).
    pub fn take(fd: u32) -> Result<Socket, SocketError> {
        let failed = |source: std::io::Error| SocketError::Take { fd, source };
        let owned = match fd {
            0 => std::io::stdin()
                .as_fd()
                .try_clone_to_owned()
                .map_err(failed)?,
            _ => {
                let raw = i32::try_from(fd).map_err(|_| failed(Errno::BADF.into()))?;
                let me = rustix::process::pidfd_open(
                    rustix::process::getpid(),
                    rustix::process::PidfdFlags::empty(),
                )
                .map_err(|e| failed(e.into()))?;
                rustix::process::pidfd_getfd(&me, raw, rustix::process::PidfdGetfdFlags::empty())
                    .map_err(|e| failed(e.into()))?
            }
        };
        match rustix::net::sockopt::socket_type(&owned) {
            Ok(SocketType::SEQPACKET) => Ok(Socket(owned)),
            Ok(_) | Err(Errno::NOTSOCK) => Err(SocketError::NotSeqpacket { fd }),
            Err(e) => Err(failed(e.into())),
        }
    }

    /// Waits for the next packet.
    pub fn receive(&self) -> Result<Received, SocketError> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        loop {
            // TRUNC: the length returned is the packet's, even past the buffer.
            match recv(&self.0, &mut buf[..], RecvFlags::TRUNC) {
                Ok((_, 0)) => return Ok(Received::Closed),
                Ok((got, full)) if full > got => return Ok(Received::TooLarge(full)),
                Ok((got, _)) => {
                    buf.truncate(got);
                    return Ok(Received::Packet(buf));
                }
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SocketError::Receive(e.into())),
            }
        }
    }

    /// Sends one reply packet with the file descriptors `fds` (at most two) beside it.
    pub fn send(&self, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> Result<(), SocketError> {
        let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
            return Err(SocketError::Send(std::io::Error::other(
                "too many file descriptors for one reply",
            )));
        }
        loop {
            match sendmsg(
                &self.0,
                &[IoSlice::new(bytes)],
                &mut control,
                SendFlags::NOSIGNAL,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SocketError::Send(e.into())),
            }
        }
    }
}
