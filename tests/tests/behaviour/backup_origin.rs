//! A backup origin a user sets with one variable, through the shipped
//! manifests (which list `{{ backup_origin_url }}` in
//! `allowed_outbound_hosts`), and edge-host refusing at load what Spin
//! refuses: an `allowed_outbound_hosts` template whose defaults render an
//! invalid entry.

use edge_host::{App, AppOptions};
use edge_tests::{
    Edge, closed_port, compilation_cache, default_flavour, shipped_manifest, workspace_root,
};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

fn options(manifest: std::path::PathBuf, variables: &[String]) -> AppOptions {
    AppOptions {
        manifest,
        variables: variables.to_vec(),
        cache_dir: Some(compilation_cache()),
        max_instances: Some(16),
        ..Default::default()
    }
}

#[tokio::test]
async fn setting_backup_origin_url_alone_sends_failed_requests_to_the_backup() {
    let backup = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("from the backup"))
        .expect(1)
        .mount(&backup)
        .await;
    let variables = [
        format!("origin_url=http://127.0.0.1:{}", closed_port()),
        format!("backup_origin_url={}", backup.uri()),
    ];
    let manifest = workspace_root().join(shipped_manifest(default_flavour(), false));
    let edge = Edge::serve_app(options(manifest, &variables), tempfile::tempdir().unwrap())
        .await
        .expect("the shipped manifest loads");
    let answer = edge.fetch("/products/1").await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(answer.text(), "from the backup");
}

#[tokio::test]
async fn without_a_backup_the_shipped_default_means_none() {
    let variables = [format!("origin_url=http://127.0.0.1:{}", closed_port())];
    let manifest = workspace_root().join(shipped_manifest(default_flavour(), false));
    let edge = Edge::serve_app(options(manifest, &variables), tempfile::tempdir().unwrap())
        .await
        .expect("the shipped manifest loads");
    let answer = edge.fetch("/products/1").await.unwrap();
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert!(
        answer.text().contains("origin unreachable"),
        "{}",
        answer.text()
    );
}

#[test]
fn a_template_whose_default_renders_an_invalid_entry_is_refused_as_spin_refuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(workspace_root().join("spin.toml"))
        .unwrap()
        .replace(
            r#"backup_origin_url = { default = "http://no-backup.invalid" }"#,
            r#"backup_origin_url = { default = "" }"#,
        )
        .replace(
            r#"source = "target/"#,
            &format!(r#"source = "{}/target/"#, workspace_root().display()),
        )
        .replace(
            r#"source = "fixtures/rules""#,
            &format!(
                r#"source = "{}/fixtures/rules""#,
                workspace_root().display()
            ),
        );
    let manifest = dir.path().join("spin.toml");
    std::fs::write(&manifest, text).unwrap();
    // Even with the variable set: Spin checks the template with defaults.
    let variables = ["backup_origin_url=http://127.0.0.1:9".to_owned()];
    let error = match App::load(&options(manifest, &variables)) {
        Ok(_) => panic!("loaded a manifest Spin refuses"),
        Err(error) => format!("{error:#}"),
    };
    assert!(
        error.contains("component.edge-cache.allowed_outbound_hosts"),
        "{error}"
    );
    assert!(
        error.contains(r#"using default variable value(s) with template "{{ backup_origin_url }}" results in invalid config """#),
        "{error}"
    );
}
