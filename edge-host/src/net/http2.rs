//! How client connections are spoken: HTTP/1.1, and HTTP/2 over TLS (ALPN
//! `h2`) or in cleartext with prior knowledge (the connection preface tells
//! it, as Spin's trigger tells it with hyper's auto connection builder),
//! with the limits an internet-facing HTTP/2 server needs.
//!
//! The limits, and why:
//! - [`MAX_CONCURRENT_STREAMS`]: requests one connection has in flight;
//!   nginx's `http2_max_concurrent_streams` is 128, browsers open far fewer.
//! - [`MAX_HEADER_LIST_SIZE`]: a request's decoded header section, as
//!   nginx's `large_client_header_buffers` bounds an HTTP/1.1 one; hyper's
//!   default is 16 MiB.
//! - Flow-control windows ([`STREAM_WINDOW`], [`CONNECTION_WINDOW`]): how
//!   much request body a client may send before the component reads it;
//!   the connection window bounds what one connection can make the host
//!   buffer, whatever its stream count.
//! - Rapid reset (CVE-2023-44487): a client that opens streams and resets
//!   them at once makes the server start work it never finishes. Streams
//!   reset before they are accepted are capped
//!   ([`MAX_PENDING_ACCEPT_RESET_STREAMS`]), and so are streams the server
//!   had to reset for a client's protocol error
//!   ([`MAX_LOCAL_ERROR_RESET_STREAMS`]); past either the connection gets
//!   `GOAWAY` (`ENHANCE_YOUR_CALM`) and is closed. Streams accepted and then
//!   reset count against [`MAX_CONCURRENT_STREAMS`] until their request is
//!   dropped, so at most that many requests run at once per connection.
//!
//! Idle and header timeouts are the connection watchdog's, for both
//! versions ([`crate::net::connection`]).

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto::Builder;

/// Streams one HTTP/2 connection may have open at once.
pub const MAX_CONCURRENT_STREAMS: u32 = 100;
/// Largest decoded header section of an HTTP/2 request (RFC 9113 §6.5.2
/// `SETTINGS_MAX_HEADER_LIST_SIZE`): 64 KiB, room for large cookies.
pub const MAX_HEADER_LIST_SIZE: u32 = 64 << 10;
/// Request body bytes one stream may have in flight unread: 256 KiB.
pub const STREAM_WINDOW: u32 = 256 << 10;
/// Request body bytes one connection may have in flight unread, all
/// streams together: 1 MiB.
pub const CONNECTION_WINDOW: u32 = 1 << 20;
/// Streams the client reset before the server accepted them, at once, past
/// which the connection is closed (h2's own default, set so it stays).
pub const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// Streams the server reset for the client's protocol errors, past which
/// the connection is closed.
pub const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 256;

/// The connection builders of one serving lane, one per way of knowing the
/// protocol.
pub(crate) struct ConnectionBuilders {
    /// Cleartext, or TLS without ALPN: the first bytes tell.
    detect: Builder<TokioExecutor>,
    /// ALPN `http/1.1`.
    http1: Builder<TokioExecutor>,
    /// ALPN `h2`.
    http2: Builder<TokioExecutor>,
}

impl ConnectionBuilders {
    /// Builders keeping HTTP/1.1 connections alive between requests when
    /// `keep_alive`.
    pub(crate) fn new(keep_alive: bool) -> ConnectionBuilders {
        let mut detect = Builder::new(TokioExecutor::new());
        detect.http1().keep_alive(keep_alive);
        detect
            .http2()
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
            .max_header_list_size(MAX_HEADER_LIST_SIZE)
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(CONNECTION_WINDOW)
            .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
            .max_local_error_reset_streams(MAX_LOCAL_ERROR_RESET_STREAMS);
        ConnectionBuilders {
            http1: detect.clone().http1_only(),
            http2: detect.clone().http2_only(),
            detect,
        }
    }

    /// The builder for a connection whose ALPN protocol is `alpn` (`None`:
    /// cleartext, or a TLS client that offered none).
    pub(crate) fn for_alpn(&self, alpn: Option<&[u8]>) -> &Builder<TokioExecutor> {
        match alpn {
            Some(crate::net::tls::ALPN_H2) => &self.http2,
            Some(crate::net::tls::ALPN_HTTP1) => &self.http1,
            _ => &self.detect,
        }
    }
}
