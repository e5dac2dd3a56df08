//! `cargo bench -p rindle-bench [-- --scale large] [--only views|scaling] [--quick]`
//!
//! Prints markdown: the machine, then per view and backend the hydrate and
//! pair timings (best, median, ratio to the SQLite re-query baseline of the
//! same run), the memory backend against the targets, and how the bounded
//! views' pair cost moves from the small to the xl scale.

// The report is this program's output.
#![allow(clippy::print_stdout)]

use std::process::ExitCode;
use std::time::Duration;

use rindle_bench::report::{Table, duration, machine, ratio, times};
use rindle_bench::{
    Baseline, BenchError, Measured, MemoryRunner, Rounds, Runner, VIEWS, Workload, measure,
    measure_pairs, redb_runner, sqlite_runner,
};
use rindle_testkit::{IssueTracker, Scale};

/// BENCHMARKS.md's targets for the memory backend: pair ratio to the
/// baseline, views 1–8.
const TARGETS: [Option<f64>; 9] = [
    Some(20.0),
    Some(20.0),
    Some(30.0),
    Some(65.0),
    Some(4.5),
    Some(16.0),
    Some(40.0),
    Some(450.0),
    None,
];

/// The baseline runner's name.
const BASELINE: &str = "SQLite re-query";

struct Options {
    scale: Scale,
    views: bool,
    scaling: bool,
    rounds: Rounds,
    backends: Vec<String>,
    /// Only these views (all when empty).
    only_views: Vec<u8>,
}

const USAGE: &str = "rindle-bench [--scale small|medium|large|xl] [--only views|scaling] \
                     [--backends baseline,memory,sqlite,redb] [--views 1,2,...] [--pairs N per batch] [--quick]";

