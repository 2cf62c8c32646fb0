//! From raw records to what people read: per scenario and contestant the
//! median and spread over rounds, the ratios the issue asks for, a plain
//! text table for the terminal and Markdown for BENCHMARKS.md.

use std::fmt::Write;

use crate::results::{FetchRun, LoadRun, PurgeRun, Record, ReplayRun};
use crate::stats::{Summary, ratio};

/// Load scenarios in report order: id and description.
pub const SCENARIOS: &[(&str, &str)] = &[
    ("hot-1k", "hot hit, one 1 KiB object"),
    (
        "hot-1k-tls",
        "hot hit, one 1 KiB object, HTTPS with HTTP/1.1 (wrk)",
    ),
    (
        "hot-1k-h2",
        "hot hit, one 1 KiB object, HTTPS with HTTP/2 (h2load, 10 streams per connection)",
    ),
    ("hot-100k", "hot hit, one 100 KiB object"),
    (
        "compress-100k",
        "compression: one 100 KiB HTML page, clients accepting br and gzip (nginx: gzip on, level 1)",
    ),
    (
        "miss",
        "miss path: unique URLs (1 KiB), every request goes to the origin",
    ),
    (
        "zipf",
        "mixed: Zipf(1.0) over 100,000 objects (1 KiB), cache smaller than the working set",
    ),
    (
        "wasm",
        "wasm overhead: edge-host with a trivial component vs the native ceiling (1 KiB)",
    ),
    ("hot-100m", "hot hit, one 100 MiB object (throughput)"),
    (
        "ranges-1g",
        "video-like: random aligned 1 MiB ranges of a cached 1 GiB object",
    ),
    (
        "ranges-256m",
        "video-like: random aligned 1 MiB ranges of a cached 256 MiB object (quick run)",
    ),
    (
        "cold-1g",
        "cold 1 GiB object: a new URL per request, time to first and last byte",
    ),
    (
        "cold-256m",
        "cold 256 MiB object: a new URL per request, time to first and last byte (quick run)",
    ),
];

/// Scenarios whose tables also give MiB/s (large bodies: bytes matter
/// more than requests).
fn throughput(scenario: &str) -> bool {
    scenario.starts_with("hot-100m") || scenario.starts_with("ranges-")
}

/// Scenarios whose tables give MiB/s beside req/s, to tell the bytes each
/// answer took (compression), while their ratios stay of req/s.
fn with_bytes(scenario: &str) -> bool {
    throughput(scenario) || scenario.starts_with("compress-")
}

/// Contestants in report order: id and description.
pub const CONTESTANTS: &[(&str, &str)] = &[
    (
        "edge",
        "edge (edge-host + edge-cache, WASI 0.3, reused instances)",
    ),
    (
        "edge-component",
        "edge with --no-native-hits: every request through the WASI 0.3 component",
    ),
    (
        "edge-observed",
        "edge with --metrics-listen and a JSON access log to a file",
    ),
    (
        "edge-p2",
        "edge, WASI 0.2 flavour (a fresh instance per request)",
    ),
    ("nginx", "nginx proxy_cache"),
    (
        "nginx-slice",
        "nginx proxy_cache with slice 1m (a cache entry per 1 MiB slice)",
    ),
    ("varnish", "Varnish"),
    ("origin", "origin alone"),
    ("ceiling", "native ceiling (hyper)"),
    (
        "hello",
        "edge-host + trivial component, WASI 0.2 (a fresh instance per request)",
    ),
    (
        "hello-p3",
        "edge-host + trivial component, WASI 0.3 (reused instances)",
    ),
    (
        "hello-fetch",
        "edge-host + trivial WASI 0.3 component fetching each request from the origin (no cache): the floor under a component's miss",
    ),
];

/// One contestant in one scenario, summarised over rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub contestant: String,
    pub rps: Summary,
    /// Bytes read per second, MiB/s.
    pub mib_s: Summary,
    pub p50_ms: Summary,
    pub p99_ms: Summary,
    pub hit_ratio: Option<Summary>,
    /// Transport errors plus non-2xx/3xx responses over all rounds.
    pub errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioTable {
    pub scenario: String,
    pub description: String,
    pub rows: Vec<Row>,
}

