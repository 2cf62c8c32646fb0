//! Run by bench/run:
//! - `bench-client purge ...`: the purge scenario against one contestant;
//!   prints one JSON record for the results file.
//! - `bench-client prefill ADDR PREFIX SIZE RANKS`: requests PREFIX/RANKS
//!   down to PREFIX/1 once each, so a cache starts the mixed scenario holding
//!   the most popular objects, most popular most recently used.
//! - `bench-client warm ADDR PREFIX SIZE OBJECTS REQUESTS SEED`: REQUESTS
//!   GETs of PREFIX/<rank>, rank drawn from Zipf(1.0) over OBJECTS (seeded,
//!   a stream of its own), so a cache starts the mixed scenario in the
//!   state its own policy reaches under that load.
//! - `bench-client burst ADDR TARGET N`: N simultaneous GETs of one cold
//!   TARGET, one per connection; prints how they were answered.
//! - `bench-client large-load ADDR TARGET SIZE CONNECTIONS SECONDS [RANGE SEED]`:
//!   a closed-loop load of GETs of the large object TARGET (SIZE bytes),
//!   whole or (RANGE) seeded random RANGE-aligned ranges of RANGE bytes;
//!   prints `BENCH_JSON {...}` as bench/wrk/bench.lua does.
//! - `bench-client fetch SCENARIO CONTESTANT ROUND ADDR ORIGIN TARGET SIZE`:
//!   one GET of the large object TARGET on a new connection, timed to its
//!   first and last byte; prints a results record.
//! - `bench-client get ADDR TARGET SIZE`: one GET of a large object, checked
//!   (a cache's warm-up); says how long it took.

use anyhow::{Context, bail};
use edge_bench::client::Connection;
use edge_bench::purge::{PurgeRequest, Spec, fill, run};
use edge_bench::results::{FetchRun, Record};

const USAGE: &str = "usage: bench-client purge --contestant NAME --round N --addr HOST:PORT \
--origin HOST:PORT --run-id ID --objects N --small N [--size BYTES] [--connections N] \
--purge-method M --purge-path P [--purge-header 'NAME: VALUE']... [--purge-body B]";

