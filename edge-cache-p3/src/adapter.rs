//! The WASI 0.3 adapter (`spin-sdk` 7): the core's [`Host`] over Spin's
//! async variables, key-value and `wasi:http` client, and the `wasi:http`
//! handler that turns requests into the core's messages and its answers
//! back.
//!
//! One instance serves many requests, some at once: the first builds the
//! instance's [`Node`] and the rest share it. A changed rules file or
//! variable is picked up by the next instance; the host retires instances
//! after a bounded number of requests or an idle timeout, which bounds how
//! long an old one lives.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use spin_sdk::key_value;
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::client;
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields, RequestOptions, Scheme};
use spin_sdk::wasip3::wit_bindgen::StreamResult;
use spin_sdk::wasip3::wit_future;

use crate::body::{self, IncomingBody};
use edge_cache::{
    Body, BodyError, BodyStream, Clock, Host, KeyValueStore, Node, Origin, OriginEndpoint,
    OriginFailure, OriginRequest, RequestBody, RequestHead, Response, StoreFailure,
    WHOLE_BODY_BYTES, from_pairs, to_pairs,
};

struct SpinHost;

impl Host for SpinHost {
    type Store = SpinStore;
    type Origin = SpinOrigin;
    type Clock = SystemClock;
    const INSTANCES_OUTLIVE_REQUESTS: bool = true;

    async fn variable(&self, name: &'static str) -> Option<String> {
        spin_sdk::variables::get(name).await.ok()
    }

    async fn open_store(&self, label: &str) -> Result<SpinStore, String> {
        let opened = key_value::Store::open(label).await;
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
        spin_sdk::wasip3::random::random::get_random_u64()
    }
}

thread_local! {
    /// The instance's node, built by its first request. WASI 0.3
    /// components are single-threaded: concurrent requests interleave at
    /// await points on this one thread.
    static NODE: RefCell<Option<Rc<Node<SpinHost>>>> = const { RefCell::new(None) };
}

/// This instance's node, built on first use. A configuration error is not
/// kept, so a request after the variable is fixed sees the fix.
async fn node() -> Result<Rc<Node<SpinHost>>, Response> {
    if let Some(ready) = NODE.with(|cell| cell.borrow().clone()) {
        return Ok(ready);
    }
    let ready = Rc::new(Node::new(SpinHost).await?);
    // Two first requests may race to here; either result is the same.
    NODE.with(|cell| *cell.borrow_mut() = Some(ready.clone()));
    Ok(ready)
}

/// The component's `wasi:http` handler. It speaks the `wasi:http` types
/// directly rather than through spin-sdk's `#[http_service]`, which turns
/// every request into an `http::Request` (each of the host's `spin-*`
/// fields parsed, the target rebuilt as a `Uri`, a body handle made) and
/// every response back (the header map cloned, the body sent through a
/// generic `http_body` writer). The hit path needs neither.
struct Component;

spin_sdk::wasip3::http::service::export!(Component);

impl Guest for Component {
    async fn handle(request: types::Request) -> Result<types::Response, ErrorCode> {
        reply(handle(request).await)
    }
}

async fn handle(request: types::Request) -> Response {
    let node = match node().await {
        Ok(node) => node,
        Err(answer) => return answer,
    };
    let Ok(method) = http::Method::try_from(request.get_method()) else {
        return Response::invalid_method();
    };
    let https = matches!(request.get_scheme(), Some(Scheme::Https));
    let fields = request.get_headers().copy_all();
    let head = RequestHead::from_fields(method, request.get_path_with_query(), fields)
        .or_authority(https, request.get_authority());
    let (response, refresh) = node.serve(head, SpinBody(request)).await;
    // The refresh runs after the response is returned, in this instance,
    // off the client's path (stale-while-revalidate).
    if let Some(refresh) = refresh {
        spin_sdk::wasip3::spawn(async move { node.refresh(refresh).await });
    }
    response
}

/// A request's body, read only as far as the node admits it.
struct SpinBody(types::Request);

impl SpinBody {
    fn incoming(self) -> IncomingBody {
        // Resolved (as read) when dropped, once the body has been read.
        let (_read, done) = wit_future::new(|| Ok(()));
        let (contents, trailers) = types::Request::consume_body(self.0, done);
        IncomingBody::new(contents, trailers, "the client's request".into())
    }
}

impl RequestBody for SpinBody {
    async fn read(self, limit: usize) -> Result<Body, BodyError> {
        match self.incoming().read_whole(limit).await {
            Ok(Ok(whole)) => Ok(Body::Full(whole)),
            Ok(Err(limit)) => Err(BodyError::TooLarge(limit)),
            Err(broken) => Err(BodyError::Unreadable(broken.0)),
        }
    }

    fn stream(self, length: Option<u64>) -> Result<Body, BodyError> {
        Ok(Body::Stream(BodyStream::new(self.incoming(), length)))
    }
}

struct SystemClock;

impl Clock for SystemClock {
    async fn pause(&self, duration: Duration) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        spin_sdk::wasip3::clocks::monotonic_clock::wait_for(nanos).await;
    }
}

struct SpinStore(key_value::Store);

