//! `edge-host up`: the `spin up` of this project.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use edge_host::reuse::PerInstance;
use edge_host::{App, AppOptions, InstanceLimits, ReuseOptions, ServerOptions};

mod allocator;

#[derive(Parser)]
#[command(
    name = "edge-host",
    version,
    about = "Runs Spin HTTP applications on wasmtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod check;
mod hangup;
mod rules_watch;

/// What the application is: the flags `up` and `check` share.
#[derive(Args)]
struct Configuration {
    /// The application manifest, or a directory containing spin.toml.
    #[arg(short = 'f', long = "from", default_value = "spin.toml")]
    manifest: PathBuf,
    /// A Spin-format runtime configuration file.
    #[arg(long = "runtime-config-file")]
    runtime_config: Option<PathBuf>,
    /// Set application variables, as `spin up` does: NAME=VALUE,
    /// NAME=@FILE (the file's content) or @FILE.json / @FILE.toml (names and
    /// string values); may be repeated.
    #[arg(long = "variable")]
    variables: Vec<String>,
}

impl Configuration {
    fn check_inputs(&self) -> check::CheckInputs {
        check::CheckInputs {
            manifest: self.manifest.clone(),
            runtime_config: self.runtime_config.clone(),
            variables: self.variables.clone(),
            environment: std::env::vars().collect(),
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// Check the manifest, runtime config, variables and the cache rules
    /// each component would load, without serving: prints `ok` and a
    /// summary, or each problem (exit 1).
    Check {
        #[command(flatten)]
        configuration: Configuration,
    },
    /// Run a recorded access log (`--log-format json`, best with
    /// `--access-log-query`) through the cache with candidate rules, and
    /// print the predicted hit ratio and origin fetches beside the recorded
    /// ones and the URLs whose decision changes (deterministic).
    Replay {
        /// The recorded access log.
        #[arg(long)]
        log: PathBuf,
        /// The candidate cache rules (JSON); without it, the built-in rules.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// The memory store's size in bytes (the node's `capacity_bytes`).
        #[arg(long, default_value_t = 64 << 20)]
        capacity_bytes: u64,
        /// Other edge-cache variables, NAME=VALUE (e.g. trusted_proxy_hops=1).
        #[arg(long = "variable")]
        variables: Vec<String>,
        /// A header field the origin sends with every answer, 'NAME: VALUE'
        /// (e.g. 'Content-Type: text/html'): stored with each entry, it
        /// takes room in the store as it did live (the log has bodies'
        /// lengths only).
        #[arg(long = "origin-header")]
        origin_headers: Vec<String>,
    },
    /// Start the application (same flags and meaning as `spin up`); broken
    /// cache rules stop it before it listens.
    Up {
        #[command(flatten)]
        configuration: Configuration,
        #[command(flatten)]
        flags: Box<UpFlags>,
    },
}

/// The flags only `up` has.
#[derive(Args)]
struct UpFlags {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// Serve HTTPS (and HTTP/2 by ALPN) with this certificate chain, PEM,
    /// the server's certificate first; needs --tls-key. Both files are
    /// read again on SIGHUP.
    #[arg(long, env = "SPIN_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert's certificate, PEM.
    #[arg(long, env = "SPIN_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Maximum concurrent component instances; also the most requests a
    /// WASI 0.3 component has in flight at once (more wait their turn).
    #[arg(long, default_value_t = edge_host::engine::DEFAULT_MAX_INSTANCES)]
    max_instances: u32,
    /// WASI 0.3 components: requests one instance serves before it is
    /// retired; a count or a range (`1..8`) picked per instance.
    #[arg(long, default_value_t = PerInstance::Value(edge_host::reuse::DEFAULT_MAX_INSTANCE_REUSE_COUNT),
          value_parser = PerInstance::<usize>::parse_count)]
    max_instance_reuse_count: PerInstance<usize>,
    /// WASI 0.3 components: requests one instance serves at once; a
    /// count or a range picked per instance.
    #[arg(long, default_value_t = PerInstance::Value(edge_host::reuse::DEFAULT_MAX_INSTANCE_CONCURRENT_REUSE_COUNT),
          value_parser = PerInstance::<usize>::parse_count)]
    max_instance_concurrent_reuse_count: PerInstance<usize>,
    /// WASI 0.3 components: how long an idle instance is kept for the
    /// next request: `1s`, `500ms`, `250us`, `10ns` (no suffix: seconds),
    /// or a range (`1..8s`) picked per instance.
    #[arg(long, default_value_t = PerInstance::Value(edge_host::reuse::DEFAULT_IDLE_INSTANCE_TIMEOUT),
          value_parser = PerInstance::<Duration>::parse_duration)]
    idle_instance_timeout: PerInstance<Duration>,
    /// Wall-clock limit per request, in milliseconds (edge-host only).
    #[arg(long, default_value_t = edge_host::limits::DEFAULT_REQUEST_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout_ms: u64,
    /// Linear-memory limit per instance, in MiB, at most 4096 (edge-host
    /// only); a reused instance's across all its requests.
    #[arg(long, default_value_t = (edge_host::limits::DEFAULT_MAX_MEMORY_BYTES >> 20) as u64,
          value_parser = edge_host::engine::parse_max_memory_mb)]
    max_memory_mb: u64,
    /// Largest request body accepted, in bytes; larger ones get 413
    /// (nginx's client_max_body_size).
    #[arg(long, default_value_t = edge_host::request_body::DEFAULT_MAX_REQUEST_BODY_BYTES,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_request_body_bytes: u64,
    /// Time a client has to send a request's header section, in
    /// milliseconds (nginx's client_header_timeout).
    #[arg(long, default_value_t = edge_host::connection::DEFAULT_CLIENT_HEADER_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    client_header_timeout_ms: u64,
    /// How long an idle keep-alive connection is kept, in milliseconds;
    /// 0 turns keep-alive off (nginx's keepalive_timeout).
    #[arg(long, default_value_t = edge_host::connection::DEFAULT_KEEPALIVE_TIMEOUT.as_millis() as u64)]
    keepalive_timeout_ms: u64,
    /// Connections open at once. Beyond it a new connection takes the
    /// place of the one idle longest; only when all are serving a
    /// request is it answered 503 and closed. Lowered at start if the
    /// open-file limit cannot hold it.
    #[arg(long, default_value_t = edge_host::connection::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_connections: u32,
    /// Connections open at once from one client address, with the same
    /// rule among its own connections; 0: no such limit (set 0 behind a
    /// load balancer, where every connection comes from its address).
    #[arg(long, default_value_t = edge_host::connection::DEFAULT_MAX_CONNECTIONS_PER_CLIENT)]
    max_connections_per_client: u32,
    #[command(flatten)]
    observability: edge_host::observability::ObservabilityFlags,
    /// Idle keep-alive connections kept per origin for the next miss;
    /// 0 turns pooling off (a new connection per origin request).
    #[arg(long, default_value_t = edge_host::outbound_http::pool::DEFAULT_MAX_IDLE_PER_ORIGIN)]
    origin_pool_idle: usize,
    /// How long an idle origin connection is kept, in milliseconds (less
    /// if the origin's `Keep-Alive: timeout` says so).
    #[arg(long, default_value_t = edge_host::outbound_http::pool::DEFAULT_IDLE_TIMEOUT.as_millis() as u64)]
    origin_pool_idle_timeout_ms: u64,
    /// Serving threads, each with its own runtime, accept loop and WASI
    /// 0.3 instances (default: one per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    serving_threads: Option<u32>,
    /// Send every request to the component (edge-host only). By default
    /// edge-host answers an edge-cache component's GET and HEAD requests
    /// without a body (fresh hits, misses, revalidations, passes) itself,
    /// with the same core, without entering Wasm.
    #[arg(long)]
    no_native_hits: bool,
}

