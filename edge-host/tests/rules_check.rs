//! Rules that cannot fail open (issue 26 item 3), edge-host's side, as
//! processes: `--variable NAME=@FILE` and `@vars.json`/`@vars.toml`,
//! `edge-host check`, `up` refusing broken rules before it listens, and
//! the rules status in `/metrics`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_edge-host");

const GOOD: &str = "{ \"rules\": [\n  { \"path_prefix\": \"/a\", \"ttl_seconds\": 5 }\n] }\n";
/// An unknown field on line 3, column 11 (serde_json points at the name's closing quote).
const BROKEN: &str = "{ \"rules\": [\n  { \"path_prefix\": \"/a\",\n    \"bogus\": 1 }\n] }\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
    path
}

/// An application whose component `c` reads `cache_rules` with
/// `rules/` mounted at `/rules`; `source` is its wasm.
fn app(dir: &Path, source: &Path) -> PathBuf {
    write(dir, "rules/good.json", GOOD);
    write(dir, "rules/broken.json", BROKEN);
    write(
        dir,
        "spin.toml",
        &format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n[variables]\n\
             origin_url = {{ default = \"http://127.0.0.1:9\" }}\n\
             cache_rules = {{ default = \"/rules/good.json\" }}\n\
             hosts = {{ default = \"\" }}\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = {:?}\n\
             key_value_stores = [\"default\"]\n\
             files = [{{ source = \"rules\", destination = \"/rules\" }}]\n\
             allowed_outbound_hosts = [\"{{{{ origin_url }}}}\"]\n\
             [component.c.variables]\norigin_url = \"{{{{ origin_url }}}}\"\n\
             cache_rules = \"{{{{ cache_rules }}}}\"\n\
             hosts = \"{{{{ hosts }}}}\"\n",
            source.display().to_string()
        ),
    )
}

fn edge_host(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(args)
        .env("EDGE_HOST_CACHE_DIR", dir.join("cache"))
        .env_remove("SPIN_VARIABLE_CACHE_RULES")
        .output()
        .expect("run edge-host")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `check` accepts good rules from a mounted file, `@FILE` and variables
/// files, and reports broken ones with the host path, line and column.
#[test]
fn check_names_the_host_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = app(d, &write(d, "c.wasm", "not checked by check"));
    let manifest = manifest.display().to_string();
    let host = |name: &str| d.join("rules").join(name).display().to_string();

    let good = edge_host(d, &["check", "-f", &manifest]);
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let summary = text(&good.stdout);
    assert!(summary.starts_with("ok: "), "{summary}");
    assert!(summary.contains(&host("good.json")), "{summary}");

    let broken = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "cache_rules=/rules/broken.json",
        ],
    );
    assert_eq!(broken.status.code(), Some(1));
    let stderr = text(&broken.stderr);
    assert!(
        stderr.contains(&format!(
            "{}:3:11: unknown field `bogus`",
            host("broken.json")
        )),
        "{stderr}"
    );
    assert!(broken.stdout.is_empty());

    // `NAME=@FILE`: the file's content is the value (the JSON itself).
    let from_file = format!("cache_rules=@{}", host("broken.json"));
    let inline = edge_host(d, &["check", "-f", &manifest, "--variable", &from_file]);
    assert_eq!(inline.status.code(), Some(1));
    let stderr = text(&inline.stderr);
    assert!(
        stderr.contains(&format!("{}:3:11:", host("broken.json"))),
        "{stderr}"
    );
    let from_file = format!("cache_rules=@{}", host("good.json"));
    let inline = edge_host(d, &["check", "-f", &manifest, "--variable", &from_file]);
    assert_eq!(inline.status.code(), Some(0), "{}", text(&inline.stderr));
    assert!(text(&inline.stdout).contains("inline, from"));

    // `@vars.json` and `@vars.toml`: names and string values.
    write(d, "vars.json", r#"{"cache_rules": "/rules/broken.json"}"#);
    let json = edge_host(d, &["check", "-f", &manifest, "--variable", "@vars.json"]);
    assert_eq!(json.status.code(), Some(1));
    assert!(text(&json.stderr).contains(&format!("{}:3:11:", host("broken.json"))));
    write(
        d,
        "vars.toml",
        "cache_rules = \"/rules/good.json\"\norigin_url = \"http://127.0.0.1:7\"\n",
    );
    let toml = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "@vars.json",
            "--variable",
            "@vars.toml",
        ],
    );
    assert_eq!(toml.status.code(), Some(0), "{}", text(&toml.stderr));

    // A value that is not a string, a missing file: named, in words.
    write(d, "numbers.json", r#"{"cache_rules": 1}"#);
    let numbers = edge_host(
        d,
        &["check", "-f", &manifest, "--variable", "@numbers.json"],
    );
    assert_eq!(numbers.status.code(), Some(1));
    assert!(
        text(&numbers.stderr)
            .contains("numbers.json: variable `cache_rules` is a number, not a string")
    );
    let missing = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "cache_rules=@nope.json",
        ],
    );
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("nope.json: no such file"));

    // A path the component cannot read: outside every mount.
    let outside = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "cache_rules=/tmp/rules.json",
        ],
    );
    assert_eq!(outside.status.code(), Some(1));
    assert!(text(&outside.stderr).contains("`/tmp/rules.json` is not inside any directory"));
}

