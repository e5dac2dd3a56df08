//! The nine issue-tracker views of BENCHMARKS.md: each one's query (AST), the
//! SQLite statement a user would otherwise re-run (same rows, same exact
//! order, primary-key tiebreak included), and the reversible change that
//! moves it.

use rindle_core::{Ast, Row, Value};
use rindle_testkit::IssueTracker;
use serde_json::{Value as Json, json};

/// The issue every per-issue view looks at: the newest open issue (issue 0
/// is closed, `created` falls as the id grows), and the issue of view 5.
pub const VIEWED_ISSUE: i64 = 1;

/// The viewport of the bounded views.
pub const PAGE: usize = 50;

/// A view of the suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ViewSpec {
    /// 1 to 9, as BENCHMARKS.md numbers them.
    pub number: u8,
    /// What it shows.
    pub title: &'static str,
}

/// Every view, in order: 1–6 bounded, 7–9 full materializations.
pub const VIEWS: [ViewSpec; 9] = [
    ViewSpec {
        number: 1,
        title: "newest 50 open issues",
    },
    ViewSpec {
        number: 2,
        title: "(1) with each issue's author",
    },
    ViewSpec {
        number: 3,
        title: "(1) with each issue's comment count",
    },
    ViewSpec {
        number: 4,
        title: "(1) with each issue's 3 newest comments",
    },
    ViewSpec {
        number: 5,
        title: "one issue by id with all its comments",
    },
    ViewSpec {
        number: 6,
        title: "page 2 of (1)",
    },
    ViewSpec {
        number: 7,
        title: "all open issues",
    },
    ViewSpec {
        number: 8,
        title: "every issue with its comments",
    },
    ViewSpec {
        number: 9,
        title: "every issue with its comments and their authors",
    },
];

impl ViewSpec {
    /// Views 1–6 show a bounded window; 7–9 grow with the tables.
    pub fn bounded(self) -> bool {
        self.number <= 6
    }
}

/// The reversible write of a pair: `row` is inserted into `table`, then
/// deleted again.
#[derive(Clone, Debug)]
pub struct Change {
    /// `issue` or `comment`.
    pub table: &'static str,
    /// The row added, then removed by its key.
    pub row: Row,
}

/// One view at one scale: everything a backend needs to run it.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Which view.
    pub spec: ViewSpec,
    /// The query.
    pub ast: Ast,
    /// The baseline's one statement (no parameters).
    pub sql: String,
    /// The write of each pair.
    pub change: Change,
}

const ISSUE_COLS: &str = "i.id, i.title, i.open, i.created, i.creatorID";
const COMMENT_COLS: &str = "c.id, c.issueID, c.body, c.creatorID";
const USER_COLS: &str = "u.id, u.name, u.role";

fn open_filter() -> Json {
    json!({"type": "simple", "op": "=",
        "left": {"type": "column", "name": "open"},
        "right": {"type": "literal", "value": true}})
}

fn newest_open() -> Json {
    json!({"table": "issue", "where": open_filter(),
        "orderBy": [["created", "desc"], ["id", "desc"]], "limit": PAGE})
}

fn comments_of_issue(sub: Json) -> Json {
    json!({"correlation": {"parentField": ["id"], "childField": ["issueID"]}, "subquery": sub})
}

fn author(alias: &str) -> Json {
    json!({"correlation": {"parentField": ["creatorID"], "childField": ["id"]},
        "subquery": {"table": "user", "alias": alias, "one": true}})
}

/// The `i`-th issue of `data` in the order of view 1 (newest open first).
fn nth_newest_open(data: &IssueTracker, n: usize) -> usize {
    // Open issues are those with i % 3 != 0; `created` falls as i grows.
    (1..data.issues)
        .filter(|i| i % 3 != 0)
        .nth(n)
        .expect("enough open issues for two pages")
}

fn int(i: usize) -> i64 {
    i64::try_from(i).expect("dataset sizes fit i64")
}

