//! The book's benchmark figures and table, drawn from a results file.
//!
//! Everything here is a pure function of the results: the same file gives the same bytes, so
//! the committed SVGs change only when the figures do. The SVGs are drawn by `plotters` without
//! system fonts (text is left to the browser as SVG `<text>`), so they build anywhere.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use anyhow::Context;
use plotters::{
    element::{EmptyElement, PathElement, Rectangle, Text},
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use crate::{
    bench::{Measurement, Results},
    report::{Report, micros},
};

const WIDTH: u32 = 760;
const HEIGHT: u32 = 420;
const FONT: &str = "sans-serif";
/// Colour-blind-safe colours (Okabe and Ito), one per series.
const COLOURS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(213, 94, 0),
];

/// Where the Markdown table goes inside `BENCHMARKS.md`.
pub const TABLE_BEGIN: &str = "<!-- bench:table:begin (written by the plot tool) -->";
pub const TABLE_END: &str = "<!-- bench:table:end -->";

/// One file to write: its name and its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub file: &'static str,
    pub text: String,
}

/// Every figure the results allow (a scenario nobody measured gives no figure), and the table.
pub fn render(results: &Results) -> anyhow::Result<Vec<Output>> {
    let latest = results.latest();
    let of = |scenario: &str| -> Vec<&Measurement> {
        latest
            .iter()
            .copied()
            .filter(|measurement| measurement.scenario == scenario)
            .collect()
    };
    let mut outputs = Vec::new();
    let s1 = of("s1");
    if !s1.is_empty() {
        outputs.push(Output {
            file: "s1-deliveries.svg",
            text: bars(
                "s1: deliveries per second (100 clients, 10 senders, 64 B)",
                "million deliveries per second",
                &chapters(&s1),
                &[("deliveries/s", values(&s1, |r| r.deliveries_per_sec / 1e6))],
                |value| format!("{value:.2} M"),
            )?,
        });
    }
    for (scenario, file, title) in [
        (
            "s2",
            "s2-latency.svg",
            "s2: latency (1,000 clients, 1 sender at 100 msg/s)",
        ),
        (
            "s2-400",
            "s2-400-latency.svg",
            "s2 at 400 msg/s: latency (1,000 clients, 1 sender)",
        ),
    ] {
        let runs = of(scenario);
        if runs.is_empty() {
            continue;
        }
        outputs.push(Output {
            file,
            text: bars(
                title,
                "one-way latency, ms",
                &chapters(&runs),
                &[
                    ("p50", values(&runs, |r| r.p50_us as f64 / 1e3)),
                    ("p99", values(&runs, |r| r.p99_us as f64 / 1e3)),
                    ("p99.9", values(&runs, |r| r.p999_us as f64 / 1e3)),
                ],
                |value| format!("{value:.1}"),
            )?,
        });
    }
    let stall = of("stall");
    if !stall.is_empty() {
        outputs.push(Output {
            file: "stall-memory.svg",
            text: memory_over_time(&stall)?,
        });
    }
    let idle = of("idle");
    if !idle.is_empty() {
        outputs.push(Output {
            file: "idle-memory.svg",
            text: bars(
                "idle: server memory per connected client (10,000 clients)",
                "KiB of server RSS per client",
                &chapters(&idle),
                &[(
                    "KiB per client",
                    values(&idle, |r| r.server_rss_per_client.unwrap_or(0.0) / 1024.0),
                )],
                |value| format!("{value:.1} KiB"),
            )?,
        });
    }
    outputs.push(Output {
        file: "table.md",
        text: table(results),
    });
    Ok(outputs)
}

/// Renders everything into `dir` and puts the table into `benchmarks` between [`TABLE_BEGIN`]
/// and [`TABLE_END`]. Returns the paths written.
pub fn write_all(results: &Results, dir: &Path, benchmarks: &Path) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    for output in render(results)? {
        let path = dir.join(output.file);
        fs::write(&path, &output.text)
            .with_context(|| format!("cannot write {}", path.display()))?;
        written.push(path);
    }
    let page = fs::read_to_string(benchmarks)
        .with_context(|| format!("cannot read {}", benchmarks.display()))?;
    let updated = with_table(&page, &table(results)).with_context(|| {
        format!(
            "{} has no {TABLE_BEGIN} … {TABLE_END} section",
            benchmarks.display()
        )
    })?;
    if updated != page {
        fs::write(benchmarks, updated)
            .with_context(|| format!("cannot write {}", benchmarks.display()))?;
        written.push(benchmarks.to_path_buf());
    }
    Ok(written)
}

