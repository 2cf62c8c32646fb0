//! The purge scenario against one contestant: fill `objects` objects that
//! share a tag (the first `small` of them a second tag), then time, on one
//! warm keep-alive connection, a hit, the purge of the small tag, the first
//! lookup of a purged object, a lookup of an unpurged one, the purge of the
//! big tag and the first lookup after it. The origin's request counter says
//! whether each lookup was a hit or went to the origin.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::client::{Connection, Outgoing};
use crate::results::PurgeRun;

/// How to purge a tag at one contestant; `{tag}` in the path, header
/// values and body is replaced by the tag.
#[derive(Debug, Clone)]
pub struct PurgeRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub contestant: String,
    pub round: u32,
    /// The contestant's address (host:port).
    pub addr: String,
    /// The origin's address, for its request counter.
    pub origin: String,
    /// Makes this run's URLs and tags unique.
    pub run_id: String,
    pub objects: usize,
    pub small: usize,
    pub size: usize,
    pub connections: usize,
    pub purge: PurgeRequest,
}

impl Spec {
    pub fn big_tag(&self) -> String {
        format!("all-{}", self.run_id)
    }

    pub fn small_tag(&self) -> String {
        format!("small-{}", self.run_id)
    }

    /// The URL of object `i` with its tags in the query (the origin turns
    /// them into `Surrogate-Key`).
    pub fn target(&self, i: usize) -> String {
        let mut target = format!(
            "/purge/{}/{i}?size={}&tag={}",
            self.run_id,
            self.size,
            self.big_tag()
        );
        if i < self.small {
            target.push_str(&format!("&tag={}", self.small_tag()));
        }
        target
    }
}

impl PurgeRequest {
    /// Parses `NAME: VALUE` header arguments.
    pub fn header(argument: &str) -> anyhow::Result<(String, String)> {
        let (name, value) = argument
            .split_once(':')
            .with_context(|| format!("header {argument:?}: expected NAME: VALUE"))?;
        Ok((name.trim().to_owned(), value.trim().to_owned()))
    }

    fn for_tag(&self, tag: &str) -> (String, Vec<(String, String)>, String) {
        let fill = |s: &str| s.replace("{tag}", tag);
        (
            fill(&self.path),
            self.headers
                .iter()
                .map(|(n, v)| (n.clone(), fill(v)))
                .collect(),
            fill(&self.body),
        )
    }
}

/// Requests every target once over `connections` keep-alive connections;
/// returns the elapsed time and how many requests failed (transport errors
/// or a status other than 200).
pub fn fill(
    addr: &str,
    count: usize,
    connections: usize,
    target: &(dyn Fn(usize) -> String + Sync),
) -> (Duration, u64) {
    let next = AtomicUsize::new(0);
    let errors = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..connections.max(1) {
            scope.spawn(|| {
                let mut connection = None;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    if connection.is_none() {
                        connection = Connection::open(addr).ok();
                    }
                    let ok = match connection.as_mut().map(|c| c.get(&target(i))) {
                        Some(Ok((reply, _))) => reply.status == 200,
                        // A broken connection is reopened for the next object.
                        _ => {
                            connection = None;
                            false
                        }
                    };
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    (started.elapsed(), errors.into_inner())
}

fn micros(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e6
}

fn origin_count(origin: &mut Connection) -> anyhow::Result<u64> {
    let (reply, _) = origin.get(crate::servers::COUNT_PATH)?;
    Ok(String::from_utf8_lossy(&reply.body).trim().parse()?)
}

/// Runs the scenario (see the module comment).
pub fn run(spec: &Spec) -> anyhow::Result<PurgeRun> {
    let (fill_time, fill_errors) = fill(&spec.addr, spec.objects, spec.connections, &|i| {
        spec.target(i)
    });
    let mut origin = Connection::open(&spec.origin).context("origin")?;
    let mut edge = Connection::open(&spec.addr).context("contestant")?;
    // A lookup lands at the origin when its counter moved.
    let mut lookup = |target: &str| -> anyhow::Result<(f64, bool)> {
        let before = origin_count(&mut origin)?;
        let (reply, took) = edge.get(target)?;
        if reply.status != 200 {
            bail!("GET {target}: status {}", reply.status);
        }
        Ok((micros(took), origin_count(&mut origin)? > before))
    };
    // Warms the connection (and anything lazily set up) with an object the
    // purges do not cover.
    lookup(&format!("/purge/{}/warm?size={}", spec.run_id, spec.size))?;
    let (hit_before_us, hit_before_from_origin) = lookup(&spec.target(0))?;

    let mut purge_connection = Connection::open(&spec.addr).context("contestant")?;
    let mut purge = |tag: &str| -> anyhow::Result<f64> {
        let (path, headers, body) = spec.purge.for_tag(tag);
        let request = Outgoing {
            method: &spec.purge.method,
            target: &path,
            headers: &headers,
            body: body.as_bytes(),
        };
        let (reply, took) = purge_connection.send(&request)?;
        if !(200..300).contains(&reply.status) {
            bail!(
                "{} {path}: status {}: {}",
                spec.purge.method,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        Ok(micros(took))
    };
    let purge_small_us = purge(&spec.small_tag())?;
    let (after_small_us, after_small_from_origin) = lookup(&spec.target(0))?;
    let (other_after_small_us, other_after_small_from_origin) =
        lookup(&spec.target(spec.small.min(spec.objects - 1)))?;
    let purge_big_us = purge(&spec.big_tag())?;
    let (after_big_us, after_big_from_origin) = lookup(&spec.target(spec.objects / 2))?;
    Ok(PurgeRun {
        contestant: spec.contestant.clone(),
        round: spec.round,
        objects: spec.objects as u64,
        small: spec.small as u64,
        fill_seconds: fill_time.as_secs_f64(),
        fill_errors,
        hit_before_us,
        hit_before_from_origin,
        purge_small_us,
        after_small_us,
        after_small_from_origin,
        other_after_small_us,
        other_after_small_from_origin,
        purge_big_us,
        after_big_us,
        after_big_from_origin,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> Spec {
        Spec {
            contestant: "edge".into(),
            round: 1,
            addr: String::new(),
            origin: String::new(),
            run_id: "r1".into(),
            objects: 10,
            small: 2,
            size: 64,
            connections: 1,
            purge: PurgeRequest {
                method: "POST".into(),
                path: "/_edge/purge".into(),
                headers: vec![PurgeRequest::header("Authorization: Bearer {tag}").unwrap()],
                body: r#"{"tags":["{tag}"]}"#.into(),
            },
        }
    }

    #[test]
    fn small_objects_carry_both_tags() {
        let spec = spec();
        assert_eq!(
            spec.target(1),
            "/purge/r1/1?size=64&tag=all-r1&tag=small-r1"
        );
        assert_eq!(spec.target(2), "/purge/r1/2?size=64&tag=all-r1");
    }

    #[test]
    fn purge_requests_are_filled_in_with_the_tag() {
        let (path, headers, body) = spec().purge.for_tag("t9");
        assert_eq!(path, "/_edge/purge");
        assert_eq!(headers, [("Authorization".into(), "Bearer t9".into())]);
        assert_eq!(body, r#"{"tags":["t9"]}"#);
        assert!(PurgeRequest::header("no colon").is_err());
    }
}