impl Workload {
    /// View `number` (1–9) over `data`.
    ///
    /// # Panics
    /// If `number` is not 1–9 or the dataset has fewer than two pages of
    /// open issues.
    pub fn new(number: u8, data: &IssueTracker) -> Workload {
        let spec = VIEWS[usize::from(number) - 1];
        let issues = int(data.issues);
        // A new issue newer than every other (open, so it enters views 1-4, 7).
        let new_issue = |created: i64| Change {
            table: "issue",
            row: Row::new(vec![
                Value::Int(issues + 1_000_000),
                Value::text("a new issue"),
                Value::Bool(true),
                Value::Int(created),
                Value::Int(7 % int(data.users)),
            ]),
        };
        // A new comment on the viewed issue (the newest id, so it is among
        // the 3 newest comments of view 4).
        let new_comment = Change {
            table: "comment",
            row: Row::new(vec![
                Value::Int(int(data.comments) + 1_000_000),
                Value::Int(VIEWED_ISSUE),
                Value::text("a new comment"),
                Value::Int(3 % int(data.users)),
            ]),
        };
        let top = "SELECT id, title, open, created, creatorID FROM issue \
                   WHERE open = 1 ORDER BY created DESC, id DESC LIMIT 50";
        let (ast, sql, change): (Json, String, Change) = match number {
            1 => (newest_open(), top.into(), new_issue(issues + 1)),
            2 => {
                let mut q = newest_open();
                q["related"] = json!([author("creator")]);
                (
                    q,
                    format!(
                        "SELECT {ISSUE_COLS}, {USER_COLS} FROM issue i \
                         LEFT JOIN user u ON u.id = i.creatorID WHERE i.open = 1 \
                         ORDER BY i.created DESC, i.id DESC LIMIT 50"
                    ),
                    new_issue(issues + 1),
                )
            }
            3 => {
                let mut q = newest_open();
                q["related"] = json!([comments_of_issue(
                    json!({"table": "comment", "alias": "commentCount", "aggregate": "count"})
                )]);
                (
                    q,
                    format!(
                        "SELECT {ISSUE_COLS}, \
                         (SELECT count(*) FROM comment c WHERE c.issueID = i.id) \
                         FROM issue i WHERE i.open = 1 \
                         ORDER BY i.created DESC, i.id DESC LIMIT 50"
                    ),
                    new_comment.clone(),
                )
            }
            4 => {
                let mut q = newest_open();
                q["related"] = json!([comments_of_issue(json!({"table": "comment",
                    "alias": "comments", "orderBy": [["id", "desc"]], "limit": 3}))]);
                (
                    q,
                    format!(
                        "WITH i AS ({top}) SELECT {ISSUE_COLS}, {COMMENT_COLS} FROM i \
                         LEFT JOIN comment c ON c.id IN \
                         (SELECT id FROM comment WHERE issueID = i.id ORDER BY id DESC LIMIT 3) \
                         ORDER BY i.created DESC, i.id DESC, c.id DESC"
                    ),
                    new_comment.clone(),
                )
            }
            5 => (
                json!({"table": "issue", "one": true,
                    "where": {"type": "simple", "op": "=",
                        "left": {"type": "column", "name": "id"},
                        "right": {"type": "literal", "value": VIEWED_ISSUE}},
                    "related": [comments_of_issue(json!({"table": "comment",
                        "alias": "comments", "orderBy": [["id", "asc"]]}))]}),
                format!(
                    "SELECT {ISSUE_COLS}, {COMMENT_COLS} FROM issue i \
                     LEFT JOIN comment c ON c.issueID = i.id WHERE i.id = {VIEWED_ISSUE} \
                     ORDER BY c.id"
                ),
                new_comment.clone(),
            ),
            6 => {
                // Page 2 starts after the 50th row of view 1; the new issue
                // sorts right after that row, so it enters page 2.
                let bound = data.issue(nth_newest_open(data, PAGE - 1));
                let (created, id) = (bound[3].clone(), bound[0].clone());
                let mut q = newest_open();
                q["start"] = json!({"row": {"created": json_int(&created), "id": json_int(&id)},
                    "exclusive": true});
                let Value::Int(c) = created else {
                    unreachable!("created is an integer")
                };
                (
                    q,
                    format!(
                        "SELECT id, title, open, created, creatorID FROM issue \
                         WHERE open = 1 AND (created, id) < ({c}, {}) \
                         ORDER BY created DESC, id DESC LIMIT 50",
                        json_int(&id)
                    ),
                    // Same `created` as the bound, a smaller id: just after it.
                    Change {
                        table: "issue",
                        row: Row::new(vec![
                            Value::Int(-1),
                            Value::text("a new issue on page 2"),
                            Value::Bool(true),
                            Value::Int(c),
                            Value::Int(0),
                        ]),
                    },
                )
            }
            7 => (
                json!({"table": "issue", "where": open_filter(), "orderBy": [["id", "asc"]]}),
                "SELECT id, title, open, created, creatorID FROM issue \
                 WHERE open = 1 ORDER BY id"
                    .into(),
                new_issue(issues + 1),
            ),
            8 => (
                json!({"table": "issue", "orderBy": [["id", "asc"]],
                    "related": [comments_of_issue(json!({"table": "comment",
                        "alias": "comments", "orderBy": [["id", "asc"]]}))]}),
                format!(
                    "SELECT {ISSUE_COLS}, {COMMENT_COLS} FROM issue i \
                     LEFT JOIN comment c ON c.issueID = i.id ORDER BY i.id, c.id"
                ),
                new_comment.clone(),
            ),
            9 => (
                json!({"table": "issue", "orderBy": [["id", "asc"]],
                    "related": [comments_of_issue(json!({"table": "comment",
                        "alias": "comments", "orderBy": [["id", "asc"]],
                        "related": [author("author")]}))]}),
                format!(
                    "SELECT {ISSUE_COLS}, {COMMENT_COLS}, {USER_COLS} FROM issue i \
                     LEFT JOIN comment c ON c.issueID = i.id \
                     LEFT JOIN user u ON u.id = c.creatorID ORDER BY i.id, c.id"
                ),
                new_comment,
            ),
            other => panic!("there is no view {other}"),
        };
        Workload {
            spec,
            ast: serde_json::from_value(ast).expect("the suite's queries are valid ASTs"),
            sql,
            change,
        }
    }

    /// Every view over `data`.
    pub fn all(data: &IssueTracker) -> Vec<Workload> {
        (1..=9).map(|n| Workload::new(n, data)).collect()
    }
}

fn json_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

/// The indexes of the baseline (BENCHMARKS.md), given to the SQLite backend
/// too so both read the same way.
pub const BASELINE_INDEXES: &str =
    "CREATE INDEX IF NOT EXISTS issue_open_created ON issue (open, created);
     CREATE INDEX IF NOT EXISTS comment_issue_id ON comment (issueID, id);";
