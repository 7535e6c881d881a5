//! `usagelake serve`: the lake and every metric function over Arrow Flight SQL, for BI tools,
//! notebooks and the ADBC and JDBC drivers.
//!
//! This module owns the network side: the listening socket (its address printed once it is
//! bound, so `--addr 127.0.0.1:0` works for tests and scripts), TLS, message size limits high
//! enough for ADBC's large batches, and a graceful stop on SIGTERM or Ctrl-C: the server stops
//! accepting calls, running results get a grace period to finish, and what is still running
//! after it is cancelled.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use arrow_flight::flight_service_server::FlightServiceServer;
use datafusion::prelude::SessionContext;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::flight_metadata::{self, MetadataError};
use crate::flight_service::{ServiceOptions, UsagelakeFlightSql};

/// The largest gRPC message the server reads or writes: ADBC sends and expects batches of up to
/// 16 MiB, and a wide row of strings can pass that.
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Errors starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(
        "could not listen on {addr}: {source} (is another server using the port? pick another with --addr)"
    )]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("could not read the TLS {what} '{path}': {source}")]
    ReadTls {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the TLS certificate or key is not usable: {0} (both must be PEM files)")]
    Tls(tonic::transport::Error),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error("the server stopped: {0}")]
    Transport(tonic::transport::Error),
    #[error("could not listen for the stop signal: {0}")]
    Signal(std::io::Error),
}

/// A certificate chain and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// How and where to serve.
#[derive(Debug)]
pub struct ServeOptions {
    pub addr: SocketAddr,
    pub tls: Option<TlsFiles>,
    /// How long running results may go on after a stop signal before they are cancelled.
    pub shutdown_grace: Duration,
    pub service: ServiceOptions,
}

/// Parses a duration such as `60s`, `5m`, `1h`, `500ms` or `90` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let bad = || format!("'{text}' is not a duration: write it as 500ms, 60s, 5m or 1h");
    let number: f64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "ms" => number / 1000.0,
        "" | "s" => number,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(bad()),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn read_tls(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, ServeError> {
    std::fs::read(path).map_err(|source| ServeError::ReadTls {
        what,
        path: path.clone(),
        source,
    })
}

/// Serves `ctx` until SIGTERM or Ctrl-C.
pub async fn serve(ctx: SessionContext, options: ServeOptions) -> Result<(), ServeError> {
    let read_only = !options.service.policy.allow_writes;
    let authenticated = options.service.users.is_some();
    let sql_info = flight_metadata::sql_info(&ctx, read_only)?;
    let xdbc_types = flight_metadata::xdbc_types()?;
    let service = UsagelakeFlightSql::new(ctx, options.service, sql_info, xdbc_types);
    let flight = FlightServiceServer::new(service)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);

    let mut server = Server::builder();
    if let Some(tls) = &options.tls {
        let identity = Identity::from_pem(
            read_tls("certificate", &tls.cert)?,
            read_tls("key", &tls.key)?,
        );
        server = server
            .tls_config(ServerTlsConfig::new().identity(identity))
            .map_err(ServeError::Tls)?;
    }
    let incoming = TcpIncoming::bind(options.addr)
        .map_err(|source| ServeError::Bind {
            addr: options.addr,
            source,
        })?
        .with_nodelay(Some(true));
    let local = incoming.local_addr().map_err(|source| ServeError::Bind {
        addr: options.addr,
        source,
    })?;
    let stop = stop_signal()?;
    eprintln!(
        "usagelake: Flight SQL on {}://{local} ({}, {})",
        if options.tls.is_some() {
            "grpc+tls"
        } else {
            "grpc"
        },
        if read_only {
            "read-only"
        } else {
            "writes allowed"
        },
        if authenticated {
            "users must log in"
        } else {
            "no authentication"
        },
    );

    let (stop_accepting, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server
        .add_service(flight)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = stopped.await;
        });
    tokio::pin!(serving);
    tokio::select! {
        result = &mut serving => return result.map_err(ServeError::Transport),
        () = stop => (),
    }
    eprintln!(
        "usagelake: stopping; running results have {} s to finish",
        options.shutdown_grace.as_secs_f64()
    );
    let _ = stop_accepting.send(());
    match tokio::time::timeout(options.shutdown_grace, &mut serving).await {
        Ok(result) => result.map_err(ServeError::Transport)?,
        Err(_) => eprintln!("usagelake: cancelled the results still running"),
    }
    Ok(())
}

/// Listens for SIGTERM (what schedulers and `kill` send) and Ctrl-C from now on, and waits for
/// either. The handlers are in place before the server says where it listens: installed when
/// the wait was first polled, a SIGTERM sent as soon as the server was up met no handler and
/// killed it (the clean-stop test failed so, once).
fn stop_signal() -> Result<impl Future<Output = ()>, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => (),
            _ = interrupt.recv() => (),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_units_and_refuse_zero() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["0s", "-1s", "5x", "", "s"] {
            let error = parse_duration(bad).unwrap_err();
            assert!(error.contains(&format!("'{bad}'")), "{error}");
        }
    }
}
