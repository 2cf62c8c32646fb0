//! Assets through the edge, with the origin as fallback: a page links its
//! stylesheet, script and images at the edge's URL, each tag carrying its
//! own path on the origin (`data-origin`); when the edge does not answer,
//! the browser loads them from the host that served the page.
//!
//! What a browser meets when the edge is down, and what happens then:
//!
//! - **Stopped** (connection refused, or a DNS name that does not
//!   resolve): the load fails within milliseconds and the tag's `onerror`
//!   swaps it to the origin path at once.
//! - **Hanging** (the edge accepts connections and never answers):
//!   browsers wait minutes for a subresource, and a stylesheet in `<head>`
//!   blocks rendering while it loads. A timer started by the inline
//!   script swaps every asset still not loaded after
//!   [`FALLBACK_AFTER_MS`], so the page is blank for at most that long.
//!
//! Nothing waits in the page's own flow: the inline script only defines a
//! function and starts a timer, the app script is `async` (a hanging one
//! delays neither parsing nor `DOMContentLoaded`, only the window's `load`,
//! which nothing here waits for), and a swapped script is a new element (a
//! script element's `src` is read once; its first fetch is not cancelled,
//! so `app.js` runs once only). A tag that has
//! loaded, or was swapped, loses `data-origin`, so nothing is swapped
//! twice and an origin that fails too is not retried in a loop.
//!
//! Served through the edge itself, the page links the same edge URLs (the
//! same host, or the edge's public name) and the fallback paths name the
//! edge that served it. No external dependency, no build step.

use crate::assets::Manifest;
use crate::pages::escape;

/// How long an asset may take from the edge before the browser loads it
/// from the origin instead: the longest a page stays blank behind a
/// hanging edge. Long enough for a slow mobile link to fetch a small
/// stylesheet; a fallback on a slow link costs a request to the origin,
/// not a broken page.
pub const FALLBACK_AFTER_MS: u32 = 3000;

/// The inline script, first in `<head>`, before any tag that calls it.
/// `edgeFallback(tag)` loads a tag's asset from its `data-origin` path;
/// `edgeLoaded(tag)` marks it loaded; the timer falls back for every tag
/// still marked after [`FALLBACK_AFTER_MS`].
fn inline_script() -> String {
    format!(
        "<script>\n\
         // Assets come from the edge; from the origin when it does not answer.\n\
         (function () {{\n\
         \x20 function fallback(tag) {{\n\
         \x20   var path = tag.getAttribute(\"data-origin\");\n\
         \x20   if (!path) return;\n\
         \x20   tag.removeAttribute(\"data-origin\");\n\
         \x20   if (tag.tagName === \"SCRIPT\") {{\n\
         \x20     var script = document.createElement(\"script\");\n\
         \x20     script.src = path;\n\
         \x20     script.async = true;\n\
         \x20     tag.parentNode.insertBefore(script, tag.nextSibling);\n\
         \x20   }} else if (tag.tagName === \"LINK\") {{\n\
         \x20     tag.href = path;\n\
         \x20   }} else {{\n\
         \x20     tag.src = path;\n\
         \x20   }}\n\
         \x20 }}\n\
         \x20 window.edgeFallback = fallback;\n\
         \x20 window.edgeLoaded = function (tag) {{ tag.removeAttribute(\"data-origin\"); }};\n\
         \x20 setTimeout(function () {{\n\
         \x20   var waiting = document.querySelectorAll(\"[data-origin]\");\n\
         \x20   for (var i = 0; i < waiting.length; i++) fallback(waiting[i]);\n\
         \x20 }}, {FALLBACK_AFTER_MS});\n\
         }})();\n\
         </script>\n"
    )
}

/// The attributes of a tag loading `logical`: its URL (`src`/`href`) at
/// the edge with the fallback to the origin path, or the origin path alone
/// when the manifest links no edge.
fn attributes(assets: &Manifest, logical: &str, url_attribute: &str) -> String {
    let path = assets.url(logical);
    match assets.edge_url(logical) {
        Some(edge) => format!(
            "{url_attribute}=\"{}\" data-origin=\"{}\" \
             onload=\"edgeLoaded(this)\" onerror=\"edgeFallback(this)\"",
            escape(&edge),
            escape(&path)
        ),
        None => format!("{url_attribute}=\"{}\"", escape(&path)),
    }
}

/// What `<head>` needs for the page's stylesheet and script: the inline
/// fallback (only when assets come from the edge), then both tags.
pub fn head(assets: &Manifest, stylesheet: &str, script: &str) -> String {
    let inline = match assets.edge_base() {
        Some(_) => inline_script(),
        None => String::new(),
    };
    format!(
        "{inline}<link rel=\"stylesheet\" {}>\n<script {} async></script>\n",
        attributes(assets, stylesheet, "href"),
        attributes(assets, script, "src"),
    )
}

/// An `<img>` of `logical` with `extra` attributes (already escaped).
pub fn img(assets: &Manifest, logical: &str, extra: &str) -> String {
    format!("<img {} {extra}>", attributes(assets, logical, "src"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_an_edge_assets_are_plain_paths() {
        let assets = Manifest::default();
        let head = head(&assets, "css/app.css", "js/app.js");
        assert_eq!(
            head,
            "<link rel=\"stylesheet\" href=\"/static/css/app.css\">\n\
             <script src=\"/static/js/app.js\" async></script>\n"
        );
        assert_eq!(
            img(&assets, "img/logo.svg", "alt=\"\""),
            "<img src=\"/static/img/logo.svg\" alt=\"\">"
        );
    }

    #[test]
    fn through_an_edge_each_tag_names_its_origin_path() {
        let assets = Manifest::default().with_edge("http://cdn.example:3000/");
        let head = head(&assets, "css/app.css", "js/app.js");
        assert!(head.starts_with("<script>\n"), "{head}");
        assert!(head.contains(&format!("}}, {FALLBACK_AFTER_MS});")));
        assert!(head.contains(
            "<link rel=\"stylesheet\" href=\"http://cdn.example:3000/static/css/app.css\" \
             data-origin=\"/static/css/app.css\" onload=\"edgeLoaded(this)\" \
             onerror=\"edgeFallback(this)\">"
        ));
        assert!(head.contains(
            "<script src=\"http://cdn.example:3000/static/js/app.js\" \
             data-origin=\"/static/js/app.js\" onload=\"edgeLoaded(this)\" \
             onerror=\"edgeFallback(this)\" async></script>"
        ));
        // The inline script comes before the tags that call it.
        assert!(head.find("window.edgeFallback").unwrap() < head.find("<link").unwrap());
        assert_eq!(
            img(&assets, "img/logo.svg", "alt=\"\""),
            "<img src=\"http://cdn.example:3000/static/img/logo.svg\" \
             data-origin=\"/static/img/logo.svg\" onload=\"edgeLoaded(this)\" \
             onerror=\"edgeFallback(this)\" alt=\"\">"
        );
    }

    #[test]
    fn edge_urls_are_escaped() {
        let assets = Manifest::default().with_edge("http://x\"><script>");
        let tag = img(&assets, "a.png", "");
        assert!(!tag.contains("\"><script>"), "{tag}");
    }
}
