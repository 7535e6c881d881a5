//! The Flight SQL transport: arrow-flight's [`FlightSqlService`] answered by the commands of
//! [`crate::flight_sql`].
//!
//! This layer decodes requests, checks the caller (a Bearer token issued by the handshake, on
//! every call), admits queries through the [`Admission`] queue, and streams results batch by
//! batch as Arrow IPC, never collecting them. A query's time limit is enforced inside its result
//! stream, so a query that is slow to produce rows is stopped as surely as one slow to plan; a
//! client that hangs up drops the stream, which cancels the query. Errors leave as a status code
//! and one line that says what is wrong, never as debug output.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::FlightService;
use arrow_flight::sql::metadata::{SqlInfoData, XdbcTypeInfoData};
use arrow_flight::sql::server::{FlightSqlService, PeekableFlightDataStream};
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, Any, CommandGetCatalogs, CommandGetCrossReference,
    CommandGetDbSchemas, CommandGetExportedKeys, CommandGetImportedKeys, CommandGetPrimaryKeys,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandGetXdbcTypeInfo,
    CommandPreparedStatementQuery, CommandPreparedStatementUpdate, CommandStatementQuery,
    CommandStatementUpdate, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::{Stream, StreamExt, TryStreamExt};
use prost::Message;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status, Streaming};

use crate::admission::Admission;
use crate::flight_auth::{Tokens, Users, parse_basic};
use crate::flight_sql::{CommandError, Connection, ResultStream, TABLE_TYPES};
use crate::sql_policy::SqlPolicy;

/// How the server is set up.
#[derive(Debug)]
pub struct ServiceOptions {
    pub policy: SqlPolicy,
    /// Who may log in; `None` lets every client in, sharing one session.
    pub users: Option<Users>,
    /// How long a token from the handshake stays valid.
    pub token_lifetime: Duration,
    /// Queries running at once, and waiting behind them.
    pub max_concurrent: usize,
    pub max_queued: usize,
    /// The longest a query may take, from planning to its last batch.
    pub query_timeout: Option<Duration>,
}

/// The Flight SQL service of a lake.
pub struct UsagelakeFlightSql {
    server: SessionContext,
    policy: Arc<SqlPolicy>,
    users: Option<Users>,
    tokens: Tokens<Connection>,
    /// The one session of a server without users.
    shared: Arc<Connection>,
    admission: Admission,
    query_timeout: Option<Duration>,
    sql_info: SqlInfoData,
    xdbc_types: XdbcTypeInfoData,
}

impl std::fmt::Debug for UsagelakeFlightSql {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UsagelakeFlightSql")
            .field("policy", &self.policy)
            .field("authenticated", &self.users.is_some())
            .finish_non_exhaustive()
    }
}

/// A statement ticket: the SQL to run, or nothing left to run.
const TICKET_QUERY: u8 = b'q';
const TICKET_DONE: u8 = b'd';

type BoxedFlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl UsagelakeFlightSql {
    /// A service over the tables and functions of `server`.
    pub fn new(
        server: SessionContext,
        options: ServiceOptions,
        sql_info: SqlInfoData,
        xdbc_types: XdbcTypeInfoData,
    ) -> Self {
        let policy = Arc::new(options.policy);
        Self {
            shared: Arc::new(Connection::new(&server, Arc::clone(&policy))),
            server,
            policy,
            users: options.users,
            tokens: Tokens::new(options.token_lifetime),
            admission: Admission::new(options.max_concurrent, options.max_queued),
            query_timeout: options.query_timeout,
            sql_info,
            xdbc_types,
        }
    }

    /// The caller's connection: the one its Bearer token was issued for, or the shared one on a
    /// server without users.
    #[allow(clippy::result_large_err)]
    fn connection<T>(&self, request: &Request<T>) -> Result<Arc<Connection>, Status> {
        if self.users.is_none() {
            return Ok(Arc::clone(&self.shared));
        }
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "no credentials: log in with a user name and password (a handshake with Basic authorization)",
                )
            })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("authorization is not a Bearer token: log in first")
            })?;
        self.tokens.get(token.trim()).ok_or_else(|| {
            Status::unauthenticated("the session token is unknown or expired: log in again")
        })
    }

    /// Runs a query in an admitted slot and streams it as Flight data within the time limit.
    async fn stream_query<F>(
        &self,
        run: F,
    ) -> Result<Response<BoxedFlightStream<arrow_flight::FlightData>>, Status>
    where
        F: std::future::Future<Output = Result<(SchemaRef, ResultStream), CommandError>> + Send,
    {
        let deadline = self
            .query_timeout
            .map(|limit| (tokio::time::Instant::now() + limit, limit));
        let slot = self
            .admission
            .admit()
            .await
            .map_err(|busy| Status::resource_exhausted(busy.to_string()))?;
        let started = match deadline {
            Some((at, limit)) => tokio::time::timeout_at(at, run)
                .await
                .map_err(|_| timed_out(limit))?,
            None => run.await,
        };
        let (schema, batches) = started.map_err(status_of)?;
        let batches = batches.map_err(|e| FlightError::Tonic(Box::new(status_of(e))));
        let batches = within_deadline(batches, deadline).map(move |batch| {
            // The slot is held for as long as the stream lives, dropped or finished.
            let _ = &slot;
            batch
        });
        let flight_data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight_data)))
    }

    /// The `FlightInfo` of a catalog command: the columns of its answer, and the command itself as
    /// the ticket that fetches it.
    #[allow(clippy::result_large_err)]
    fn command_info(
        &self,
        command: &impl ProstMessageExt,
        schema: &Schema,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.connection(&request)?;
        flight_info(
            schema,
            command.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    /// Lake tables have no keys: the answer to every key command is empty, in its columns.
    #[allow(clippy::result_large_err)]
    fn no_keys(
        &self,
        request: &Request<Ticket>,
        schema: Schema,
    ) -> Result<Response<BoxedFlightStream<arrow_flight::FlightData>>, Status> {
        self.connection(request)?;
        self.one_batch(Ok(RecordBatch::new_empty(Arc::new(schema))))
    }

    /// The Flight data of one batch built by a catalog command.
    fn one_batch(
        &self,
        batch: Result<RecordBatch, FlightError>,
    ) -> Result<Response<BoxedFlightStream<arrow_flight::FlightData>>, Status> {
        let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
        let schema = batch.schema();
        let flight_data = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::once(async { Ok(batch) }))
            .map_err(Status::from);
        Ok(Response::new(Box::pin(flight_data)))
    }
}

/// A query's error as a status: what the client did wrong, what it may not do, or what failed.
fn status_of(error: CommandError) -> Status {
    let message = error.to_string();
    match &error {
        CommandError::Policy(_) => Status::permission_denied(message),
        CommandError::Placeholder(_) | CommandError::ParameterRows(_) => {
            Status::invalid_argument(message)
        }
        CommandError::UnknownPreparedStatement => Status::not_found(message),
        CommandError::Query(e) => match e.find_root() {
            DataFusionError::ResourcesExhausted(_) => Status::resource_exhausted(message),
            DataFusionError::NotImplemented(_) => Status::unimplemented(message),
            DataFusionError::Internal(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ObjectStore(_)
            | DataFusionError::ExecutionJoin(_) => Status::internal(message),
            _ => Status::invalid_argument(message),
        },
    }
}

fn timed_out(limit: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "the query ran longer than the server's limit of {} s (--query-timeout): narrow it, or ask for a longer limit",
        limit.as_secs_f64()
    ))
}

/// `batches` until the deadline; then one error, and the end of the stream (which drops, and so
/// cancels, the query).
fn within_deadline<S>(
    batches: S,
    deadline: Option<(tokio::time::Instant, Duration)>,
) -> impl Stream<Item = Result<RecordBatch, FlightError>> + Send
where
    S: Stream<Item = Result<RecordBatch, FlightError>> + Send + Unpin,
{
    futures::stream::unfold(Some(batches), move |state| async move {
        let mut batches = state?;
        let next = match deadline {
            Some((at, limit)) => match tokio::time::timeout_at(at, batches.next()).await {
                Ok(next) => next,
                Err(_) => return Some((Err(FlightError::Tonic(Box::new(timed_out(limit)))), None)),
            },
            None => batches.next().await,
        };
        next.map(|batch| (batch, Some(batches)))
    })
}

fn decode_ticket(bytes: &[u8]) -> Result<Option<String>, Status> {
    match bytes.split_first() {
        Some((&TICKET_QUERY, sql)) => String::from_utf8(sql.to_vec())
            .map(Some)
            .map_err(|_| Status::invalid_argument("the statement ticket is not UTF-8 SQL")),
        Some((&TICKET_DONE, _)) => Ok(None),
        _ => Err(Status::invalid_argument(
            "the statement ticket was not issued by this server: get it from GetFlightInfo",
        )),
    }
}

