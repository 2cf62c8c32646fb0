//! SVG plots with plotters' SVG backend: bars at the median with a whisker
//! from the slowest to the fastest round. Text becomes SVG `<text>`, so no
//! font library is needed to draw, only a browser to look.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{PurgeRow, ScenarioTable};
use crate::stats::Summary;

/// One bar: a label, its summary, and a colour.
pub struct Bar {
    pub label: String,
    pub value: Summary,
    pub color: RGBColor,
}

/// A consistent colour per contestant across plots.
pub fn color(contestant: &str) -> RGBColor {
    match contestant {
        "edge" => RGBColor(0xd6, 0x27, 0x28),
        "edge-p2" => RGBColor(0xe3, 0x77, 0xc2),
        "edge-component" => RGBColor(0xff, 0x98, 0x96),
        "nginx" => RGBColor(0x2c, 0xa0, 0x2c),
        "varnish" => RGBColor(0x1f, 0x77, 0xb4),
        "origin" => RGBColor(0x7f, 0x7f, 0x7f),
        "ceiling" => RGBColor(0x33, 0x33, 0x33),
        "hello" => RGBColor(0xff, 0x7f, 0x0e),
        "hello-p3" => RGBColor(0xbc, 0xbd, 0x22),
        "hello-fetch" => RGBColor(0x8c, 0x56, 0x4b),
        _ => RGBColor(0x94, 0x67, 0xbd),
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn panel(area: &Area, title: &str, bars: &[Bar]) -> anyhow::Result<()> {
    let top = bars
        .iter()
        .map(|b| b.value.max)
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    // A segmented 0..k range has k + 1 slots: one per bar, none spare.
    let last = bars.len().saturating_sub(1) as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64)
        .build_cartesian_2d((0u32..last).into_segmented(), 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(bars.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => bars
                .get(*i as usize)
                .map_or(String::new(), |b| b.label.clone()),
            _ => String::new(),
        })
        .y_label_formatter(&|y| short(*y))
        .label_style(("sans-serif", 13))
        .draw()?;
    chart.draw_series(bars.iter().enumerate().map(|(i, bar)| {
        let i = i as u32;
        let mut rect = Rectangle::new(
            [
                (SegmentValue::Exact(i), 0.0),
                (SegmentValue::Exact(i + 1), bar.value.median),
            ],
            bar.color.filled(),
        );
        rect.set_margin(0, 0, 10, 10);
        rect
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, bar)| {
        let x = SegmentValue::CenterOf(i as u32);
        PathElement::new(
            vec![(x.clone(), bar.value.min), (x, bar.value.max)],
            BLACK.stroke_width(2),
        )
    }))?;
    Ok(())
}

/// Axis numbers without a wall of zeros: 12k, 1.5M, 0.25.
pub fn short(value: f64) -> String {
    let a = value.abs();
    if a >= 1e6 {
        format!("{:.1}M", value / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", value / 1e3)
    } else if a >= 100.0 || value == 0.0 {
        format!("{value:.0}")
    } else if a >= 1.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn draw(path: &Path, title: &str, panels: &[(String, Vec<Bar>)]) -> anyhow::Result<()> {
    let width = 420 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (width, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(36);
    header.titled(title, ("sans-serif", 20))?;
    for (area, (name, bars)) in body
        .split_evenly((1, panels.len().max(1)))
        .iter()
        .zip(panels)
    {
        panel(area, name, bars)?;
    }
    root.present()?;
    Ok(())
}

/// Throughput, p50 and p99 (and the hit ratio where measured) of one
/// scenario, written to `dir/{scenario}.svg`.
pub fn scenario(dir: &Path, table: &ScenarioTable) -> anyhow::Result<()> {
    let bars = |f: &dyn Fn(&crate::report::Row) -> Option<Summary>| -> Vec<Bar> {
        table
            .rows
            .iter()
            .filter_map(|row| {
                Some(Bar {
                    label: row.contestant.clone(),
                    value: f(row)?,
                    color: color(&row.contestant),
                })
            })
            .collect()
    };
    let mut panels = vec![
        (
            "requests/s (higher is better)".to_owned(),
            bars(&|r| Some(r.rps)),
        ),
        ("p50 latency, ms".to_owned(), bars(&|r| Some(r.p50_ms))),
        ("p99 latency, ms".to_owned(), bars(&|r| Some(r.p99_ms))),
    ];
    let hits = bars(&|r| {
        r.hit_ratio.map(|s| Summary {
            median: s.median * 100.0,
            min: s.min * 100.0,
            max: s.max * 100.0,
            count: s.count,
        })
    });
    if table.scenario == "zipf" && !hits.is_empty() {
        panels.push(("hit ratio, %".to_owned(), hits));
    }
    draw(
        &dir.join(format!("{}.svg", table.scenario)),
        &format!("{}: {}", table.scenario, table.description),
        &panels,
    )
}

/// Purge time and the first lookup after, per contestant and tag size,
/// written to `dir/purge.svg`.
pub fn purge(dir: &Path, rows: &[PurgeRow]) -> anyhow::Result<()> {
    let bars = |f: &dyn Fn(&PurgeRow) -> Summary| -> Vec<Bar> {
        rows.iter()
            .map(|row| Bar {
                label: format!("{} {}", row.contestant, count(row.covered)),
                value: f(row),
                color: color(&row.contestant),
            })
            .collect()
    };
    draw(
        &dir.join("purge.svg"),
        "purge: one tag over 1k vs 100k cached objects",
        &[
            ("purge call, ms".to_owned(), bars(&|r| r.purge_ms)),
            (
                "first lookup after, ms".to_owned(),
                bars(&|r| r.first_lookup_ms),
            ),
        ],
    )
}

fn count(n: u64) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_numbers() {
        assert_eq!(short(0.0), "0");
        assert_eq!(short(0.25), "0.25");
        assert_eq!(short(2.5), "2.5");
        assert_eq!(short(950.0), "950");
        assert_eq!(short(12_000.0), "12k");
        assert_eq!(short(1_500_000.0), "1.5M");
        assert_eq!(count(100_000), "100k");
        assert_eq!(count(1500), "1500");
    }

    #[test]
    fn svg_has_text_without_font_libraries() {
        let dir = std::env::temp_dir().join(format!("edge-bench-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let summary = |m| Summary {
            median: m,
            min: m * 0.9,
            max: m * 1.1,
            count: 3,
        };
        let table = ScenarioTable {
            scenario: "zipf".into(),
            description: "test".into(),
            rows: vec![crate::report::Row {
                contestant: "edge".into(),
                rps: summary(1000.0),
                mib_s: summary(1.0),
                p50_ms: summary(1.0),
                p99_ms: summary(3.0),
                hit_ratio: Some(summary(0.5)),
                errors: 0,
            }],
        };
        scenario(&dir, &table).unwrap();
        let svg = std::fs::read_to_string(dir.join("zipf.svg")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(svg.contains("<text"), "{svg}");
        assert!(svg.contains("requests/s"));
        assert!(svg.contains(">edge<") || svg.contains(">\nedge\n<") || svg.contains("edge"));
        assert!(svg.contains("hit ratio"));
        assert!(svg.matches("<rect").count() >= 4);
    }
}
