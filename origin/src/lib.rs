//! The origin service: a product catalog that owns its data in SQLite,
//! sends the caching headers a well-run origin sends, and purges the edge
//! after every write through a transactional outbox.
//!
//! ```no_run
//! # async fn run() -> origin::Result<()> {
//! let config = origin::Config::new(
//!     "origin-data/origin.db".into(),
//!     "fixtures/static".into(),
//!     "fixtures/seed/products.json".into(),
//! );
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await
//!     .map_err(|e| origin::Error::Config(e.to_string()))?;
//! let running = origin::start(config, listener).await?;
//! // ... later
//! running.stop().await;
//! # Ok(()) }
//! ```

pub mod asset_fallback;
pub mod assets;
pub mod backoff;
pub mod caching;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod migrations;
pub mod money;
pub mod outbox;
pub mod pages;
pub mod product_input;
mod purge_worker;
pub mod request_params;
mod server;
pub mod static_files;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

pub use backoff::Backoff;
pub use config::{Config, EdgeTarget};
pub use error::{Error, Result};
pub use outbox::OutboxStatus;

use crate::assets::Manifest;
use crate::db::Db;

/// A running origin: the HTTP server and the purge worker.
pub struct Origin {
    addr: SocketAddr,
    db: Db,
    outbox: watch::Receiver<OutboxStatus>,
    shutdown: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    worker: Option<JoinHandle<()>>,
}

/// Opens (creating, migrating and seeding) the database, hashes the
/// assets, and serves on `listener`; purges pending from an earlier run
/// are delivered as soon as the worker starts.
pub async fn start(config: Config, listener: TcpListener) -> Result<Origin> {
    if config.admin_token.is_empty() {
        return Err(Error::Config("the admin token must not be empty".into()));
    }
    let endpoint = config.edge.endpoint()?;
    let asset_base = config.asset_base()?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Config(format!("listener: {e}")))?;
    let opened = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || open(&config))
            .await
            .map_err(|e| Error::Task(e.to_string()))?
    };
    let (db, assets) = opened?;
    let assets = assets.with_edge(&asset_base);
    let status = db.read(outbox::status).await?;
    let (status_tx, outbox) = watch::channel(status);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let wake = Arc::new(Notify::new());
    let worker = purge_worker::Worker {
        db: db.clone(),
        endpoint,
        backoff: config.edge.backoff,
        timeout: config.edge.timeout,
        wake: wake.clone(),
        status: status_tx,
        shutdown: shutdown_rx.clone(),
    };
    let state = Arc::new(server::State {
        db: db.clone(),
        assets,
        static_dir: config.static_dir.clone(),
        admin_token: blake3::hash(config.admin_token.as_bytes()),
        max_body_bytes: config.max_body_bytes,
        wake,
    });
    Ok(Origin {
        addr,
        db,
        outbox,
        shutdown,
        worker: Some(tokio::spawn(worker.run())),
        server: Some(tokio::spawn(server::serve(state, listener, shutdown_rx))),
    })
}

fn open(config: &Config) -> Result<(Db, Manifest)> {
    if !config.static_dir.is_dir() {
        return Err(Error::Config(format!(
            "static directory {} does not exist",
            config.static_dir.display()
        )));
    }
    let (db, _) = Db::open(&config.db_path)?;
    db.write_now(|conn| {
        // The seed is read only for a database that was never written, so
        // it may be gone once the origin has run.
        if catalog::changed_at_ms(conn)? != 0 {
            return Ok(());
        }
        let seed_error = |message: String| Error::Seed {
            path: config.seed_path.clone(),
            message,
        };
        let bytes = std::fs::read(&config.seed_path).map_err(|e| seed_error(e.to_string()))?;
        let products = product_input::parse_seed(&bytes).map_err(|e| seed_error(e.0))?;
        let added = catalog::seed(conn, &products, db::now_ms())?;
        tracing::info!(products = added, "catalog seeded");
        Ok(())
    })?;
    let assets = Manifest::build(&config.static_dir)?;
    Ok((db, assets))
}

impl Origin {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The outbox as the purge worker last saw it; changes after every
    /// delivery attempt.
    pub fn outbox(&self) -> watch::Receiver<OutboxStatus> {
        self.outbox.clone()
    }

    /// Waits until every purge committed so far has been acknowledged by
    /// the edge (forever if it never is: callers bound the wait).
    pub async fn purges_delivered(&self) -> Result<()> {
        let target = self.db.read(|c| Ok(outbox::status(c)?.last_id)).await?;
        let mut outbox = self.outbox.clone();
        outbox
            .wait_for(|s| s.delivered_through >= target)
            .await
            .map(|_| ())
            .map_err(|_| Error::Task("the purge worker stopped".into()))
    }

    /// Stops accepting, finishes open requests, stops the worker (pending
    /// purges stay in the outbox for the next start).
    pub async fn stop(mut self) {
        self.shutdown.send_replace(true);
        for task in [self.server.take(), self.worker.take()]
            .into_iter()
            .flatten()
        {
            let _ = task.await;
        }
    }
}

/// Resolves once `shutdown` turns true (or its sender is gone).
pub(crate) async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns must not live across an await.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}
