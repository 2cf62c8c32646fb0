//! Shared set-up: a real origin on a loopback port with its database in a
//! temporary directory.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use origin::{Backoff, Config, Origin};

pub const ADMIN: &str = "admin-token-for-tests";
pub const PURGE: &str = "purge-token-for-tests";

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures")
}

/// A configuration with fast retries, purging `edge_url`.
pub fn config(dir: &Path, edge_url: &str) -> Config {
    let mut config = Config::new(
        dir.join("data/origin.db"),
        fixtures().join("static"),
        fixtures().join("seed/products.json"),
    );
    config.admin_token = ADMIN.into();
    config.edge.url = edge_url.into();
    config.edge.purge_token = PURGE.into();
    config.edge.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
    };
    config.edge.timeout = Duration::from_secs(2);
    config
}

pub async fn start(config: Config) -> Origin {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    origin::start(config, listener)
        .await
        .expect("origin starts")
}

/// A loopback URL nothing listens on: an edge that is down.
pub fn down_edge() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
}

/// Waits (bounded) until the outbox satisfies `ready`.
pub async fn outbox_until(origin: &Origin, ready: impl Fn(&origin::OutboxStatus) -> bool) {
    let mut outbox = origin.outbox();
    tokio::time::timeout(Duration::from_secs(10), outbox.wait_for(|s| ready(s)))
        .await
        .expect("outbox reaches the expected state in time")
        .expect("worker alive");
}

/// Waits (bounded) until every committed purge is acknowledged.
pub async fn delivered(origin: &Origin) {
    tokio::time::timeout(Duration::from_secs(10), origin.purges_delivered())
        .await
        .expect("purges delivered in time")
        .expect("worker alive");
}

pub fn product_json(usd: i64) -> String {
    format!(
        r#"{{"name": "Ceramic Mug", "description": "Now bigger.", "prices": {{"USD": {usd}, "EUR": 1300, "KRW": 18000}}, "stock": 7}}"#
    )
}

pub async fn admin(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<String>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap())
}
