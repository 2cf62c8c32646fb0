//! The trivial component's WASI 0.3 twin: the same 1 KiB answer as
//! `hello-component`, served by instances the host reuses. Against the
//! native ceiling it gives the host's own cost per request (hyper, the
//! component-model call, `wasi:http` fields and body stream) with no
//! instantiation per request and no caching logic, which is the floor under
//! the edge's hit path. (The body is its own copy: depending on
//! `hello-component` would link spin-sdk 5.2 into this component too.)
//!
//! With the variable `origin` set (`bench/hello-fetch.spin.toml`), it
//! answers every request with the origin's answer to the same target
//! instead: one `wasi:http` request out, its body read whole and sent on,
//! nothing decided or stored. That is the floor under the edge's miss
//! path: what any component that fetches costs on this host.

/// The body size, equal to the hot-hit 1 KiB object so the numbers compare.
pub const BODY_BYTES: usize = 1024;

/// The body every request gets.
pub static BODY: [u8; BODY_BYTES] = [b'x'; BODY_BYTES];

#[cfg(target_arch = "wasm32")]
mod component {
    use std::cell::OnceCell;

    use bytes::Bytes;
    use http_body_util::Full;
    use spin_sdk::http::Request;
    use spin_sdk::http_service;
    use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields, Scheme};
    use spin_sdk::wasip3::wit_bindgen::StreamResult;
    use spin_sdk::wasip3::wit_future;

    thread_local! {
        /// The `origin` variable (host:port), read once per instance;
        /// empty when unset.
        static ORIGIN: OnceCell<String> = const { OnceCell::new() };
    }

    #[http_service]
    async fn handle(request: Request) -> http::Response<Full<Bytes>> {
        let origin = match ORIGIN.with(|o| o.get().cloned()) {
            Some(origin) => origin,
            None => {
                let origin = spin_sdk::variables::get("origin").await.unwrap_or_default();
                ORIGIN.with(|o| o.get_or_init(|| origin).clone())
            }
        };
        let (status, body) = match origin.is_empty() {
            true => (200, Bytes::from_static(&super::BODY)),
            false => {
                let target = request.uri().path_and_query().map_or("/", |pq| pq.as_str());
                fetch(&origin, target).await.unwrap_or((502, Bytes::new()))
            }
        };
        http::Response::builder()
            .status(status)
            .header("content-type", "application/octet-stream")
            .header("cache-control", "public, max-age=3600")
            .body(Full::new(body))
            .expect("a fixed, valid response")
    }

    /// GET `http://{origin}{target}` in `wasi:http` types (as the edge's
    /// adapter sends it): the status and the whole body.
    async fn fetch(origin: &str, target: &str) -> Result<(u16, Bytes), ErrorCode> {
        let (_, trailers) = wit_future::new(|| Ok(None));
        let fields = Fields::from_list(&[("accept".to_owned(), b"*/*".to_vec())])
            .map_err(|_| ErrorCode::InternalError(None))?;
        let (outgoing, _sent) = types::Request::new(fields, None, trailers, None);
        let refused = |()| ErrorCode::InternalError(None);
        outgoing.set_scheme(Some(&Scheme::Http)).map_err(refused)?;
        outgoing.set_authority(Some(origin)).map_err(refused)?;
        outgoing
            .set_path_with_query(Some(target))
            .map_err(refused)?;
        let response = spin_sdk::wasip3::http::client::send(outgoing).await?;
        let status = response.get_status_code();
        // Sized as the edge's adapter sizes it: the declared length and a
        // byte to find the end in.
        let declared = response.get_headers().get("content-length");
        let length = declared
            .first()
            .and_then(|value| std::str::from_utf8(value).ok()?.parse().ok())
            .unwrap_or(0);
        let (_read, done) = wit_future::new(|| Ok(()));
        let (mut contents, trailers) = types::Response::consume_body(response, done);
        let mut body = Vec::with_capacity(length + 1);
        loop {
            if body.len() == body.capacity() {
                body.reserve(16 * 1024);
            }
            let (result, filled) = contents.read(body).await;
            body = filled;
            if !matches!(result, StreamResult::Complete(_)) {
                break;
            }
        }
        trailers.await?;
        Ok((status, body.into()))
    }
}