/// Broken rules stop `up` with the same message, before it listens.
#[test]
fn up_refuses_broken_rules_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = app(d, &write(d, "c.wasm", "never loaded"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let up = edge_host(
        d,
        &[
            "up",
            "-f",
            &manifest.display().to_string(),
            "--listen",
            &listen,
            "--variable",
            "cache_rules=/rules/broken.json",
        ],
    );
    assert_eq!(up.status.code(), Some(1));
    let stderr = text(&up.stderr);
    let broken = d.join("rules/broken.json").display().to_string();
    assert!(
        stderr.contains(&format!("{broken}:3:11: unknown field `bogus`")),
        "{stderr}"
    );
    assert!(
        stderr.contains("not serving with broken cache rules"),
        "{stderr}"
    );
    assert!(!stderr.contains("serving `"), "{stderr}");
}

struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// `check` (and so `up`) reads the edge's settings with the component's
/// own parser: a broken `hosts` list is named, with what is wrong.
#[test]
fn check_refuses_settings_the_component_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = app(d, &write(d, "c.wasm", "not checked by check"));
    let manifest = manifest.display().to_string();
    let good = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "hosts=a.example www.a.example",
        ],
    );
    assert_eq!(good.status.code(), Some(0), "{}", text(&good.stderr));
    let broken = edge_host(
        d,
        &[
            "check",
            "-f",
            &manifest,
            "--variable",
            "hosts=a.example, a.example",
        ],
    );
    assert_eq!(broken.status.code(), Some(1), "{}", text(&broken.stdout));
    let stderr = text(&broken.stderr);
    assert!(
        stderr.contains(
            "component.c.variables: variable `hosts` is invalid: `a.example` is listed twice"
        ),
        "{stderr}"
    );
}

