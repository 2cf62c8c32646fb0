//! `edge-host up` as a process: start-up errors, flag errors, graceful
//! shutdown, and what a failed instance leaves in the log.

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
    ] {
        let (code, stderr) = run_up(dir.path(), &[flag, value]);
        assert_eq!(code, 2, "{flag} {value}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(value),
            "{flag} {value}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
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
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"m\"\n[component.m]\nsource = {:?}\n",
            wasm.display().to_string()
        ),
    );
    let mut child = Running(
        Command::new(BIN)
            .args(["up", "-f"])
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0", "--max-memory-mb", "32"])
            .env(
                "EDGE_HOST_CACHE_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
            )
            .env("RUST_LOG", "info")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // Every stderr line, as it comes.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stderr = BufReader::new(child.0.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = || {
        lines
            .recv_timeout(Duration::from_secs(30))
            .expect("edge-host went quiet or exited")
    };
    let address = loop {
        let line = next_line();
        if let Some((_, address)) = line.split_once("serving `m` on http://") {
            break address.trim().to_owned();
        }
    };

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
}
