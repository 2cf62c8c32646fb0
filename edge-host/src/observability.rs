//! `edge-host up`'s flags for seeing what the edge does: the metrics
//! listener (metrics and status page) and the access log, and starting
//! them in the order the hooks need (before the application loads, so its
//! stores resolve their counters).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::app::App;
use crate::observe::access_log::{AccessLogOptions, LogFields, LogFormat};

/// The flags (all off unless given).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ObservabilityFlags {
    /// Serve Prometheus metrics (`/metrics`) and the live status page (`/`)
    /// on this address (IP:PORT, e.g. 127.0.0.1:9090); off unless set.
    #[arg(long, value_name = "IP:PORT")]
    pub metrics_listen: Option<SocketAddr>,
    /// Write one access log line per request to this file (appended), or
    /// `-` for standard output; off unless set.
    #[arg(long, value_name = "PATH")]
    pub access_log: Option<PathBuf>,
    /// The access log's format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Put the query string in access log lines (it can hold personal
    /// data, so by default only the path is logged).
    #[arg(long)]
    pub access_log_query: bool,
    /// Put the client's address in access log lines: the peer's, or behind
    /// `trusted_proxy_hops` proxies the one they report (personal data).
    #[arg(long)]
    pub access_log_client: bool,
    /// Put the client's `User-Agent` in access log lines.
    #[arg(long)]
    pub access_log_user_agent: bool,
    /// Put the request's `Referer` in access log lines.
    #[arg(long)]
    pub access_log_referrer: bool,
}

/// Metrics and logs started, waiting for the application to report on.
pub struct Observer {
    listener: Option<TcpListener>,
}

impl ObservabilityFlags {
    /// Turns on what the flags ask for; call before [`App::load`].
    pub async fn start(&self) -> anyhow::Result<Observer> {
        if let Some(path) = &self.access_log {
            crate::observe::access_log::open(&AccessLogOptions {
                path: path.clone(),
                format: self.log_format,
                query: self.access_log_query,
                fields: LogFields {
                    client: self.access_log_client,
                    user_agent: self.access_log_user_agent,
                    referrer: self.access_log_referrer,
                },
            })?;
        }
        let listener = match self.metrics_listen {
            Some(addr) => {
                crate::observe::metrics::install();
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (--metrics-listen)"))?;
                Some(listener)
            }
            None => None,
        };
        Ok(Observer { listener })
    }
}

impl Observer {
    /// Where the metrics listener is, if it is on.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Reports on `app` and serves the metrics listener in the background.
    /// An application loaded after [`ObservabilityFlags::start`] reports
    /// from its start; one loaded before, from now. Every application the
    /// process loads while metrics are on is reported, their instances
    /// summed as their requests are.
    pub fn serve(self, app: Arc<App>) {
        let (Some(listener), Some(metrics)) = (self.listener, crate::observe::metrics::get())
        else {
            return;
        };
        metrics.report_instances(app.instance_counters());
        tokio::spawn(crate::observe::status_page::serve(listener, metrics));
    }
}
