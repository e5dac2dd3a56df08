//! The issue-tracker benchmark suite of BENCHMARKS.md.
//!
//! Nine views over the issue tracker (six bounded UI views, three full
//! materializations), each kept current by the engine over memory, by `Db`
//! over SQLite and over redb, and by the baseline a user would otherwise
//! pick: re-running the query in SQLite after every write. Each is measured
//! for hydration (build, hydrate, read the whole view) and for incremental
//! maintenance (a reversible add + remove pair that changes the view).
//!
//! `cargo bench -p rindle-bench` runs it (`-- --help` for the options); the
//! timing lives here and in `benches/suite.rs`, never in a test.

pub mod report;
pub mod runner;
pub mod workload;

use std::time::Duration;

pub use runner::{
    Baseline, BenchError, DbRunner, MemoryRunner, Runner, redb_runner, sqlite_runner,
};
pub use workload::{VIEWS, ViewSpec, Workload};

/// Best and median of a set of timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The fastest.
    pub best: Duration,
    /// The median.
    pub median: Duration,
    /// How many were taken.
    pub samples: usize,
}

impl Stats {
    /// The statistics of `samples`.
    ///
    /// # Panics
    /// If `samples` is empty.
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_unstable();
        let n = samples.len();
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        Stats {
            best: samples[0],
            median,
            samples: n,
        }
    }
}

/// How many rounds each measurement takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rounds {
    /// Hydrations, each on a fresh view.
    pub hydrate: usize,
    /// Pairs run before timing.
    pub warmup: usize,
    /// Batches of timed pairs.
    pub batches: usize,
    /// Pairs per batch.
    pub per_batch: usize,
}

impl Rounds {
    /// BENCHMARKS.md's: 5 hydrations; 20 warm-up pairs, then 3 × 25.
    pub const STANDARD: Rounds = Rounds {
        hydrate: 5,
        warmup: 20,
        batches: 3,
        per_batch: 25,
    };

    /// A quick look (not for publishing): 2 hydrations, 3 + 1 × 10 pairs.
    pub const QUICK: Rounds = Rounds {
        hydrate: 2,
        warmup: 3,
        batches: 1,
        per_batch: 10,
    };
}

/// One runner's figures for one view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    /// Build + hydrate + read.
    pub hydrate: Stats,
    /// Top-level rows the hydrated view had.
    pub rows: usize,
    /// One add + remove pair.
    pub pair: Stats,
}

/// Measures a runner: its hydrations, then its pairs against one live view.
pub fn measure(runner: &mut dyn Runner, rounds: Rounds) -> Result<Measured, BenchError> {
    let mut hydrations = Vec::with_capacity(rounds.hydrate);
    let mut rows = 0;
    for _ in 0..rounds.hydrate.max(1) {
        let (took, n) = runner.hydrate()?;
        hydrations.push(took);
        rows = n;
    }
    let pair = measure_pairs(runner, rounds)?;
    Ok(Measured {
        hydrate: Stats::of(hydrations),
        rows,
        pair,
    })
}

/// Starts a runner's live view and times its pairs.
pub fn measure_pairs(runner: &mut dyn Runner, rounds: Rounds) -> Result<Stats, BenchError> {
    runner.start()?;
    for _ in 0..rounds.warmup {
        runner.pair()?;
    }
    let mut pairs = Vec::with_capacity(rounds.batches * rounds.per_batch);
    for _ in 0..rounds.batches.max(1) {
        for _ in 0..rounds.per_batch.max(1) {
            pairs.push(runner.pair()?);
        }
    }
    Ok(Stats::of(pairs))
}
