//! The `type = "redis"` backend: a Redis (or Valkey) server, configured as
//! Spin configures it (`url = "redis://…"`), so one runtime-config file
//! serves `spin up`, SpinKube and edge-host. Keys are stored as the guest
//! names them, without a prefix, as Spin's own Redis backend does, so an
//! application moved between runtimes finds its data.
//!
//! One multiplexed connection per store ([`ConnectionManager`]): concurrent
//! requests' commands share it and are pipelined on the wire. A broken
//! connection is re-established by the manager on the next command. Every
//! command is bounded by [`COMMAND_DEADLINE`] on top of the manager's own
//! connect and response timeouts (its reconnect backoff is not bounded by
//! those), so a server that is down, slow or unreachable is a store error
//! within that time, never a hang.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::{StoreBackend, StoreError};

/// How long connecting to the server may take (start-up probe and reconnects).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long the server has to answer one command.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);
/// The most one command may take, reconnecting included.
pub const COMMAND_DEADLINE: Duration = Duration::from_millis(1500);

/// A key-value store kept in a Redis or Valkey server.
pub struct RedisStore {
    client: redis::Client,
    /// The URL with its password replaced, for messages.
    shown_url: String,
    /// Created on the first command, inside the runtime that serves requests
    /// (the manager spawns its tasks there).
    manager: OnceCell<ConnectionManager>,
}

impl RedisStore {
    /// Checks `url` and that the server answers `PING`, so a wrong URL is an
    /// error at start-up naming the store and the URL (password redacted),
    /// not a failure of every request later.
    pub fn open(label: &str, url: &str) -> Result<Self, String> {
        let shown_url = redact_url(url);
        let failed = |what: &str, e: &dyn std::fmt::Display| {
            format!("key_value_store.{label}: redis url `{shown_url}`: {what}: {e}")
        };
        // The client's own messages never include the URL; they are shown
        // as they are.
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| failed("not a valid Redis URL", &e))?
            // Commands of concurrent requests share the connection: send
            // each at once rather than wait for the previous one's ACK.
            .set_tcp_settings(redis::io::tcp::TcpSettings::default().set_nodelay(true));
        let client = redis::Client::open(info).map_err(|e| failed("not a valid Redis URL", &e))?;
        let mut probe = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| failed("cannot connect", &e))?;
        probe
            .set_read_timeout(Some(RESPONSE_TIMEOUT))
            .and_then(|()| probe.set_write_timeout(Some(RESPONSE_TIMEOUT)))
            .map_err(|e| failed("cannot connect", &e))?;
        redis::cmd("PING")
            .query::<String>(&mut probe)
            .map_err(|e| failed("the server did not answer PING", &e))?;
        Ok(RedisStore {
            client,
            shown_url,
            manager: OnceCell::new(),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, StoreError> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            // One quick retry: a restarted server is found again at once,
            // and a dead one fails the command instead of queueing it.
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(100));
        let manager = self
            .manager
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .map_err(|e| self.error(&e))?;
        Ok(manager.clone())
    }

    fn error(&self, e: &dyn std::fmt::Display) -> StoreError {
        StoreError::Backend(format!("redis {}: {e}", self.shown_url))
    }

    /// Runs `command`, bounded by [`COMMAND_DEADLINE`]. A command that met
    /// a broken connection is sent once more: the manager starts
    /// reconnecting when it sees the break, so the first command after a
    /// server restart need not fail (every command here is idempotent).
    async fn run<T: redis::FromRedisValue>(&self, command: redis::Cmd) -> Result<T, StoreError> {
        let mut connection = self.connection().await?;
        let attempts = async {
            match command.query_async(&mut connection).await {
                Err(e) if e.is_io_error() || e.is_connection_dropped() => {
                    command.query_async(&mut connection).await
                }
                other => other,
            }
        };
        match tokio::time::timeout(COMMAND_DEADLINE, attempts).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(self.error(&e)),
            Err(_) => Err(self.error(&format!(
                "no answer within {} ms",
                COMMAND_DEADLINE.as_millis()
            ))),
        }
    }
}

