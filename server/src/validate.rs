//! One validation for every query a client hands the control plane
//! (`/materialize` and `/query` alike): the daemon's size limits first, then
//! the query built as written against the registered tables, so an unknown
//! column anywhere (`select`, `groupBy`, `orderBy`, conditions) is refused
//! the same way by both endpoints, before any work is placed on a worker.

use std::fmt;

use rindle_core::{Ast, BuildError, Condition, MemoryCatalog, TableSchema, build_pipeline};

/// How large a query a client may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct QueryLimits {
    /// Levels of nesting: each `related` child and each EXISTS subquery is
    /// one level below its parent (the root is level 1).
    pub(crate) max_depth: usize,
    /// Levels, conditions and relationships together.
    pub(crate) max_nodes: usize,
}

/// Why a query was refused (a 400).
#[derive(Debug)]
pub(crate) enum Refusal {
    /// It nests deeper than `maxQueryDepth`.
    TooDeep { depth: usize, limit: usize },
    /// It has more parts than `maxQueryNodes`.
    TooLarge { nodes: usize, limit: usize },
    /// It does not build against the registered tables.
    Build(BuildError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::TooDeep { depth, limit } => write!(
                f,
                "the query nests {depth} levels deep; the limit (maxQueryDepth) is {limit}"
            ),
            Refusal::TooLarge { nodes, limit } => write!(
                f,
                "the query has {nodes} parts (levels, conditions, relationships); the limit (maxQueryNodes) is {limit}"
            ),
            Refusal::Build(e) => write!(f, "{e}"),
        }
    }
}

/// The deepest level and the number of parts of `ast`.
fn measure(ast: &Ast, depth: usize, deepest: &mut usize, nodes: &mut usize) {
    *deepest = (*deepest).max(depth);
    *nodes += 1;
    for r in &ast.related {
        *nodes += 1;
        measure(&r.subquery, depth + 1, deepest, nodes);
    }
    for c in ast.where_.iter().chain(ast.having.iter()) {
        measure_condition(c, depth, deepest, nodes);
    }
}

fn measure_condition(c: &Condition, depth: usize, deepest: &mut usize, nodes: &mut usize) {
    *nodes += 1;
    match c {
        Condition::And { conditions } | Condition::Or { conditions } => {
            for c in conditions {
                measure_condition(c, depth, deepest, nodes);
            }
        }
        Condition::CorrelatedSubquery { related, .. } => {
            measure(&related.subquery, depth + 1, deepest, nodes);
        }
        _ => {}
    }
}

/// Checks `ast` against the limits and the registered tables.
pub(crate) fn check_query(
    ast: &Ast,
    schemas: &[TableSchema],
    limits: QueryLimits,
) -> Result<(), Refusal> {
    let (mut depth, mut nodes) = (0, 0);
    // The reader bounds nesting (core's MAX_AST_DEPTH), so this recursion is
    // bounded too.
    measure(ast, 1, &mut depth, &mut nodes);
    if depth > limits.max_depth {
        return Err(Refusal::TooDeep {
            depth,
            limit: limits.max_depth,
        });
    }
    if nodes > limits.max_nodes {
        return Err(Refusal::TooLarge {
            nodes,
            limit: limits.max_nodes,
        });
    }
    // Built over empty tables of the same shapes: every name and shape is
    // checked, nothing is read.
    let mut catalog = MemoryCatalog::new();
    for s in schemas {
        // Registered names are distinct: adding cannot fail.
        let _ = catalog.add_table(s.clone());
    }
    build_pipeline(ast, &mut catalog)
        .map(drop)
        .map_err(Refusal::Build)
}
