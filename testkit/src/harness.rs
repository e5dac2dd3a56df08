//! The differential harness: run a case through a subject under test and the
//! oracle side by side, and compare their results after hydration and after
//! every transaction.
//!
//! Every backend plugs in through [`Subject`]: memory now, SQLite, redb, the
//! Cluster and the daemon later, all through [`run_case`] and
//! [`check_subject`].

use std::fmt;

use proptest::test_runner::{Config, FileFailurePersistence, TestCaseError, TestRunner};
use rindle_core::{Ast, Condition, Engine, MemoryCatalog, QueryEvent, QueryId, View};
use serde_json::Value as Json;

use crate::data::{DataError, Model, Scenario, TableData, Write};
use crate::generate::{CaseConfig, case_strategy};
use crate::oracle::Oracle;
use crate::render::view_json;

/// A failure inside a subject, as text (each backend has its own error types).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectError(pub String);

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SubjectError {}

impl SubjectError {
    /// Wraps any displayable error.
    pub fn from_display(e: impl fmt::Display) -> SubjectError {
        SubjectError(e.to_string())
    }
}

/// A live-query implementation under test.
pub trait Subject {
    /// A short name for reports (`memory`, `sqlite`, ...).
    fn name(&self) -> &str;

    /// Creates the tables with their rows, registers `query`, and returns its
    /// hydrated result in the runner's JSON form.
    fn start(&mut self, tables: &[TableData], query: &Ast) -> Result<Json, SubjectError>;

    /// Applies one transaction (valid against the current rows) and returns the
    /// query's result after it, as the subject's live view holds it.
    fn step(&mut self, tx: &[Write]) -> Result<Json, SubjectError>;
}

/// The in-memory engine: [`Engine`] over a [`MemoryCatalog`], its changes
/// applied to a [`View`].
#[derive(Default)]
pub struct MemorySubject {
    state: Option<(Engine<MemoryCatalog>, View, Model)>,
}

const QUERY: QueryId = QueryId(1);

impl MemorySubject {
    /// A subject with nothing loaded.
    pub fn new() -> MemorySubject {
        MemorySubject::default()
    }
}

impl Subject for MemorySubject {
    fn name(&self) -> &str {
        "memory"
    }

    fn start(&mut self, tables: &[TableData], query: &Ast) -> Result<Json, SubjectError> {
        let model = Model::new(tables).map_err(SubjectError::from_display)?;
        let mut catalog = MemoryCatalog::new();
        for t in tables {
            catalog
                .add_table(t.schema().map_err(SubjectError::from_display)?)
                .map_err(SubjectError::from_display)?;
            for cells in &t.rows {
                let row = t.row(cells).map_err(SubjectError::from_display)?;
                catalog
                    .insert(&t.name, row)
                    .map_err(SubjectError::from_display)?;
            }
        }
        let mut engine = Engine::new(catalog);
        let nodes = engine
            .add_query(QUERY, query)
            .map_err(SubjectError::from_display)?;
        let format = engine.format(QUERY).expect("just added").clone();
        let view = View::hydrated(format, &nodes).map_err(SubjectError::from_display)?;
        let out = view_json(&view);
        self.state = Some((engine, view, model));
        Ok(out)
    }

    fn step(&mut self, tx: &[Write]) -> Result<Json, SubjectError> {
        let (engine, view, model) = self
            .state
            .as_mut()
            .ok_or_else(|| SubjectError("step before start".into()))?;
        for w in tx {
            let change = model.apply(w).map_err(SubjectError::from_display)?;
            engine
                .push(&w.table, change)
                .map_err(SubjectError::from_display)?;
        }
        for event in engine.drain() {
            match event {
                QueryEvent::Changed { changes, .. } => view
                    .apply_all(&changes)
                    .map_err(SubjectError::from_display)?,
                QueryEvent::Faulted { error, .. } => {
                    return Err(SubjectError(format!("query faulted: {error}")));
                }
                other => return Err(SubjectError(format!("unexpected event {other:?}"))),
            }
        }
        Ok(view_json(view))
    }
}

/// A run whose subject disagreed with the oracle, or failed.
#[derive(Debug)]
pub struct Mismatch {
    /// The subject's name.
    pub subject: String,
    /// The case that was run.
    pub case: Scenario,
    /// 0 after hydration, `n` after the `n`-th transaction.
    pub step: usize,
    /// What went wrong.
    pub kind: MismatchKind,
}

