//! `edge-host up` as a process: start-up errors, flag errors, graceful
//! shutdown, signals, descriptor limits, and what a failed instance leaves
//! in the log.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_edge-host");

fn run_up(dir: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .current_dir(dir)
        .args(["up", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("EDGE_HOST_CACHE_DIR", dir.join("cache"))
        .output()
        .expect("run edge-host");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const MANIFEST: &str = r#"spin_manifest_version = 2
[application]
name = "t"
[variables]
origin_url = { default = "http://127.0.0.1:9" }
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "c.wasm"
key_value_stores = ["default"]
"#;

/// Every start-up mistake is one line naming the file and field, exit 1.
#[test]
fn startup_errors_are_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["-f".into(), "missing.toml".into()], "missing.toml"),
        (
            vec![
                "-f".into(),
                write(
                    d,
                    "typo.toml",
                    &MANIFEST.replace("key_value_stores", "kv_stores"),
                )
                .display()
                .to_string(),
            ],
            "kv_stores",
        ),
        (
            vec![
                "-f".into(),
                write(
                    d,
                    "nostore.toml",
                    &MANIFEST.replace("[\"default\"]", "[\"other\"]"),
                )
                .display()
                .to_string(),
            ],
            "component.c.key_value_stores",
        ),
        (
            vec![
                "-f".into(),
                write(d, "ok.toml", MANIFEST).display().to_string(),
                "--variable".into(),
                "nope=1".into(),
            ],
            "--variable nope",
        ),
        (
            vec![
                "-f".into(),
                d.join("ok.toml").display().to_string(),
                "--runtime-config-file".into(),
                write(
                    d,
                    "rc.toml",
                    "[key_value_store.default]\ntype = \"mystery\"\n",
                )
                .display()
                .to_string(),
            ],
            "rc.toml",
        ),
        (
            vec!["-f".into(), d.join("ok.toml").display().to_string()],
            "component.c.source",
        ),
    ];
    for (args, needle) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stderr) = run_up(d, &args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        let error_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(error_lines.len(), 1, "{args:?}: {stderr}");
        assert!(
            error_lines[0].contains(needle),
            "expected `{needle}` in: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

fn component() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/edge_cache_p2.wasm");
    path.exists().then_some(path)
}

/// An origin that answers each request after `delay`, on a thread; it
/// signals on the returned channel when a request has arrived.
fn slow_origin(delay: Duration) -> (u16, std::sync::mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (arrived, arrivals) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let arrived = arrived.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok() && line != "\r\n" {
                    line.clear();
                }
                let _ = arrived.send(());
                std::thread::sleep(delay);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nconnection: close\r\n\r\nslow",
                );
            });
        }
    });
    (port, arrivals)
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
    }
}

/// SIGTERM stops accepting, lets the in-flight request finish, exits 0.
#[test]
fn sigterm_finishes_in_flight_requests_then_exits_0() {
    let Some(wasm) = component() else {
        panic!("component missing: run `make wasm` first (make test does)");
    };
    let dir = tempfile::tempdir().unwrap();
    let (origin_port, arrivals) = slow_origin(Duration::from_millis(1500));
    let manifest = write(
        dir.path(),
        "spin.toml",
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n[variables]\norigin_url = {{ required = true }}\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\n\
             allowed_outbound_hosts = [\"{{{{ origin_url }}}}\"]\n[component.c.variables]\norigin_url = \"{{{{ origin_url }}}}\"\n",
            wasm.display().to_string()
        ),
    );
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Running(
        Command::new(BIN)
            .args(["up", "-f"])
            .arg(&manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--variable",
                &format!("origin_url=http://127.0.0.1:{origin_port}"),
            ])
            .env(
                "EDGE_HOST_CACHE_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
            )
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Wait for the "serving" line: the signal that the listener is bound.
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("serving") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "edge-host exited before serving"
        );
    }

    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .unwrap();
    // The request is in flight once the origin (which holds it 1.5 s) has it.
    arrivals
        .recv_timeout(Duration::from_secs(10))
        .expect("request reached the origin");
    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("slow"), "{response}");
    let exit = child.0.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
    // And it no longer accepts connections.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// Flag values out of range are refused by name, before anything starts.