/// `page` with the text between the markers replaced by `table`; `None` without the markers.
pub fn with_table(page: &str, table: &str) -> Option<String> {
    let start = page.find(TABLE_BEGIN)? + TABLE_BEGIN.len();
    let end = start + page.get(start..)?.find(TABLE_END)?;
    Some(format!("{}\n{table}{}", &page[..start], &page[end..]))
}

fn chapters(measurements: &[&Measurement]) -> Vec<String> {
    measurements.iter().map(|m| m.chapter.clone()).collect()
}

fn values(measurements: &[&Measurement], figure: impl Fn(&Report) -> f64) -> Vec<f64> {
    measurements.iter().map(|m| figure(&m.report)).collect()
}

/// The smallest round number (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 × 10ⁿ) at or above `value`:
/// the top of an axis.
fn round_up(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0]
        .iter()
        .map(|step| step * power)
        .find(|top| *top >= value)
        .unwrap_or(10.0 * power)
}

/// A bar chart: one group of bars per chapter, one bar per series, each bar with its value.
fn bars(
    title: &str,
    y_desc: &str,
    chapters: &[String],
    series: &[(&str, Vec<f64>)],
    label: impl Fn(f64) -> String,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let highest = series
            .iter()
            .flat_map(|(_, values)| values)
            .fold(0.0, |a: f64, &b| a.max(b));
        // Room above the highest bar for its label and the legend.
        let top = round_up(highest * 1.25);
        let groups = chapters.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, (FONT, 20))
            .margin(16)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..groups, 0f64..top)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .light_line_style(WHITE)
            .y_label_formatter(&|value| tick(*value))
            .y_desc(y_desc)
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        let width = 0.7 / series.len() as f64;
        for (index, (name, values)) in series.iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            let left = |group: usize| group as f64 + 0.15 + index as f64 * width;
            chart
                .draw_series(values.iter().enumerate().map(|(group, &value)| {
                    Rectangle::new(
                        [(left(group), 0.0), (left(group) + width * 0.9, value)],
                        colour.filled(),
                    )
                }))?
                .label(*name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                });
            chart.draw_series(values.iter().enumerate().map(|(group, &value)| {
                EmptyElement::at((left(group) + width * 0.45, value))
                    + Text::new(
                        label(value),
                        (0, -3),
                        (FONT, 12)
                            .into_font()
                            .color(&BLACK)
                            .pos(Pos::new(HPos::Center, VPos::Bottom)),
                    )
            }))?;
        }
        chart.draw_series(chapters.iter().enumerate().map(|(group, chapter)| {
            EmptyElement::at((group as f64 + 0.5, 0.0))
                + Text::new(
                    chapter.clone(),
                    (0, 8),
                    (FONT, 14)
                        .into_font()
                        .color(&BLACK)
                        .pos(Pos::new(HPos::Center, VPos::Top)),
                )
        }))?;
        if series.len() > 1 {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperLeft)
                .label_font((FONT, 13))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK.mix(0.4))
                .draw()?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// The server's memory over time in the stall scenario, one line per chapter.
fn memory_over_time(measurements: &[&Measurement]) -> anyhow::Result<String> {
    let lines: Vec<(String, Vec<(f64, f64)>)> = measurements
        .iter()
        .map(|m| {
            let points = m
                .report
                .server_rss
                .iter()
                .map(|sample| {
                    (
                        sample.t_ms as f64 / 1e3,
                        sample.bytes as f64 / f64::from(1 << 20),
                    )
                })
                .collect();
            (m.chapter.clone(), points)
        })
        .collect();
    let longest = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(t, _)| *t))
        .fold(1.0, f64::max);
    let highest = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|(_, mib)| *mib))
        .fold(1.0, f64::max);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "stall: server memory while one client never reads (2 senders, 4 KiB at 1,000/s each)",
                (FONT, 17),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..longest.ceil(), 0f64..round_up(highest * 1.1))?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first client connected")
            .y_desc("server RSS, MiB")
            .light_line_style(WHITE)
            .x_label_formatter(&|value| tick(*value))
            .y_label_formatter(&|value| tick(*value))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (index, (chapter, points)) in lines.into_iter().enumerate() {
            let colour = COLOURS[index % COLOURS.len()];
            chart
                .draw_series(LineSeries::new(points, colour.stroke_width(2)))?
                .label(chapter)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], colour.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 13))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.4))
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

