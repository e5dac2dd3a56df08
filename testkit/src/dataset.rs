//! The issue-tracker dataset of BENCHMARKS.md, generated deterministically at
//! every scale, loadable into memory and SQLite.
//!
//! Tables (integer keys): `user(id, name, role)`, `issue(id, title, open,
//! created, creatorID)`, `comment(id, issueID, body, creatorID)`. Row `i`:
//! `issue.open = (i % 3 != 0)`, `issue.created = ISSUES - i`, `issue.creatorID =
//! i % USERS`, `comment.issueID = i % ISSUES`, `comment.creatorID = i % USERS`.

use std::fmt;
use std::str::FromStr;

use rindle_core::{Column, ColumnType, MemoryCatalog, Row, TableSchema, Value};
use rusqlite::{Connection, params_from_iter};

use crate::backends::sql_value;
use crate::data::TableData;

/// A dataset size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scale {
    /// 100 users, 1,000 issues, 5,000 comments.
    Small,
    /// 300 / 5,000 / 25,000.
    Medium,
    /// 1,000 / 10,000 / 50,000 (the headline).
    Large,
    /// 2,000 / 20,000 / 100,000.
    Xl,
}

impl Scale {
    /// Every scale, smallest first.
    pub const ALL: [Scale; 4] = [Scale::Small, Scale::Medium, Scale::Large, Scale::Xl];

    /// Users, issues, comments.
    pub fn counts(self) -> (usize, usize, usize) {
        match self {
            Scale::Small => (100, 1_000, 5_000),
            Scale::Medium => (300, 5_000, 25_000),
            Scale::Large => (1_000, 10_000, 50_000),
            Scale::Xl => (2_000, 20_000, 100_000),
        }
    }

    /// The scale's name: `small`, `medium`, `large`, `xl`.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Small => "small",
            Scale::Medium => "medium",
            Scale::Large => "large",
            Scale::Xl => "xl",
        }
    }
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown scale name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownScale(pub String);

impl fmt::Display for UnknownScale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown scale `{}` (small, medium, large, xl)", self.0)
    }
}

impl std::error::Error for UnknownScale {}

impl FromStr for Scale {
    type Err = UnknownScale;
    fn from_str(s: &str) -> Result<Scale, UnknownScale> {
        Scale::ALL
            .into_iter()
            .find(|sc| sc.name() == s)
            .ok_or_else(|| UnknownScale(s.into()))
    }
}

/// The issue tracker at one scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IssueTracker {
    /// Number of users.
    pub users: usize,
    /// Number of issues.
    pub issues: usize,
    /// Number of comments.
    pub comments: usize,
}

const ROLES: [&str; 3] = ["admin", "member", "guest"];

fn int(i: usize) -> Value {
    Value::Int(i64::try_from(i).expect("dataset sizes fit i64"))
}

impl IssueTracker {
    /// The dataset at a named scale.
    pub fn new(scale: Scale) -> IssueTracker {
        let (users, issues, comments) = scale.counts();
        IssueTracker::with_counts(users, issues, comments)
    }

    /// The dataset with explicit row counts (each at least 1).
    pub fn with_counts(users: usize, issues: usize, comments: usize) -> IssueTracker {
        IssueTracker {
            users: users.max(1),
            issues: issues.max(1),
            comments,
        }
    }

    /// The three table schemas: `user`, `issue`, `comment`.
    pub fn schemas() -> [TableSchema; 3] {
        let t = |name, cols: Vec<Column>| TableSchema::new(name, cols, &["id"]).expect("valid");
        [
            t(
                "user",
                vec![
                    Column::new("id", ColumnType::Integer),
                    Column::new("name", ColumnType::Text).not_null(),
                    Column::new("role", ColumnType::Text).not_null(),
                ],
            ),
            t(
                "issue",
                vec![
                    Column::new("id", ColumnType::Integer),
                    Column::new("title", ColumnType::Text).not_null(),
                    Column::new("open", ColumnType::Boolean).not_null(),
                    Column::new("created", ColumnType::Integer).not_null(),
                    Column::new("creatorID", ColumnType::Integer).not_null(),
                ],
            ),
            t(
                "comment",
                vec![
                    Column::new("id", ColumnType::Integer),
                    Column::new("issueID", ColumnType::Integer).not_null(),
                    Column::new("body", ColumnType::Text).not_null(),
                    Column::new("creatorID", ColumnType::Integer).not_null(),
                ],
            ),
        ]
    }

