//! `origin`: the origin service behind the edge.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use origin::config::DEV_ADMIN_TOKEN;
use origin::{Backoff, Config, EdgeTarget};

#[derive(Parser)]
#[command(
    name = "origin",
    version,
    about = "The origin service behind edge-cache"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, env = "ORIGIN_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The SQLite database; created (with its directory) and seeded if
    /// missing.
    #[arg(long, env = "ORIGIN_DB", default_value = "origin-data/origin.db")]
    db: PathBuf,
    /// Directory of static assets.
    #[arg(long, env = "ORIGIN_STATIC_DIR", default_value = "fixtures/static")]
    static_dir: PathBuf,
    /// Products for a new database.
    #[arg(
        long,
        env = "ORIGIN_SEED",
        default_value = "fixtures/seed/products.json"
    )]
    seed: PathBuf,
    /// The edge whose cache writes purge.
    #[arg(long, env = "ORIGIN_EDGE_URL", default_value = "http://127.0.0.1:3000")]
    edge_url: String,
    /// Where browsers load the pages' assets from, falling back to the
    /// origin when it does not answer: the edge's public URL. Default: the
    /// edge URL; empty: assets from whichever host served the page.
    #[arg(long, env = "ORIGIN_ASSET_URL")]
    asset_url: Option<String>,
    /// The edge's `admin_path` variable.
    #[arg(long, env = "ORIGIN_EDGE_ADMIN_PATH", default_value = "/_edge")]
    edge_admin_path: String,
    /// The edge's `purge_token` (the same variable the edge reads). Empty:
    /// purges are recorded but not sent until an origin with a token runs.
    #[arg(
        long,
        env = "SPIN_VARIABLE_PURGE_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    purge_token: String,
    /// Bearer token of /admin/...
    #[arg(
        long,
        env = "ORIGIN_ADMIN_TOKEN",
        default_value = DEV_ADMIN_TOKEN,
        hide_env_values = true
    )]
    admin_token: String,
    /// Delay after the first failed purge delivery (doubles per failure).
    #[arg(long, default_value_t = 500)]
    purge_backoff_initial_ms: u64,
    /// Longest delay between purge delivery attempts.
    #[arg(long, default_value_t = 30_000)]
    purge_backoff_max_ms: u64,
    /// How long to wait for the edge's answer to a purge.
    #[arg(long, default_value_t = 5_000)]
    purge_timeout_ms: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if cli.admin_token == DEV_ADMIN_TOKEN {
        tracing::warn!("using the development admin token; set ORIGIN_ADMIN_TOKEN in production");
    }
    let config = Config {
        admin_token: cli.admin_token,
        asset_url: cli.asset_url,
        edge: EdgeTarget {
            url: cli.edge_url,
            admin_path: cli.edge_admin_path,
            purge_token: cli.purge_token,
            backoff: Backoff {
                initial: Duration::from_millis(cli.purge_backoff_initial_ms),
                max: Duration::from_millis(cli.purge_backoff_max_ms),
            },
            timeout: Duration::from_millis(cli.purge_timeout_ms),
        },
        ..Config::new(cli.db, cli.static_dir, cli.seed)
    };
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
    let running = origin::start(config, listener).await?;
    eprintln!("origin: http://{}", running.addr());
    stopped().await?;
    running.stop().await;
    eprintln!("origin: stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what `scripts/up` sends).
async fn stopped() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = term.recv() => {}
    }
    Ok(())
}
