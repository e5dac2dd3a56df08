//! Markdown for the results: durations, ratios, tables, the machine.

use std::fmt::Write as _;
use std::time::Duration;

/// A duration as µs (below 10 ms) or ms.
pub fn duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 10.0 {
        format!("{us:.2} µs")
    } else if us < 10_000.0 {
        format!("{us:.1} µs")
    } else {
        format!("{:.1} ms", us / 1e3)
    }
}

/// How many times faster `ours` is than `baseline` (baseline ÷ ours).
pub fn ratio(baseline: Duration, ours: Duration) -> f64 {
    baseline.as_secs_f64() / ours.as_secs_f64().max(1e-12)
}

/// A ratio as `12.3×` (or `0.42×`).
pub fn times(r: f64) -> String {
    if r >= 10.0 {
        format!("{r:.0}×")
    } else if r >= 1.0 {
        format!("{r:.1}×")
    } else {
        format!("{r:.2}×")
    }
}

/// A markdown table.
#[derive(Clone, Debug, Default)]
pub struct Table {
    header: Vec<String>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns; a column whose name starts with `>` is
    /// right-aligned (the `>` is dropped).
    pub fn new(columns: &[&str]) -> Table {
        Table {
            header: columns
                .iter()
                .map(|c| c.trim_start_matches('>').to_string())
                .collect(),
            right: columns.iter().map(|c| c.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are left empty).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as markdown.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(&self.header));
        let rule: Vec<String> = self
            .right
            .iter()
            .map(|&r| if r { "---:".into() } else { "---".into() })
            .collect();
        out.push_str(&line(&rule));
        for r in &self.rows {
            let mut cells = r.clone();
            cells.resize(self.header.len(), String::new());
            out.push_str(&line(&cells));
        }
        out
    }
}

/// The machine: CPUs, CPU model and memory, read from `/proc` where there is
/// one.
pub fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            let kb: u64 = s
                .lines()
                .find(|l| l.starts_with("MemTotal:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some(format!(", {:.0} GiB", kb as f64 / 1024.0 / 1024.0))
        })
        .unwrap_or_default();
    let mut s = String::new();
    let _ = write!(s, "{cpus} CPUs ({model}){memory}, {}", std::env::consts::OS);
    s
}