/// The Markdown table of the latest figures, with the machine and date of the runs they come from.
pub fn table(results: &Results) -> String {
    let latest = results.latest();
    let mut chapters: Vec<&str> = latest.iter().map(|m| m.chapter.as_str()).collect();
    chapters.dedup();
    let find = |chapter: &str, scenario: &str| {
        latest
            .iter()
            .find(|m| m.chapter == chapter && m.scenario == scenario)
            .map(|m| &m.report)
    };
    let mut text = String::new();
    let mut runs: Vec<&crate::bench::Run> = Vec::new();
    for run in latest.iter().filter_map(|m| results.run_of(m)) {
        if !runs.iter().any(|kept| std::ptr::eq(*kept, run)) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| a.date.cmp(&b.date));
    for run in runs {
        let machine = &run.machine;
        // Other work on the machine disturbs the figures: say how much there was, at worst.
        let others = run
            .measurements
            .iter()
            .filter_map(|m| m.report.other_cpu)
            .fold(0.0, f64::max);
        let _ = writeln!(
            text,
            "Measured {} on {} ({} cores, {:.0} GiB), Linux {}, {}{}; load average at the start: \
             {}; other processes used at most {others:.2} cores during any one scenario.\n",
            run.date,
            machine.cpu,
            machine.cores,
            machine.memory_bytes as f64 / f64::from(1 << 30),
            machine.kernel,
            machine.rustc,
            run.commit
                .as_ref()
                .map(|commit| format!(", commit {commit}"))
                .unwrap_or_default(),
            machine.load_average
        );
    }
    text.push_str(
        "| chapter | s1 deliveries/s | s1 lost | s2 p50 / p99 | s2 at 400/s p50 / p99 | s3 deliveries/s | s3 lost | stall: server RSS start → peak | idle: RSS per client |\n",
    );
    text.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    let dash = || "–".to_string();
    for chapter in &chapters {
        let throughput = |scenario| {
            find(chapter, scenario)
                .map_or_else(dash, |r| format!("{:.2} M", r.deliveries_per_sec / 1e6))
        };
        let lost = |scenario| {
            find(chapter, scenario).map_or_else(dash, |r| {
                let disconnects = if r.disconnects > 0 {
                    format!(" ({} cut off)", r.disconnects)
                } else {
                    String::new()
                };
                format!("{}{disconnects}", r.lost)
            })
        };
        let latency = |scenario| {
            find(chapter, scenario).map_or_else(dash, |r| {
                format!("{} / {}", micros(r.p50_us), micros(r.p99_us))
            })
        };
        let stall = find(chapter, "stall").map_or_else(dash, |r| {
            let mib = |bytes: Option<u64>| bytes.map_or(0.0, |b| b as f64 / f64::from(1 << 20));
            format!(
                "{:.1} → {:.1} MiB",
                mib(r.server_rss_before),
                mib(r.server_rss_peak)
            )
        });
        let idle = find(chapter, "idle").map_or_else(dash, |r| {
            r.server_rss_per_client
                .map_or_else(dash, |bytes| format!("{:.1} KiB", bytes / 1024.0))
        });
        let _ = writeln!(
            text,
            "| {chapter} | {} | {} | {} | {} | {} | {} | {stall} | {idle} |",
            throughput("s1"),
            lost("s1"),
            latency("s2"),
            latency("s2-400"),
            throughput("s3"),
            lost("s3"),
        );
    }
    text.push_str(
        "\nWhat bounded s1, by CPU use while sending (1.00 = one core busy all the time):\n\n\
         | chapter | server | generator | other processes | machine busy | bound |\n\
         |---|---:|---:|---:|---:|---|\n",
    );
    for chapter in &chapters {
        if let Some(r) = find(chapter, "s1") {
            let _ = writeln!(
                text,
                "| {chapter} | {} | {:.2} | {} | {} | {} |",
                r.server_cpu
                    .map_or_else(dash, |cores| format!("{cores:.2}")),
                r.generator_cpu,
                r.other_cpu.map_or_else(dash, |cores| format!("{cores:.2}")),
                r.machine_busy
                    .map_or_else(dash, |busy| format!("{:.0} %", busy * 100.0)),
                r.bound.replace('|', "/")
            );
        }
    }
    text
}