#[async_trait::async_trait]
impl StoreBackend for RedisStore {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.run(redis::cmd("GET").arg(key).clone()).await
    }

    async fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StoreError> {
        self.run(redis::cmd("SET").arg(key).arg(value).clone())
            .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.run::<i64>(redis::cmd("DEL").arg(key).clone())
            .await
            .map(drop)
    }

    async fn exists(&self, key: &str) -> Result<bool, StoreError> {
        self.run(redis::cmd("EXISTS").arg(key).clone()).await
    }

    /// Every key, by `SCAN` (never `KEYS`, which blocks the server while it
    /// walks the whole keyspace).
    async fn get_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut keys = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = self
                .run(
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                )
                .await?;
            keys.extend(batch);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }
}

/// `url` with any password replaced by `***`: in the userinfo
/// (`redis://user:secret@host`) and in a `pass`/`password` query parameter.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => format!("{userinfo}@{host}"),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _)) if matches!(name, "pass" | "password") => {
                        format!("{name}=***")
                    }
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    match scheme {
        Some(scheme) => format!("{scheme}://{authority}{tail}"),
        None => format!("{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_wherever_the_url_carries_them() {
        let cases = [
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            (
                "redis://user:s3cret@cache.example:6379/2",
                "redis://user:***@cache.example:6379/2",
            ),
            (
                "redis://:s3cret@cache.example",
                "redis://:***@cache.example",
            ),
            ("redis://user@cache.example", "redis://user@cache.example"),
            (
                "redis+unix:///run/redis.sock?db=1&pass=s3cret",
                "redis+unix:///run/redis.sock?db=1&pass=***",
            ),
            ("not a url :s3cret@x", "not a url :***@x"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact_url(url), shown, "{url}");
        }
    }

    #[test]
    fn a_malformed_url_is_refused_naming_the_store_without_the_password() {
        let err = RedisStore::open("shared", "redis://user:s3cret@exa mple:notaport")
            .err()
            .expect("malformed");
        assert!(err.contains("key_value_store.shared"), "{err}");
        assert!(err.contains("redis://user:***@exa mple:notaport"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn an_unreachable_server_is_refused_at_open() {
        // A port just released by the OS: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://:s3cret@127.0.0.1:{port}");
        let err = RedisStore::open("shared", &url).err().expect("unreachable");
        assert!(err.contains("key_value_store.shared"), "{err}");
        assert!(err.contains("cannot connect"), "{err}");
        assert!(
            err.contains(&format!("redis://:***@127.0.0.1:{port}")),
            "{err}"
        );
        assert!(!err.contains("s3cret"), "{err}");
    }

    /// A `redis-server` on `port` (found on PATH), killed when dropped.
    struct Server(std::process::Child);

    impl Server {
        fn start(port: u16) -> Server {
            let child = std::process::Command::new("redis-server")
                .args([
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    &port.to_string(),
                    "--save",
                    "",
                ])
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run redis-server ({e}): apt-get install redis-server")
                });
            // Owned at once, so a failed start still kills it.
            let server = Server(child);
            // Ready when it answers PING (its readiness signal).
            let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
            for _ in 0..500 {
                if let Ok(mut c) = client.get_connection_with_timeout(CONNECT_TIMEOUT)
                    && redis::cmd("PING").query::<String>(&mut c).is_ok()
                {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            panic!("redis-server on {port} never answered PING");
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn a_dead_server_is_a_prompt_store_error_and_a_restarted_one_is_used_again() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Server::start(port);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let store = RedisStore::open("shared", &format!("redis://127.0.0.1:{port}")).unwrap();
        runtime.block_on(async {
            store.set("k", b"v".to_vec()).await.unwrap();
            assert_eq!(store.get("k").await.unwrap(), Some(b"v".to_vec()));
            assert!(store.exists("k").await.unwrap());
            assert_eq!(store.get_keys().await.unwrap(), vec!["k".to_owned()]);
            store.delete("k").await.unwrap();
            assert_eq!(store.get("k").await.unwrap(), None);
        });
        drop(server);
        runtime.block_on(async {
            for _ in 0..3 {
                let started = std::time::Instant::now();
                let err = store.get("k").await.unwrap_err();
                assert!(started.elapsed() <= COMMAND_DEADLINE + Duration::from_millis(200));
                assert!(err.to_string().contains("redis redis://127.0.0.1"), "{err}");
            }
        });
        let _server = Server::start(port);
        runtime.block_on(async {
            // The first command after the restart meets the broken
            // connection, and is sent again on a new one.
            store.set("k", b"again".to_vec()).await.unwrap();
            assert_eq!(store.get("k").await.unwrap(), Some(b"again".to_vec()));
        });
    }
}
