//! Flight SQL commands run against the engine, apart from the transport that carries them
//! ([`crate::flight_service`]): statements and prepared statements with their parameters, results
//! in the types every client reads, and the catalog that BI tools browse.
//!
//! A [`Connection`] is one client's session. It shares the server's tables, functions and memory
//! pool, but has settings of its own, so that `SET usagelake.tz` in one BI connection leaves the
//! others' time zone alone. Every statement goes through one path: parse, number `?`, bind the
//! parameters into the syntax tree, plan, check against the [`SqlPolicy`], run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Fields, Int64Type, Schema, SchemaRef,
};
use datafusion::common::ScalarValue;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::{LogicalPlan, TableType};
use datafusion::prelude::SessionContext;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::placeholders::{self, PlaceholderError};
use crate::runner::one_line;
use crate::sql_policy::{PolicyError, SqlPolicy};

/// Errors of a command. Each says what the client did wrong or what failed, in one line.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Placeholder(#[from] PlaceholderError),
    #[error("{}", one_line(.0))]
    Query(#[from] DataFusionError),
    #[error(
        "prepared statement handle is unknown or closed: prepare the statement again on this connection"
    )]
    UnknownPreparedStatement,
    #[error("a query takes one row of parameters, but {0} rows were bound: bind one row")]
    ParameterRows(usize),
}

/// The table types a catalog listing shows, in the order `GetTableTypes` lists them.
pub const TABLE_TYPES: [&str; 3] = ["TABLE", "VIEW", "LOCAL TEMPORARY"];

fn table_type_name(table_type: TableType) -> &'static str {
    match table_type {
        TableType::Base => TABLE_TYPES[0],
        TableType::View => TABLE_TYPES[1],
        TableType::Temporary => TABLE_TYPES[2],
    }
}

/// A table as a catalog listing shows it.
#[derive(Debug)]
pub struct TableEntry {
    pub catalog: String,
    pub schema: String,
    pub name: String,
    pub table_type: &'static str,
    /// The table's columns, in the types clients are sent.
    pub columns: SchemaRef,
}

/// What a statement started by [`Connection::start`] has to show.
#[derive(Debug)]
pub struct Started {
    /// The columns of its result, in the types clients are sent.
    pub schema: SchemaRef,
    /// The statement already ran (SET, CREATE VIEW, ...): its result is empty.
    pub ran: bool,
}

/// A prepared statement as its creator is told of it.
#[derive(Debug)]
pub struct PreparedInfo {
    pub handle: Vec<u8>,
    /// The result's columns, empty when they cannot be known before parameters are bound (a
    /// placeholder among a table function's arguments).
    pub dataset_schema: SchemaRef,
    /// One field per placeholder, `$1`, `$2`, ..., typed where the plan says which type.
    pub parameter_schema: SchemaRef,
}

#[derive(Debug, Clone)]
struct Prepared {
    sql: String,
    /// Rows of parameters bound by the client; a query uses the only one.
    parameter_rows: Vec<Vec<ScalarValue>>,
}

/// A stream of result batches in the types clients are sent.
pub type ResultStream = BoxStream<'static, Result<RecordBatch, CommandError>>;

/// One client's session.
pub struct Connection {
    ctx: SessionContext,
    policy: Arc<SqlPolicy>,
    prepared: Mutex<HashMap<Vec<u8>, Prepared>>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("session", &self.ctx.session_id())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// A session over the server's tables and functions, with a copy of its settings.
    pub fn new(server: &SessionContext, policy: Arc<SqlPolicy>) -> Self {
        Self {
            ctx: SessionContext::new_with_state(server.state()),
            policy,
            prepared: Mutex::new(HashMap::new()),
        }
    }