/// How a run went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum MismatchKind {
    /// Both answered, differently.
    Differ {
        /// The subject's result.
        got: Json,
        /// The oracle's result.
        want: Json,
        /// Where the trees first differ.
        at: String,
    },
    /// The subject failed.
    Subject(SubjectError),
    /// The oracle failed (the case is outside what it answers).
    Oracle(String),
    /// The case's data is invalid.
    Data(DataError),
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pretty = |j: &Json| serde_json::to_string_pretty(j).unwrap_or_default();
        writeln!(
            f,
            "subject `{}` diverged at step {}",
            self.subject, self.step
        )?;
        match &self.kind {
            MismatchKind::Differ { got, want, at } => {
                writeln!(f, "first difference at {at}")?;
                writeln!(f, "--- subject's view:\n{}", pretty(got))?;
                writeln!(f, "--- oracle's fresh answer:\n{}", pretty(want))?;
            }
            MismatchKind::Subject(e) => writeln!(f, "subject failed: {e}")?,
            MismatchKind::Oracle(e) => writeln!(f, "oracle failed: {e}")?,
            MismatchKind::Data(e) => writeln!(f, "invalid case data: {e}")?,
        }
        if self.step > 0
            && let Some(tx) = self.case.steps.get(self.step - 1)
        {
            writeln!(
                f,
                "--- the transaction of that step:\n{}",
                serde_json::to_string(tx).unwrap_or_default()
            )?;
        }
        writeln!(
            f,
            "--- the whole case (feed it to `rindle-scenario`):\n{}",
            serde_json::to_string(&self.case).unwrap_or_default()
        )
    }
}

impl std::error::Error for Mismatch {}

/// Where two result trees first differ, or `None` when they are equal. Numbers
/// are equal when they are the same integer, or floats within a relative 1e-9
/// (SQLite and the engine may sum floats in different orders).
pub fn first_difference(got: &Json, want: &Json) -> Option<String> {
    fn walk(got: &Json, want: &Json, path: &mut String) -> Option<String> {
        match (got, want) {
            (Json::Number(a), Json::Number(b)) => {
                if a == b {
                    return None;
                }
                if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                    let scale = x.abs().max(y.abs()).max(1.0);
                    if (x - y).abs() <= 1e-9 * scale && (a.is_f64() || b.is_f64()) {
                        return None;
                    }
                }
                Some(format!("{path}: {a} vs {b}"))
            }
            (Json::Array(a), Json::Array(b)) => {
                for (i, (x, y)) in a.iter().zip(b).enumerate() {
                    let len = path.len();
                    path.push_str(&format!("[{i}]"));
                    if let Some(d) = walk(x, y, path) {
                        return Some(d);
                    }
                    path.truncate(len);
                }
                (a.len() != b.len()).then(|| format!("{path}: {} items vs {}", a.len(), b.len()))
            }
            (Json::Object(a), Json::Object(b)) => {
                for (k, x) in a {
                    let len = path.len();
                    path.push_str(&format!(".{k}"));
                    match b.get(k) {
                        None => return Some(format!("{path}: only in the subject's view")),
                        Some(y) => {
                            if let Some(d) = walk(x, y, path) {
                                return Some(d);
                            }
                        }
                    }
                    path.truncate(len);
                }
                b.keys()
                    .find(|k| !a.contains_key(*k))
                    .map(|k| format!("{path}.{k}: only in the oracle's answer"))
            }
            (a, b) if a == b => None,
            (a, b) => Some(format!("{path}: {a} vs {b}")),
        }
    }
    walk(got, want, &mut String::from("$"))
}