impl KeyValueStore for SpinStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreFailure> {
        let got = self.0.get(key).await;
        got.map_err(|e| StoreFailure(e.to_string()))
    }

    async fn set(&self, key: &str, value: &[u8]) -> Result<(), StoreFailure> {
        let set = self.0.set(key, value).await;
        set.map_err(|e| StoreFailure(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), StoreFailure> {
        let deleted = self.0.delete(key).await;
        deleted.map_err(|e| StoreFailure(e.to_string()))
    }
}

struct SpinOrigin(OriginEndpoint);

/// What a read asks for when the buffer is full (the host's frames are at
/// most this large in practice).
const BODY_READ_SIZE: usize = 16 * 1024;

impl Origin for SpinOrigin {
    async fn send(&self, request: OriginRequest) -> Result<Response, OriginFailure> {
        // A HEAD's `Content-Length` describes a body that is not sent.
        let bodiless = request.method == http::Method::HEAD;
        let outgoing = self.outgoing(request)?;
        let response = client::send(outgoing)
            .await
            .map_err(|code| self.failed(code))?;
        self.read_response(response, bodiless).await
    }
}

impl SpinOrigin {
    /// The request in `wasi:http` types, without spin-sdk's `http::Request`
    /// conversion: one field list (the pipeline already dropped `Host` and
    /// the hop-by-hop fields the host forbids), the origin's authority, and
    /// a body stream only when there is a body. A fill's GET has none, so
    /// no task writes an empty body and the host has no stream to drain.
    fn outgoing(&self, request: OriginRequest) -> Result<types::Request, OriginFailure> {
        let address = &self.0.address;
        let refused = |what: String| {
            eprintln!(
                "edge-cache: origin {}: the host refused the request's {what}",
                address.authority
            );
            OriginFailure::REQUEST_NOT_SENT
        };
        let fields = Fields::from_list(&to_pairs(&request.headers))
            .map_err(|e| refused(format!("fields ({e:?})")))?;
        let options = RequestOptions::new();
        let timeouts = self.0.request_timeouts();
        // The host may not support every option; an unsupported one is ignored.
        let _ = options.set_connect_timeout(Some(timeouts.connect));
        let _ = options.set_first_byte_timeout(Some(timeouts.first_byte));
        let _ = options.set_between_bytes_timeout(Some(timeouts.between_bytes));
        let (contents, trailers) = body::outgoing(request.body);
        let (outgoing, _sent) = types::Request::new(fields, contents, trailers, Some(options));
        outgoing
            .set_method(&request.method.into())
            .map_err(|()| refused("method".into()))?;
        outgoing
            .set_scheme(Some(&(&address.scheme).into()))
            .map_err(|()| refused("scheme".into()))?;
        outgoing
            .set_authority(Some(address.authority.as_str()))
            .map_err(|()| refused("authority".into()))?;
        outgoing
            .set_path_with_query(Some(&address.target_for(&request.target)))
            .map_err(|()| refused("target".into()))?;
        Ok(outgoing)
    }

    /// The origin's response. A body that declares at most
    /// [`WHOLE_BODY_BYTES`] is read whole into one buffer of that size (a
    /// body that breaks off is then the error the host gives for it); a
    /// longer or undeclared one is handed on as a stream.
    async fn read_response(
        &self,
        response: types::Response,
        bodiless: bool,
    ) -> Result<Response, OriginFailure> {
        let status = response.get_status_code();
        let headers = from_pairs(&response.get_headers().copy_all());
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .filter(|_| !bodiless && !matches!(status, 204 | 304))
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
        // Resolved (as read) when dropped, once the body has been read.
        let (_read, done) = wit_future::new(|| Ok(()));
        let (mut contents, trailers) = types::Response::consume_body(response, done);
        let whole = match declared {
            Some(length) if length <= WHOLE_BODY_BYTES => length as usize,
            _ if bodiless || matches!(status, 204 | 304) => 0,
            _ => {
                let from = format!("origin {}", self.0.address.authority);
                let body = IncomingBody::new(contents, trailers, from);
                let body = Body::Stream(BodyStream::new(body, declared));
                return Ok(Response {
                    status,
                    headers,
                    body,
                });
            }
        };
        // One byte more than declared: the read that finds the end has
        // room to be made without growing the buffer (growing it by a read's
        // worth cost a reallocation, a copy and often a new page of the
        // instance's memory on every miss).
        let mut body = Vec::with_capacity(whole + 1);
        loop {
            if body.len() == body.capacity() {
                body.reserve(BODY_READ_SIZE);
            }
            let (result, filled) = contents.read(body).await;
            body = filled;
            match result {
                StreamResult::Complete(_) => {}
                StreamResult::Dropped | StreamResult::Cancelled => break,
            }
        }
        if let Err(code) = trailers.await {
            return Err(match self.failed(code) {
                OriginFailure::Protocol(_) => OriginFailure::BODY_BROKE_OFF,
                other => other,
            });
        }
        Ok(Response {
            status,
            headers,
            body: body.into(),
        })
    }

    /// What `code` means for the client, in words (the code itself goes
    /// to the log when the words leave something out).
    fn failed(&self, code: ErrorCode) -> OriginFailure {
        let failure = edge_cache::origin_failure_of!(&code, &self.0, ErrorCode);
        self.0.logged(failure, &code)
    }
}

/// The pipeline's answer as the host's response: its fields in one list,
/// its body (if any) written by a task of its own once the host reads it,
/// and no trailers.
fn reply(answer: Response) -> Result<types::Response, ErrorCode> {
    let fields = Fields::from_list(&to_pairs(&answer.headers))
        .map_err(|e| ErrorCode::InternalError(Some(format!("response fields: {e:?}"))))?;
    let (contents, trailers) = body::outgoing(answer.body);
    let (response, _sent) = types::Response::new(fields, contents, trailers);
    // A status the host refuses (outside 100-999) answers as a bad gateway.
    if response.set_status_code(answer.status).is_err() {
        let _ = response.set_status_code(502);
    }
    Ok(response)
}