    /// Plans `sql` with `parameters` bound and checks the plan against the policy.
    async fn plan(
        &self,
        sql: &str,
        parameters: &[ScalarValue],
    ) -> Result<LogicalPlan, CommandError> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        placeholders::bind_parameters(&mut statement, parameters)?;
        let plan = state.statement_to_plan(statement).await?;
        self.policy.check(&plan)?;
        Ok(plan)
    }

    /// Plans a statement to tell its result's columns. A statement that changes the session or
    /// the catalog (SET, CREATE VIEW) runs now, once, and has nothing to fetch.
    pub async fn start(&self, sql: &str) -> Result<Started, CommandError> {
        let plan = self.plan(sql, &[]).await?;
        let schema = client_schema(plan.schema().as_arrow());
        if !matches!(plan, LogicalPlan::Ddl(_) | LogicalPlan::Statement(_)) {
            return Ok(Started { schema, ran: false });
        }
        self.ctx.execute_logical_plan(plan).await?.collect().await?;
        Ok(Started { schema, ran: true })
    }

    /// Runs a query and streams its result batch by batch.
    pub async fn execute(
        &self,
        sql: &str,
        parameters: &[ScalarValue],
    ) -> Result<(SchemaRef, ResultStream), CommandError> {
        let plan = self.plan(sql, parameters).await?;
        let stream = self
            .ctx
            .execute_logical_plan(plan)
            .await?
            .execute_stream()
            .await?;
        let schema = client_schema(&stream.schema());
        let batches_schema = Arc::clone(&schema);
        let batches = stream
            .map_err(CommandError::from)
            .and_then(move |batch| {
                let converted =
                    to_client_batch(&batch, &batches_schema).map_err(CommandError::from);
                futures::future::ready(converted)
            })
            .boxed();
        Ok((schema, batches))
    }

    /// Runs a statement for its effect and returns the rows it changed (0 for DDL and SET).
    pub async fn update(&self, sql: &str, parameters: &[ScalarValue]) -> Result<i64, CommandError> {
        let plan = self.plan(sql, parameters).await?;
        let batches = self.ctx.execute_logical_plan(plan).await?.collect().await?;
        // DML answers with one row holding the count of rows it wrote, as UInt64.
        let mut changed = 0;
        for batch in &batches {
            if batch.num_columns() == 1 && batch.schema().field(0).name() == "count" {
                let counts =
                    cast(batch.column(0), &DataType::Int64).map_err(DataFusionError::from)?;
                changed += counts
                    .as_primitive::<Int64Type>()
                    .iter()
                    .flatten()
                    .sum::<i64>();
            }
        }
        Ok(changed)
    }

    /// Prepares a statement: `?` become `$1, $2, ...`, and the statement is planned, if it can
    /// be before its parameters are bound, to tell its columns and parameter types.
    pub async fn prepare(&self, sql: &str) -> Result<PreparedInfo, CommandError> {
        let state = self.ctx.state();
        let dialect = state.config().options().sql_parser.dialect;
        let mut statement = state.sql_to_statement(sql, &dialect)?;
        let placeholder_count = placeholders::number_placeholders(&mut statement);
        let numbered_sql = statement.to_string();
        let planned = state.statement_to_plan(statement).await;
        let (dataset_schema, parameter_types) = match planned {
            Ok(plan) => {
                self.policy.check(&plan)?;
                let types = plan.get_parameter_types()?;
                (client_schema(plan.schema().as_arrow()), types)
            }
            // A placeholder among a table function's arguments fails the function until a value
            // is bound; the statement is planned again then.
            Err(_) if placeholder_count > 0 => (Arc::new(Schema::empty()), HashMap::new()),
            Err(e) => return Err(e.into()),
        };
        let parameter_fields: Vec<Field> = (1..=placeholder_count)
            .map(|n| {
                let name = format!("${n}");
                let data_type = parameter_types.get(&name).cloned().flatten();
                Field::new(name, data_type.unwrap_or(DataType::Null), true)
            })
            .collect();
        let handle = random_handle()?;
        self.prepared_statements().insert(
            handle.clone(),
            Prepared {
                sql: numbered_sql,
                parameter_rows: Vec::new(),
            },
        );
        Ok(PreparedInfo {
            handle,
            dataset_schema,
            parameter_schema: Arc::new(Schema::new(parameter_fields)),
        })
    }

    /// Binds rows of parameters to a prepared statement, replacing those bound before.
    pub fn bind(&self, handle: &[u8], batches: &[RecordBatch]) -> Result<(), CommandError> {
        let mut rows = Vec::new();
        for batch in batches {
            for row in 0..batch.num_rows() {
                let values = batch
                    .columns()
                    .iter()
                    .map(|column| ScalarValue::try_from_array(column, row))
                    .collect::<Result<Vec<_>, _>>()?;
                rows.push(values);
            }
        }
        let mut prepared = self.prepared_statements();
        let statement = prepared
            .get_mut(handle)
            .ok_or(CommandError::UnknownPreparedStatement)?;
        statement.parameter_rows = rows;
        Ok(())
    }

    /// Runs a prepared query with its bound parameters.
    pub async fn execute_prepared(
        &self,
        handle: &[u8],
    ) -> Result<(SchemaRef, ResultStream), CommandError> {
        let statement = self.prepared_statement(handle)?;
        let parameters = match statement.parameter_rows.as_slice() {
            [] => Vec::new(),
            [row] => row.clone(),
            rows => return Err(CommandError::ParameterRows(rows.len())),
        };
        self.execute(&statement.sql, &parameters).await
    }

    /// The columns of a prepared query once its parameters are bound.
    pub async fn prepared_schema(&self, handle: &[u8]) -> Result<SchemaRef, CommandError> {
        let statement = self.prepared_statement(handle)?;
        let parameters = statement
            .parameter_rows
            .first()
            .cloned()
            .unwrap_or_default();
        let plan = self.plan(&statement.sql, &parameters).await?;
        Ok(client_schema(plan.schema().as_arrow()))
    }

    /// Runs a prepared update once per bound row of parameters; the rows changed, summed.
    pub async fn update_prepared(&self, handle: &[u8]) -> Result<i64, CommandError> {
        let statement = self.prepared_statement(handle)?;
        if statement.parameter_rows.is_empty() {
            return self.update(&statement.sql, &[]).await;
        }
        let mut changed = 0;
        for row in &statement.parameter_rows {
            changed += self.update(&statement.sql, row).await?;
        }
        Ok(changed)
    }

    /// Forgets a prepared statement.
    pub fn close(&self, handle: &[u8]) {
        self.prepared_statements().remove(handle);
    }

    fn prepared_statements(&self) -> std::sync::MutexGuard<'_, HashMap<Vec<u8>, Prepared>> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prepared_statement(&self, handle: &[u8]) -> Result<Prepared, CommandError> {
        self.prepared_statements()
            .get(handle)
            .cloned()
            .ok_or(CommandError::UnknownPreparedStatement)
    }

    /// The catalogs, sorted.
    pub fn catalogs(&self) -> Vec<String> {
        let mut names = self.ctx.catalog_names();
        names.sort();
        names
    }

    /// Every (catalog, schema) pair, sorted.
    pub fn schemas(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        for catalog_name in self.catalogs() {
            if let Some(catalog) = self.ctx.catalog(&catalog_name) {
                for schema_name in catalog.schema_names() {
                    pairs.push((catalog_name.clone(), schema_name));
                }
            }
        }
        pairs.sort();
        pairs
    }

    /// Every table of every schema, sorted by catalog, schema and name.
    pub async fn tables(&self) -> Result<Vec<TableEntry>, CommandError> {
        let mut entries = Vec::new();
        for (catalog_name, schema_name) in self.schemas() {
            let Some(schema) = self
                .ctx
                .catalog(&catalog_name)
                .and_then(|catalog| catalog.schema(&schema_name))
            else {
                continue;
            };
            let mut names = schema.table_names();
            names.sort();
            for name in names {
                let Some(table) = schema.table(&name).await? else {
                    continue;
                };
                entries.push(TableEntry {
                    catalog: catalog_name.clone(),
                    schema: schema_name.clone(),
                    table_type: table_type_name(table.table_type()),
                    columns: client_schema(&table.schema()),
                    name,
                });
            }
        }
        Ok(entries)
    }
}

