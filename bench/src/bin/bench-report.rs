//! `bench-report RESULTS.jsonl [--meta META.md] [--plots DIR] [--markdown BENCHMARKS.md --plot-link DIR] [--machine TEXT]`
//!
//! Prints the table (medians over rounds, spread, ratios); with `--plots`
//! writes one SVG per scenario; with `--markdown` replaces the generated
//! section of that file (between its bench-report markers) with the tables,
//! the machine description from `--meta`, `--machine` (the CPU model) under
//! every table, and links to the plots.

use std::path::PathBuf;

use anyhow::{Context, bail};
use edge_bench::{plot, report, results, zipf};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut input = None;
    let mut meta = None;
    let mut plots = None;
    let mut markdown = None;
    let mut plot_link = "bench/plots".to_owned();
    let mut zipf_objects = 100_000u64;
    let mut zipf_cache_objects = None;
    let mut machine = None;
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg}: missing value"));
        match arg.as_str() {
            "--meta" => meta = Some(PathBuf::from(value()?)),
            "--plots" => plots = Some(PathBuf::from(value()?)),
            "--markdown" => markdown = Some(PathBuf::from(value()?)),
            "--plot-link" => plot_link = value()?,
            "--machine" => machine = Some(value()?),
            "--zipf-objects" => zipf_objects = value()?.parse()?,
            "--zipf-cache-objects" => zipf_cache_objects = Some(value()?.parse::<u64>()?),
            _ if input.is_none() && !arg.starts_with('-') => input = Some(PathBuf::from(arg)),
            _ => bail!("unknown argument {arg}"),
        }
    }
    let input = input
        .context("usage: bench-report RESULTS.jsonl [--meta F] [--plots DIR] [--markdown F]")?;
    let text = std::fs::read_to_string(&input).with_context(|| input.display().to_string())?;
    let records = results::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", input.display()))?;
    let tables = report::load_tables(&records);
    let purges = report::purge_rows(&records);
    let fetches = report::fetch_tables(&records);
    let replays = report::replay_runs(&records);

    // What a perfect cache holding the most popular objects would hit: the
    // yardstick for the mixed scenario's measured hit ratios.
    let ideal = zipf_cache_objects.map(|k| {
        format!(
            "A cache holding the {k} most popular of {zipf_objects} objects would hit {:.1}% of Zipf(1.0) requests (the ideal for this budget).",
            zipf::top_k_share(k, zipf_objects, 1.0) * 100.0
        )
    });

    print!("{}", report::text(&tables, &fetches, &purges));
    for target in report::targets(&tables, &fetches, &replays) {
        println!("target: {target}");
    }
    if let Some(ideal) = &ideal {
        println!("\n{ideal}");
    }

    if let Some(dir) = &plots {
        std::fs::create_dir_all(dir)?;
        for table in &tables {
            plot::scenario(dir, table)?;
        }
        if !purges.is_empty() {
            plot::purge(dir, &purges)?;
        }
        eprintln!("bench-report: plots in {}", dir.display());
    }

    if let Some(path) = &markdown {
        let mut section = String::new();
        if let Some(meta) = &meta {
            section.push_str(
                &std::fs::read_to_string(meta).with_context(|| meta.display().to_string())?,
            );
            section.push('\n');
        }
        section.push_str(&report::markdown(
            &tables,
            &fetches,
            &purges,
            &replays,
            &plot_link,
            machine.as_deref(),
        ));
        if let Some(ideal) = &ideal {
            section.push_str(&format!("{ideal}\n"));
        }
        let document = std::fs::read_to_string(path)
            .unwrap_or_else(|_| format!("# Benchmarks\n\n{}\n{}\n", report::BEGIN, report::END));
        let updated = report::replace_section(&document, &section)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        std::fs::write(path, updated)?;
        eprintln!("bench-report: results written to {}", path.display());
    }
    Ok(())
}
