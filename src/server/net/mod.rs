//! Socket I/O of a connection, behind one small trait so the connection loop
//! (`server/conn.rs`) is written once for both engines:
//!
//! - [`uring`]: the shard's own io_uring ring (multishot accept and receive into
//!   a provided-buffer ring, sends batched into one `io_uring_enter` per loop pass);
//! - [`GlommioStream`]: glommio's `TcpStream`, the fallback where the kernel
//!   refuses what the ring needs (and `net-engine glommio`).
//!
//! Both hand the connection received bytes as a *chunk* it parses in place;
//! only the unparsed tail of a request split across chunks is copied.

pub mod uring;

use super::client::BufStats;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Waits until received bytes are available; false on end of stream or error.
    async fn fill(&mut self) -> bool;
    /// The received bytes not yet consumed.
    fn chunk(&self) -> &[u8];
    /// Marks `n` bytes of [`Transport::chunk`] consumed.
    fn consume(&mut self, n: usize);
    /// Reads into `dst` (a big argument's own buffer); 0 on end of stream.
    async fn read_into(&mut self, dst: &mut [u8]) -> usize;
    /// Queues `out` for sending and leaves it empty. Like Redis, a connection
    /// keeps reading while its replies wait for the socket (bounded only by
    /// `client-output-buffer-limit`). False when the connection is broken.
    async fn send(&mut self, out: &mut Vec<u8>, bufs: &BufStats) -> bool;
    /// Waits until everything queued was written (or the connection broke).
    async fn flush(&mut self) -> bool;
    /// Closes the socket.
    async fn close(self);
    /// Hands the socket over for another shard to serve (see
    /// `server::migrate`): the fd and the bytes received and not yet parsed,
    /// or Err(self) when this engine cannot, or the connection is ending.
    async fn detach(self) -> Result<(std::os::fd::RawFd, Vec<u8>), Self>
    where
        Self: Sized;
}

/// glommio's stream with a read buffer of its own.
pub struct GlommioStream {
    stream: TcpStream,
    buf: Vec<u8>,
    off: usize,
    len: usize,
}

impl GlommioStream {
    pub fn new(stream: TcpStream) -> Self {
        GlommioStream {
            stream,
            buf: vec![0; 16 * 1024],
            off: 0,
            len: 0,
        }
    }
}

impl Transport for GlommioStream {
    async fn fill(&mut self) -> bool {
        if self.off < self.len {
            return true;
        }
        match self.stream.read(&mut self.buf).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.off = 0;
                self.len = n;
                true
            }
        }
    }

    fn chunk(&self) -> &[u8] {
        &self.buf[self.off..self.len]
    }

    fn consume(&mut self, n: usize) {
        self.off = (self.off + n).min(self.len);
    }

    async fn read_into(&mut self, dst: &mut [u8]) -> usize {
        if self.off < self.len {
            let n = (self.len - self.off).min(dst.len());
            dst[..n].copy_from_slice(&self.buf[self.off..self.off + n]);
            self.off += n;
            return n;
        }
        self.stream.read(dst).await.unwrap_or(0)
    }

    async fn send(&mut self, out: &mut Vec<u8>, bufs: &BufStats) -> bool {
        // Written piecewise so CLIENT LIST and the cron's soft-limit check see the progress.
        let mut written = 0;
        while written < out.len() {
            bufs.out_pending.set(out.len() - written);
            match self.stream.write(&out[written..]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => written += n,
            }
        }
        bufs.out_pending.set(0);
        out.clear();
        true
    }

    async fn flush(&mut self) -> bool {
        true
    }

    async fn close(mut self) {
        let _ = self.stream.close().await;
    }

    /// glommio's stream keeps its fd registered with its own reactor.
    async fn detach(self) -> Result<(std::os::fd::RawFd, Vec<u8>), Self> {
        Err(self)
    }
}