#[test]
fn bad_server_flag_values_are_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--max-request-body-bytes", "0"),
        ("--max-request-body-bytes", "16MiB"),
        ("--client-header-timeout-ms", "0"),
        ("--keepalive-timeout-ms", "soon"),
        ("--max-connections", "0"),
        ("--max-instance-reuse-count", "0"),
        ("--max-instance-reuse-count", "8..2"),
        ("--max-instance-concurrent-reuse-count", "many"),
        ("--idle-instance-timeout", "1m"),
        ("--idle-instance-timeout", "1.5s"),
        ("--serving-threads", "0"),
        ("--serving-threads", "two"),
        ("--max-memory-mb", "0"),
        ("--max-memory-mb", "5000"),
        ("--max-memory-mb", "18446744073709551615"),
    ] {
        let (code, stderr) = run_up(dir.path(), &[flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        if flag == "--max-memory-mb" {
            assert!(
                stderr.contains("the largest accepted value is 4096"),
                "{value}: {stderr}"
            );
        }
    }
}

/// The reuse flags take Spin's syntax: counts or ranges, durations with
/// Spin's units (the run then stops at the missing manifest, not at a flag).
#[test]
fn reuse_flags_take_spins_syntax() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [
        ("--max-instance-reuse-count", "1"),
        ("--max-instance-reuse-count", "1..8"),
        ("--max-instance-concurrent-reuse-count", "16"),
        ("--idle-instance-timeout", "1s"),
        ("--idle-instance-timeout", "500ms"),
        ("--idle-instance-timeout", "2"),
        ("--idle-instance-timeout", "1..8s"),
    ] {
        let (code, stderr) = run_up(dir.path(), &["-f", "missing.toml", flag, value]);
        assert_eq!(code, 1, "{flag} {value}: {stderr}");
        assert!(stderr.contains("missing.toml"), "{flag} {value}: {stderr}");
    }
}

/// A failed instance: the client gets an error id and no detail; the log
/// has the detail under the same id.
#[test]
fn a_failed_instance_is_logged_in_full_under_the_error_id_the_client_got() {
    failed_instance_is_logged_under_the_error_id("misbehaving_component");
}

/// The same for a reused WASI 0.3 instance: the detail comes from the
/// instance's worker, under the error id of the request that failed it.
#[test]
fn a_failed_p3_instance_is_logged_in_full_under_the_error_id_the_client_got() {
    failed_instance_is_logged_under_the_error_id("misbehaving_component_p3");
}

fn failed_instance_is_logged_under_the_error_id(component: &str) {
    let edge = Serving::start(component, "", &["--max-memory-mb", "32"]);
    let next_line = || edge.next_line();
    let address = edge.address.clone();

    let mut client = TcpStream::connect(&address).unwrap();
    client
        .write_all(b"GET /grow HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
        .unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 500"), "{response}");
    let id = response
        .split("(error id ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no error id in {response}"))
        .to_owned();
    assert!(!response.contains("backtrace"), "{response}");

    let logged = loop {
        let line = next_line();
        if line.contains(&id) {
            break line;
        }
    };
    assert!(logged.contains("ERROR"), "{logged}");
    assert!(logged.contains("GET /grow: error id"), "{logged}");
    // The detail the client did not get: the trap and where it happened.
    assert!(logged.contains("memory"), "{logged}");
    assert!(logged.contains("wasm backtrace"), "{logged}");
    // Then one line per frame under the same id, with demangled names.
    let count: usize = logged
        .split("(wasm backtrace: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no frame count in {logged}"));
    let frames: Vec<String> = (0..count).map(|_| next_line()).collect();
    for (n, frame) in frames.iter().enumerate() {
        assert!(
            frame.contains(&format!("error id {id}: frame {n}: ")),
            "{frame}"
        );
    }
    assert!(
        frames.iter().any(|f| f.contains("grow_forever")),
        "{frames:#?}"
    );
    assert!(
        !frames
            .iter()
            .any(|f| f.contains("_ZN") || f.contains("_RN")),
        "mangled: {frames:#?}"
    );
}

