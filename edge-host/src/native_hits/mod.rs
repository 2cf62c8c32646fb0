//! Requests answered in edge-host by the core itself, without entering
//! Wasm (issue 25): fresh hits first, as Cloudflare's Workers cache
//! answers in front of the Worker and Fastly's host answers for its guest,
//! and then every GET or HEAD without a body, misses included.
//!
//! edge-host links the same `edge-cache` core the component is built from
//! and runs its [`Node`] here, over the component's own variables, stores,
//! files and origins ([`host::NativeHost`]): the key from the same rules,
//! the entry from and to the same store, freshness, purge scopes and epoch
//! checked by the same code, the origin reached over the same pool,
//! allow-list and timeouts, `Age` and `Cache-Status` made by it. A fresh
//! hit is answered at once on the connection's own task ([`NativeHits::
//! answer`]); anything else the core may wait for (the origin, a pause, a
//! store across the network) runs as a task of the serving lane
//! ([`local`], [`NativeHits::serve`]). What the component still answers:
//! requests with a body (uploads, the purge API's), and everything while a
//! lane has no node. On Spin the component does everything, as before.
//! A chunked object's body is read here from the same store ([`chunks`]),
//! which drops a head whose chunk is damaged, as the component's reader
//! does.
//!
//! Only for a component whose core is this one, by its sources
//! ([`edge_cache::native_hits`]): another build could key or decide
//! differently. Each serving lane keeps its own node (the core is
//! single-threaded, as an instance is; its first tier of decoded entries
//! stays warm), built again when its rules file changes, checked every
//! [`RULES_CHECK`]. Several nodes writing one store is what several
//! instances, and several edges sharing a Redis store, already do.
//!
//! A reload that replaces the component's context (its variables, its
//! stores) has each lane build its node again from the new one before its
//! next native answer ([`crate::reload::live`]): a native answer never
//! reads a store, or keys by a variable, the component no longer uses.

mod chunks;
mod host;
pub(crate) mod local;
mod origin;

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chunks::ChunkBody;
use edge_cache::{Body, FreshHit, Node, RequestHead, StoredBody};
use http::{HeaderMap, Method, Request, Response};
use http_body_util::{BodyExt, Full};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

use crate::files::FileMounts;
use crate::instance::ComponentContext;
use crate::net::hop_by_hop;
use crate::reload::live::LiveContext;
use host::NativeHost;

/// How often a lane checks whether its node's rules file has changed.
const RULES_CHECK: Duration = Duration::from_secs(1);

/// Requests of one component the core may be serving natively at once,
/// fills finishing after their client left included; past it, requests go
/// to the component, whose instances queue them (`--max-instances`).
const MAX_IN_FLIGHT: usize = 4096;

/// What the native path did with a request.
pub(crate) enum Native {
    /// Answered it.
    Answered(Response<HyperOutgoingBody>),
    /// Gave no answer within the request time limit.
    TimedOut,
    /// Left it to the component.
    Declined,
}

