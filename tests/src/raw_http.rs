//! HTTP/1.1 on bare sockets, for what an HTTP library would not send or
//! would hide: origins that answer with exact bytes, and a client's reads
//! of exactly what the edge wrote.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::Edge;

/// The longest a raw read waits for the edge to do something.
pub const BOUND: Duration = Duration::from_secs(10);

/// An origin on a raw loopback socket, for answers no HTTP library would
/// give: each request head read (pipelined ones in order) is counted and
/// handed to `answer` with the connection, which writes what it likes and
/// gives the connection back to read the next request on, or `None` to
/// close it. Returns the origin's URL and the count.
pub async fn raw_origin<F, Fut>(answer: F) -> (String, Arc<AtomicUsize>)
where
    F: Fn(TcpStream) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<TcpStream>> + Send + 'static,
{
    let (url, requests, _ended) = watched_raw_origin(answer).await;
    (url, requests)
}

/// An origin on a raw socket that answers every request with `response`,
/// and reports on the channel each connection that ends (the edge closed
/// it). Returns the origin's URL and the channel.
pub async fn canned_origin(response: &'static [u8]) -> (String, mpsc::UnboundedReceiver<()>) {
    let (url, _requests, ended) = watched_raw_origin(move |mut stream| async move {
        stream.write_all(response).await.ok()?;
        Some(stream)
    })
    .await;
    (url, ended)
}

/// [`raw_origin`], also reporting each connection that ends.
async fn watched_raw_origin<F, Fut>(
    answer: F,
) -> (String, Arc<AtomicUsize>, mpsc::UnboundedReceiver<()>)
where
    F: Fn(TcpStream) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Option<TcpStream>> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let url = format!("http://{}", listener.local_addr().expect("local addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let (ended, ends) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (counter, answer, ended) = (counter.clone(), answer.clone(), ended.clone());
            tokio::spawn(async move {
                serve_raw(stream, &counter, answer).await;
                let _ = ended.send(());
            });
        }
    });
    (url, requests, ends)
}

/// Hands each request head that arrives on `stream` to `answer`, until
/// the peer closes or `answer` keeps the connection.
async fn serve_raw<F, Fut>(mut stream: TcpStream, counter: &AtomicUsize, answer: F)
where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = Option<TcpStream>>,
{
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            counter.fetch_add(1, Ordering::SeqCst);
            match answer(stream).await {
                Some(kept) => stream = kept,
                None => return,
            }
            continue;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `request` as raw bytes on a new connection and reads until the
/// edge closes it (within [`BOUND`]): lets a test put on the wire what
/// HTTP clients would rewrite, and see every byte of the answer.
pub async fn raw_exchange(edge: &Edge, request: &str) -> String {
    let mut stream = TcpStream::connect(edge.addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(BOUND, stream.read_to_end(&mut response))
        .await
        .expect("the edge answers")
        .unwrap();
    String::from_utf8_lossy(&response).into_owned()
}

/// Reads until the peer closes (or resets); panics if that takes longer
/// than [`BOUND`].
pub async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("the edge closed the connection in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads one response (its body delimited by `Content-Length` or chunked),
/// leaving the connection open; panics if it takes longer than [`BOUND`].
pub async fn read_response(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            let text = String::from_utf8_lossy(&out).into_owned();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let field = |wanted: &str| {
                    head.lines().find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case(wanted)
                            .then(|| value.trim().to_ascii_lowercase())
                    })
                };
                let complete = match field("content-length") {
                    Some(length) => body.len() >= length.parse::<usize>().unwrap(),
                    None => {
                        assert_eq!(field("transfer-encoding").as_deref(), Some("chunked"));
                        body.ends_with("0\r\n\r\n")
                    }
                };
                if complete {
                    return;
                }
            }
            let n = stream.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed mid-response: {text}");
            out.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("a response in time");
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads from `stream` until what came contains `needle`, the peer closes,
/// or [`BOUND`] passes; returns what came.
pub async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + BOUND;
    let mut buffer = vec![0u8; 4096];
    while !String::from_utf8_lossy(&received).contains(needle) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