/// A response body that breaks off is logged once, in words, at warn:
/// what was sent of what was declared, and why.
#[test]
fn a_broken_off_body_is_logged_once_in_words() {
    for (component, why) in [
        ("misbehaving_component", "the component ended it unfinished"),
        ("misbehaving_component_p3", "not its declared length"),
    ] {
        let edge = Serving::start(component, "", &[]);
        let mut client = TcpStream::connect(&edge.address).unwrap();
        client
            .write_all(b"GET /break-off HTTP/1.1\r\nhost: t\r\n\r\n")
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut received = Vec::new();
        let mut buffer = [0u8; 8192];
        while let Ok(n @ 1..) = client.read(&mut buffer) {
            received.extend_from_slice(&buffer[..n]);
        }
        assert!(
            received.len() < 1_000_000,
            "{component}: {}",
            received.len()
        );

        let logged = loop {
            let line = edge.next_line();
            if line.contains("broke off") {
                break line;
            }
        };
        assert!(logged.contains("WARN"), "{logged}");
        assert!(
            logged.contains(
                "GET /break-off: the response body broke off after 100000 of 1000000 bytes"
            ),
            "{logged}"
        );
        assert!(logged.contains(why), "{component}: {logged}");
        let (_, message) = logged.split_once(" GET ").unwrap();
        assert!(!message.contains("::"), "a type name in: {logged}");
        // Once: another request later, and no second line for the first.
        assert!(get(&edge.address, "/ok").starts_with("HTTP/1.1 200"));
        let later = edge.lines_so_far();
        assert!(
            !later.iter().any(|line| line.contains("broke off")),
            "{later:#?}"
        );
    }
}

/// An `edge-host up` process serving `component` (a built component's
/// file name), its stderr lines arriving on a channel.
struct Serving {
    child: Running,
    _dir: tempfile::TempDir,
    lines: std::sync::mpsc::Receiver<String>,
    /// The lines up to the one saying it serves.
    startup: Vec<String>,
    address: String,
    metrics: Option<String>,
}

impl Serving {
    /// Starts `edge-host up` through `sh -c`, with `shell` run first (e.g.
    /// `ulimit -n 1024`) and `args` after the manifest, and waits for it to
    /// serve.
    fn start(component: &str, shell: &str, args: &[&str]) -> Serving {
        Serving::start_with(component, "", shell, args)
    }

