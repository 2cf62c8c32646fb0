//! The Spin adapter (WASI 0.2, `spin-sdk` 5): the only module that talks to
//! the host. It turns `wasi:http` resources into `http` types for the core,
//! and the core's decisions back into outgoing requests and responses.

use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use spin_sdk::http::{
    ErrorCode, Fields, IncomingRequest, IncomingResponse, Method, OutgoingRequest,
    OutgoingResponse, ResponseOutparam, Scheme,
};
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{OutgoingBody, RequestOptions};

use crate::config::EdgeConfig;
use crate::forwarding::{ClientConnection, client_response_headers, origin_request_headers};
use crate::origin_failure::OriginFailure;

/// `blocking-write-and-flush` accepts at most this many bytes per call.
const WRITE_CHUNK: usize = 4096;

/// A complete response, ready to be sent to the client.
struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(status: u16, body: String) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        Reply {
            status,
            headers,
            body: body.into_bytes(),
        }
    }
}

#[spin_sdk::http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let reply = match EdgeConfig::from_variables(variable) {
        Ok(config) => proxy(&config, request).await,
        Err(error) => {
            eprintln!("edge-cache: configuration error: {error}");
            Reply::text(500, format!("edge misconfigured: {error}\n"))
        }
    };
    send_reply(response_out, reply).await;
}

fn variable(name: &'static str) -> Option<String> {
    spin_sdk::variables::get(name).ok()
}

async fn proxy(config: &EdgeConfig, request: IncomingRequest) -> Reply {
    let method = request.method();
    let is_head = matches!(method, Method::Head);
    let client_headers = header_map(request.headers().entries());
    let path_and_query = request.path_with_query().unwrap_or_else(|| "/".to_owned());
    let body = match request.into_body().await {
        Ok(body) => body,
        Err(error) => return Reply::text(400, format!("could not read request body: {error}\n")),
    };

    let connection = ClientConnection::from_spin_headers(&client_headers);
    let headers = origin_request_headers(&client_headers, &connection);
    let target = config.origin.target_for(&path_and_query);
    let response = match send_to_origin(config, method, &target, &headers, &body) {
        Ok(response) => response,
        Err(failure) => {
            let error = failure.to_response();
            eprintln!("edge-cache: {} {}", error.status, error.body.trim_end());
            return Reply::text(error.status, error.body);
        }
    };

    let status = response.status();
    let origin_headers = header_map(response.headers().entries());
    let body = match response.into_body().await {
        Ok(body) => body,
        Err(error) => {
            let failure = OriginFailure::Protocol(format!("response body broke off: {error}"));
            return Reply::text(502, failure.to_response().body);
        }
    };
    let mut headers = client_response_headers(&origin_headers);
    if is_head {
        // The body we relay is empty; a Content-Length describing the GET
        // representation would make the host reject the response.
        headers.remove(http::header::CONTENT_LENGTH);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn send_to_origin(
    config: &EdgeConfig,
    method: Method,
    target: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<IncomingResponse, OriginFailure> {
    let protocol = |what: &str| OriginFailure::Protocol(what.to_owned());
    let fields = Fields::from_list(&field_list(headers))
        .map_err(|e| protocol(&format!("request headers rejected by the host: {e:?}")))?;
    let request = OutgoingRequest::new(fields);
    let scheme = if config.origin.scheme == http::uri::Scheme::HTTPS {
        Scheme::Https
    } else {
        Scheme::Http
    };
    let parts_set = request.set_method(&method).is_ok()
        && request.set_scheme(Some(&scheme)).is_ok()
        && request
            .set_authority(Some(config.origin.authority.as_str()))
            .is_ok()
        && request.set_path_with_query(Some(target)).is_ok();
    if !parts_set {
        return Err(protocol("request line rejected by the host"));
    }

    let options = RequestOptions::new();
    let timeout = nanos(config.origin_timeout);
    // The host may not support every option; an unsupported one is ignored.
    let _ = options.set_connect_timeout(Some(timeout));
    let _ = options.set_first_byte_timeout(Some(timeout));
    let _ = options.set_between_bytes_timeout(Some(timeout));

    let outgoing_body = request
        .body()
        .map_err(|()| protocol("request body unavailable"))?;
    let pending = outgoing_handler::handle(request, Some(options))
        .map_err(|code| classify(code, config.origin_timeout))?;
    write_body(outgoing_body, body)?;

    pending.subscribe().block();
    match pending.get() {
        Some(Ok(Ok(response))) => Ok(response),
        Some(Ok(Err(code))) => Err(classify(code, config.origin_timeout)),
        Some(Err(())) | None => Err(protocol("response future failed")),
    }
}

fn write_body(outgoing: OutgoingBody, body: &[u8]) -> Result<(), OriginFailure> {
    let broken = |e: String| OriginFailure::Protocol(format!("sending request body: {e}"));
    {
        let stream = outgoing.write().map_err(|()| broken("no stream".into()))?;
        for chunk in body.chunks(WRITE_CHUNK) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|e| broken(format!("{e:?}")))?;
        }
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| broken(format!("{e:?}")))
}

fn classify(code: ErrorCode, timeout: Duration) -> OriginFailure {
    match code {
        ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout
        | ErrorCode::DnsTimeout => OriginFailure::TimedOut(timeout),
        ErrorCode::HttpRequestDenied => OriginFailure::Denied,
        ErrorCode::ConnectionRefused => OriginFailure::Unreachable("connection refused".into()),
        ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::DnsError(_) => OriginFailure::Unreachable(format!("{code:?}")),
        other => OriginFailure::Protocol(format!("{other:?}")),
    }
}

async fn send_reply(response_out: ResponseOutparam, reply: Reply) {
    let fields = match Fields::from_list(&field_list(&reply.headers)) {
        Ok(fields) => fields,
        Err(error) => {
            eprintln!("edge-cache: response headers rejected by the host: {error:?}");
            Fields::new()
        }
    };
    let response = OutgoingResponse::new(fields);
    if response.set_status_code(reply.status).is_err() {
        let _ = response.set_status_code(502);
    }
    if let Err(error) = response_out.set_with_body(response, reply.body).await {
        eprintln!("edge-cache: client went away while sending the body: {error:?}");
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

fn header_map(entries: Vec<(String, Vec<u8>)>) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(entries.len());
    for (name, value) in entries {
        // The host validated these; anything it let through that `http`
        // cannot represent is dropped rather than trusted.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn field_list(headers: &HeaderMap) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect()
}