fn options() -> Result<Options, String> {
    let mut o = Options {
        scale: Scale::Large,
        views: true,
        scaling: true,
        rounds: Rounds::STANDARD,
        backends: vec![
            "baseline".into(),
            "memory".into(),
            "sqlite".into(),
            "redb".into(),
        ],
        only_views: Vec::new(),
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            // cargo bench passes this to every bench binary
            "--bench" => {}
            "--scale" => {
                let s = args.next().ok_or("--scale needs a value")?;
                o.scale = s.parse().map_err(|e| format!("{e}"))?;
            }
            "--only" => match args.next().as_deref() {
                Some("views") => o.scaling = false,
                Some("scaling") => o.views = false,
                other => return Err(format!("--only views|scaling, not {other:?}")),
            },
            "--backends" => {
                let list = args.next().ok_or("--backends needs a list")?;
                o.backends = list.split(',').map(str::to_string).collect();
                if let Some(b) = o
                    .backends
                    .iter()
                    .find(|b| !["baseline", "memory", "sqlite", "redb"].contains(&b.as_str()))
                {
                    return Err(format!(
                        "unknown backend `{b}` (baseline, memory, sqlite, redb)"
                    ));
                }
            }
            "--views" => {
                let list = args.next().ok_or("--views needs a list")?;
                for v in list.split(',') {
                    match v.parse::<u8>() {
                        Ok(n @ 1..=9) => o.only_views.push(n),
                        _ => return Err(format!("--views takes numbers 1-9, not `{v}`")),
                    }
                }
            }
            "--pairs" => {
                let n = args.next().ok_or("--pairs needs a number")?;
                o.rounds.per_batch = n.parse().map_err(|_| format!("--pairs {n}?"))?;
            }
            "--quick" => o.rounds = Rounds::QUICK,
            "--help" | "-h" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}`\n{USAGE}")),
        }
    }
    Ok(o)
}

fn counts(data: &IssueTracker) -> String {
    format!(
        "{} users, {} issues, {} comments",
        data.users, data.issues, data.comments
    )
}

fn runners(
    o: &Options,
    data: &IssueTracker,
    w: &Workload,
) -> Result<Vec<Box<dyn Runner>>, BenchError> {
    let mut out: Vec<Box<dyn Runner>> = Vec::new();
    // The baseline runs first, so the others' ratios can be taken.
    if o.backends.iter().any(|b| b == "baseline") {
        out.push(Box::new(Baseline::new(data, w.clone())?));
    }
    for b in &o.backends {
        match b.as_str() {
            "memory" => out.push(Box::new(MemoryRunner::new(data, w.clone()))),
            "sqlite" => out.push(Box::new(sqlite_runner(data, w.clone())?)),
            "redb" => out.push(Box::new(redb_runner(data, w.clone())?)),
            _ => {}
        }
    }
    Ok(out)
}

fn views(o: &Options) -> Result<(), BenchError> {
    let data = IssueTracker::new(o.scale);
    println!("## Views at the {} scale ({})\n", o.scale, counts(&data));
    println!(
        "Hydrate: build, hydrate and read the whole view, {} rounds, each a fresh view. \
         Pair: the view's row added then removed, each write carried to the view; \
         {} warm-up pairs, then {} × {} timed. × is the baseline's median over this \
         runner's (higher is faster).\n",
        o.rounds.hydrate, o.rounds.warmup, o.rounds.batches, o.rounds.per_batch
    );
    let mut table = Table::new(&[
        "view",
        "runner",
        ">rows",
        ">hydrate best",
        ">hydrate median",
        ">×",
        ">pair best",
        ">pair median",
        ">×",
    ]);
    let mut memory: Vec<(u8, Duration, f64)> = Vec::new();
    for w in Workload::all(&data)
        .into_iter()
        .filter(|w| o.only_views.is_empty() || o.only_views.contains(&w.spec.number))
    {
        let mut base: Option<Measured> = None;
        for mut r in runners(o, &data, &w)? {
            let m = measure(r.as_mut(), o.rounds)?;
            let baseline = r.name() == BASELINE;
            if baseline {
                base = Some(m);
            }
            let x = |f: fn(&Measured) -> Duration| match (&base, baseline) {
                (_, true) => "1×".to_string(),
                (Some(b), false) => times(ratio(f(b), f(&m))),
                (None, false) => "—".to_string(),
            };
            if r.name() == "memory" {
                let px = base.map_or(f64::NAN, |b| ratio(b.pair.median, m.pair.median));
                memory.push((w.spec.number, m.pair.median, px));
            }
            table.row(vec![
                format!("{} {}", w.spec.number, w.spec.title),
                r.name().into(),
                m.rows.to_string(),
                duration(m.hydrate.best),
                duration(m.hydrate.median),
                x(|m| m.hydrate.median),
                duration(m.pair.best),
                duration(m.pair.median),
                x(|m| m.pair.median),
            ]);
            eprintln!(
                "view {} {}: pair median {}",
                w.spec.number,
                r.name(),
                duration(m.pair.median)
            );
        }
    }
    println!("{}", table.render());
    if !memory.is_empty() {
        targets(&memory);
    }
    Ok(())
}

fn targets(memory: &[(u8, Duration, f64)]) {
    println!("### Memory backend against the targets\n");
    let mut t = Table::new(&["view", ">pair median", ">× baseline", ">target", "met"]);
    for &(n, median, x) in memory {
        let target = TARGETS[usize::from(n) - 1];
        t.row(vec![
            n.to_string(),
            duration(median),
            if x.is_nan() { "—".into() } else { times(x) },
            target.map_or("—".into(), |t| format!("≥ {t}×")),
            match target {
                Some(_) if x.is_nan() => "—".into(),
                Some(t) if x >= t => "yes".into(),
                Some(_) => "no".into(),
                None => "—".into(),
            },
        ]);
    }
    println!("{}", t.render());
    let bounded: Vec<Duration> = memory
        .iter()
        .filter(|(n, ..)| VIEWS[usize::from(*n) - 1].bounded())
        .map(|(_, d, _)| *d)
        .collect();
    if bounded.is_empty() {
        return;
    }
    let mean = bounded.iter().sum::<Duration>() / u32::try_from(bounded.len()).unwrap_or(1);
    let mut t = Table::new(&["full view", ">pair median", ">÷ bounded mean", "within 2×"]);
    for &(n, median, _) in memory.iter().filter(|(n, ..)| *n >= 7) {
        let r = median.as_secs_f64() / mean.as_secs_f64();
        t.row(vec![
            n.to_string(),
            duration(median),
            format!("{r:.2}"),
            if r <= 2.0 { "yes" } else { "no" }.into(),
        ]);
    }
    println!(
        "Full materializations against the bounded views (mean of the memory pair \
         medians of views 1–6: {}):\n",
        duration(mean)
    );
    println!("{}", t.render());
}

fn scaling(o: &Options) -> Result<(), BenchError> {
    println!("## Scaling: memory pair median of the bounded views, small → xl\n");
    let mut header = vec!["view".to_string()];
    header.extend(Scale::ALL.iter().map(|s| format!(">{s}")));
    header.push(">xl ÷ small".into());
    let cols: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = Table::new(&cols);
    let data: Vec<IssueTracker> = Scale::ALL.into_iter().map(IssueTracker::new).collect();
    for spec in VIEWS
        .iter()
        .filter(|v| v.bounded() && (o.only_views.is_empty() || o.only_views.contains(&v.number)))
    {
        let mut row = vec![format!("{} {}", spec.number, spec.title)];
        let mut medians = Vec::new();
        for d in &data {
            let mut r = MemoryRunner::new(d, Workload::new(spec.number, d));
            let s = measure_pairs(&mut r, o.rounds)?;
            medians.push(s.median);
            row.push(duration(s.median));
        }
        let growth = medians[medians.len() - 1].as_secs_f64() / medians[0].as_secs_f64();
        row.push(format!("{growth:.2}"));
        t.row(row);
        eprintln!("scaling: view {} done", spec.number);
    }
    println!(
        "Rows per scale: {}.\n",
        data.iter().map(counts).collect::<Vec<_>>().join("; ")
    );
    println!("{}", t.render());
    Ok(())
}

fn main() -> ExitCode {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if cfg!(debug_assertions) {
        eprintln!("rindle-bench: a debug build; run it with `cargo bench` (release)");
    }
    println!("# Rindle benchmarks: the issue tracker\n");
    println!("Machine: {}.\n", machine());
    let run = || -> Result<(), BenchError> {
        if o.views {
            views(&o)?;
        }
        if o.scaling {
            scaling(&o)?;
        }
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rindle-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