fn flight_info(
    schema: &Schema,
    ticket: Vec<u8>,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    // No location: the client fetches the result on the connection it already has.
    let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(format!("could not encode the result schema: {e}")))?
        .with_endpoint(endpoint)
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

#[allow(clippy::result_large_err)]
fn ipc_schema(schema: &Schema) -> Result<IpcMessage, Status> {
    SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| {
            Status::internal(format!("could not encode a schema: {e}"))
        })
}

/// The record batches of a DoPut stream (parameters of a prepared statement).
async fn put_batches(
    request: Request<PeekableFlightDataStream>,
) -> Result<Vec<RecordBatch>, Status> {
    let flight_data = request.into_inner().map_err(FlightError::from);
    arrow_flight::decode::FlightRecordBatchStream::new_from_flight_data(flight_data)
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("could not read the parameters: {e}")))
}

/// The columns of `GetPrimaryKeys`, as Flight SQL defines them.
fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

/// The columns of `GetExportedKeys`, `GetImportedKeys` and `GetCrossReference`.
fn foreign_keys_schema() -> Schema {
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    Schema::new(vec![
        text("pk_catalog_name", true),
        text("pk_db_schema_name", true),
        text("pk_table_name", false),
        text("pk_column_name", false),
        text("fk_catalog_name", true),
        text("fk_db_schema_name", true),
        text("fk_table_name", false),
        text("fk_column_name", false),
        Field::new("key_sequence", DataType::Int32, false),
        text("fk_key_name", true),
        text("pk_key_name", true),
        Field::new("update_rule", DataType::UInt8, false),
        Field::new("delete_rule", DataType::UInt8, false),
    ])
}