/// Runs a case through `subject` and the oracle; `Ok` when they agree after
/// hydration and after every transaction.
pub fn run_case(subject: &mut dyn Subject, case: &Scenario) -> Result<(), Box<Mismatch>> {
    let name = subject.name().to_string();
    let fail = |step, kind| {
        Box::new(Mismatch {
            subject: name.clone(),
            case: case.clone(),
            step,
            kind,
        })
    };
    let mut model = Model::new(&case.tables).map_err(|e| fail(0, MismatchKind::Data(e)))?;
    let mut oracle =
        Oracle::new(&case.tables).map_err(|e| fail(0, MismatchKind::Oracle(e.to_string())))?;
    let ask = |oracle: &Oracle, step| {
        oracle
            .query(&case.query)
            .map_err(|e| fail(step, MismatchKind::Oracle(e.to_string())))
    };
    let compare = |got: Json, want: Json, step| match first_difference(&got, &want) {
        None => Ok(()),
        Some(at) => Err(fail(step, MismatchKind::Differ { got, want, at })),
    };
    let want = ask(&oracle, 0)?;
    let got = subject
        .start(&case.tables, &case.query)
        .map_err(|e| fail(0, MismatchKind::Subject(e)))?;
    compare(got, want, 0)?;
    for (i, tx) in case.steps.iter().enumerate() {
        let step = i + 1;
        for w in tx {
            let change = model
                .apply(w)
                .map_err(|e| fail(step, MismatchKind::Data(e)))?;
            oracle
                .apply(&w.table, &change)
                .map_err(|e| fail(step, MismatchKind::Oracle(e.to_string())))?;
        }
        let want = ask(&oracle, step)?;
        let got = subject
            .step(tx)
            .map_err(|e| fail(step, MismatchKind::Subject(e)))?;
        compare(got, want, step)?;
    }
    Ok(())
}

/// How many generated cases a property runs: `RINDLE_PROPTEST_CASES`, or
/// `default` (CI keeps it small; raise it for long runs).
pub fn case_count(default: u32) -> u32 {
    std::env::var("RINDLE_PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A proptest configuration with the case count from [`case_count`] and
/// failing seeds persisted to `regressions` (a path relative to the crate
/// running the test, conventionally under `proptest-regressions/`).
pub fn proptest_config(regressions: &'static str, default_cases: u32) -> Config {
    Config {
        cases: case_count(default_cases),
        max_shrink_iters: 8192,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(regressions))),
        ..Config::default()
    }
}

fn visit_flips(ast: &mut Ast, f: &mut dyn FnMut(&mut bool)) {
    fn cond(c: &mut Condition, f: &mut dyn FnMut(&mut bool)) {
        match c {
            Condition::And { conditions } | Condition::Or { conditions } => {
                for c in conditions {
                    cond(c, f);
                }
            }
            Condition::CorrelatedSubquery { related, flip, .. } => {
                f(flip);
                visit_flips(&mut related.subquery, f);
            }
            Condition::Simple { .. } => {}
        }
    }
    if let Some(w) = &mut ast.where_ {
        cond(w, f);
    }
    for r in &mut ast.related {
        visit_flips(&mut r.subquery, f);
    }
}

/// The query under every assignment of `flip` to its EXISTS conditions (the
/// first `max` of them in document order; later ones keep theirs). The
/// results must not depend on it.
pub fn flip_variants(ast: &Ast, max: u32) -> Vec<Ast> {
    let mut n = 0u32;
    visit_flips(&mut ast.clone(), &mut |_| n += 1);
    let bits = n.min(max);
    (0..1u32 << bits)
        .map(|mask| {
            let mut a = ast.clone();
            let mut i = 0u32;
            visit_flips(&mut a, &mut |flip| {
                if i < bits {
                    *flip = mask & (1 << i) != 0;
                }
                i += 1;
            });
            a
        })
        .collect()
}

/// Checks a subject against the oracle over generated cases (schemas, data,
/// queries and transactions drawn per `cfg`), each query under every flip
/// assignment of its first four EXISTS conditions; panics with the minimized
/// mismatch report on failure.
pub fn check_subject<S: Subject>(
    make: impl Fn() -> S,
    cfg: CaseConfig,
    regressions: &'static str,
    default_cases: u32,
) {
    let mut runner = TestRunner::new(proptest_config(regressions, default_cases));
    let result = runner.run(&case_strategy(cfg), |case| {
        for query in flip_variants(&case.query, 4) {
            let variant = Scenario {
                query,
                ..case.clone()
            };
            let mut subject = make();
            run_case(&mut subject, &variant).map_err(|m| TestCaseError::fail(m.to_string()))?;
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// Asserts `run_case` succeeds, printing the report otherwise; for named cases.
pub fn assert_agrees(subject: &mut dyn Subject, case: &Scenario) {
    if let Err(m) = run_case(subject, case) {
        panic!("{m}");
    }
}
