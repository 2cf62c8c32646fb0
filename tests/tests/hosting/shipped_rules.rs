//! The shipped manifests default to the built-in cache rules (issue 26
//! item 1): an origin the edge has never seen is not cached by the demo
//! shop's rules. `make up` passes those explicitly
//! (`--variable cache_rules=/rules/cache-rules.json`, from the manifest's
//! mount), and then they apply.

use edge_host::AppOptions;
use edge_tests::{Edge, compilation_cache, default_flavour, shipped_manifest, workspace_root};
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The shipped manifest of the flavour under test, as loaded from the
/// repository (its `files` mount resolves there), with `variables`.
async fn shipped_edge(variables: &[String]) -> Edge {
    let options = AppOptions {
        manifest: workspace_root().join(shipped_manifest(default_flavour(), false)),
        variables: variables.to_vec(),
        cache_dir: Some(compilation_cache()),
        max_instances: Some(16),
        ..Default::default()
    };
    Edge::serve_app(options, tempfile::tempdir().unwrap())
        .await
        .expect("the shipped manifest loads")
}

/// An origin whose `/api/items` answers, which may be cached, name the
/// query they were asked with.
async fn paged_origin() -> MockServer {
    let origin = MockServer::start().await;
    Mock::given(path("/api/items"))
        .respond_with(|request: &Request| {
            ResponseTemplate::new(200)
                .insert_header("cache-control", "max-age=60")
                .set_body_string(format!("query {}", request.url.query().unwrap_or("")))
        })
        .mount(&origin)
        .await;
    origin
}

#[tokio::test]
async fn the_shipped_manifest_keys_every_query_parameter_as_the_built_in_rules_do() {
    let origin = paged_origin().await;
    let edge = shipped_edge(&[format!("origin_url={}", origin.uri())]).await;
    assert_eq!(
        edge.fetch("/api/items?page=1").await.unwrap().text(),
        "query page=1"
    );
    let second = edge.fetch("/api/items?page=2").await.unwrap();
    // The demo shop's `api` rule ignores the query: page 2 would be the
    // origin's answer to no query at all, shared by every page.
    assert_eq!(second.text(), "query page=2", "{}", second.cache_status);
    assert!(edge.fetch("/api/items?page=1").await.unwrap().hit());
}

#[tokio::test]
async fn make_up_s_rules_variable_gives_the_demo_shop_s_rules() {
    let origin = paged_origin().await;
    let edge = shipped_edge(&[
        format!("origin_url={}", origin.uri()),
        "cache_rules=/rules/cache-rules.json".to_owned(),
    ])
    .await;
    assert_eq!(
        edge.fetch("/api/items?page=1").await.unwrap().text(),
        "query "
    );
    let second = edge.fetch("/api/items?page=2").await.unwrap();
    assert_eq!(second.text(), "query ", "one entry for every page");
    assert!(second.hit(), "{}", second.cache_status);
}