    /// [`Serving::start`] with `manifest` appended to the component's
    /// table in the manifest (its fields, then further tables).
    fn start_with(component: &str, manifest: &str, shell: &str, args: &[&str]) -> Serving {
        let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(format!("../target/wasm32-wasip2/release/{component}.wasm"));
        assert!(
            wasm.exists(),
            "{} missing: run `make wasm` first (make test does)",
            wasm.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let manifest = write(
            dir.path(),
            "spin.toml",
            &format!(
                "spin_manifest_version = 2\n[application]\nname = \"m\"\n\
                 [[trigger.http]]\nroute = \"/...\"\ncomponent = \"m\"\n[component.m]\nsource = {:?}\n{manifest}",
                wasm.display().to_string()
            ),
        );
        let mut child = Running(
            Command::new("sh")
                .arg("-c")
                .arg(format!("{shell}\nexec \"$0\" \"$@\""))
                .arg(BIN)
                .args(["up", "-f"])
                .arg(&manifest)
                .args(["--listen", "127.0.0.1:0"])
                .args(args)
                .env(
                    "EDGE_HOST_CACHE_DIR",
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
                )
                .env("RUST_LOG", "info")
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
        let stderr = BufReader::new(child.0.stderr.take().unwrap());
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut serving = Serving {
            child,
            _dir: dir,
            lines,
            startup: Vec::new(),
            address: String::new(),
            metrics: None,
        };
        loop {
            let line = serving.next_line();
            serving.startup.push(line.clone());
            if let Some((_, rest)) = line.split_once("metrics on http://") {
                serving.metrics = rest.split('/').next().map(str::to_owned);
            }
            if let Some((_, address)) = line
                .split_once("serving `m` on http://")
                .or_else(|| line.split_once("serving `m` on https://"))
            {
                serving.address = address.trim().to_owned();
                return serving;
            }
        }
    }

    /// The next stderr line; panics if none comes within 30 s.
    fn next_line(&self) -> String {
        self.lines
            .recv_timeout(Duration::from_secs(30))
            .expect("edge-host went quiet or exited")
    }

    /// Every stderr line written so far.
    fn lines_so_far(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// Sends `GET path` with `Connection: close` to `address`; the answer.
fn get(address: &str, path: &str) -> String {
    let mut client = TcpStream::connect(address).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(
            format!("GET {path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    response
}

/// A connection to `address` from the loopback address `127.0.0.{source}`
/// (std cannot bind before connecting; tokio's socket can).
fn connect_from(
    runtime: &tokio::runtime::Runtime,
    address: &str,
    source: u8,
) -> std::io::Result<TcpStream> {
    let target: std::net::SocketAddr = address.parse().unwrap();
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(std::net::SocketAddr::from(([127, 0, 0, source], 0)))?;
        socket.connect(target).await?.into_std()
    })
}

/// The metrics listener, flooded with idle connections, used to exhaust
/// the process's descriptors (soft limit 1,024) and take the main port
/// down with it. Now every listener has a cap, the soft limit is raised to
/// the hard one, and the connection cap is sized to fit it.
#[test]
fn idle_connections_to_any_listener_cannot_exhaust_the_descriptors() {
    // The test holds about 2,200 connections of its own.
    edge_host::open_files::raise_open_file_limit();
    let edge = Serving::start(
        "misbehaving_component",
        // The usual soft limit, with a hard limit above it to be raised to.
        "ulimit -S -n 1024 && ulimit -H -n 1100",
        &["--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = edge.metrics.clone().expect("metrics address logged");
    let startup = &edge.startup;
    assert!(
        startup
            .iter()
            .any(|l| l.contains("--max-connections 512 lowered to 422")),
        "{startup:#?}"
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut held = Vec::new();
    for i in 0..1100 {
        let source = 2 + (i % 10) as u8;
        for port in [&metrics, &edge.address] {
            held.push(connect_from(&runtime, port, source).expect("connect"));
        }
    }
    // Both ports still answer a newcomer.
    assert!(get(&edge.address, "/ok").starts_with("HTTP/1.1 200"));
    assert!(get(&metrics, "/metrics").starts_with("HTTP/1.1 200"));
    // And the process stayed within its descriptors.
    let open = std::fs::read_dir(format!("/proc/{}/fd", edge.pid()))
        .unwrap()
        .count();
    assert!(open < 1000, "{open} descriptors open");
    let logged = edge.lines_so_far();
    assert!(
        !logged.iter().any(|l| l.contains("Too many open files")),
        "{:#?}",
        &logged[..logged.len().min(20)]
    );
    drop(held);
}

/// `kill -HUP` (how nginx is reloaded) does not stop the edge: it reloads
/// its configuration, says what it took, and goes on serving.
#[test]
fn sighup_reloads_and_the_edge_goes_on_serving() {
    let edge = Serving::start("misbehaving_component", "", &[]);
    let status = Command::new("kill")
        .args(["-HUP", &edge.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut said = Vec::new();
    // The rules are the last part a reload reports.
    while !said
        .iter()
        .any(|line: &String| line.contains("reload: rules:"))
    {
        said.push(edge.next_line());
    }
    let said = said.join("\n");
    assert!(said.contains("SIGHUP received: reloading"), "{said}");
    assert!(said.contains("reload: variables: read again"), "{said}");
    assert!(
        said.contains("reload: runtime-config: no --runtime-config-file"),
        "{said}"
    );
    assert!(get(&edge.address, "/ok").starts_with("HTTP/1.1 200"));
}

/// A client's `Host` cannot forge fields of the text access log: a reader
/// that splits on spaces sees the fields the edge wrote.
#[test]
fn a_forged_host_stays_one_field_of_the_text_access_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let log_arg = log.display().to_string();
    let edge = Serving::start(
        "misbehaving_component",
        "",
        &["--access-log", &log_arg, "--log-format", "text"],
    );
    let mut client = TcpStream::connect(&edge.address).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    client
        .write_all(
            b"GET /ok HTTP/1.1\r\nhost: shop.example path=/admin/x status=200 hit\r\nconnection: close\r\n\r\n",
        )
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // The log is written off the request path, every 50 ms.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break line.to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "nothing logged");
        std::thread::sleep(Duration::from_millis(20));
    };
    let fields: Vec<&str> = line.split('"').next().unwrap().split_whitespace().collect();
    assert_eq!(fields.len(), 10, "{line}");
    assert_eq!(fields[1], "GET", "{line}");
    assert_eq!(
        fields[2], "shop.example\\x20path=/admin/x\\x20status=200\\x20hit",
        "{line}"
    );
    assert_eq!(fields[3], "/ok", "{line}");
    assert_eq!(fields[4], "HTTP/1.1", "{line}");
    assert_eq!(fields[5], "200", "{line}");
}

/// A routine purge is logged at info, not as a warning.
#[test]
fn a_purge_is_logged_at_info() {
    let edge = Serving::start_with(
        "edge_cache_p2",
        "key_value_stores = [\"default\"]\n\
         [component.m.variables]\npurge_token = \"t\"\norigin_url = \"http://127.0.0.1:9\"\n",
        "",
        &[],
    );
    let mut client = TcpStream::connect(&edge.address).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let body = r#"{"tags": ["t1"]}"#;
    client
        .write_all(
            format!(
                "POST /_edge/purge HTTP/1.1\r\nhost: t\r\nauthorization: Bearer t\r\n\
                 content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
        .unwrap();
    let mut response = String::new();
    client.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let logged = loop {
        let line = edge.next_line();
        if line.contains("edge-cache: purge") {
            break line;
        }
    };
    assert!(logged.contains(" INFO "), "{logged}");
    assert!(logged.contains("tags=[\"t1\"]"), "{logged}");
}

/// An origin whose every answer may be cached for an hour: `size` bytes
/// made of the path, repeated. Counts the requests it answers.
fn cacheable_origin(size: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = answered.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            let count = count.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    return;
                }
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
                let body: Vec<u8> = path.bytes().cycle().take(size).collect();
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = stream.write_all(
                    format!(
                        "HTTP/1.1 200 OK\r\ncache-control: max-age=3600\r\n\
                         content-length: {size}\r\nconnection: close\r\n\r\n"
                    )
                    .as_bytes(),
                );
                let _ = stream.write_all(&body);
            });
        }
    });
    (port, answered)
}

/// The bounded disk tier under the real edge component: `edge_cache_p2`
/// with its `default` store a `type = "spin"` SQLite file of
/// `capacity_bytes`, fetching from `origin_port`.
fn serve_from_disk_tier(origin_port: u16, runtime_config: &Path) -> Serving {
    let config = runtime_config.display().to_string();
    Serving::start_with(
        "edge_cache_p2",
        &format!(
            "key_value_stores = [\"default\"]\n\
             allowed_outbound_hosts = [\"http://127.0.0.1:{origin_port}\"]\n\
             [component.m.variables]\norigin_url = \"http://127.0.0.1:{origin_port}\"\n"
        ),
        "",
        &["--runtime-config-file", &config],
    )
}

fn disk_tier_config(dir: &Path, capacity_bytes: u64) -> (PathBuf, PathBuf) {
    let db = dir.join("kv.db");
    let config = write(
        dir,
        "runtime-config.toml",
        &format!(
            "[key_value_store.default]\ntype = \"spin\"\npath = {:?}\ncapacity_bytes = {capacity_bytes}\n",
            db.display().to_string()
        ),
    );
    (db, config)
}

/// The bytes of keys and values the `default` store holds in `db` (Spin's
/// table) and the sizes edge-host accounts for them (its side table).
fn disk_tier_bytes(db: &Path) -> (u64, u64) {
    let c = rusqlite::Connection::open(db).unwrap();
    let held: i64 = c
        .query_row(
            "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0) \
             FROM spin_key_value WHERE store = 'default'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let accounted: i64 = c
        .query_row(
            "SELECT coalesce(sum(size), 0) FROM edge_host_key_value_lru WHERE store = 'default'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    (held as u64, accounted as u64)
}

fn is_hit(response: &str) -> bool {
    let head = response
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    head.lines()
        .any(|l| l.starts_with("cache-status:") && l.contains("; hit"))
}

/// Objects cached in a `type = "spin"` store with `capacity_bytes` are hits
/// after edge-host is killed and started again on the same file.
#[test]
fn the_disk_tier_keeps_objects_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (origin_port, answered) = cacheable_origin(3000);
    let (db, config) = disk_tier_config(dir.path(), 1 << 20);
    let paths = ["/kept/a", "/kept/b", "/kept/c"];
    {
        let edge = serve_from_disk_tier(origin_port, &config);
        for path in paths {
            let response = get(&edge.address, path);
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
            assert!(!is_hit(&response), "{response}");
        }
        // The entry is written as the body ends: give it a moment.
        std::thread::sleep(Duration::from_millis(300));
        for path in paths {
            assert!(is_hit(&get(&edge.address, path)), "{path}");
        }
        // Killed (SIGKILL), not stopped: what was written is in the file.
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    let edge = serve_from_disk_tier(origin_port, &config);
    for path in paths {
        let response = get(&edge.address, path);
        assert!(is_hit(&response), "{path} after the restart: {response}");
        let expected: String = path.chars().cycle().take(3000).collect();
        assert!(response.ends_with(&expected), "{response}");
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 3);
    let (held, accounted) = disk_tier_bytes(&db);
    assert_eq!(held, accounted);
    assert!(held > 9000 && held <= 1 << 20, "{held}");
}

/// Filled far past its `capacity_bytes`, the disk tier evicts: the file
/// holds at most the capacity, and what was fetched last is still a hit.
#[test]
fn the_disk_tier_stays_within_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let (origin_port, answered) = cacheable_origin(4000);
    let capacity = 64 * 1024;
    let (db, config) = disk_tier_config(dir.path(), capacity);
    let edge = serve_from_disk_tier(origin_port, &config);
    for i in 0..60 {
        let response = get(&edge.address, &format!("/many/{i}"));
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let (held, accounted) = disk_tier_bytes(&db);
        assert!(held <= capacity, "after {i}: {held} bytes held");
        assert_eq!(held, accounted, "after {i}");
    }
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 60);
    // The entry is written as the body ends: give it a moment.
    std::thread::sleep(Duration::from_millis(300));
    assert!(is_hit(&get(&edge.address, "/many/59")));
    // The first objects were evicted: fetched again.
    assert!(!is_hit(&get(&edge.address, "/many/0")));
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 61);
    let (held, _) = disk_tier_bytes(&db);
    assert!(held > capacity / 2, "{held}");
}

/// `--tls-cert` and `--tls-key` (or `SPIN_TLS_CERT` and `SPIN_TLS_KEY`)
/// come together, as `spin up` has them, and a pair that cannot be served
/// stops the start with one line naming the file and what is wrong.
#[test]
fn a_tls_certificate_and_key_that_do_not_belong_together_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = write(d, "ok.toml", MANIFEST).display().to_string();
    let served = rcgen::generate_simple_self_signed(vec!["edge.test".to_owned()]).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["other.test".to_owned()]).unwrap();
    let cert = write(d, "cert.pem", &served.cert.pem());
    let key = write(d, "other-key.pem", &other.signing_key.serialize_pem());
    let (cert, key) = (cert.display().to_string(), key.display().to_string());