impl ScenarioTable {
    pub fn row(&self, contestant: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.contestant == contestant)
    }

    /// `(label, req/s ratio, p99 ratio)` for the pairs this scenario has:
    /// edge against nginx, Varnish and the ceiling; the trivial component,
    /// in both flavours, against the ceiling. Where bytes matter more than
    /// requests ([`throughput`]) the first ratio is of MiB/s (bytes of
    /// answers still arriving at the end count; requests only whole).
    pub fn ratios(&self) -> Vec<(String, f64, Option<f64>)> {
        let rate = |row: &Row| {
            if throughput(&self.scenario) {
                row.mib_s.median
            } else {
                row.rps.median
            }
        };
        let pairs: &[(&str, &str)] = if self.scenario == "wasm" {
            &[("hello", "ceiling"), ("hello-p3", "ceiling")]
        } else {
            &[
                ("edge", "nginx"),
                ("edge", "nginx-slice"),
                ("edge", "varnish"),
                ("edge", "ceiling"),
                ("edge-component", "nginx"),
                ("edge-p2", "nginx"),
                ("hello-fetch", "nginx"),
                ("edge", "hello-fetch"),
                ("edge-observed", "edge"),
            ]
        };
        pairs
            .iter()
            .filter_map(|&(a, b)| {
                let (ra, rb) = (self.row(a)?, self.row(b)?);
                let rps = ratio(Some(rate(ra)), Some(rate(rb)))?;
                let p99 = ratio(Some(ra.p99_ms.median), Some(rb.p99_ms.median));
                Some((format!("{a}/{b}"), rps, p99))
            })
            .collect()
    }
}

fn order(list: &[(&str, &str)], id: &str) -> usize {
    list.iter()
        .position(|(i, _)| *i == id)
        .unwrap_or(list.len())
}

/// Description of a known id, else the id.
pub fn describe(list: &[(&str, &str)], id: &str) -> String {
    list.iter()
        .find(|(i, _)| *i == id)
        .map_or(id, |(_, d)| d)
        .to_owned()
}

/// Groups load runs by scenario and contestant, in report order.
pub fn load_tables(records: &[Record]) -> Vec<ScenarioTable> {
    let runs: Vec<&LoadRun> = records
        .iter()
        .filter_map(|r| match r {
            Record::Load(run) => Some(run),
            Record::Purge(_) | Record::Fetch(_) | Record::Replay(_) => None,
        })
        .collect();
    let mut scenarios: Vec<&str> = runs.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.sort_by_key(|s| (order(SCENARIOS, s), s.to_string()));
    scenarios.dedup();
    scenarios
        .into_iter()
        .map(|scenario| {
            let mine: Vec<&&LoadRun> = runs.iter().filter(|r| r.scenario == scenario).collect();
            let mut contestants: Vec<&str> = mine.iter().map(|r| r.contestant.as_str()).collect();
            contestants.sort_by_key(|c| (order(CONTESTANTS, c), c.to_string()));
            contestants.dedup();
            let rows = contestants
                .into_iter()
                .filter_map(|contestant| {
                    let runs: Vec<&&&LoadRun> =
                        mine.iter().filter(|r| r.contestant == contestant).collect();
                    let of = |f: &dyn Fn(&LoadRun) -> f64| {
                        Summary::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                    };
                    let hits: Vec<f64> = runs.iter().filter_map(|r| r.hit_ratio()).collect();
                    Some(Row {
                        contestant: contestant.to_owned(),
                        rps: of(&|r| r.wrk.requests_per_second())?,
                        mib_s: of(&|r| r.wrk.mib_per_second())?,
                        p50_ms: of(&|r| r.wrk.p50_us / 1000.0)?,
                        p99_ms: of(&|r| r.wrk.p99_us / 1000.0)?,
                        // Where the origin served nothing, as for the
                        // ceiling, there is no cache to speak of.
                        hit_ratio: (contestant != "origin")
                            .then(|| Summary::of(&hits))
                            .flatten(),
                        errors: runs.iter().map(|r| r.wrk.errors + r.wrk.non2xx).sum(),
                    })
                })
                .collect();
            ScenarioTable {
                scenario: scenario.to_owned(),
                description: describe(SCENARIOS, scenario),
                rows,
            }
        })
        .collect()
}

/// One purge size of one contestant, summarised over rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct PurgeRow {
    pub contestant: String,
    /// Objects the purged tag covered.
    pub covered: u64,
    /// Objects cached when it was purged.
    pub cached: u64,
    pub purge_ms: Summary,
    pub first_lookup_ms: Summary,
    pub hit_before_ms: Summary,
    pub verified: usize,
    pub rounds: usize,
}

type Field = dyn Fn(&PurgeRun) -> f64;

/// Purge rows: per contestant, the small tag then the big tag.
pub fn purge_rows(records: &[Record]) -> Vec<PurgeRow> {
    let runs: Vec<&PurgeRun> = records
        .iter()
        .filter_map(|r| match r {
            Record::Purge(run) => Some(run),
            Record::Load(_) | Record::Fetch(_) | Record::Replay(_) => None,
        })
        .collect();
    let mut contestants: Vec<&str> = runs.iter().map(|r| r.contestant.as_str()).collect();
    contestants.sort_by_key(|c| (order(CONTESTANTS, c), c.to_string()));
    contestants.dedup();
    let mut rows = Vec::new();
    for contestant in contestants {
        let mine: Vec<&&PurgeRun> = runs.iter().filter(|r| r.contestant == contestant).collect();
        let ms = |f: &dyn Fn(&PurgeRun) -> f64| {
            Summary::of(&mine.iter().map(|r| f(r) / 1000.0).collect::<Vec<_>>())
        };
        let (Some(first), Some(hit_before_ms)) = (mine.first(), ms(&|r| r.hit_before_us)) else {
            continue;
        };
        let verified = mine.iter().filter(|r| r.verified()).count();
        let sizes: [(u64, &Field, &Field); 2] = [
            (first.small, &|r| r.purge_small_us, &|r| r.after_small_us),
            (first.objects, &|r| r.purge_big_us, &|r| r.after_big_us),
        ];
        for (covered, purge, after) in sizes {
            if let (Some(purge_ms), Some(first_lookup_ms)) = (ms(purge), ms(after)) {
                rows.push(PurgeRow {
                    contestant: contestant.to_owned(),
                    covered,
                    cached: first.objects,
                    purge_ms,
                    first_lookup_ms,
                    hit_before_ms,
                    verified,
                    rounds: mine.len(),
                });
            }
        }
    }
    rows
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn ms(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.2}")
    } else {
        format!("{value:.1}")
    }
}