#[tonic::async_trait]
impl FlightSqlService for UsagelakeFlightSql {
    type FlightService = Self;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<BoxedFlightStream<HandshakeResponse>>, Status> {
        let Some(users) = &self.users else {
            // Nothing to check: the client is in, with the shared session.
            let output = futures::stream::iter([Ok(HandshakeResponse::default())]);
            return Ok(Response::new(Box::pin(output)));
        };
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated("log in with Basic authorization: user and password")
            })?;
        let (user, password) =
            parse_basic(header).map_err(|e| Status::unauthenticated(e.to_string()))?;
        if !users.verify(&user, &password) {
            return Err(Status::unauthenticated("wrong user name or password"));
        }
        let connection = Arc::new(Connection::new(&self.server, Arc::clone(&self.policy)));
        let token = self
            .tokens
            .issue(connection)
            .map_err(|e| Status::internal(e.to_string()))?;
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::internal("could not write the session token"))?;
        let output = futures::stream::iter([Ok(HandshakeResponse {
            protocol_version: 0,
            payload: token.into(),
        })]);
        let mut response: Response<BoxedFlightStream<HandshakeResponse>> =
            Response::new(Box::pin(output));
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let connection = self.connection(&request)?;
        let started = connection.start(&query.query).await.map_err(status_of)?;
        let mut handle = vec![if started.ran {
            TICKET_DONE
        } else {
            TICKET_QUERY
        }];
        if !started.ran {
            handle.extend_from_slice(query.query.as_bytes());
        }
        let ticket = TicketStatementQuery {
            statement_handle: handle.into(),
        };
        flight_info(
            &started.schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let connection = self.connection(&request)?;
        match decode_ticket(&ticket.statement_handle)? {
            Some(sql) => {
                self.stream_query(async move { connection.execute(&sql, &[]).await })
                    .await
            }
            None => self.one_batch(Ok(RecordBatch::new_empty(Arc::new(Schema::empty())))),
        }
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let connection = self.connection(&request)?;
        let schema = connection
            .prepared_schema(&query.prepared_statement_handle)
            .await
            .map_err(status_of)?;
        flight_info(
            &schema,
            query.as_any().encode_to_vec(),
            request.into_inner(),
        )
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let connection = self.connection(&request)?;
        let handle = query.prepared_statement_handle.to_vec();
        self.stream_query(async move { connection.execute_prepared(&handle).await })
            .await
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &query.into_builder().schema(), request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let connection = self.connection(&request)?;
        let mut builder = query.into_builder();
        for catalog in connection.catalogs() {
            builder.append(catalog);
        }
        self.one_batch(builder.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &query.clone().into_builder().schema(), request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let connection = self.connection(&request)?;
        let mut builder = query.into_builder();
        for (catalog, schema) in connection.schemas() {
            builder.append(catalog, schema);
        }
        self.one_batch(builder.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &query.clone().into_builder().schema(), request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let connection = self.connection(&request)?;
        let tables = connection.tables().await.map_err(status_of)?;
        let mut builder = query.into_builder();
        for table in tables {
            builder
                .append(
                    &table.catalog,
                    &table.schema,
                    &table.name,
                    table.table_type,
                    &table.columns,
                )
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        self.one_batch(builder.build())
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &query.into_builder().schema(), request)
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.connection(&request)?;
        let mut builder = query.into_builder();
        for table_type in TABLE_TYPES {
            builder.append(table_type);
        }
        self.one_batch(builder.build())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(
            &query,
            &query.clone().into_builder(&self.sql_info).schema(),
            request,
        )
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.connection(&request)?;
        self.one_batch(query.into_builder(&self.sql_info).build())
    }

    async fn get_flight_info_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(
            &query,
            &query.into_builder(&self.xdbc_types).schema(),
            request,
        )
    }

    async fn do_get_xdbc_type_info(
        &self,
        query: CommandGetXdbcTypeInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.connection(&request)?;
        self.one_batch(query.into_builder(&self.xdbc_types).build())
    }

    async fn get_flight_info_primary_keys(
        &self,
        query: CommandGetPrimaryKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &primary_keys_schema(), request)
    }

    async fn do_get_primary_keys(
        &self,
        _query: CommandGetPrimaryKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.no_keys(&request, primary_keys_schema())
    }

    async fn get_flight_info_exported_keys(
        &self,
        query: CommandGetExportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &foreign_keys_schema(), request)
    }

    async fn do_get_exported_keys(
        &self,
        _query: CommandGetExportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.no_keys(&request, foreign_keys_schema())
    }

    async fn get_flight_info_imported_keys(
        &self,
        query: CommandGetImportedKeys,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &foreign_keys_schema(), request)
    }

    async fn do_get_imported_keys(
        &self,
        _query: CommandGetImportedKeys,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.no_keys(&request, foreign_keys_schema())
    }

    async fn get_flight_info_cross_reference(
        &self,
        query: CommandGetCrossReference,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.command_info(&query, &foreign_keys_schema(), request)
    }

    async fn do_get_cross_reference(
        &self,
        _query: CommandGetCrossReference,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.no_keys(&request, foreign_keys_schema())
    }

    async fn do_put_statement_update(
        &self,
        command: CommandStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let connection = self.connection(&request)?;
        let _slot = self
            .admission
            .admit()
            .await
            .map_err(|busy| Status::resource_exhausted(busy.to_string()))?;
        connection
            .update(&command.query, &[])
            .await
            .map_err(status_of)
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let connection = self.connection(&request)?;
        let parameters = put_batches(request).await?;
        connection
            .bind(&query.prepared_statement_handle, &parameters)
            .map_err(status_of)?;
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(query.prepared_statement_handle),
        })
    }

    async fn do_put_prepared_statement_update(
        &self,
        query: CommandPreparedStatementUpdate,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<i64, Status> {
        let connection = self.connection(&request)?;
        let parameters = put_batches(request).await?;
        let handle = query.prepared_statement_handle;
        if !parameters.is_empty() {
            connection.bind(&handle, &parameters).map_err(status_of)?;
        }
        let _slot = self
            .admission
            .admit()
            .await
            .map_err(|busy| Status::resource_exhausted(busy.to_string()))?;
        connection.update_prepared(&handle).await.map_err(status_of)
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let connection = self.connection(&request)?;
        let prepared = connection.prepare(&query.query).await.map_err(status_of)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: prepared.handle.into(),
            dataset_schema: ipc_schema(&prepared.dataset_schema)?.0,
            parameter_schema: ipc_schema(&prepared.parameter_schema)?.0,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let connection = self.connection(&request)?;
        connection.close(&query.prepared_statement_handle);
        Ok(())
    }

    async fn do_get_fallback(
        &self,
        request: Request<Ticket>,
        message: Any,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.connection(&request)?;
        Err(Status::unimplemented(format!(
            "this server does not answer '{}'",
            message.type_url
        )))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