    let (code, stderr) = run_up(
        d,
        &["-f", &manifest, "--tls-cert", &cert, "--tls-key", &key],
    );
    assert_eq!(code, 1, "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("other-key.pem is not the key of the certificate in")
            && errors[0].contains("cert.pem"),
        "{stderr}"
    );

    // The same from the environment.
    let output = Command::new(BIN)
        .current_dir(d)
        .args(["up", "--listen", "127.0.0.1:0", "-f", &manifest])
        .env("SPIN_TLS_CERT", &cert)
        .env("SPIN_TLS_KEY", d.join("absent.pem"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("absent.pem: cannot read it: no such file"),
        "{stderr}"
    );

    // One without the other is a usage error naming the missing flag.
    let (code, stderr) = run_up(d, &["-f", &manifest, "--tls-cert", &cert]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

/// The certificate `address` presents to a full handshake for
/// `edge.test`, trusting `roots`.
fn presented_certificate(address: &str, roots: &[&[u8]]) -> Vec<u8> {
    use std::sync::Arc;
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store
            .add(rustls::pki_types::CertificateDer::from(root.to_vec()))
            .unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.resumption = rustls::client::Resumption::disabled();
    let name = rustls::pki_types::ServerName::try_from("edge.test").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut tls = rustls::StreamOwned::new(connection, TcpStream::connect(address).unwrap());
    tls.write_all(b"GET /ok HTTP/1.1\r\nhost: edge.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// SIGHUP to the running process (its serving threads each on a runtime of
/// their own) reloads the TLS certificate for new connections; a broken
/// replacement is refused in words and the previous one served on.
#[test]
fn sighup_reloads_the_tls_certificate_of_the_running_process() {
    let dir = tempfile::tempdir().unwrap();
    let first = rcgen::generate_simple_self_signed(vec!["edge.test".to_owned()]).unwrap();
    let second = rcgen::generate_simple_self_signed(vec!["edge.test".to_owned()]).unwrap();
    let cert = write(dir.path(), "cert.pem", &first.cert.pem());
    let key = write(dir.path(), "key.pem", &first.signing_key.serialize_pem());
    let edge = Serving::start(
        "misbehaving_component",
        "",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--serving-threads",
            "2",
        ],
    );
    let roots: [&[u8]; 2] = [first.cert.der(), second.cert.der()];
    assert_eq!(
        presented_certificate(&edge.address, &roots),
        first.cert.der().to_vec()
    );
    let hang_up = || {
        let status = Command::new("kill")
            .args(["-HUP", &edge.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    let line_with = |needle: &str| loop {
        let line = edge.next_line();
        if line.contains(needle) {
            return line;
        }
    };

    std::fs::write(&cert, second.cert.pem()).unwrap();
    std::fs::write(&key, second.signing_key.serialize_pem()).unwrap();
    hang_up();
    line_with("SIGHUP: TLS certificate reloaded");
    assert_eq!(
        presented_certificate(&edge.address, &roots),
        second.cert.der().to_vec()
    );

    std::fs::write(&key, "not a key").unwrap();
    hang_up();
    let refused = line_with("TLS certificate not reloaded");
    assert!(
        refused.contains("key.pem: no usable private key"),
        "{refused}"
    );
    assert_eq!(
        presented_certificate(&edge.address, &roots),
        second.cert.der().to_vec()
    );
}
