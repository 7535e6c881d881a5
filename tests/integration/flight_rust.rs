//! The Flight SQL server through arrow-flight's own Rust client: the handshake byte for byte,
//! tokens, prepared statements and the catalog commands.

use std::sync::Arc;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::CommandGetTables;
use arrow_flight::sql::client::FlightSqlServiceClient;
use arrow_flight::{FlightInfo, HandshakeRequest};
use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::Int64Type;
use futures::TryStreamExt;
use tonic::transport::Channel;

use crate::server::Server;

async fn channel(server: &Server) -> Channel {
    Channel::from_shared(server.uri("http"))
        .unwrap()
        .connect()
        .await
        .expect("the server accepts a connection")
}

/// The Bearer token answered to a handshake with `authorization: <header>`, or its error code.
async fn handshake(server: &Server, header: &str) -> Result<String, tonic::Code> {
    let mut client = FlightServiceClient::new(channel(server).await);
    let mut request = tonic::Request::new(futures::stream::iter([HandshakeRequest::default()]));
    request
        .metadata_mut()
        .insert("authorization", header.parse().unwrap());
    let response = client.handshake(request).await.map_err(|s| s.code())?;
    let bearer = response
        .metadata()
        .get("authorization")
        .expect("the answer carries the token")
        .to_str()
        .unwrap();
    Ok(bearer
        .strip_prefix("Bearer ")
        .expect("a Bearer token")
        .to_string())
}

async fn fetch(client: &mut FlightSqlServiceClient<Channel>, info: FlightInfo) -> Vec<RecordBatch> {
    let ticket = info.endpoint[0].ticket.clone().unwrap();
    client
        .do_get(ticket)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn basic_credentials_padded_or_not_earn_a_token_that_every_call_needs() {
    let server = Server::start(&["--user", "ann", "--password", "pwd1"]);
    // "ann:pwd1" is 8 bytes: base64 pads it with one '='.
    let padded = handshake(&server, "Basic YW5uOnB3ZDE=").await.unwrap();
    let unpadded = handshake(&server, "Basic YW5uOnB3ZDE").await.unwrap();
    assert_ne!(padded, unpadded, "each login gets a token of its own");
    assert_eq!(
        handshake(&server, "Basic YW5uOnB3ZDI=").await,
        Err(tonic::Code::Unauthenticated),
        "ann:pwd2 is the wrong password"
    );

    let mut client = FlightSqlServiceClient::new(channel(&server).await);
    let refused = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(refused.to_string().contains("no credentials"), "{refused}");
    client.set_token("0123456789abcdef".into());
    let forged = client.execute("SELECT 1".into(), None).await.unwrap_err();
    assert!(
        forged.to_string().contains("unknown or expired"),
        "{forged}"
    );

    client.set_token(unpadded);
    let info = client
        .execute("SELECT 40 + 2 AS answer".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        42
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn prepared_statements_number_question_marks_in_order() {
    let server = Server::start(&[]);
    let mut client = FlightSqlServiceClient::new(channel(&server).await);
    let mut prepared = client
        .prepare("SELECT ? * 10 AS tens, upper(?) AS word".into(), None)
        .await
        .unwrap();
    let parameters = prepared.parameter_schema().unwrap();
    let names: Vec<&str> = parameters
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["$1", "$2"]);
    prepared
        .set_parameters(
            RecordBatch::try_from_iter([
                ("p1", Arc::new(Int64Array::from(vec![4])) as ArrayRef),
                ("p2", Arc::new(StringArray::from(vec!["mrr"])) as ArrayRef),
            ])
            .unwrap(),
        )
        .unwrap();
    let info = prepared.execute().await.unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        40
    );
    assert_eq!(batches[0].column(1).as_string::<i32>().value(0), "MRR");
    prepared.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn get_tables_filters_by_pattern_and_includes_client_schemas() {
    let server = Server::start(&[]);
    let mut client = FlightSqlServiceClient::new(channel(&server).await);
    let info = client
        .get_tables(CommandGetTables {
            catalog: None,
            db_schema_filter_pattern: Some("pub%".into()),
            table_name_filter_pattern: Some("%scri%".into()),
            table_types: vec!["TABLE".into()],
            include_schema: true,
        })
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    let batch = &batches[0];
    assert_eq!(batch.num_rows(), 1);
    let name = batch
        .column_by_name("table_name")
        .unwrap()
        .as_string::<i32>();
    assert_eq!(name.value(0), "subscriptions");
    let schema_bytes = batch
        .column_by_name("table_schema")
        .unwrap()
        .as_binary::<i32>();
    let schema =
        datafusion::arrow::ipc::convert::try_schema_from_ipc_buffer(schema_bytes.value(0)).unwrap();
    assert!(schema.fields().iter().all(|f| !matches!(
        f.data_type(),
        datafusion::arrow::datatypes::DataType::Utf8View
    )));
    assert!(schema.field_with_name("mrr").is_ok(), "{schema:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn updates_through_do_put_run_only_when_writes_are_allowed() {
    let read_only = Server::start(&[]);
    let mut client = FlightSqlServiceClient::new(channel(&read_only).await);
    let refused = client
        .execute_update("CREATE TABLE notes AS VALUES (1)".into(), None)
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("CreateMemoryTable is not allowed"),
        "{refused}"
    );

    let writable = Server::start(&["--allow-writes"]);
    let mut client = FlightSqlServiceClient::new(channel(&writable).await);
    let created = client
        .execute_update("CREATE TABLE notes (n BIGINT)".into(), None)
        .await
        .unwrap();
    assert_eq!(created, 0);
    let inserted = client
        .execute_update("INSERT INTO notes VALUES (4), (5), (6)".into(), None)
        .await
        .unwrap();
    assert_eq!(inserted, 3);
    let info = client
        .execute("SELECT sum(n) FROM notes".into(), None)
        .await
        .unwrap();
    let batches = fetch(&mut client, info).await;
    assert_eq!(
        batches[0].column(0).as_primitive::<Int64Type>().value(0),
        15
    );
}