/// A random handle for a prepared statement.
fn random_handle() -> Result<Vec<u8>, CommandError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| DataFusionError::External(format!("random source: {e}").into()))?;
    Ok(bytes.to_vec())
}

/// `data_type` with every view type (`Utf8View`, `BinaryView`) replaced by its classic type,
/// inside lists, structs and maps too: DataFusion reads strings as views, and many Flight SQL
/// clients (the JDBC driver among them) cannot decode them.
fn client_type(data_type: &DataType) -> DataType {
    let field = |f: &FieldRef| -> FieldRef { Arc::new(client_field(f)) };
    match data_type {
        DataType::Utf8View => DataType::Utf8,
        DataType::BinaryView => DataType::Binary,
        DataType::List(f) | DataType::ListView(f) => DataType::List(field(f)),
        DataType::LargeList(f) | DataType::LargeListView(f) => DataType::LargeList(field(f)),
        DataType::FixedSizeList(f, n) => DataType::FixedSizeList(field(f), *n),
        DataType::Struct(fields) => DataType::Struct(fields.iter().map(field).collect::<Fields>()),
        DataType::Map(f, sorted) => DataType::Map(field(f), *sorted),
        DataType::Dictionary(key, value) => {
            DataType::Dictionary(key.clone(), Box::new(client_type(value)))
        }
        other => other.clone(),
    }
}

fn client_field(field: &Field) -> Field {
    field.clone().with_data_type(client_type(field.data_type()))
}

