//! The WASI 0.2 adapter (`spin-sdk` 5): the core's [`Host`] over Spin's
//! blocking variables, key-value and `wasi:http` client, and the handler
//! that turns requests into the core's messages and its answers back. An
//! instance serves one request, so each builds its own [`Node`].

use std::time::Duration;

use http::Method as HttpMethod;
use spin_sdk::http::{
    ErrorCode, Fields, IncomingRequest, Method, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};
use spin_sdk::key_value;
use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{self as wasi_http, RequestOptions};

use crate::body::{self, Incoming, ReadEnd};
use edge_cache::{
    Body, BodyError, BodyStream, BrokenBody, Clock, Host, KeyValueStore, Node, Origin,
    OriginEndpoint, OriginFailure, OriginRequest, RequestBody, RequestHead, Response, StoreFailure,
    WHOLE_BODY_BYTES, from_pairs, to_pairs,
};

struct SpinHost;

impl Host for SpinHost {
    type Store = SpinStore;
    type Origin = SpinOrigin;
    type Clock = SystemClock;
    const INSTANCES_OUTLIVE_REQUESTS: bool = false;

    async fn variable(&self, name: &'static str) -> Option<String> {
        spin_sdk::variables::get(name).ok()
    }

    async fn open_store(&self, label: &str) -> Result<SpinStore, String> {
        let opened = key_value::Store::open(label);
        opened
            .map(SpinStore)
            .map_err(|e| format!("open {label}: {e}"))
    }

    fn origin(&self, endpoint: OriginEndpoint) -> SpinOrigin {
        SpinOrigin(endpoint)
    }

    fn clock(&self) -> SystemClock {
        SystemClock
    }

    fn random_u64(&self) -> u64 {
        wasi::random::random::get_random_u64()
    }
}

#[spin_sdk::http_component]
async fn handle(request: IncomingRequest, response_out: ResponseOutparam) {
    let node = match Node::new(SpinHost).await {
        Ok(node) => node,
        Err(answer) => return send_reply(response_out, answer).await,
    };
    let Some(method) = http_method(request.method()) else {
        return send_reply(response_out, Response::invalid_method()).await;
    };
    let fields = request.headers().entries();
    let head = RequestHead::from_fields(method, request.path_with_query(), fields);
    let (response, refresh) = node.serve(head, SpinBody(request)).await;
    send_reply(response_out, response).await;
    // WASI 0.2 lets the handler keep running after the response is done:
    // stale-while-revalidate refreshes happen here, off the client's path.
    if let Some(refresh) = refresh {
        node.refresh(refresh).await;
    }
}

/// The method, unless it is an extension method `http` cannot spell.
fn http_method(method: Method) -> Option<HttpMethod> {
    match method {
        Method::Other(other) => HttpMethod::from_bytes(other.as_bytes()).ok(),
        known => Some(known.into()),
    }
}

/// A request's body, read only as far as the node admits it.
struct SpinBody(IncomingRequest);

impl SpinBody {
    fn incoming(self) -> Result<Incoming, BodyError> {
        let unreadable = |detail: &str| BodyError::Unreadable(detail.to_owned());
        let body = self
            .0
            .consume()
            .map_err(|()| unreadable("already consumed"))?;
        Incoming::of(body, "the client's request".into()).ok_or_else(|| unreadable("no stream"))
    }
}

impl RequestBody for SpinBody {
    async fn read(self, limit: usize) -> Result<Body, BodyError> {
        match self.incoming()?.read_whole(Some(limit)) {
            Ok(bytes) => Ok(Body::Full(bytes)),
            Err(ReadEnd::OverLimit(limit)) => Err(BodyError::TooLarge(limit)),
            Err(ReadEnd::Broken(broken)) => Err(BodyError::Unreadable(broken.0)),
        }
    }

    fn stream(self, length: Option<u64>) -> Result<Body, BodyError> {
        Ok(Body::Stream(BodyStream::new(self.incoming()?, length)))
    }
}

struct SystemClock;

