//! What a network client may run: read-only unless the server allows writes, and never a file
//! outside the lake.
//!
//! A Flight SQL client is somebody else's program, so the server checks every logical plan before
//! it runs, not the SQL text: text can hide a statement in a string, a view or an `EXPLAIN
//! ANALYZE`, a plan cannot. Read-only refuses DDL, DML, COPY and SET, except the settings that are
//! a connection's own calendar (`SET usagelake.tz`, `SET usagelake.week_start`), which a BI tool
//! sets for its users' zone. Writes, when allowed, still stay inside the lake: an external table or
//! a COPY that points elsewhere is refused, and no setting may change the server's own limits.
//! Tables named by a path in the query (`SELECT * FROM '/etc/passwd'`) need DataFusion's URL
//! tables, which the server's sessions never enable.

use std::path::{Component, Path, PathBuf};

use crate::object_stores::{Location, as_folder};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{DdlStatement, LogicalPlan, Statement};

/// Settings a read-only connection may change: its time zone and first day of the week.
const CONNECTION_SETTINGS: [&str; 2] = ["usagelake.tz", "usagelake.week_start"];

/// Settings no client may change: the server's memory and disk limits.
const SERVER_SETTINGS_PREFIX: &str = "datafusion.runtime.";

/// A statement the policy refuses.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "{what} is not allowed: the server is read-only (start it with --allow-writes to allow DDL, DML and COPY)"
    )]
    ReadOnly { what: String },
    #[error(
        "SET {variable} is not allowed: a connection may set only {} (the server's own settings are fixed when it starts)",
        CONNECTION_SETTINGS.join(" and ")
    )]
    Setting { variable: String },
    #[error(
        "{what} '{location}' is outside the lake '{lake}': tables and outputs must be inside it"
    )]
    OutsideLake {
        what: &'static str,
        location: String,
        lake: String,
    },
}

/// Where a lake is, as the policy compares locations with it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LakeRoot {
    /// A folder, absolute and normalised.
    Folder(PathBuf),
    /// An object-store prefix ending in `/`, such as `s3://bucket/lake/`.
    Prefix(String),
}

impl std::fmt::Display for LakeRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Folder(path) => write!(f, "{}", path.display()),
            Self::Prefix(prefix) => f.write_str(prefix),
        }
    }
}

/// What the server lets its clients do.
#[derive(Debug, Clone)]
pub struct SqlPolicy {
    /// DDL, DML and COPY are allowed.
    pub allow_writes: bool,
    /// Where every table and output must be.
    lake: LakeRoot,
}

impl SqlPolicy {
    /// A policy for a lake: a folder, which need not be given absolute, or an object-store prefix.
    pub fn new(allow_writes: bool, lake: &Location) -> Self {
        let lake = match lake {
            Location::Local(folder) => LakeRoot::Folder(absolute(folder)),
            Location::Remote(url) => LakeRoot::Prefix(as_folder(url).to_string()),
        };
        Self { allow_writes, lake }
    }

    /// Checks every node of `plan`, subqueries and explained plans included.
    pub fn check(&self, plan: &LogicalPlan) -> Result<(), PolicyError> {
        let mut refusal = None;
        let _ = plan.apply_with_subqueries(|node| match self.check_node(node) {
            Ok(()) => Ok(TreeNodeRecursion::Continue),
            Err(e) => {
                refusal = Some(e);
                Ok(TreeNodeRecursion::Stop)
            }
        });
        refusal.map_or(Ok(()), Err)
    }

    fn check_node(&self, node: &LogicalPlan) -> Result<(), PolicyError> {
        match node {
            LogicalPlan::Statement(Statement::SetVariable(set)) => {
                self.check_setting(&set.variable)
            }
            LogicalPlan::Statement(Statement::ResetVariable(reset)) => {
                self.check_setting(&reset.variable)
            }
            LogicalPlan::Statement(statement) => self.write(statement_name(statement)),
            LogicalPlan::Ddl(ddl) => {
                self.write(ddl.name().to_string())?;
                if let DdlStatement::CreateExternalTable(create) = ddl {
                    for location in &create.locations {
                        self.inside_lake("external table location", location)?;
                    }
                }
                Ok(())
            }
            LogicalPlan::Dml(dml) => self.write(format!("{} {}", dml.op, dml.table_name)),
            LogicalPlan::Copy(copy) => {
                self.write("COPY".to_string())?;
                self.inside_lake("COPY output", &copy.output_url)
            }
            _ => Ok(()),
        }
    }

    fn write(&self, what: String) -> Result<(), PolicyError> {
        if self.allow_writes {
            Ok(())
        } else {
            Err(PolicyError::ReadOnly { what })
        }
    }

    fn check_setting(&self, variable: &str) -> Result<(), PolicyError> {
        let variable = variable.to_ascii_lowercase();
        let connection_setting = CONNECTION_SETTINGS.contains(&variable.as_str());
        let writable = self.allow_writes && !variable.starts_with(SERVER_SETTINGS_PREFIX);
        if connection_setting || writable {
            Ok(())
        } else {
            Err(PolicyError::Setting { variable })
        }
    }

