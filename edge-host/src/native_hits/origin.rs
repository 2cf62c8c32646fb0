//! The origin as the core reaches it natively: the same allow-list, `Host`,
//! connection pool, timeouts and metrics as a component's `wasi:http`
//! request ([`crate::outbound_http::send_checked`]), and the same reading
//! of the answer as the WASI 0.3 adapter's: a body declared at most
//! [`WHOLE_BODY_BYTES`] read whole into one buffer, a longer or undeclared
//! one streamed. A failure becomes the [`OriginFailure`] the component
//! would give, through the `wasi:http` error code it would have seen.

use std::pin::Pin;
use std::sync::Arc;
use std::task::Context;

use bytes::Bytes;
use edge_cache::{
    Body, BodyStream, BrokenBody, ByteSource, NextPiece, Origin, OriginEndpoint, OriginFailure,
    OriginRequest, Response, WHOLE_BODY_BYTES,
};
use http::header::{CONTENT_LENGTH, HOST};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body::Body as _;
use http_body_util::{BodyExt, Empty, Full};
use wasmtime_wasi_http::p3::bindings::http::types::{
    DnsErrorPayload, ErrorCode, FieldSizePayload, TlsAlertReceivedPayload,
};
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody};

use super::local;
use crate::instance::ComponentContext;

/// One origin of the component's, reached from edge-host.
pub(crate) struct NativeOrigin {
    pub(super) endpoint: OriginEndpoint,
    pub(super) context: Arc<ComponentContext>,
}

impl Origin for NativeOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        // A HEAD's `Content-Length` describes a body that is not sent.
        let bodiless = request.method == Method::HEAD;
        let outgoing = self.outgoing(request)?;
        let timeouts = self.endpoint.request_timeouts();
        let nanos = std::time::Duration::from_nanos;
        let options = RequestOptions {
            connect_timeout: Some(nanos(timeouts.connect)),
            first_byte_timeout: Some(nanos(timeouts.first_byte)),
            between_bytes_timeout: Some(nanos(timeouts.between_bytes)),
        };
        let context = &self.context;
        let sent = crate::outbound_http::send_checked(
            context.id.clone(),
            &context.allowed_hosts,
            &context.origin_pool,
            outgoing,
            Some(options),
        )
        .await;
        let (response, _io) = sent.map_err(|error| self.failed(&error))?;
        self.read_response(response, bodiless).await
    }
}

impl NativeOrigin {
    /// The request as `wasi:http` would hand it to the host: the origin's
    /// URL, the core's fields and a `Host` of the origin's authority.
    fn outgoing(&self, request: OriginRequest) -> Result<http::Request<WasiBody>, OriginFailure> {
        let address = &self.endpoint.address;
        let uri = Uri::builder()
            .scheme(address.scheme.clone())
            .authority(address.authority.clone())
            .path_and_query(address.target_for(&request.target))
            .build();
        let Ok(uri) = uri else {
            eprintln!(
                "edge-cache: origin {}: the host refused the request's target",
                address.authority
            );
            return Err(OriginFailure::REQUEST_NOT_SENT);
        };
        let mut headers = request.headers;
        if let Ok(host) = HeaderValue::from_str(address.authority.as_str()) {
            headers.append(HOST, host);
        }
        let mut outgoing = http::Request::new(outgoing_body(request.body));
        *outgoing.method_mut() = request.method;
        *outgoing.uri_mut() = uri;
        *outgoing.headers_mut() = headers;
        Ok(outgoing)
    }

