//! The guest's stdout and stderr, forwarded line by line to the host log
//! with the component's name.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy)]
pub enum GuestStream {
    /// stdout: logged at info.
    Stdout,
    /// stderr: logged at warn.
    Stderr,
}

/// A `StdoutStream` that logs complete lines under the component's name.
#[derive(Clone)]
pub struct GuestLog {
    component: Arc<str>,
    stream: GuestStream,
}

impl GuestLog {
    /// A log sink for `component`'s `stream`.
    pub fn new(component: Arc<str>, stream: GuestStream) -> Self {
        GuestLog { component, stream }
    }
}

impl IsTerminal for GuestLog {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestLog {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            log: self.clone(),
            pending: Vec::new(),
        })
    }
}

struct LineWriter {
    log: GuestLog,
    pending: Vec<u8>,
}

/// A guest that never writes a newline must not grow the buffer without end.
const MAX_LINE: usize = 16 * 1024;

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let component = &*self.log.component;
        match self.log.stream {
            GuestStream::Stdout => tracing::info!(target: "guest", component, "{text}"),
            GuestStream::Stderr => tracing::warn!(target: "guest", component, "{text}"),
        }
    }

    fn flush_lines(&mut self) {
        while let Some(newline) = self.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=newline).collect();
            self.emit(&line[..line.len() - 1]);
        }
        if self.pending.len() > MAX_LINE {
            self.emit_rest();
        }
    }

    /// Logs whatever is buffered, newline or not.
    fn emit_rest(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.pending.extend_from_slice(buf);
        self.flush_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.emit_rest();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tokio::io::AsyncWriteExt;

    /// A log sink the test can read back.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn guest_output_is_logged_line_by_line_with_the_component_name() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let log = GuestLog::new(Arc::from("edge"), GuestStream::Stderr);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            runtime.block_on(async {
                let mut stream = Pin::from(log.async_stream());
                stream.write_all(b"first line\nsecond ").await.unwrap();
                stream.write_all(b"half\r\nunterminated").await.unwrap();
                stream.shutdown().await.unwrap();
            });
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(
            lines[0].contains("WARN")
                && lines[0].contains("first line")
                && lines[0].contains("component=\"edge\""),
            "{text}"
        );
        assert!(
            lines[1].contains("second half") && !lines[1].contains('\r'),
            "{text}"
        );
        assert!(lines[2].contains("unterminated"), "{text}");
    }
}