/// A schema in the types clients are sent.
pub fn client_schema(schema: &Schema) -> SchemaRef {
    let fields: Vec<Field> = schema.fields().iter().map(|f| client_field(f)).collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// A batch cast to `schema`, the client schema of its own.
fn to_client_batch(
    batch: &RecordBatch,
    schema: &SchemaRef,
) -> Result<RecordBatch, DataFusionError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(column, field)| {
            if column.data_type() == field.data_type() {
                Ok(Arc::clone(column))
            } else {
                cast(column, field.data_type())
            }
        })
        .collect::<Result<Vec<ArrayRef>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object_stores::Location;

    async fn connection(allow_writes: bool) -> Connection {
        let server = SessionContext::new();
        server
            .sql("CREATE TABLE t AS VALUES (1, arrow_cast('a', 'Utf8View')), (2, arrow_cast('b', 'Utf8View'))")
            .await
            .unwrap();
        let policy = Arc::new(SqlPolicy::new(
            allow_writes,
            &Location::Local("/lake".into()),
        ));
        Connection::new(&server, policy)
    }

    async fn rows(
        connection: &Connection,
        sql: &str,
        parameters: &[ScalarValue],
    ) -> Vec<RecordBatch> {
        let (_, stream) = connection.execute(sql, parameters).await.unwrap();
        stream.try_collect().await.unwrap()
    }

    #[tokio::test]
    async fn results_are_sent_without_view_types() {
        let connection = connection(false).await;
        let started = connection
            .start("SELECT column2, [column2] AS l FROM t")
            .await
            .unwrap();
        assert_eq!(started.schema.field(0).data_type(), &DataType::Utf8);
        assert_eq!(
            started.schema.field(1).data_type(),
            &DataType::List(Arc::new(Field::new_list_field(DataType::Utf8, true)))
        );
        let batches = rows(&connection, "SELECT column2 FROM t ORDER BY column1", &[]).await;
        assert_eq!(batches[0].column(0).data_type(), &DataType::Utf8);
        assert_eq!(batches[0].column(0).as_string::<i32>().value(1), "b");
    }

    #[tokio::test]
    async fn prepared_parameters_bind_by_position_for_question_marks_and_dollars() {
        let connection = connection(false).await;
        let prepared = connection
            .prepare("SELECT column1 FROM t WHERE column1 >= ? AND column2 <> ?")
            .await
            .unwrap();
        assert_eq!(prepared.parameter_schema.fields().len(), 2);
        assert_eq!(prepared.parameter_schema.field(0).name(), "$1");
        let parameters = RecordBatch::try_from_iter([
            (
                "a",
                Arc::new(datafusion::arrow::array::Int64Array::from(vec![1])) as ArrayRef,
            ),
            (
                "b",
                Arc::new(datafusion::arrow::array::StringArray::from(vec!["b"])) as ArrayRef,
            ),
        ])
        .unwrap();
        connection.bind(&prepared.handle, &[parameters]).unwrap();
        let (_, stream) = connection.execute_prepared(&prepared.handle).await.unwrap();
        let batches: Vec<RecordBatch> = stream.try_collect().await.unwrap();
        let values: Vec<i64> = batches
            .iter()
            .flat_map(|b| {
                cast(b.column(0), &DataType::Int64)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(values, vec![1]);
        connection.close(&prepared.handle);
        assert!(matches!(
            connection.execute_prepared(&prepared.handle).await,
            Err(CommandError::UnknownPreparedStatement)
        ));
    }

    #[tokio::test]
    async fn settings_are_the_connections_own() {
        let server = SessionContext::new();
        let policy = Arc::new(SqlPolicy::new(true, &Location::Local("/lake".into())));
        let first = Connection::new(&server, Arc::clone(&policy));
        let second = Connection::new(&server, policy);
        let started = first
            .start("SET datafusion.execution.batch_size = 77")
            .await
            .unwrap();
        assert!(started.ran);
        let setting =
            |c: &Connection| usize::from(c.ctx.state().config().options().execution.batch_size);
        assert_eq!(setting(&first), 77);
        assert_ne!(setting(&second), 77);
    }

    #[tokio::test]
    async fn updates_count_the_rows_they_write() {
        let connection = connection(true).await;
        let changed = connection
            .update("INSERT INTO t VALUES (3, 'c'), (4, 'd')", &[])
            .await
            .unwrap();
        assert_eq!(changed, 2);
        let batches = rows(&connection, "SELECT count(*) FROM t", &[]).await;
        assert_eq!(batches[0].column(0).as_primitive::<Int64Type>().value(0), 4);
    }

    #[tokio::test]
    async fn tables_are_listed_with_their_type_and_client_columns() {
        let connection = connection(false).await;
        let tables = connection.tables().await.unwrap();
        let t = tables.iter().find(|t| t.name == "t").unwrap();
        assert_eq!(
            (t.catalog.as_str(), t.schema.as_str(), t.table_type),
            ("datafusion", "public", "TABLE")
        );
        assert_eq!(t.columns.field(1).data_type(), &DataType::Utf8);
    }
}