    /// The origin's response, its body whole or streamed (see the module
    /// documentation).
    async fn read_response(
        &self,
        response: http::Response<WasiBody>,
        bodiless: bool,
    ) -> Result<Response, OriginFailure> {
        let (parts, body) = response.into_parts();
        let status = parts.status.as_u16();
        let headers = owned(&parts.headers);
        let declared = headers
            .get(CONTENT_LENGTH)
            .filter(|_| !bodiless && !matches!(status, 204 | 304))
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        let whole = match declared {
            Some(length) if length <= WHOLE_BODY_BYTES => length as usize,
            _ if bodiless || matches!(status, 204 | 304) => 0,
            _ => {
                let from = format!("origin {}", self.endpoint.address.authority);
                let source = IncomingBody { body, from };
                let body = Body::Stream(BodyStream::new(source, declared));
                return Ok(Response {
                    status,
                    headers,
                    body,
                });
            }
        };
        // Copied into one buffer of the declared size, as the adapter
        // reads it: the frames are slices of the connection's read buffer,
        // which a body kept in the first tier would keep alive.
        let mut whole = Vec::with_capacity(whole);
        let mut body = body;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        whole.extend_from_slice(&data);
                    }
                }
                Err(error) => {
                    return Err(match self.failed(&error) {
                        OriginFailure::Protocol(_) => OriginFailure::BODY_BROKE_OFF,
                        other => other,
                    });
                }
            }
        }
        Ok(Response {
            status,
            headers,
            body: whole.into(),
        })
    }

    /// What `error` means for the client, in words, as the component would
    /// say it (the code goes to the log when the words leave something out).
    fn failed(&self, error: &Error) -> OriginFailure {
        let code = error_code(error);
        let failure = edge_cache::origin_failure_of!(&code, &self.endpoint, ErrorCode);
        self.endpoint.logged(failure, &code)
    }
}

/// `headers` in buffers of their own. hyper's values are slices of the
/// connection's read buffer, and a stored response's fields kept in the
/// first tier would keep that whole buffer alive (measured: the tier took
/// about 5.7 times the bytes it counts, 1 KiB objects).
fn owned(headers: &HeaderMap) -> HeaderMap {
    let mut copy = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut fresh = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        fresh.set_sensitive(value.is_sensitive());
        copy.append(name.clone(), fresh);
    }
    copy
}

/// A request's body for the pool's sender: the core's bytes, or its stream
/// read by a task of this lane's (the core's streams stay on its thread).
fn outgoing_body(body: Body) -> WasiBody {
    match body {
        Body::Full(bytes) if bytes.is_empty() => {
            Empty::new().map_err(|never| match never {}).boxed_unsync()
        }
        Body::Full(bytes) => Full::new(bytes)
            .map_err(|never| match never {})
            .boxed_unsync(),
        Body::Stream(stream) => local::pumped(stream).boxed_unsync(),
    }
}

/// An origin's streamed body as the core reads it.
struct IncomingBody {
    body: WasiBody,
    /// Whose body it is, for the log ("origin shop:8080").
    from: String,
}

impl IncomingBody {
    async fn next(&mut self) -> Option<Result<Bytes, BrokenBody>> {
        loop {
            let frame = std::future::poll_fn(|cx: &mut Context<'_>| {
                Pin::new(&mut self.body).poll_frame(cx)
            })
            .await?;
            match frame {
                Ok(frame) => match frame.into_data() {
                    Ok(data) if data.is_empty() => continue,
                    // Copied, as the adapter's read copies: hyper's frame is
                    // a slice of the connection's read buffer, which a
                    // one-piece body kept in the first tier would pin.
                    Ok(data) => return Some(Ok(Bytes::copy_from_slice(&data))),
                    // Trailers: the contents have ended.
                    Err(_) => return None,
                },
                Err(error) => {
                    let broken = format!(
                        "{}: the body broke off ({:?})",
                        self.from,
                        error_code(&error)
                    );
                    eprintln!("edge-cache: {broken}");
                    return Some(Err(BrokenBody(broken)));
                }
            }
        }
    }
}

impl ByteSource for IncomingBody {
    fn next_piece(&mut self) -> NextPiece<'_> {
        Box::pin(self.next())
    }
}

