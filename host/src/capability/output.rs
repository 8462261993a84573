//! Where a WASI guest's stdout and stderr go: a buffer the host empties into
//! the log after every invocation ([`LogPipe::drain`]).
//!
//! wasmtime's `MemoryOutputPipe` keeps everything ever written and traps the
//! guest once its capacity is spent, which suits an instance that lives for
//! one call. An instance kept warm for many batches needs the buffer emptied
//! between them, and output past what one invocation may log is left out (the
//! log says so), never a trap: printing is not a reason for a batch to fail.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// What one stream of one instance printed since it was last drained.
#[derive(Clone)]
pub struct LogPipe {
    inner: Arc<Mutex<Buffered>>,
}

#[derive(Default)]
struct Buffered {
    bytes: Vec<u8>,
    capacity: usize,
    /// Bytes written past the capacity since the last drain, left out.
    dropped: usize,
}

/// What [`LogPipe::drain`] took: the bytes kept, and how many were left out.
pub struct Drained {
    pub bytes: Vec<u8>,
    pub dropped: usize,
}

impl LogPipe {
    /// A pipe that keeps up to `capacity` bytes between drains.
    pub fn new(capacity: usize) -> LogPipe {
        LogPipe { inner: Arc::new(Mutex::new(Buffered { capacity, ..Buffered::default() })) }
    }

    /// Takes what was written since the last drain.
    pub fn drain(&self) -> Drained {
        match self.inner.lock() {
            Ok(mut buffered) => Drained { bytes: std::mem::take(&mut buffered.bytes), dropped: std::mem::take(&mut buffered.dropped) },
            Err(_) => Drained { bytes: Vec::new(), dropped: 0 },
        }
    }

    fn append(&self, bytes: &[u8]) {
        if let Ok(mut buffered) = self.inner.lock() {
            let room = buffered.capacity.saturating_sub(buffered.bytes.len());
            let kept = bytes.len().min(room);
            buffered.bytes.extend_from_slice(&bytes[..kept]);
            buffered.dropped += bytes.len() - kept;
        }
    }
}

/// How much a guest may write in one call; it may always write again.
const WRITE_PERMIT: usize = 64 * 1024;

#[async_trait::async_trait]
impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drain_empties_the_pipe_and_output_past_the_capacity_is_counted_not_kept() {
        let pipe = LogPipe::new(8);
        let mut stream = pipe.p2_stream();
        stream.write(Bytes::from_static(b"hello ")).expect("write");
        stream.write(Bytes::from_static(b"world")).expect("a write past the capacity is not an error");
        let first = pipe.drain();
        assert_eq!(first.bytes, b"hello wo");
        assert_eq!(first.dropped, 3);
        // The next invocation has the whole capacity again.
        stream.write(Bytes::from_static(b"again")).expect("write");
        let second = pipe.drain();
        assert_eq!((second.bytes.as_slice(), second.dropped), (&b"again"[..], 0));
    }
}
