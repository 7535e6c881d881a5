//! One query's result delivered to a consumer that keeps nothing, two ways, for bench/flight.py:
//!
//! - `flight URI SQL`: fetched from a Flight SQL server by arrow-flight's Rust client, batch by
//!   batch. Without the Python ADBC client's Go driver and pyarrow import, what is left is the
//!   server and the Arrow IPC decoding every client does.
//! - `local LAKE SQL [--ipc]`: run in this process the way the server runs it (a session made as
//!   `usagelake serve` makes it, the server's [`Connection::execute`], which streams batches in the
//!   types clients are sent), each batch handed to the consumer; with `--ipc` also written as an
//!   Arrow IPC stream to a sink, the encoding any process boundary costs.
//!
//! Each prints `rows seconds` on one line, timed from the query's start to its last batch:
//! neither counts the process's start-up nor the lake's registration, which a running server has
//! already done.

use std::sync::Arc;
use std::time::Instant;

use arrow_flight::flight_service_client::FlightServiceClient;
use arrow_flight::sql::client::FlightSqlServiceClient;
use datafusion::arrow::ipc::writer::StreamWriter;
use futures::TryStreamExt;
use tonic::transport::Channel;
use usagelake::flight_sql::Connection;
use usagelake::lake;
use usagelake::object_stores::Location;
use usagelake::session::{self, SessionOptions};
use usagelake::sql_policy::SqlPolicy;

/// The largest message the client reads: the server writes up to 64 MiB (src/serve.rs).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

type Error = Box<dyn std::error::Error>;

const USAGE: &str =
    "usage: fetch-bench flight grpc://HOST:PORT SQL | fetch-bench local LAKE SQL [--ipc]";

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (rows, seconds) = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["flight", uri, sql] => over_flight(uri, sql).await?,
        ["local", lake, sql] => in_process(lake, sql, false).await?,
        ["local", lake, sql, "--ipc"] => in_process(lake, sql, true).await?,
        _ => return Err(USAGE.into()),
    };
    println!("{rows} {seconds:.6}");
    Ok(())
}

async fn over_flight(uri: &str, sql: &str) -> Result<(usize, f64), Error> {
    let uri = uri.replacen("grpc://", "http://", 1);
    let channel = Channel::from_shared(uri.clone())
        .map_err(|e| format!("'{uri}' is not a server address: {e}"))?
        .connect()
        .await
        .map_err(|e| format!("could not connect to {uri}: {e}"))?;
    let inner = FlightServiceClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
    let mut client = FlightSqlServiceClient::new_from_inner(inner);

    let started = Instant::now();
    let info = client.execute(sql.to_string(), None).await?;
    let mut rows = 0;
    for endpoint in info.endpoint {
        let ticket = endpoint
            .ticket
            .ok_or("the server sent an endpoint without a ticket")?;
        let mut batches = client.do_get(ticket).await?;
        while let Some(batch) = batches.try_next().await? {
            rows += batch.num_rows();
        }
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}

async fn in_process(lake: &str, sql: &str, ipc: bool) -> Result<(usize, f64), Error> {
    // The server's session: classic strings, as `usagelake serve` reads them.
    let ctx = session::create_context(&SessionOptions {
        classic_strings: true,
        ..Default::default()
    })?;
    let location = Location::parse(lake)?;
    let tables = lake::discover_location(&ctx, &location).await?;
    lake::register_tables(&ctx, &tables).await?;
    let connection = Connection::new(&ctx, Arc::new(SqlPolicy::new(false, &location)));

    let started = Instant::now();
    let (schema, mut batches) = connection.execute(sql, &[]).await?;
    let mut writer = match ipc {
        true => Some(StreamWriter::try_new(std::io::sink(), &schema)?),
        false => None,
    };
    let mut rows = 0;
    while let Some(batch) = batches.try_next().await? {
        rows += batch.num_rows();
        if let Some(writer) = &mut writer {
            writer.write(&batch)?;
        }
    }
    if let Some(writer) = &mut writer {
        writer.finish()?;
    }
    Ok((rows, started.elapsed().as_secs_f64()))
}