/// The `wasi:http` 0.3 error code a component is given for `error`, as
/// wasmtime-wasi-http converts it (its conversion is not public).
fn error_code(error: &Error) -> ErrorCode {
    use std::error::Error as _;
    match error {
        Error::Hyper(hyper) => {
            if let Some(cause) = hyper.source() {
                if let Some(code) = cause.downcast_ref::<ErrorCode>() {
                    return code.clone();
                }
                if let Some(inner) = cause.downcast_ref::<Error>() {
                    return error_code(inner);
                }
            }
            ErrorCode::HttpProtocolError
        }
        Error::Connect(io) => {
            let unresolved = io.kind() == std::io::ErrorKind::AddrNotAvailable
                || io
                    .to_string()
                    .starts_with("failed to lookup address information");
            if unresolved {
                ErrorCode::DnsError(DnsErrorPayload {
                    rcode: Some("address not available".to_owned()),
                    info_code: None,
                })
            } else {
                ErrorCode::ConnectionRefused
            }
        }
        Error::Tls(_) => ErrorCode::TlsProtocolError,
        Error::InvalidDnsNameError(_) => ErrorCode::DnsError(DnsErrorPayload {
            rcode: Some("invalid dns name".to_owned()),
            info_code: None,
        }),
        Error::DnsTimeout => ErrorCode::DnsTimeout,
        Error::DnsError { rcode, info_code } => ErrorCode::DnsError(DnsErrorPayload {
            rcode: rcode.clone(),
            info_code: *info_code,
        }),
        Error::DestinationNotFound => ErrorCode::DestinationNotFound,
        Error::DestinationUnavailable => ErrorCode::DestinationUnavailable,
        Error::DestinationIpProhibited => ErrorCode::DestinationIpProhibited,
        Error::DestinationIpUnroutable => ErrorCode::DestinationIpUnroutable,
        Error::ConnectionRefused => ErrorCode::ConnectionRefused,
        Error::ConnectionTerminated => ErrorCode::ConnectionTerminated,
        Error::ConnectionTimeout => ErrorCode::ConnectionTimeout,
        Error::ConnectionReadTimeout => ErrorCode::ConnectionReadTimeout,
        Error::ConnectionWriteTimeout => ErrorCode::ConnectionWriteTimeout,
        Error::ConnectionLimitReached => ErrorCode::ConnectionLimitReached,
        Error::TlsProtocolError => ErrorCode::TlsProtocolError,
        Error::TlsCertificateError => ErrorCode::TlsCertificateError,
        Error::TlsAlertReceived {
            alert_id,
            alert_message,
        } => ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
            alert_id: *alert_id,
            alert_message: alert_message.clone(),
        }),
        Error::HttpRequestDenied => ErrorCode::HttpRequestDenied,
        Error::HttpRequestLengthRequired => ErrorCode::HttpRequestLengthRequired,
        Error::HttpRequestBodySize(size) => ErrorCode::HttpRequestBodySize(*size),
        Error::HttpRequestMethodInvalid => ErrorCode::HttpRequestMethodInvalid,
        Error::HttpRequestUriInvalid => ErrorCode::HttpRequestUriInvalid,
        Error::HttpRequestUriTooLong => ErrorCode::HttpRequestUriTooLong,
        Error::HttpRequestHeaderSectionSize(size) => ErrorCode::HttpRequestHeaderSectionSize(*size),
        Error::HttpRequestHeaderSize {
            field_name,
            field_size,
        } => ErrorCode::HttpRequestHeaderSize(Some(FieldSizePayload {
            field_name: field_name.clone(),
            field_size: *field_size,
        })),
        Error::HttpRequestTrailerSectionSize(size) => {
            ErrorCode::HttpRequestTrailerSectionSize(*size)
        }
        Error::HttpRequestTrailerSize {
            field_name,
            field_size,
        } => ErrorCode::HttpRequestTrailerSize(FieldSizePayload {
            field_name: field_name.clone(),
            field_size: *field_size,
        }),
        Error::HttpResponseIncomplete => ErrorCode::HttpResponseIncomplete,
        Error::HttpResponseHeaderSectionSize(size) => {
            ErrorCode::HttpResponseHeaderSectionSize(*size)
        }
        Error::HttpResponseHeaderSize {
            field_name,
            field_size,
        } => ErrorCode::HttpResponseHeaderSize(FieldSizePayload {
            field_name: field_name.clone(),
            field_size: *field_size,
        }),
        Error::HttpResponseBodySize(size) => ErrorCode::HttpResponseBodySize(*size),
        Error::HttpResponseTrailerSectionSize(size) => {
            ErrorCode::HttpResponseTrailerSectionSize(*size)
        }
        Error::HttpResponseTrailerSize {
            field_name,
            field_size,
        } => ErrorCode::HttpResponseTrailerSize(FieldSizePayload {
            field_name: field_name.clone(),
            field_size: *field_size,
        }),
        Error::HttpResponseTransferCoding(coding) => {
            ErrorCode::HttpResponseTransferCoding(coding.clone())
        }
        Error::HttpResponseContentCoding(coding) => {
            ErrorCode::HttpResponseContentCoding(coding.clone())
        }
        Error::HttpResponseTimeout => ErrorCode::HttpResponseTimeout,
        Error::HttpUpgradeFailed => ErrorCode::HttpUpgradeFailed,
        Error::HttpProtocolError => ErrorCode::HttpProtocolError,
        Error::LoopDetected => ErrorCode::LoopDetected,
        Error::ConfigurationError => ErrorCode::ConfigurationError,
        Error::InternalError(words) => ErrorCode::InternalError(words.clone()),
        // The enum is open to new kinds.
        other => ErrorCode::InternalError(Some(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use edge_cache::OriginAddress;

    use super::*;

    fn endpoint() -> OriginEndpoint {
        OriginEndpoint {
            address: OriginAddress {
                scheme: http::uri::Scheme::HTTP,
                authority: "127.0.0.1:9".parse().unwrap(),
                base_path: String::new(),
            },
            connect_timeout: Duration::from_secs(2),
            origin_timeout: Duration::from_secs(7),
        }
    }

    fn failure(error: Error) -> OriginFailure {
        let code = error_code(&error);
        edge_cache::origin_failure_of!(&code, &endpoint(), ErrorCode)
    }

    /// A failure reached natively is the one the component is given for
    /// the same error, in the same words.
    #[test]
    fn host_errors_fail_as_the_component_s_error_codes_do() {
        assert_eq!(
            failure(Error::ConnectionRefused),
            OriginFailure::Unreachable("connection refused")
        );
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        assert_eq!(
            failure(Error::Connect(refused)),
            OriginFailure::Unreachable("connection refused")
        );
        let unresolved = std::io::Error::other("failed to lookup address information: no name");
        assert_eq!(
            failure(Error::Connect(unresolved)),
            OriginFailure::Unreachable("its name did not resolve")
        );
        assert_eq!(
            failure(Error::ConnectionTimeout),
            OriginFailure::ConnectTimedOut(Duration::from_secs(2))
        );
        assert_eq!(
            failure(Error::ConnectionReadTimeout),
            OriginFailure::TimedOut(Duration::from_secs(7))
        );
        assert_eq!(failure(Error::HttpRequestDenied), OriginFailure::Denied);
        assert!(matches!(
            failure(Error::TlsCertificateError),
            OriginFailure::Protocol(_)
        ));
    }

    /// A stored response's fields must not keep the connection's read
    /// buffer alive: every value is copied out of it.
    #[test]
    fn response_fields_are_copied_out_of_the_read_buffer() {
        let buffer = bytes::Bytes::from_static(b"max-age=60\"v1\"");
        let mut read = HeaderMap::new();
        let shared = |range: std::ops::Range<usize>| {
            HeaderValue::from_maybe_shared(buffer.slice(range)).unwrap()
        };
        read.append("cache-control", shared(0..10));
        read.append("etag", shared(10..14));
        let copy = owned(&read);
        assert_eq!(copy, read);
        for (name, value) in &copy {
            let original = read[name].as_bytes().as_ptr();
            assert_ne!(
                value.as_bytes().as_ptr(),
                original,
                "{name} still shares the buffer"
            );
        }
    }
}