/// An axis label: at most three decimals, without the float noise (`0.30000000000000004`).
fn tick(value: f64) -> String {
    format!("{}", (value * 1000.0).round() / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{bench::tests::run, report::RssSample, system::Machine};

    fn results() -> Results {
        let mut first = run(&[
            ("03-broker", "s1", 250_000.0),
            ("04-bounded", "s1", 700_000.0),
            ("03-broker", "s2", 0.0),
            ("04-bounded", "s2", 0.0),
            ("03-broker", "stall", 0.0),
            ("04-bounded", "stall", 0.0),
            ("04-bounded", "idle", 0.0),
        ]);
        first.machine = Machine {
            cpu: "Test CPU".into(),
            cores: 2,
            memory_bytes: 24 << 30,
            kernel: "6.1.0".into(),
            rustc: "rustc 1.95.0".into(),
            load_average: "0.10 0.20 0.30".into(),
        };
        for measurement in &mut first.measurements {
            if measurement.chapter == "03-broker" && measurement.scenario == "stall" {
                measurement.report.server_rss = (0..20)
                    .map(|n| RssSample {
                        t_ms: n * 500,
                        bytes: (4 + 4 * n) << 20,
                    })
                    .collect();
                measurement.report.server_rss_peak = Some(80 << 20);
            }
        }
        Results { runs: vec![first] }
    }

    /// Each measured scenario gets its figure, and each figure names every chapter in it.
    #[test]
    fn every_measured_scenario_gets_a_figure_naming_its_chapters() {
        let outputs = render(&results()).expect("rendering");
        let files: Vec<&str> = outputs.iter().map(|output| output.file).collect();
        assert_eq!(
            files,
            [
                "s1-deliveries.svg",
                "s2-latency.svg",
                "stall-memory.svg",
                "idle-memory.svg",
                "table.md"
            ],
            "no s2-400 was measured, so it has no figure"
        );
        let s1 = &outputs[0].text;
        assert!(s1.starts_with("<svg"), "an SVG document");
        for expected in [
            "03-broker",
            "04-bounded",
            "0.25 M",
            "0.70 M",
            "deliveries per second",
        ] {
            assert!(
                s1.contains(expected),
                "{expected:?} missing from the s1 figure"
            );
        }
        let stall = &outputs[2].text;
        assert!(
            stall.contains("03-broker"),
            "the stall figure names its chapters"
        );
        assert!(stall.contains("<polyline"), "the stall figure draws lines");
    }

    /// The same results give the same bytes: committed figures change only with the figures.
    #[test]
    fn rendering_is_deterministic() {
        assert_eq!(
            render(&results()).expect("first"),
            render(&results()).expect("second")
        );
    }

    /// The table has one row per chapter with its figures, and says where they were measured.
    #[test]
    fn the_table_shows_each_chapters_figures_and_the_machine() {
        let table = table(&results());
        assert!(table.contains("Test CPU (2 cores, 24 GiB)"), "{table}");
        assert!(
            table.contains("other processes used at most 0.10 cores"),
            "{table}"
        );
        assert!(
            table.contains("| 03-broker | 0.25 M | 0 | 1.50 ms / 8.00 ms |"),
            "{table}"
        );
        assert!(table.contains("| 04-bounded | 0.70 M |"), "{table}");
        assert!(
            table.contains("4.0 → 80.0 MiB"),
            "the stall column: {table}"
        );
        assert!(table.contains("136.7 KiB"), "the idle column: {table}");
    }

    /// Every row of both tables has as many cells as its header.
    #[test]
    fn every_row_has_a_cell_per_column() {
        let table = table(&results());
        let cells = |line: &str| line.matches('|').count();
        let mut header = None;
        for line in table.lines() {
            if !line.starts_with('|') {
                header = None;
                continue;
            }
            match header {
                None => header = Some(cells(line)),
                Some(columns) => assert_eq!(cells(line), columns, "{line}\nin\n{table}"),
            }
        }
    }

    /// The table replaces what was between the markers, and only that.
    #[test]
    fn the_table_goes_between_the_markers() {
        let page = format!("# Benchmarks\n\n{TABLE_BEGIN}\nold\n{TABLE_END}\n\nafter\n");
        let updated = with_table(&page, "new\n").expect("markers present");
        assert_eq!(
            updated,
            format!("# Benchmarks\n\n{TABLE_BEGIN}\nnew\n{TABLE_END}\n\nafter\n")
        );
        assert_eq!(with_table("no markers", "new"), None);
    }
}