    /// Row `i` of `user`.
    pub fn user(&self, i: usize) -> Row {
        Row::new(vec![
            int(i),
            Value::text(&format!("user {i}")),
            Value::text(ROLES[i % ROLES.len()]),
        ])
    }

    /// Row `i` of `issue`.
    pub fn issue(&self, i: usize) -> Row {
        Row::new(vec![
            int(i),
            Value::text(&format!("issue {i}")),
            Value::Bool(!i.is_multiple_of(3)),
            int(self.issues - i),
            int(i % self.users),
        ])
    }

    /// Row `i` of `comment`.
    pub fn comment(&self, i: usize) -> Row {
        Row::new(vec![
            int(i),
            int(i % self.issues),
            Value::text(&format!("comment {i} on issue {}", i % self.issues)),
            int(i % self.users),
        ])
    }

    /// Every row of a table (`user`, `issue` or `comment`), in key order.
    pub fn rows(&self, table: &str) -> Box<dyn Iterator<Item = Row> + '_> {
        match table {
            "user" => Box::new((0..self.users).map(|i| self.user(i))),
            "issue" => Box::new((0..self.issues).map(|i| self.issue(i))),
            "comment" => Box::new((0..self.comments).map(|i| self.comment(i))),
            _ => Box::new(std::iter::empty()),
        }
    }

    /// The dataset as in-memory tables.
    pub fn memory_catalog(&self) -> MemoryCatalog {
        let mut cat = MemoryCatalog::new();
        for schema in Self::schemas() {
            let name = schema.name().to_string();
            cat.add_table(schema).expect("distinct tables");
            for row in self.rows(&name) {
                cat.insert(&name, row).expect("generated rows fit");
            }
        }
        cat
    }

    /// Creates the tables (typed, with primary keys; booleans declared
    /// BOOLEAN, stored as 0 / 1), indexes on the columns relationships
    /// correlate on, and inserts every row in one transaction.
    pub fn load_sqlite(&self, conn: &mut Connection) -> rusqlite::Result<()> {
        let tx = conn.transaction()?;
        for schema in Self::schemas() {
            let cols: Vec<String> = schema
                .columns()
                .iter()
                .map(|c| {
                    let ty = match c.ty {
                        ColumnType::Integer => "INTEGER",
                        ColumnType::Boolean => "BOOLEAN",
                        ColumnType::Real => "REAL",
                        _ => "TEXT",
                    };
                    let key = if schema.primary_key() == [0] && c.name == "id" {
                        " PRIMARY KEY"
                    } else if c.nullable {
                        ""
                    } else {
                        " NOT NULL"
                    };
                    format!("\"{}\" {ty}{key}", c.name)
                })
                .collect();
            tx.execute_batch(&format!(
                "CREATE TABLE \"{}\" ({})",
                schema.name(),
                cols.join(", ")
            ))?;
            let marks: Vec<String> = (1..=cols.len()).map(|i| format!("?{i}")).collect();
            let mut insert = tx.prepare(&format!(
                "INSERT INTO \"{}\" VALUES ({})",
                schema.name(),
                marks.join(", ")
            ))?;
            for row in self.rows(schema.name()) {
                insert.execute(params_from_iter(row.iter().map(sql_value)))?;
            }
        }
        tx.execute_batch(
            "CREATE INDEX issue_creator ON issue (creatorID);
             CREATE INDEX comment_issue ON comment (issueID);
             CREATE INDEX comment_creator ON comment (creatorID);",
        )?;
        tx.commit()
    }

    /// The dataset as test data (for small counts: every cell becomes JSON).
    pub fn table_data(&self) -> Vec<TableData> {
        Self::schemas()
            .into_iter()
            .map(|schema| {
                let mut t = TableData {
                    name: schema.name().into(),
                    columns: schema.columns().to_vec(),
                    primary_key: schema
                        .primary_key()
                        .iter()
                        .map(|&i| schema.columns()[i].name.clone())
                        .collect(),
                    rows: Vec::new(),
                };
                t.rows = self.rows(schema.name()).map(|r| t.json_row(&r)).collect();
                t
            })
            .collect()
    }
}
