//! Session set-up: one place that turns the command-line options into a DataFusion
//! [`SessionContext`] with our functions, settings and resource limits.
//!
//! Every front end (REPL, one-shot queries, later Flight SQL and batch jobs) builds its context here,
//! so a function or setting registered once is available everywhere.

use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use usagelake_udfs::UsagelakeOptions;

use crate::object_stores::{StoreOptions, StoreRegistry};
use crate::scan_balance::BalancedFileScans;

/// Errors setting up a session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(
        "memory limit '{0}' is not a size: use a number with a unit, such as 512m, 4g or 1.5GB"
    )]
    BadMemoryLimit(String),
    #[error("--threads must be at least 1")]
    ZeroThreads,
    #[error("{0}")]
    Setting(String),
    #[error("could not set up the session: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// What a session is built from.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Bytes of memory queries may use before operators spill to disk; `None` is unbounded.
    pub memory_limit: Option<usize>,
    /// Threads that run queries (each query in twice as many partitions); `None`: every core.
    pub threads: Option<usize>,
    /// The session's default time zone (`usagelake.tz`).
    pub tz: Option<String>,
    /// Read Parquet strings as classic `Utf8` rather than DataFusion's `Utf8View`: a server sends
    /// its clients classic strings anyway, and casting every batch from views cost as much CPU
    /// as the scan.
    pub classic_strings: bool,
    /// Settings of the object stores (S3, GCS, Azure, HTTP) the session reads and writes.
    pub store_options: StoreOptions,
}

/// Parses a size such as `4g`, `512MB`, `1.5GiB` or `1000000` (bytes).
pub fn parse_byte_size(text: &str) -> Result<usize, SessionError> {
    let bad = || SessionError::BadMemoryLimit(text.to_string());
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = number.parse().map_err(|_| bad())?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        "t" | "tb" | "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = number * multiplier;
    if !bytes.is_finite() || bytes < 1.0 {
        return Err(bad());
    }
    Ok(bytes as usize)
}

/// Partitions of a query per thread that runs it. A partition's thread sits idle while the
/// partition waits for its file's bytes; with a second partition to take up, the benchmark lake's
/// queries ran 10% to 25% faster on 2 threads (best of 3 each, alternating: `funnel` 0.50 s to
/// 0.39 s, `sessions` 2.15 s to 1.64 s, `cohort_retention` 0.44 s to 0.35 s, the bare scan 0.27
/// s to 0.22 s); DataFusion's default is one partition per core.
const PARTITIONS_PER_THREAD: usize = 2;

/// Bytes read from the end of a Parquet file in the hope that they hold its footer.
const PARQUET_FOOTER_HINT: usize = 64 * 1024;

/// Builds a session with information_schema, our settings and functions, and the given limits.
pub fn create_context(options: &SessionOptions) -> Result<SessionContext, SessionError> {
    let mut settings = UsagelakeOptions::default();
    if let Some(tz) = &options.tz {
        use datafusion::common::config::ExtensionOptions;
        settings
            .set("tz", tz)
            .map_err(|e| SessionError::Setting(e.strip_backtrace()))?;
    }
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        .with_option_extension(settings)
        // Tables with store options of their own build their stores over the session's.
        .with_extension(Arc::new(options.store_options.clone()));
    // DataFusion fetches the last 512 KiB of a Parquet file to find its footer in one read. A
    // lake's files are often smaller than that and their footers a few KiB (1.7 KiB in the
    // generated lake), so opening a lake of 365 daily files read 186 MB, most of every file, and
    // each scan read it again. 64 KiB still takes most footers in one read.
    config.options_mut().execution.parquet.metadata_size_hint = Some(PARQUET_FOOTER_HINT);
    if options.classic_strings {
        config
            .options_mut()
            .execution
            .parquet
            .schema_force_view_types = false;
    }
    let threads = match options.threads {
        Some(0) => return Err(SessionError::ZeroThreads),
        Some(threads) => threads,
        None => std::thread::available_parallelism().map_or(1, |cores| cores.get()),
    };
    config = config.with_target_partitions(PARTITIONS_PER_THREAD * threads);
    let mut runtime = RuntimeEnvBuilder::new()
        .with_object_store_registry(Arc::new(StoreRegistry::new(options.store_options.clone())));
    if let Some(limit) = options.memory_limit {
        // A fair spill pool gives each spilling operator its share, so a big sort spills to disk
        // instead of failing the query.
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    // Our rule first, so that the rules after it see the balanced scans.
    let mut physical_rules = usagelake_udfs::physical_optimizer_rules();
    physical_rules.insert(0, Arc::new(BalancedFileScans));
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime.build_arc()?)
        .with_default_features()
        .with_physical_optimizer_rules(physical_rules)
        .build();
    let ctx = SessionContext::new_with_state(state);
    usagelake_udfs::register_all(&ctx)?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_accept_units_in_any_case() {
        assert_eq!(parse_byte_size("4g").unwrap(), 4 << 30);
        assert_eq!(parse_byte_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_byte_size("1000").unwrap(), 1000);
    }

    #[test]
    fn byte_sizes_reject_unknown_units_and_zero() {
        for text in ["4x", "g", "", "0", "-1g", "1.2.3g"] {
            let error = parse_byte_size(text).unwrap_err().to_string();
            assert!(error.contains(&format!("'{text}'")), "{error}");
        }
    }

    #[tokio::test]
    async fn tz_option_becomes_the_session_setting() {
        let ctx = create_context(&SessionOptions {
            tz: Some("Europe/Istanbul".into()),
            ..Default::default()
        })
        .unwrap();
        let batches = ctx
            .sql("SHOW usagelake.tz")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
            .unwrap()
            .to_string();
        assert!(text.contains("Europe/Istanbul"), "{text}");
    }

    #[test]
    fn unknown_tz_is_refused_with_its_name() {
        let Err(error) = create_context(&SessionOptions {
            tz: Some("Nowhere/Land".into()),
            ..Default::default()
        }) else {
            panic!("an unknown zone must be refused");
        };
        let error = error.to_string();
        assert!(error.contains("'Nowhere/Land'"), "{error}");
    }
}