fn percent(summary: &Option<Summary>) -> String {
    summary.map_or("–".into(), |s| {
        if s.count > 1 {
            format!(
                "{:.1}% ({:.1}–{:.1})",
                s.median * 100.0,
                s.min * 100.0,
                s.max * 100.0
            )
        } else {
            format!("{:.1}%", s.median * 100.0)
        }
    })
}

fn ratio_line(table: &ScenarioTable) -> String {
    let unit = if throughput(&table.scenario) {
        "MiB/s"
    } else {
        "req/s"
    };
    table
        .ratios()
        .iter()
        .map(|(label, rps, p99)| match p99 {
            Some(p99) => format!("{label} {rps:.2}× {unit}, {p99:.2}× p99"),
            None => format!("{label} {rps:.2}× {unit}"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The cells of one row: contestant, req/s, spread, (MiB/s,) p50, p99,
/// hit ratio, errors.
fn cells(row: &Row, with_bytes: bool) -> Vec<String> {
    let mut cells = vec![
        row.contestant.clone(),
        req_per_s(row.rps.median),
        format!("±{:.0}%", row.rps.spread_percent() / 2.0),
    ];
    if with_bytes {
        cells.push(thousands(row.mib_s.median));
    }
    cells.extend([
        ms(row.p50_ms.median),
        ms(row.p99_ms.median),
        percent(&row.hit_ratio),
        row.errors.to_string(),
    ]);
    cells
}

/// Requests per second: whole numbers, but a tenth below 100 (a 100 MiB
/// object is served some tens of times a second).
fn req_per_s(value: f64) -> String {
    if value < 100.0 {
        format!("{value:.1}")
    } else {
        thousands(value)
    }
}

fn headings(with_bytes: bool) -> Vec<&'static str> {
    let mut headings = vec!["contestant", "req/s", "spread"];
    if with_bytes {
        headings.push("MiB/s");
    }
    headings.extend(["p50 ms", "p99 ms", "hit ratio", "errors"]);
    headings
}

/// Column widths for a plain text table.
fn widths(headings: &[&str], rows: &[Vec<String>]) -> Vec<usize> {
    (0..headings.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([headings[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// A plain text line: the first cell left-aligned, the others right.
fn text_line(cells: &[String], widths: &[usize]) -> String {
    cells
        .iter()
        .zip(widths)
        .enumerate()
        .map(|(i, (c, w))| {
            if i == 0 {
                format!("{c:<w$}")
            } else {
                format!("{c:>w$}")
            }
        })
        .collect::<Vec<_>>()
        .join("  ")
}

/// One contestant's timed cold GETs, summarised over rounds.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchRow {
    pub contestant: String,
    pub first_byte_ms: Summary,
    pub last_byte_s: Summary,
    pub mib_s: Summary,
    pub origin_requests: Option<Summary>,
    /// Answers that were not a whole 200.
    pub errors: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FetchTable {
    pub scenario: String,
    pub description: String,
    pub rows: Vec<FetchRow>,
}

impl FetchTable {
    pub fn row(&self, contestant: &str) -> Option<&FetchRow> {
        self.rows.iter().find(|r| r.contestant == contestant)
    }

    /// `(label, first-byte ratio, last-byte ratio)`: the edge against the
    /// others (lower is better for both).
    pub fn ratios(&self) -> Vec<(String, f64, Option<f64>)> {
        let Some(edge) = self.row("edge") else {
            return Vec::new();
        };
        ["nginx", "nginx-slice", "varnish", "origin"]
            .iter()
            .filter_map(|&other| {
                let o = self.row(other)?;
                Some((
                    format!("edge/{other}"),
                    ratio(
                        Some(edge.first_byte_ms.median),
                        Some(o.first_byte_ms.median),
                    )?,
                    ratio(Some(edge.last_byte_s.median), Some(o.last_byte_s.median)),
                ))
            })
            .collect()
    }
}

/// Groups fetch runs by scenario and contestant, in report order.
pub fn fetch_tables(records: &[Record]) -> Vec<FetchTable> {
    let runs: Vec<&FetchRun> = records
        .iter()
        .filter_map(|r| match r {
            Record::Fetch(run) => Some(run),
            Record::Load(_) | Record::Purge(_) | Record::Replay(_) => None,
        })
        .collect();
    let mut scenarios: Vec<&str> = runs.iter().map(|r| r.scenario.as_str()).collect();
    scenarios.sort_by_key(|s| (order(SCENARIOS, s), s.to_string()));
    scenarios.dedup();
    scenarios
        .into_iter()
        .map(|scenario| {
            let mine: Vec<&&FetchRun> = runs.iter().filter(|r| r.scenario == scenario).collect();
            let mut contestants: Vec<&str> = mine.iter().map(|r| r.contestant.as_str()).collect();
            contestants.sort_by_key(|c| (order(CONTESTANTS, c), c.to_string()));
            contestants.dedup();
            let rows = contestants
                .into_iter()
                .filter_map(|contestant| {
                    let runs: Vec<&&&FetchRun> =
                        mine.iter().filter(|r| r.contestant == contestant).collect();
                    let of = |f: &dyn Fn(&FetchRun) -> f64| {
                        Summary::of(&runs.iter().map(|r| f(r)).collect::<Vec<_>>())
                    };
                    Some(FetchRow {
                        contestant: contestant.to_owned(),
                        first_byte_ms: of(&|r| r.first_byte_us / 1000.0)?,
                        last_byte_s: of(&|r| r.last_byte_us / 1e6)?,
                        mib_s: of(&|r| r.mib_per_second())?,
                        origin_requests: Summary::of(
                            &runs
                                .iter()
                                .filter_map(|r| r.origin_requests)
                                .map(|n| n as f64)
                                .collect::<Vec<_>>(),
                        ),
                        errors: runs.iter().filter(|r| r.status != 200).count(),
                    })
                })
                .collect();
            FetchTable {
                scenario: scenario.to_owned(),
                description: describe(SCENARIOS, scenario),
                rows,
            }
        })
        .collect()
}

const FETCH_HEADINGS: [&str; 7] = [
    "contestant",
    "first byte ms",
    "spread",
    "last byte s",
    "MiB/s",
    "origin requests",
    "errors",
];

fn fetch_cells(row: &FetchRow) -> Vec<String> {
    vec![
        row.contestant.clone(),
        ms(row.first_byte_ms.median),
        format!("±{:.0}%", row.first_byte_ms.spread_percent() / 2.0),
        format!("{:.2}", row.last_byte_s.median),
        thousands(row.mib_s.median),
        row.origin_requests
            .map_or("–".into(), |s| format!("{:.0}", s.median)),
        row.errors.to_string(),
    ]
}

fn fetch_ratio_line(table: &FetchTable) -> String {
    table
        .ratios()
        .iter()
        .map(|(label, first, last)| match last {
            Some(last) => format!("{label} {first:.2}× first byte, {last:.2}× last byte"),
            None => format!("{label} {first:.2}× first byte"),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The replay checks of a results file, in the order they ran.
pub fn replay_runs(records: &[Record]) -> Vec<ReplayRun> {
    records
        .iter()
        .filter_map(|record| match record {
            Record::Replay(run) => Some(run.clone()),
            Record::Load(_) | Record::Purge(_) | Record::Fetch(_) => None,
        })
        .collect()
}

/// The issues' targets, where measured: TLS and HTTP/2 edge/nginx ratios
/// of the hot 1 KiB hit no worse than the cleartext HTTP/1.1 one; the hot
/// large hit at least 0.8× nginx's throughput, the cold first byte at most
/// 1.5× nginx's, against nginx with and without slice; a replayed log's
/// predicted hit ratio within 1 point of the recorded one.
pub fn targets(
    tables: &[ScenarioTable],
    fetches: &[FetchTable],
    replays: &[ReplayRun],
) -> Vec<String> {
    let mut out = Vec::new();
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let edge_over_nginx = |scenario: &str| {
        let table = tables.iter().find(|t| t.scenario == scenario)?;
        ratio(
            Some(table.row("edge")?.rps.median),
            Some(table.row("nginx")?.rps.median),
        )
    };
    if let Some(plain) = edge_over_nginx("hot-1k") {
        for (scenario, what) in [("hot-1k-tls", "TLS"), ("hot-1k-h2", "HTTP/2")] {
            if let Some(r) = edge_over_nginx(scenario) {
                out.push(format!(
                    "{scenario}: edge/nginx {r:.2}× against {plain:.2}× in cleartext HTTP/1.1 \
                     (target: {what} no worse: {})",
                    verdict(r >= plain)
                ));
            }
        }
    }
    if let Some(hot) = tables.iter().find(|t| t.scenario == "hot-100m")
        && let (Some(edge), Some(nginx)) = (hot.row("edge"), hot.row("nginx"))
        && let Some(r) = ratio(Some(edge.mib_s.median), Some(nginx.mib_s.median))
    {
        out.push(format!(
            "hot 100 MiB hit, edge/nginx throughput {r:.2}× (target ≥ 0.8×: {})",
            verdict(r >= 0.8)
        ));
    }
    for compress in tables
        .iter()
        .filter(|t| t.scenario.starts_with("compress-"))
    {
        let per_answer = |row: &Row| row.mib_s.median * 1_048_576.0 / row.rps.median;
        if let (Some(edge), Some(nginx)) = (compress.row("edge"), compress.row("nginx"))
            && let Some(r) = ratio(Some(per_answer(edge)), Some(per_answer(nginx)))
        {
            out.push(format!(
                "{}: bytes per answer edge {} / nginx {} = {r:.2}× (target ≤ 1.05×: {}); req/s {:.2}×",
                compress.scenario,
                thousands(per_answer(edge)),
                thousands(per_answer(nginx)),
                verdict(r <= 1.05),
                edge.rps.median / nginx.rps.median,
            ));
        }
    }
    for cold in fetches.iter().filter(|t| t.scenario.starts_with("cold-")) {
        for name in ["nginx", "nginx-slice"] {
            if let (Some(edge), Some(nginx)) = (cold.row("edge"), cold.row(name))
                && let Some(r) = ratio(
                    Some(edge.first_byte_ms.median),
                    Some(nginx.first_byte_ms.median),
                )
            {
                out.push(format!(
                    "{}: edge/{name} time to first byte {r:.2}× (target ≤ 1.5×: {})",
                    cold.scenario,
                    verdict(r <= 1.5)
                ));
            }
        }
    }
    for replay in replays {
        let trace = match replay.scenario.as_str() {
            "zipf" => "the Zipf trace",
            other => other,
        };
        out.push(format!(
            "replay on {trace} ({} requests, {} MiB store): recorded {:.1} %, predicted {:.1} % \
             ({:.1} points; target within 1 point: {})",
            thousands(replay.requests as f64),
            replay.capacity_bytes >> 20,
            replay.recorded_hit_ratio * 100.0,
            replay.predicted_hit_ratio * 100.0,
            replay.points().abs(),
            verdict(replay.points().abs() <= 1.0)
        ));
    }
    out
}

/// The terminal table.
pub fn text(tables: &[ScenarioTable], fetches: &[FetchTable], purges: &[PurgeRow]) -> String {
    let mut out = String::new();
    for table in tables {
        let _ = writeln!(out, "\n{} — {}", table.scenario, table.description);
        let with_bytes = with_bytes(&table.scenario);
        let headings = headings(with_bytes);
        let rows: Vec<Vec<String>> = table.rows.iter().map(|r| cells(r, with_bytes)).collect();
        let widths = widths(&headings, &rows);
        let head: Vec<String> = headings.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "  {}", text_line(&head, &widths));
        for row in &rows {
            let _ = writeln!(out, "  {}", text_line(row, &widths));
        }
        let ratios = ratio_line(table);
        if !ratios.is_empty() {
            let _ = writeln!(out, "  ratios: {ratios}");
        }
    }
    for table in fetches {
        let _ = writeln!(out, "\n{} — {}", table.scenario, table.description);
        let rows: Vec<Vec<String>> = table.rows.iter().map(fetch_cells).collect();
        let widths = widths(&FETCH_HEADINGS, &rows);
        let head: Vec<String> = FETCH_HEADINGS.iter().map(|h| h.to_string()).collect();
        let _ = writeln!(out, "  {}", text_line(&head, &widths));
        for row in &rows {
            let _ = writeln!(out, "  {}", text_line(row, &widths));
        }
        let ratios = fetch_ratio_line(table);
        if !ratios.is_empty() {
            let _ = writeln!(out, "  ratios: {ratios}");
        }
    }
    if !purges.is_empty() {
        let _ = writeln!(
            out,
            "\npurge — time to purge one tag, and the first lookup after"
        );
        for row in purges {
            let _ = writeln!(
                out,
                "  {:<8} tag over {:>7} of {:>7} cached: purge {:>8} ms  first lookup {:>8} ms  (hit before {} ms; verified {}/{})",
                row.contestant,
                thousands(row.covered as f64),
                thousands(row.cached as f64),
                ms(row.purge_ms.median),
                ms(row.first_lookup_ms.median),
                ms(row.hit_before_ms.median),
                row.verified,
                row.rounds,
            );
        }
    }
    out
}

fn markdown_head(out: &mut String, headings: &[&str]) {
    let _ = writeln!(out, "| {} |", headings.join(" | "));
    let _ = writeln!(out, "|---{}|", "|---:".repeat(headings.len() - 1));
}

/// The Markdown results: one table per scenario with its ratios, the
/// machine it was measured on (`machine`, e.g. the CPU model) and its plot,
/// then the cold fetches and the purge table.
pub fn markdown(
    tables: &[ScenarioTable],
    fetches: &[FetchTable],
    purges: &[PurgeRow],
    replays: &[ReplayRun],
    plot_dir: &str,
    machine: Option<&str>,
) -> String {
    let mut out = String::new();
    let measured_on = |out: &mut String| {
        if let Some(machine) = machine {
            let _ = writeln!(out, "\nMeasured on: {machine}.");
        }
    };
    for table in tables {
        let _ = writeln!(out, "### {}: {}\n", table.scenario, table.description);
        let with_bytes = with_bytes(&table.scenario);
        markdown_head(&mut out, &headings(with_bytes));
        for row in &table.rows {
            let mut cells = cells(row, with_bytes);
            cells[0] = describe(CONTESTANTS, &row.contestant);
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let ratios = ratio_line(table);
        if !ratios.is_empty() {
            let _ = writeln!(out, "\nRatios: {ratios}.");
        }
        measured_on(&mut out);
        let _ = writeln!(
            out,
            "\n![{}]({plot_dir}/{}.svg)\n",
            table.description, table.scenario
        );
    }
    for table in fetches {
        let _ = writeln!(out, "### {}: {}\n", table.scenario, table.description);
        markdown_head(&mut out, &FETCH_HEADINGS);
        for row in &table.rows {
            let mut cells = fetch_cells(row);
            cells[0] = describe(CONTESTANTS, &row.contestant);
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        let ratios = fetch_ratio_line(table);
        if !ratios.is_empty() {
            let _ = writeln!(out, "\nRatios: {ratios}.");
        }
        measured_on(&mut out);
        out.push('\n');
    }
    if !purges.is_empty() {
        let _ = writeln!(
            out,
            "### purge: time to purge one tag, and the first lookup after\n"
        );
        let _ = writeln!(
            out,
            "| contestant | objects under the tag | cached | purge ms | first lookup after ms | hit before ms | verified |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
        for row in purges {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {}/{} |",
                describe(CONTESTANTS, &row.contestant),
                thousands(row.covered as f64),
                thousands(row.cached as f64),
                ms(row.purge_ms.median),
                ms(row.first_lookup_ms.median),
                ms(row.hit_before_ms.median),
                row.verified,
                row.rounds
            );
        }
        measured_on(&mut out);
        let _ = writeln!(out, "\n![purge]({plot_dir}/purge.svg)\n");
    }
    let targets = targets(tables, fetches, replays);
    if !targets.is_empty() {
        let _ = writeln!(out, "Targets:\n");
        for target in targets {
            let _ = writeln!(out, "- {target}");
        }
        out.push('\n');
    }
    out
}

pub const BEGIN: &str = "<!-- bench-report:begin -->";
pub const END: &str = "<!-- bench-report:end -->";

/// Replaces what lies between the markers of `document` with `section`.
pub fn replace_section(document: &str, section: &str) -> Result<String, String> {
    let start = document
        .find(BEGIN)
        .ok_or_else(|| format!("no {BEGIN} marker"))?;
    let end = document[start..]
        .find(END)
        .map(|i| start + i)
        .ok_or_else(|| format!("no {END} after {BEGIN}"))?;
    Ok(format!(
        "{}{BEGIN}\n{}\n{}",
        &document[..start],
        section.trim_end(),
        &document[end..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::WrkSummary;

    #[test]
    fn tls_and_http2_ratios_are_held_to_the_cleartext_one() {
        let records = [
            load("hot-1k", "edge", 1, 1000, Some(0)),
            load("hot-1k", "nginx", 1, 1000, Some(0)),
            load("hot-1k-tls", "edge", 1, 900, Some(0)),
            load("hot-1k-tls", "nginx", 1, 800, Some(0)),
            load("hot-1k-h2", "edge", 1, 700, Some(0)),
            load("hot-1k-h2", "nginx", 1, 1000, Some(0)),
        ];
        let tables = load_tables(&records);
        let order: Vec<&str> = tables.iter().map(|t| t.scenario.as_str()).collect();
        assert_eq!(order, ["hot-1k", "hot-1k-tls", "hot-1k-h2"]);
        assert_eq!(
            targets(&tables, &[], &[]),
            [
                "hot-1k-tls: edge/nginx 1.12× against 1.00× in cleartext HTTP/1.1 (target: TLS no worse: met)",
                "hot-1k-h2: edge/nginx 0.70× against 1.00× in cleartext HTTP/1.1 (target: HTTP/2 no worse: missed)",
            ]
        );
    }

    fn load(scenario: &str, contestant: &str, round: u32, rps: u64, origin: Option<u64>) -> Record {
        Record::Load(LoadRun {
            scenario: scenario.into(),
            contestant: contestant.into(),
            round,
            origin_requests: origin,
            wrk: WrkSummary {
                requests: rps,
                duration_us: 1_000_000,
                bytes: rps << 20,
                errors: 0,
                non2xx: if contestant == "varnish" { 1 } else { 0 },
                p50_us: 1000.0 * round as f64,
                p90_us: 0.0,
                p99_us: 4000.0,
                max_us: 0.0,
                mean_us: 0.0,
            },
        })
    }

    fn records() -> Vec<Record> {
        vec![
            load("zipf", "edge", 1, 100, Some(20)),
            load("hot-1k", "ceiling", 1, 1000, None),
            load("hot-1k", "edge", 1, 100, Some(0)),
            load("hot-1k", "edge", 2, 300, Some(0)),
            load("hot-1k", "edge", 3, 200, Some(0)),
            load("hot-1k", "nginx", 1, 400, Some(0)),
            load("hot-1k", "varnish", 1, 200, Some(0)),
            load("wasm", "hello", 1, 50, None),
            load("wasm", "ceiling", 1, 100, None),
        ]
    }

    #[test]
    fn tables_follow_report_order_with_medians() {
        let tables = load_tables(&records());
        let names: Vec<&str> = tables.iter().map(|t| t.scenario.as_str()).collect();
        assert_eq!(names, ["hot-1k", "zipf", "wasm"]);
        let hot = &tables[0];
        let order: Vec<&str> = hot.rows.iter().map(|r| r.contestant.as_str()).collect();
        assert_eq!(order, ["edge", "nginx", "varnish", "ceiling"]);
        let edge = hot.row("edge").unwrap();
        assert_eq!(
            (edge.rps.median, edge.rps.min, edge.rps.max),
            (200.0, 100.0, 300.0)
        );
        assert_eq!(edge.p50_ms.median, 2.0);
        assert_eq!(edge.hit_ratio.unwrap().median, 1.0);
        assert_eq!(hot.row("ceiling").unwrap().hit_ratio, None);
        assert_eq!(hot.row("varnish").unwrap().errors, 1);
        assert_eq!(
            tables[1].row("edge").unwrap().hit_ratio.unwrap().median,
            0.8
        );
    }

    #[test]
    fn ratios_per_scenario() {
        let tables = load_tables(&records());
        let hot: Vec<(String, f64)> = tables[0]
            .ratios()
            .into_iter()
            .map(|(l, r, _)| (l, r))
            .collect();
        assert_eq!(
            hot,
            [
                ("edge/nginx".into(), 0.5),
                ("edge/varnish".into(), 1.0),
                ("edge/ceiling".into(), 0.2)
            ]
        );
        assert_eq!(tables[0].ratios()[0].2, Some(1.0));
        // Zipf has no other contestant here, so no ratio.
        assert!(tables[1].ratios().is_empty());
        assert_eq!(tables[2].ratios()[0].0, "hello/ceiling");
        assert_eq!(tables[2].ratios()[0].1, 0.5);
    }

    #[test]
    fn the_miss_path_is_also_read_against_its_floor() {
        let tables = load_tables(&[
            load("miss", "edge", 1, 60, Some(60)),
            load("miss", "hello-fetch", 1, 120, Some(120)),
            load("miss", "nginx", 1, 200, Some(200)),
        ]);
        let miss: Vec<(String, f64)> = tables[0]
            .ratios()
            .into_iter()
            .map(|(l, r, _)| (l, r))
            .collect();
        assert_eq!(
            miss,
            [
                ("edge/nginx".into(), 0.3),
                ("hello-fetch/nginx".into(), 0.6),
                ("edge/hello-fetch".into(), 0.5)
            ]
        );
    }

    #[test]
    fn text_and_markdown_carry_the_numbers() {
        let tables = load_tables(&records());
        let text = text(&tables, &[], &[]);
        assert!(text.contains("edge/nginx 0.50× req/s"), "{text}");
        assert!(text.contains("±50%"), "{text}");
        let md = markdown(&tables, &[], &[], &[], "bench/plots", Some("AMD EPYC"));
        assert!(md.contains("Measured on: AMD EPYC."), "{md}");
        assert!(md.contains("| edge (edge-host + edge-cache, WASI 0.3, reused instances) | 200 | ±50% | 2.00 | 4.00 | 100.0% (100.0–100.0) | 0 |"), "{md}");
        assert!(md.contains("![hot hit, one 1 KiB object](bench/plots/hot-1k.svg)"));
    }

    fn fetch(scenario: &str, contestant: &str, round: u32, first_ms: f64) -> Record {
        Record::Fetch(FetchRun {
            scenario: scenario.into(),
            contestant: contestant.into(),
            round,
            origin_requests: Some(if contestant == "nginx-slice" { 1024 } else { 1 }),
            status: 200,
            bytes: 1 << 30,
            first_byte_us: first_ms * 1000.0,
            last_byte_us: 2e6,
        })
    }

    #[test]
    fn large_scenarios_give_bytes_first_bytes_and_targets() {
        let mut records = vec![
            load("hot-100m", "edge", 1, 9, Some(0)),
            load("hot-100m", "nginx", 1, 10, Some(0)),
        ];
        for round in 1..=3 {
            records.push(fetch("cold-1g", "edge", round, 3.0 * round as f64));
            records.push(fetch("cold-1g", "nginx", round, 4.0));
            records.push(fetch("cold-1g", "nginx-slice", round, 2.0));
        }
        let tables = load_tables(&records);
        let fetches = fetch_tables(&records);
        assert_eq!(tables[0].row("edge").unwrap().mib_s.median, 9.0);
        let cold = &fetches[0];
        assert_eq!(cold.row("edge").unwrap().first_byte_ms.median, 6.0);
        assert_eq!(cold.row("edge").unwrap().mib_s.median, 512.0);
        assert_eq!(
            cold.row("nginx-slice")
                .unwrap()
                .origin_requests
                .unwrap()
                .median,
            1024.0
        );
        assert_eq!(cold.ratios()[0], ("edge/nginx".into(), 1.5, Some(1.0)));
        assert_eq!(
            targets(&tables, &fetches, &[]),
            [
                "hot 100 MiB hit, edge/nginx throughput 0.90× (target ≥ 0.8×: met)",
                "cold-1g: edge/nginx time to first byte 1.50× (target ≤ 1.5×: met)",
                "cold-1g: edge/nginx-slice time to first byte 3.00× (target ≤ 1.5×: missed)"
            ]
        );
        let text = text(&tables, &fetches, &[]);
        assert!(text.contains("MiB/s"), "{text}");
        assert!(
            text.contains("edge/nginx 1.50× first byte, 1.00× last byte"),
            "{text}"
        );
        let md = markdown(&tables, &fetches, &[], &[], "p", Some("CPU X"));
        assert!(md.contains("| first byte ms |"), "{md}");
        assert!(
            md.contains("|---|---:|---:|---:|---:|---:|---:|---:|"),
            "{md}"
        );
        assert!(md.contains("Targets:"), "{md}");
        assert_eq!(md.matches("Measured on: CPU X.").count(), 2);
    }

    #[test]
    fn a_replay_is_held_to_one_point_of_the_recorded_hit_ratio() {
        let run = |recorded: f64, predicted: f64| {
            Record::Replay(ReplayRun {
                scenario: "zipf".into(),
                requests: 300_000,
                capacity_bytes: 32 << 20,
                recorded_hit_ratio: recorded,
                predicted_hit_ratio: predicted,
            })
        };
        let records = [run(0.864, 0.861), run(0.864, 0.880)];
        let replays = replay_runs(&records);
        assert_eq!(
            targets(&[], &[], &replays),
            [
                "replay on the Zipf trace (300,000 requests, 32 MiB store): recorded 86.4 %, predicted 86.1 % (0.3 points; target within 1 point: met)",
                "replay on the Zipf trace (300,000 requests, 32 MiB store): recorded 86.4 %, predicted 88.0 % (1.6 points; target within 1 point: missed)",
            ]
        );
        // A results file of nothing else (bench/run --only replay) still
        // reports it.
        let md = markdown(&[], &[], &[], &replays, "p", None);
        assert!(md.contains("- replay on the Zipf trace"), "{md}");
    }

    #[test]
    fn number_formats() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(12.34), "12.3");
    }

    #[test]
    fn purge_rows_pair_sizes() {
        let run = |round, verified: bool| {
            Record::Purge(PurgeRun {
                contestant: "edge".into(),
                round,
                objects: 100_000,
                small: 1000,
                fill_seconds: 1.0,
                fill_errors: 0,
                hit_before_us: 100.0,
                hit_before_from_origin: false,
                purge_small_us: 200.0 * round as f64,
                after_small_us: 900.0,
                after_small_from_origin: verified,
                other_after_small_us: 100.0,
                other_after_small_from_origin: false,
                purge_big_us: 300.0,
                after_big_us: 800.0,
                after_big_from_origin: true,
            })
        };
        let rows = purge_rows(&[run(1, true), run(2, false), run(3, true)]);
        assert_eq!(rows.len(), 2);
        assert_eq!((rows[0].covered, rows[0].cached), (1000, 100_000));
        assert_eq!(rows[0].purge_ms.median, 0.4);
        assert_eq!(rows[1].covered, 100_000);
        assert_eq!(rows[1].first_lookup_ms.median, 0.8);
        assert_eq!((rows[0].verified, rows[0].rounds), (2, 3));
        let text = text(&[], &[], &rows);
        assert!(
            text.contains("tag over   1,000 of 100,000 cached"),
            "{text}"
        );
    }

    #[test]
    fn sections_are_replaced_between_markers() {
        let doc = format!("intro\n{BEGIN}\nold\n{END}\noutro\n");
        let new = replace_section(&doc, "new\n").unwrap();
        assert_eq!(new, format!("intro\n{BEGIN}\nnew\n{END}\noutro\n"));
        assert_eq!(replace_section(&new, "new").unwrap(), new);
        assert!(replace_section("no markers", "x").is_err());
        assert!(replace_section(&format!("{END}{BEGIN}"), "x").is_err());
    }
}