/// Says how a fill went; fails if any of its requests did.
fn reported(
    what: &str,
    addr: &str,
    sent: &str,
    (took, errors): (std::time::Duration, u64),
) -> anyhow::Result<()> {
    eprintln!(
        "{what} {addr}: {sent} in {:.1} s, {errors} errors",
        took.as_secs_f64()
    );
    if errors > 0 {
        bail!("{what} {addr}: {errors} requests failed");
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("purge") => {}
        Some("prefill") => {
            let [addr, prefix, size, ranks] =
                std::array::from_fn(|_| args.next().unwrap_or_default());
            let ranks: usize = ranks.parse().context("prefill ADDR PREFIX SIZE RANKS")?;
            let filled = fill(&addr, ranks, 16, &|i| {
                format!("{prefix}/{}?size={size}", ranks - i)
            });
            return reported("prefill", &addr, &format!("{ranks} objects"), filled);
        }
        Some("warm") => {
            let [addr, prefix, size, objects, requests, seed] =
                std::array::from_fn(|_| args.next().unwrap_or_default());
            let usage = "warm ADDR PREFIX SIZE OBJECTS REQUESTS SEED";
            let objects: u64 = objects.parse().context(usage)?;
            let requests: usize = requests.parse().context(usage)?;
            let seed: u64 = seed.parse().context(usage)?;
            let cdf = edge_bench::zipf::cdf(objects, 1.0);
            let filled = fill(&addr, requests, 16, &|i| {
                let rank =
                    edge_bench::zipf::rank_for(&cdf, edge_bench::zipf::uniform(seed, i as u64));
                format!("{prefix}/{rank}?size={size}")
            });
            return reported("warm", &addr, &format!("{requests} Zipf requests"), filled);
        }
        Some("burst") => {
            let [addr, target, n] = std::array::from_fn(|_| args.next().unwrap_or_default());
            let n: usize = n.parse().context("burst ADDR TARGET N")?;
            let outcome = edge_bench::burst::burst(&addr, &target, n);
            println!(
                "requests={} ok={} collapsed={} failed={}",
                outcome.requests, outcome.ok, outcome.collapsed, outcome.failed
            );
            return Ok(());
        }
        Some("large-load") => {
            let args: Vec<String> = args.collect();
            let usage = "large-load ADDR TARGET SIZE CONNECTIONS SECONDS [RANGE SEED]";
            let number = |i: usize| -> anyhow::Result<u64> {
                args.get(i).context(usage)?.parse().context(usage)
            };
            let load = edge_bench::large::Load {
                addr: args.first().context(usage)?.clone(),
                target: args.get(1).context(usage)?.clone(),
                size: number(2)?,
                connections: number(3)? as usize,
                duration: std::time::Duration::from_secs_f64(
                    args.get(4).context(usage)?.parse().context(usage)?,
                ),
                range: args.get(5).map(|_| number(5)).transpose()?,
                seed: args.get(6).map(|_| number(6)).transpose()?.unwrap_or(1),
            };
            let summary = edge_bench::large::run(&load);
            println!("BENCH_JSON {}", serde_json::to_string(&summary)?);
            return Ok(());
        }
        Some("fetch") => {
            let [scenario, contestant, round, addr, origin, target, size] =
                std::array::from_fn(|_| args.next().unwrap_or_default());
            let usage = "fetch SCENARIO CONTESTANT ROUND ADDR ORIGIN TARGET SIZE";
            let size: u64 = size.parse().context(usage)?;
            let count = || -> anyhow::Result<u64> {
                let (reply, _) = Connection::open(&origin)?.get("/_count")?;
                Ok(String::from_utf8_lossy(&reply.body).trim().parse()?)
            };
            let before = count()?;
            let answer = edge_bench::large::fetch(&addr, &target, size)?;
            let record = Record::Fetch(FetchRun {
                scenario,
                contestant,
                round: round.parse().context(usage)?,
                origin_requests: Some(count()? - before),
                status: answer.status,
                bytes: answer.body_bytes,
                first_byte_us: answer.first_byte.as_secs_f64() * 1e6,
                last_byte_us: answer.last_byte.as_secs_f64() * 1e6,
            });
            println!("{}", serde_json::to_string(&record)?);
            return Ok(());
        }
        Some("get") => {
            let [addr, target, size] = std::array::from_fn(|_| args.next().unwrap_or_default());
            let size: u64 = size.parse().context("get ADDR TARGET SIZE")?;
            let answer = edge_bench::large::fetch(&addr, &target, size)?;
            println!(
                "{} bytes in {:.2} s (first byte {:.1} ms)",
                answer.body_bytes,
                answer.last_byte.as_secs_f64(),
                answer.first_byte.as_secs_f64() * 1e3
            );
            return Ok(());
        }
        _ => bail!("{USAGE}"),
    }
    let mut spec = Spec {
        contestant: String::new(),
        round: 1,
        addr: String::new(),
        origin: String::new(),
        run_id: String::new(),
        objects: 0,
        small: 0,
        size: 64,
        connections: 16,
        purge: PurgeRequest {
            method: String::new(),
            path: String::new(),
            headers: Vec::new(),
            body: String::new(),
        },
    };
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag}: missing value\n{USAGE}"))?;
        let number = || {
            value
                .parse::<usize>()
                .with_context(|| format!("{flag}: not a number"))
        };
        match flag.as_str() {
            "--contestant" => spec.contestant = value.clone(),
            "--round" => spec.round = number()? as u32,
            "--addr" => spec.addr = value.clone(),
            "--origin" => spec.origin = value.clone(),
            "--run-id" => spec.run_id = value.clone(),
            "--objects" => spec.objects = number()?,
            "--small" => spec.small = number()?,
            "--size" => spec.size = number()?,
            "--connections" => spec.connections = number()?,
            "--purge-method" => spec.purge.method = value.clone(),
            "--purge-path" => spec.purge.path = value.clone(),
            "--purge-header" => spec.purge.headers.push(PurgeRequest::header(&value)?),
            "--purge-body" => spec.purge.body = value.clone(),
            _ => bail!("unknown flag {flag}\n{USAGE}"),
        }
    }
    if spec.addr.is_empty() || spec.origin.is_empty() || spec.purge.method.is_empty() {
        bail!("{USAGE}");
    }
    if spec.objects == 0 || spec.small > spec.objects {
        bail!("--objects must be positive and at least --small");
    }
    let record = Record::Purge(run(&spec)?);
    println!("{}", serde_json::to_string(&record)?);
    Ok(())
}
