//! HTTP trigger routing: exact paths and `/...` wildcards, longest prefix wins.

/// A manifest route, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoutePattern {
    /// Matches this path only.
    Exact(String),
    /// Matches this path and everything below it (written `prefix/...`).
    Prefix(String),
}

/// The routing table of an application.
#[derive(Debug, Clone, Default)]
pub struct Router<T> {
    routes: Vec<(RoutePattern, T)>,
}

/// A matched route: the handler and what Spin reports about the match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a, T> {
    pub handler: &'a T,
    /// The route as written in the manifest (`spin-matched-route`).
    pub matched_route: String,
    /// The part of the path after the matched prefix (`spin-path-info`).
    pub path_info: String,
}

impl RoutePattern {
    /// Parses a manifest route: a `/...` suffix makes a prefix; trailing
    /// slashes do not count.
    pub fn parse(route: &str) -> Self {
        match route.strip_suffix("/...") {
            Some(prefix) => RoutePattern::Prefix(prefix.trim_end_matches('/').to_owned()),
            None if route == "..." => RoutePattern::Prefix(String::new()),
            None => RoutePattern::Exact(normalise(route)),
        }
    }

    fn written(&self) -> String {
        match self {
            RoutePattern::Exact(path) => path.clone(),
            RoutePattern::Prefix(prefix) => format!("{prefix}/..."),
        }
    }
}

fn normalise(path: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_owned()
    } else {
        trimmed.to_owned()
    }
}

impl<T> Router<T> {
    /// Builds a router from (pattern, handler) pairs.
    pub fn new(routes: Vec<(RoutePattern, T)>) -> Self {
        Router { routes }
    }

    /// Finds the handler for `path`: an exact route beats any prefix; among
    /// prefixes the longest wins.
    pub fn route(&self, path: &str) -> Option<RouteMatch<'_, T>> {
        let path = normalise(path);
        let exact = self
            .routes
            .iter()
            .find(|(pattern, _)| matches!(pattern, RoutePattern::Exact(p) if *p == path));
        if let Some((pattern, handler)) = exact {
            return Some(RouteMatch {
                handler,
                matched_route: pattern.written(),
                path_info: String::new(),
            });
        }
        self.routes
            .iter()
            .filter_map(|(pattern, handler)| match pattern {
                RoutePattern::Prefix(prefix) => {
                    let rest = path.strip_prefix(prefix.as_str())?;
                    (rest.is_empty() || rest.starts_with('/')).then_some((
                        prefix.len(),
                        pattern,
                        handler,
                        rest,
                    ))
                }
                RoutePattern::Exact(_) => None,
            })
            .max_by_key(|(len, ..)| *len)
            .map(|(_, pattern, handler, rest)| RouteMatch {
                handler,
                matched_route: pattern.written(),
                path_info: rest.to_owned(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        Router::new(vec![
            (RoutePattern::parse("/..."), "catch-all"),
            (RoutePattern::parse("/api/..."), "api"),
            (RoutePattern::parse("/api/health"), "health"),
        ])
    }

    #[test]
    fn exact_beats_prefix_and_longest_prefix_wins() {
        let r = router();
        assert_eq!(*r.route("/api/health").unwrap().handler, "health");
        assert_eq!(*r.route("/api/health/").unwrap().handler, "health");
        assert_eq!(*r.route("/api/users").unwrap().handler, "api");
        assert_eq!(*r.route("/api").unwrap().handler, "api");
        assert_eq!(*r.route("/apiary").unwrap().handler, "catch-all");
        assert_eq!(*r.route("/").unwrap().handler, "catch-all");
    }

    #[test]
    fn reports_matched_route_and_path_info() {
        let r = router();
        let m = r.route("/api/users/7").unwrap();
        assert_eq!(m.matched_route, "/api/...");
        assert_eq!(m.path_info, "/users/7");
    }

    #[test]
    fn no_route_no_match() {
        let r = Router::new(vec![(RoutePattern::parse("/only"), 1)]);
        assert!(r.route("/other").is_none());
        assert!(r.route("/only/below").is_none());
        assert_eq!(*r.route("/only").unwrap().handler, 1);
    }
}
