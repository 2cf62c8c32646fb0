//! `origin`: the origin service behind the edge.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use origin::server::{OriginConfig, serve};

#[derive(Parser)]
#[command(
    name = "origin",
    version,
    about = "The origin service behind edge-cache"
)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Directory of static assets.
    #[arg(long, default_value = "fixtures/static")]
    static_dir: PathBuf,
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
    if !cli.static_dir.is_dir() {
        anyhow::bail!("--static-dir {}: not a directory", cli.static_dir.display());
    }
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", cli.listen))?;
    eprintln!(
        "origin: serving {} on http://{}",
        cli.static_dir.display(),
        listener.local_addr()?
    );
    let config = OriginConfig {
        static_dir: cli.static_dir,
    };
    tokio::select! {
        result = serve(config, listener) => result?,
        _ = tokio::signal::ctrl_c() => eprintln!("origin: stopped"),
    }
    Ok(())
}