fn main() -> ExitCode {
    allocator::keep_freed_memory();
    // Log lines are handed to a writer thread, so no request waits on a
    // slow or blocked stderr; lossless (a full queue makes the logger
    // wait), and flushed when `_log_writer` drops at exit.
    let (log_writer, _log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime_wasi_http=warn".into()),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("edge-host: error: {error:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Check { configuration } => run_check(&configuration),
        Command::Replay {
            log,
            rules,
            capacity_bytes,
            variables,
            origin_headers,
        } => run_replay(
            &log,
            rules.as_deref(),
            capacity_bytes,
            &variables,
            &origin_headers,
        ),
        Command::Up {
            configuration,
            flags,
        } => run_up(configuration, *flags),
    }
}

/// `edge-host replay`.
fn run_replay(
    log: &std::path::Path,
    rules: Option<&std::path::Path>,
    capacity_bytes: u64,
    variables: &[String],
    origin_headers: &[String],
) -> anyhow::Result<()> {
    let read = |path: &std::path::Path| {
        std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
    };
    let variables = variables
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.to_owned())),
            None => Err(anyhow::anyhow!("--variable {pair}: expected NAME=VALUE")),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let origin_headers = origin_headers
        .iter()
        .map(|field| match field.split_once(':') {
            Some((name, value)) => Ok((name.trim().to_owned(), value.trim().to_owned())),
            None => Err(anyhow::anyhow!(
                "--origin-header {field}: expected 'NAME: VALUE'"
            )),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let options = edge_host::replay::ReplayOptions {
        log: read(log)?,
        rules: rules.map(read).transpose()?.unwrap_or_default(),
        capacity_bytes,
        variables,
        origin_headers,
    };
    let report = edge_host::replay::replay(&options)
        .map_err(|e| anyhow::anyhow!("{}: {e}", log.display()))?;
    print!("{report}");
    Ok(())
}

/// `edge-host check`.
fn run_check(configuration: &Configuration) -> anyhow::Result<()> {
    let checked = check::check(&configuration.check_inputs())?;
    let problems = checked.problems();
    if problems.is_empty() {
        println!("{}", checked.summary());
        return Ok(());
    }
    for problem in &problems {
        eprintln!("edge-host: error: {problem}");
    }
    anyhow::bail!(
        "{} problem{} found",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    )
}

/// `edge-host up`: the same check as `check` first, then serving.
fn run_up(configuration: Configuration, flags: UpFlags) -> anyhow::Result<()> {
    let UpFlags {
        listen,
        tls_cert,
        tls_key,
        max_instances,
        max_instance_reuse_count,
        max_instance_concurrent_reuse_count,
        idle_instance_timeout,
        request_timeout_ms,
        max_memory_mb,
        max_request_body_bytes,
        no_native_hits,
        client_header_timeout_ms,
        keepalive_timeout_ms,
        max_connections,
        max_connections_per_client,
        observability,
        origin_pool_idle,
        origin_pool_idle_timeout_ms,
        serving_threads,
    } = flags;
    // First: a certificate that cannot be served stops it.
    let tls = match (&tls_cert, &tls_key) {
        (Some(cert), Some(key)) => Some(edge_host::net::tls::TlsTermination::load(cert, key)?),
        _ => None,
    };
    if let Some(tls) = &tls {
        tracing::info!("TLS certificate {}", tls.summary());
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    // Before anything is opened or compiled: rules the component could not
    // load would have it proxy without caching, so the edge does not start.
    let checked = check::check(&configuration.check_inputs())?;
    let problems = checked.problems();
    if !problems.is_empty() {
        anyhow::bail!(
            "{}; not serving with broken cache rules (`edge-host check` lists every problem)",
            problems.join("; ")
        );
    }
    let lanes = serving_threads.map_or_else(edge_host::lanes::default_count, |n| n as usize);
    let open_files = edge_host::open_files::raise_open_file_limit();
    let (max_connections, lowered) =
        edge_host::open_files::fit_connections(max_connections, open_files);
    if let Some(why) = lowered {
        tracing::warn!("{why}");
    }
    let server = ServerOptions {
        tls,
        max_request_body_bytes,
        client_header_timeout: Duration::from_millis(client_header_timeout_ms),
        keepalive_timeout: Duration::from_millis(keepalive_timeout_ms),
        max_connections,
        max_connections_per_client,
        ..ServerOptions::default()
    };
    // This runtime loads the app and runs what is not a request: the
    // metrics listener, store connections, the shutdown signal. Requests
    // are served by the lanes' own runtimes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    // Before anything slow: from here on a SIGHUP cannot stop the process
    // (one that comes while loading is acted on once serving).
    let hangups = runtime.block_on(async { hangup::catch() })?;
    let manifest_path = check::manifest_path(&configuration.manifest);
    let manifest = edge_host::manifest::Manifest::load(&manifest_path)?;
    let variable_flags = configuration.variables.clone();
    let (app, listener) = runtime.block_on(async move {
        let options = AppOptions {
            manifest: configuration.manifest,
            runtime_config: configuration.runtime_config,
            variables: configuration.variables,
            environment: std::env::vars().collect(),
            cache_dir: None,
            max_instances: Some(max_instances),
            limits: Some(InstanceLimits {
                request_timeout: Duration::from_millis(request_timeout_ms),
                max_memory_bytes: (max_memory_mb as usize) << 20,
            }),
            reuse: Some(ReuseOptions {
                max_instance_reuse_count,
                max_instance_concurrent_reuse_count,
                idle_instance_timeout,
            }),
            store_overrides: Default::default(),
            origin_pool: Some(edge_host::outbound_http::PoolOptions {
                max_idle_per_origin: origin_pool_idle,
                idle_timeout: Duration::from_millis(origin_pool_idle_timeout_ms),
            }),
            native_hits: !no_native_hits,
        };
        let observer = observability.start().await?;
        let app = Arc::new(App::load_for_lanes(&options, lanes)?);
        if let Some(addr) = observer.metrics_addr() {
            eprintln!("edge-host: metrics on http://{addr}/metrics, status page on http://{addr}/");
        }
        observer.serve(app.clone());
        let metrics = edge_host::observe::metrics::get();
        let rules = rules_watch::WatchedRules::new(checked.rules, metrics);
        if metrics.is_some() {
            tokio::spawn(rules.clone().poll());
        }
        tokio::spawn(hangup::reload_on_hangups(
            hangups,
            hangup::Reloader {
                app: app.clone(),
                manifest,
                manifest_path,
                variable_flags,
                rules,
            },
        ));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
        let address = listener.local_addr()?;
        eprintln!(
            "edge-host: {lanes} serving thread{}",
            if lanes == 1 { "" } else { "s" }
        );
        eprintln!(
            "edge-host: serving `{}` on {scheme}://{address}",
            app.name()
        );
        anyhow::Ok((app, listener.into_std()?))
    })?;
    runtime.spawn(async move {
        shutdown_signal().await;
        let _ = stop.send(true);
    });
    edge_host::serve_in_lanes(app, listener, server, lanes, stopping)?;
    edge_host::access_log::flush();
    eprintln!("edge-host: stopped");
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(signal) => signal,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}