/// `/metrics` and `/status.json` report the rules as good with their hash
/// at start, and as broken, with the message and the last good rules still
/// served, after a broken live edit.
#[test]
fn metrics_show_the_rules_status_and_a_broken_edit() {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/edge_cache_p2.wasm");
    assert!(
        wasm.exists(),
        "component missing: run `make wasm` first (make test does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let manifest = app(d, &wasm);
    let mut child = Running(
        Command::new(BIN)
            .current_dir(d)
            .args(["up", "-f"])
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .env(
                "EDGE_HOST_CACHE_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
            )
            .env_remove("SPIN_VARIABLE_CACHE_RULES")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut metrics = None;
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(rest) = line.strip_prefix("edge-host: metrics on http://") {
            metrics = rest.split('/').next().map(str::to_owned);
        }
        if line.contains("serving `") {
            address = line
                .split_once(" on http://")
                .map(|(_, a)| a.trim().to_owned());
            break;
        }
    }
    // The rest of the log, kept to count what the component says.
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let kept = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            kept.lock().unwrap().push(line);
        }
    });
    let metrics = metrics.expect("metrics address logged");
    let address = address.expect("serving address logged");
    let good_hash = &blake3::hash(GOOD.as_bytes()).to_hex()[..16];
    let exposition = get(&metrics, "/metrics");
    assert!(
        exposition.contains("edge_rules_status{component=\"c\",state=\"good\"} 1"),
        "{exposition}"
    );
    assert!(
        exposition.contains("edge_rules_status{component=\"c\",state=\"broken\"} 0"),
        "{exposition}"
    );
    assert!(
        exposition.contains(&format!("hash=\"{good_hash}\"")),
        "{exposition}"
    );
    assert!(
        exposition.contains("edge_rules_loaded_timestamp_seconds{component=\"c\"}"),
        "{exposition}"
    );

    // The component reads its rules when a request makes an instance: one
    // has, before the edit.
    get(&address, "/a");
    // A broken live edit is reported as broken, with its message.
    std::fs::write(d.join("rules/good.json"), BROKEN).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let exposition = get(&metrics, "/metrics");
        if exposition.contains("edge_rules_status{component=\"c\",state=\"broken\"} 1") {
            let info: Vec<&str> = exposition
                .lines()
                .filter(|l| l.starts_with("edge_rules_info{"))
                .collect();
            assert!(
                info.iter().all(|l| !l.contains(good_hash)),
                "the file's hash is the broken text's: {exposition}"
            );
            // The component keeps serving with the last good rules.
            assert!(
                exposition.contains(&format!(
                    "edge_rules_serving_info{{component=\"c\",hash=\"{good_hash}\"}} 1"
                )),
                "{exposition}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "{exposition}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let status = get(&metrics, "/status.json");
    assert!(status.contains("\"good\":false"), "{status}");
    assert!(status.contains(":3:11: unknown field"), "{status}");
    assert!(
        status.contains(&format!("\"serving\":{{\"hash\":\"{good_hash}\"")),
        "{status}"
    );

    // Every request is an instance of its own (WASI 0.2), each reading the
    // broken file: the component says so once, not once per instance.
    for _ in 0..5 {
        get(&address, "/a");
    }
    // A fix with other rules is a change the next instance reports; all
    // that was logged before it is read by then.
    write(d, "rules/good.json", &GOOD.replace("\"/a\"", "\"/b\""));
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        get(&address, "/a");
        let lines = log.lock().unwrap().clone();
        if lines
            .iter()
            .any(|l| l.contains("edge-cache: cache rules changed"))
        {
            break lines;
        }
        assert!(Instant::now() < deadline, "{lines:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let broken_reports = log
        .iter()
        .filter(|l| l.contains("still serving the last good cache rules"))
        .count();
    assert_eq!(broken_reports, 1, "{log:#?}");
}

/// An origin whose every answer may be cached for an hour.
fn cacheable_origin() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { break };
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                    line.clear();
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncache-control: max-age=3600\r\n\
                      content-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    port
}

/// `up` with the real component and `flags`; the serving address.
fn serve(dir: &Path, flags: &[&str]) -> (Running, String) {
    let wasm = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/edge_cache_p2.wasm");
    assert!(wasm.exists(), "component missing: run `make wasm` first");
    let manifest = app(dir, &wasm);
    let mut child = Running(
        Command::new(BIN)
            .current_dir(dir)
            .args(["up", "-f"])
            .arg(&manifest)
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .env(
                "EDGE_HOST_CACHE_DIR",
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/edge-host-cache"),
            )
            .env_remove("SPIN_VARIABLE_CACHE_RULES")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stderr.take().unwrap()).lines();
    let mut address = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some((_, rest)) = line.split_once(" on http://")
            && line.contains("serving `")
        {
            address = Some(rest.trim().to_owned());
            break;
        }
    }
    std::thread::spawn(move || lines.for_each(drop));
    (child, address.expect("serving line"))
}

fn cache_status(response: &str) -> String {
    response
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("cache-status:"))
        .unwrap_or("")
        .to_owned()
}

/// Rules given by `--variable cache_rules=@FILE` (and a variables file)
/// are the component's: a rule bypassing `/` keeps a cacheable answer out
/// of the cache; the same origin through the mounted good rules is a hit.
#[test]
fn rules_from_variable_files_reach_the_component() {
    let origin = format!("origin_url=http://127.0.0.1:{}", cacheable_origin());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bypass = write(
        d,
        "bypass.json",
        r#"{ "rules": [ { "path_prefix": "/", "bypass": true } ] }"#,
    );
    let flag = format!("cache_rules=@{}", bypass.display());
    let (_edge, address) = serve(d, &["--variable", &origin, "--variable", &flag]);
    get(&address, "/x");
    std::thread::sleep(Duration::from_millis(300));
    let second = get(&address, "/x");
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(!cache_status(&second).contains("hit"), "{second}");
    assert!(cache_status(&second).contains("fwd=bypass"), "{second}");

    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "vars.json", r#"{"cache_rules": "/rules/good.json"}"#);
    let (_edge, address) = serve(d, &["--variable", &origin, "--variable", "@vars.json"]);
    get(&address, "/y");
    std::thread::sleep(Duration::from_millis(300));
    let second = get(&address, "/y");
    assert!(cache_status(&second).contains("hit"), "{second}");
}