impl Clock for SystemClock {
    /// Only collapsed misses pause, and a WASI 0.2 instance serves one
    /// request, so this never runs; it would block the instance, as every
    /// WASI 0.2 host call does.
    async fn pause(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

struct SpinStore(key_value::Store);

impl KeyValueStore for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        self.0.get(key).map_err(|e| StoreFailure(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        self.0
            .set(key, value)
            .map_err(|e| StoreFailure(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        self.0.delete(key).map_err(|e| StoreFailure(e.to_string()))
    }
}

struct SpinOrigin(OriginEndpoint);

impl Origin for SpinOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        let address = &self.0.address;
        let authority = address.authority.as_str();
        let not_sent = |what: &str| {
            eprintln!("edge-cache: origin {authority}: {what}");
            OriginFailure::REQUEST_NOT_SENT
        };
        let fields = Fields::from_list(&to_pairs(&request.headers))
            .map_err(|e| not_sent(&format!("request headers rejected by the host: {e:?}")))?;
        let outgoing = OutgoingRequest::new(fields);
        let scheme = if address.scheme == http::uri::Scheme::HTTPS {
            Scheme::Https
        } else {
            Scheme::Http
        };
        let target = address.target_for(&request.target);
        let parts_set = outgoing.set_method(&request.method.into()).is_ok()
            && outgoing.set_scheme(Some(&scheme)).is_ok()
            && outgoing.set_authority(Some(authority)).is_ok()
            && outgoing.set_path_with_query(Some(&target)).is_ok();
        if !parts_set {
            return Err(not_sent("request line rejected by the host"));
        }

        let options = RequestOptions::new();
        let timeouts = self.0.request_timeouts();
        // The host may not support every option; an unsupported one is ignored.
        let _ = options.set_connect_timeout(Some(timeouts.connect));
        let _ = options.set_first_byte_timeout(Some(timeouts.first_byte));
        let _ = options.set_between_bytes_timeout(Some(timeouts.between_bytes));

        let outgoing_body = outgoing
            .body()
            .map_err(|()| not_sent("request body unavailable"))?;
        let pending =
            outgoing_handler::handle(outgoing, Some(options)).map_err(|code| self.failed(code))?;
        if let Err(detail) = body::write(outgoing_body, request.body).await {
            // The host closes the body when the request itself failed:
            // that failure is the one to report.
            pending.subscribe().block();
            if let Some(Ok(Err(code))) = pending.get() {
                return Err(self.failed(code));
            }
            eprintln!("edge-cache: origin {authority}: sending the request body: {detail}");
            return Err(OriginFailure::REQUEST_NOT_SENT);
        }

        pending.subscribe().block();
        let response = match pending.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(code))) => return Err(self.failed(code)),
            Some(Err(())) | None => {
                eprintln!("edge-cache: origin {authority}: response future failed");
                return Err(OriginFailure::CONNECTION_FAILED);
            }
        };
        let status = response.status();
        let headers = from_pairs(&response.headers().entries());
        let body = self.read_body(response, &headers)?;
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

impl SpinOrigin {
    /// The response's body: read whole if it declares at most
    /// [`WHOLE_BODY_BYTES`] (a body that breaks off is then an origin
    /// failure), handed on as a stream if longer or undeclared.
    fn read_body(
        &self,
        response: spin_sdk::http::IncomingResponse,
        headers: &http::HeaderMap,
    ) -> Result<Body, OriginFailure> {
        let authority = &self.0.address.authority;
        let broken = |detail: &str| {
            eprintln!("edge-cache: origin {authority}: response body broke off: {detail}");
            OriginFailure::BODY_BROKE_OFF
        };
        let body = response.consume().map_err(|()| broken("no body"))?;
        let incoming =
            Incoming::of(body, format!("origin {authority}")).ok_or_else(|| broken("no stream"))?;
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        if declared.is_none_or(|length| length > WHOLE_BODY_BYTES) {
            return Ok(Body::Stream(BodyStream::new(incoming, declared)));
        }
        match incoming.read_whole(None) {
            Ok(bytes) => Ok(Body::Full(bytes)),
            Err(ReadEnd::Broken(BrokenBody(detail)))
                if detail.contains("timeout") || detail.contains("Timeout") =>
            {
                Err(OriginFailure::TimedOut(self.0.origin_timeout))
            }
            Err(_) => Err(OriginFailure::BODY_BROKE_OFF),
        }
    }

    /// What `code` means for the client, in words (the code itself goes
    /// to the log when the words leave something out).
    fn failed(&self, code: ErrorCode) -> OriginFailure {
        let failure = edge_cache::origin_failure_of!(&code, &self.0, ErrorCode);
        self.0.logged(failure, &code)
    }
}

async fn send_reply(response_out: ResponseOutparam, reply: Response) {
    let fields = match Fields::from_list(&to_pairs(&reply.headers)) {
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
    let Ok(body) = response.body() else {
        return eprintln!("edge-cache: the host gave no response body to write");
    };
    wasi_http::ResponseOutparam::set(response_out.into_inner(), Ok(response));
    if let Err(error) = body::write(body, reply.body).await {
        eprintln!("edge-cache: the response body was not sent whole: {error}");
    }
}