/// One request counted in flight until dropped.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>) -> Option<InFlight> {
        let taken = count.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            (now < MAX_IN_FLIGHT).then_some(now + 1)
        });
        taken.ok().map(|_| InFlight(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One component's native answers.
#[derive(Clone)]
pub(crate) struct NativeHits {
    /// Tells this component's nodes apart in a lane's table.
    id: usize,
    /// The component's variables, stores and files, as reloads leave them.
    context: Arc<LiveContext>,
    /// Its requests the core is serving natively now (see [`MAX_IN_FLIGHT`]).
    in_flight: Arc<AtomicUsize>,
}

/// A lane's node for one component.
enum LaneNode {
    /// The component has not served this lane yet: its first request
    /// goes to the component, which loads (and logs) the rules first.
    Unbuilt,
    /// Serving, its rules file (as read when it was built) checked again
    /// at `until`.
    Ready {
        node: Rc<Node<NativeHost>>,
        /// The context it was built from: stale once a reload replaces it.
        context: Arc<ComponentContext>,
        rules: Option<blake3::Hash>,
        until: Instant,
    },
    /// The configuration cannot be read here at once (or is broken): no
    /// native hits until `until`.
    Off { until: Instant },
}

thread_local! {
    static NODES: RefCell<HashMap<usize, LaneNode>> = RefCell::default();
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(0);

impl NativeHits {
    /// Native hits for a component with these parts, if `wasm` (its
    /// component's bytes) carries this core's mark.
    pub(crate) fn for_component(wasm: &[u8], context: Arc<LiveContext>) -> Option<NativeHits> {
        match mark_of(wasm) {
            Some(mark) if mark == edge_cache::native_hits::MARK.as_bytes() => {}
            Some(mark) => {
                tracing::warn!(
                    "this component's edge-cache core ({}) is not the one edge-host links ({}): \
                     its fresh hits go through the component; build both from the same \
                     sources (make build) to answer them natively",
                    String::from_utf8_lossy(mark),
                    edge_cache::native_hits::MARK
                );
                return None;
            }
            None => return None,
        }
        Some(NativeHits {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            context,
            in_flight: Arc::default(),
        })
    }

    /// What edge-host does with `request`, from `peer` (over TLS if
    /// `secure`): a plain fresh hit is answered at once on this task; any
    /// other GET or HEAD without a body is served by the core on this lane
    /// (see [`local`]), whatever it needs (the origin, the store, a pause),
    /// its answer due within `time_limit` as an instance's is. The rest is
    /// the component's: a request with a body, a thread's first request
    /// (its instance loads the rules first), and anything past
    /// [`MAX_IN_FLIGHT`].
    pub(crate) async fn respond<B: http_body::Body>(
        &self,
        request: &Request<B>,
        peer: SocketAddr,
        secure: bool,
        time_limit: Duration,
    ) -> Native {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Native::Declined;
        }
        // The lane's node is not `Send`: it is let go before any await.
        let hit = match (self.node(), request_head(request, peer, secure)) {
            (Some((node, context)), Some(head)) => fresh_hit(&node, &context, head),
            _ => return Native::Declined,
        };
        if let Some(answer) = hit {
            crate::observe::metrics::native_hit();
            return Native::Answered(answer);
        }
        if request.body().size_hint().exact() != Some(0) {
            return Native::Declined;
        }
        // Made again rather than cloned ahead for every hit.
        let Some(head) = request_head(request, peer, secure) else {
            return Native::Declined;
        };
        self.serve(head, time_limit).await
    }

    /// `head` served by the core as a task of this lane's.
    async fn serve(&self, head: RequestHead, time_limit: Duration) -> Native {
        let Some(task) = InFlight::take(&self.in_flight) else {
            return Native::Declined;
        };
        let (answered, answer) = tokio::sync::oneshot::channel();
        let native = self.clone();
        local::spawn(move || async move {
            // Held until the core is done with the request, its fill
            // included (it outlives a client that goes away).
            let _task = task;
            let Some((node, _)) = native.node() else {
                let _ = answered.send(None);
                return;
            };
            let (response, refresh) = node.serve(head, NoBody).await;
            // The refresh runs after the answer, off the client's path
            // (stale-while-revalidate), as in an instance.
            if let Some(refresh) = refresh {
                let node = node.clone();
                local::beside(async move { node.refresh(refresh).await });
            }
            let _ = answered.send(Some(hyper_response(response)));
        });
        match tokio::time::timeout(time_limit, answer).await {
            Ok(Ok(Some(answer))) => {
                crate::observe::metrics::native_served();
                Native::Answered(answer)
            }
            Ok(_) => Native::Declined,
            Err(_) => Native::TimedOut,
        }
    }

    /// This lane's node and the context it reads: built on the lane's
    /// second request for the component, and again when its rules file
    /// changes (as a new instance would read it) or a reload replaces the
    /// component's context.
    fn node(&self) -> Option<(Rc<Node<NativeHost>>, Arc<ComponentContext>)> {
        let now = Instant::now();
        NODES.with(|nodes| {
            let mut nodes = nodes.borrow_mut();
            let entry = nodes.entry(self.id).or_insert(LaneNode::Unbuilt);
            match entry {
                LaneNode::Ready { context, .. } if !self.context.is_current(context) => {}
                LaneNode::Ready {
                    node,
                    context,
                    until,
                    ..
                } if *until > now => return Some((node.clone(), context.clone())),
                LaneNode::Ready {
                    node,
                    context,
                    rules,
                    until,
                } if rules_of(&context.files, node) == *rules => {
                    *until = now + RULES_CHECK;
                    return Some((node.clone(), context.clone()));
                }
                LaneNode::Off { until } if *until > now => return None,
                LaneNode::Unbuilt => {
                    *entry = LaneNode::Off { until: now };
                    return None;
                }
                _ => {}
            }
            let until = now + RULES_CHECK;
            let context = self.context.current();
            let host = NativeHost {
                context: context.clone(),
            };
            *entry = match now_or_never(Node::new(host)) {
                Some(Ok(node)) => LaneNode::Ready {
                    rules: rules_of(&context.files, &node),
                    node: Rc::new(node),
                    context,
                    until,
                },
                _ => LaneNode::Off { until },
            };
            match entry {
                LaneNode::Ready { node, context, .. } => Some((node.clone(), context.clone())),
                _ => None,
            }
        })
    }
}

/// The hash of `node`'s rules file as it reads now, if it has one.
fn rules_of(files: &FileMounts, node: &Node<NativeHost>) -> Option<blake3::Hash> {
    let text = files
        .read_guest_file(node.rules_file()?)
        .unwrap_or_default();
    Some(blake3::hash(text.as_bytes()))
}

/// The edge-cache core's mark a component carries (see
/// [`edge_cache::native_hits`]), in any of its modules.
fn mark_of(wasm: &[u8]) -> Option<&[u8]> {
    wasmparser::Parser::new(0)
        .parse_all(wasm)
        .find_map(|payload| match payload {
            Ok(wasmparser::Payload::CustomSection(section))
                if section.name() == edge_cache::native_hits::SECTION =>
            {
                Some(section.data())
            }
            _ => None,
        })
}

/// The request head the component would see, made straight from the
/// client's request: the fields the host hands a component (the
/// hop-by-hop ones and any `spin-*` a client sent are dropped by
/// `set_spin_headers`, the forbidden ones, `Host` among them, by
/// wasmtime-wasi-http) and the connection facts the `spin-*` fields would
/// tell (`RequestHead::from_connection`). Nothing is formatted into
/// fields to be parsed back: this runs before `set_spin_headers`, and
/// the values are shared with the request, not copied.
fn request_head<B>(request: &Request<B>, peer: SocketAddr, secure: bool) -> Option<RequestHead> {
    let all = request.headers();
    let nominated = hop_by_hop::nominated(all);
    let mut headers = HeaderMap::with_capacity(all.len());
    for (name, value) in all {
        let dropped = hop_by_hop::is_always_hop_by_hop(name)
            || wasmtime_wasi_http::DEFAULT_FORBIDDEN_HEADERS.contains(name)
            || edge_cache::is_spin_metadata(name.as_str())
            || nominated.contains(name);
        if !dropped {
            headers.append(name.clone(), value.clone());
        }
    }
    // As `set_spin_headers` spells the full URL's authority.
    let host = match all.get(http::header::HOST) {
        Some(host) => host.to_str().ok()?,
        None => "localhost",
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();
    Some(RequestHead::from_connection(
        request.method().clone(),
        path_and_query,
        headers,
        peer,
        secure,
        host,
    ))
}

/// The future's output if it is ready when first polled: every step of a
/// native hit is (an in-process store answers at once), and anything that
/// is not (a store across the network, a pause) is the component's work.
fn now_or_never<F: Future>(future: F) -> Option<F::Output> {
    let mut context = Context::from_waker(Waker::noop());
    match pin!(future).poll(&mut context) {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// `head`'s answer if it is a plain fresh hit, as the component would
/// give it; a chunked object's body read from the store here.
fn fresh_hit(
    node: &Node<NativeHost>,
    context: &ComponentContext,
    head: RequestHead,
) -> Option<Response<HyperOutgoingBody>> {
    let FreshHit { response, chunks } = now_or_never(node.fresh_hit(head))??;
    let body = match (response.body, chunks) {
        (Body::Full(bytes), None) => full(bytes),
        (_, Some(StoredBody { store, mut range })) => {
            let store = context.key_value.get(&store)?.clone();
            let first = chunks::first_piece(&store, &mut range)?;
            ChunkBody::new(store, range, first).boxed_unsync()
        }
        (Body::Stream(_), None) => return None,
    };
    let mut answer = Response::new(body);
    *answer.status_mut() = http::StatusCode::from_u16(response.status).ok()?;
    *answer.headers_mut() = response.headers;
    Some(answer)
}

/// The core's answer as the connection sends it: a streamed body read on
/// this lane ([`local::pumped`]). A status outside 100-999 answers as a bad
/// gateway, as the host does for a component.
fn hyper_response(answer: edge_cache::Response) -> Response<HyperOutgoingBody> {
    let body = match answer.body {
        Body::Full(bytes) => full(bytes),
        Body::Stream(stream) => local::pumped(stream).boxed_unsync(),
    };
    let mut response = Response::new(body);
    *response.status_mut() =
        http::StatusCode::from_u16(answer.status).unwrap_or(http::StatusCode::BAD_GATEWAY);
    *response.headers_mut() = answer.headers;
    response
}

/// The body of a GET or HEAD that has none: the core never reads it.
struct NoBody;

impl edge_cache::RequestBody for NoBody {
    async fn read(self, _limit: usize) -> Result<Body, edge_cache::BodyError> {
        Ok(Body::empty())
    }

    fn stream(self, _length: Option<u64>) -> Result<Body, edge_cache::BodyError> {
        Ok(Body::empty())
    }
}

fn full(bytes: Bytes) -> HyperOutgoingBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module holding one custom section.
    fn module_with(section: &str, data: &[u8]) -> Vec<u8> {
        let mut content = vec![section.len() as u8];
        content.extend_from_slice(section.as_bytes());
        content.extend_from_slice(data);
        let mut wasm = b"\0asm\x01\0\0\0".to_vec();
        wasm.push(0);
        wasm.push(content.len() as u8);
        wasm.extend(content);
        wasm
    }

    #[test]
    fn a_component_is_recognised_by_its_cores_mark_only() {
        let mark = edge_cache::native_hits::MARK.as_bytes();
        let section = edge_cache::native_hits::SECTION;
        assert_eq!(mark_of(&module_with(section, mark)), Some(mark));
        let other = b"edge-cache core 0000000000000000";
        assert_eq!(mark_of(&module_with(section, other)), Some(&other[..]));
        assert_eq!(mark_of(&module_with("producers", mark)), None);
        assert_eq!(mark_of(b"not wasm at all"), None);
        let context = || {
            Arc::new(LiveContext::new(ComponentContext {
                id: Arc::from("edge"),
                variables: Default::default(),
                key_value: Default::default(),
                allowed_hosts: Default::default(),
                origin_pool: Default::default(),
                files: FileMounts::default(),
                environment: Default::default(),
            }))
        };
        let ours = NativeHits::for_component(&module_with(section, mark), context());
        assert!(ours.is_some());
        let theirs = NativeHits::for_component(&module_with(section, other), context());
        assert!(theirs.is_none());
    }
}