    fn inside_lake(&self, what: &'static str, location: &str) -> Result<(), PolicyError> {
        let outside = || PolicyError::OutsideLake {
            what,
            location: location.to_string(),
            lake: self.lake.to_string(),
        };
        let inside = match (&self.lake, location.split_once("://")) {
            (LakeRoot::Folder(folder), None) => absolute(Path::new(location)).starts_with(folder),
            (LakeRoot::Folder(folder), Some(("file", path))) => {
                absolute(Path::new(path)).starts_with(folder)
            }
            // `..` in a URL is not resolved by object stores, but refused here all the same.
            (LakeRoot::Prefix(prefix), Some(_)) => {
                location.starts_with(prefix.as_str()) && !location.split('/').any(|s| s == "..")
            }
            _ => false,
        };
        if inside { Ok(()) } else { Err(outside()) }
    }
}

fn statement_name(statement: &Statement) -> String {
    match statement {
        Statement::TransactionStart(_) => "BEGIN",
        Statement::TransactionEnd(_) => "COMMIT or ROLLBACK",
        Statement::SetVariable(_) => "SET",
        Statement::ResetVariable(_) => "RESET",
        Statement::Prepare(_) => "PREPARE",
        Statement::Execute(_) => "EXECUTE",
        Statement::Deallocate(_) => "DEALLOCATE",
    }
    .to_string()
}

/// `path` made absolute against the working directory, with `.` and `..` resolved lexically, so
/// that `lake/../etc` cannot pass for a path inside the lake.
fn absolute(path: &Path) -> PathBuf {
    let joined = std::env::current_dir()
        .map(|cwd| cwd.join(path))
        .unwrap_or_else(|_| path.to_path_buf());
    let mut normal = PathBuf::new();
    for component in joined.components() {
        match component {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::SessionContext;

    async fn plan(sql: &str) -> LogicalPlan {
        let ctx = SessionContext::new();
        ctx.sql("CREATE TABLE t (a INT)").await.unwrap();
        ctx.state().create_logical_plan(sql).await.unwrap()
    }

    async fn refusal(policy: &SqlPolicy, sql: &str) -> String {
        policy.check(&plan(sql).await).unwrap_err().to_string()
    }

    #[tokio::test]
    async fn read_only_refuses_ddl_dml_copy_and_server_settings() {
        let policy = SqlPolicy::new(false, &Location::Local("/lake".into()));
        for (sql, named) in [
            ("CREATE VIEW v AS SELECT 1", "CreateView"),
            ("DROP TABLE t", "DropTable"),
            ("INSERT INTO t VALUES (1)", "Insert Into t"),
            ("COPY (SELECT 1) TO '/lake/out.csv'", "COPY"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "Insert Into t"),
            (
                "SET datafusion.runtime.memory_limit = '100G'",
                "datafusion.runtime.memory_limit",
            ),
            (
                "SET datafusion.execution.batch_size = 1",
                "datafusion.execution.batch_size",
            ),
        ] {
            let error = refusal(&policy, sql).await;
            assert!(error.contains(named), "{sql}: {error}");
        }
    }

    #[tokio::test]
    async fn read_only_allows_queries_and_the_connection_calendar() {
        let policy = SqlPolicy::new(false, &Location::Local("/lake".into()));
        for sql in [
            "SELECT a FROM t WHERE a IN (SELECT a FROM t)",
            "EXPLAIN SELECT 1",
            "SET usagelake.tz = 'Europe/Istanbul'",
            "SET usagelake.week_start = 'sunday'",
        ] {
            assert_eq!(policy.check(&plan(sql).await), Ok(()), "{sql}");
        }
    }

    #[tokio::test]
    async fn writes_stay_inside_the_lake_and_away_from_server_limits() {
        let policy = SqlPolicy::new(true, &Location::Local("/lake".into()));
        for sql in [
            "INSERT INTO t VALUES (1)",
            "COPY (SELECT 1) TO '/lake/out/x.csv'",
            "SET datafusion.execution.batch_size = 1",
        ] {
            assert_eq!(policy.check(&plan(sql).await), Ok(()), "{sql}");
        }
        for (sql, named) in [
            (
                "COPY (SELECT 1) TO '/lake/../etc/x.csv'",
                "'/lake/../etc/x.csv' is outside",
            ),
            (
                "COPY (SELECT 1) TO 's3://bucket/x.csv'",
                "'s3://bucket/x.csv' is outside",
            ),
            (
                "SET datafusion.runtime.memory_limit = '1G'",
                "datafusion.runtime.memory_limit",
            ),
        ] {
            let error = refusal(&policy, sql).await;
            assert!(error.contains(named), "{sql}: {error}");
        }
    }

    #[tokio::test]
    async fn a_lake_in_a_bucket_keeps_writes_under_its_prefix() {
        let lake = Location::parse("s3://bucket/lake").unwrap();
        let policy = SqlPolicy::new(true, &lake);
        let inside = "COPY (SELECT 1) TO 's3://bucket/lake/out/x.csv'";
        assert_eq!(policy.check(&plan(inside).await), Ok(()));
        for (sql, named) in [
            (
                "COPY (SELECT 1) TO 's3://bucket/lakehouse/x.csv'",
                "outside the lake 's3://bucket/lake/'",
            ),
            ("COPY (SELECT 1) TO 's3://bucket/lake/../x.csv'", "outside"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "outside"),
        ] {
            let error = refusal(&policy, sql).await;
            assert!(error.contains(named), "{sql}: {error}");
        }
    }

    #[test]
    fn relative_and_dotted_paths_are_resolved_before_the_lake_check() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(absolute(Path::new("a/./b/../c")), cwd.join("a/c"));
        assert_eq!(absolute(Path::new("/x/../../y")), PathBuf::from("/y"));
    }
}
