//! The `_SUCCESS` manifest of a job's output: the one object that says which files are the output.
//!
//! Object stores have no atomic rename, so a job writes each run's files under a prefix of its own
//! (`runs/RUN_ID/`) and then puts the manifest, a single object whose write is atomic, naming that
//! run and its files. A reader that finds a manifest reads exactly those files; a run that failed
//! or was killed before its manifest left only files that nothing names.

use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::object_stores::store_error_message;

/// The name of the manifest object under an output prefix.
pub const MANIFEST_FILE: &str = "_SUCCESS";
/// The prefix, under an output prefix, of the runs' files.
pub const RUNS_PREFIX: &str = "runs";

/// Errors reading or writing a manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("could not read the manifest '{path}': {}", store_error_message(.source))]
    Read {
        path: String,
        source: datafusion::object_store::Error,
    },
    #[error(
        "'{path}' is not a usagelake manifest ({reason}): remove it, or point --output elsewhere"
    )]
    Invalid { path: String, reason: String },
    #[error("could not write the manifest '{path}': {}", store_error_message(.source))]
    Write {
        path: String,
        source: datafusion::object_store::Error,
    },
}

/// What a published run wrote.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// The job's name (its file name without `.sql`).
    pub job: String,
    /// The variables the job ran with, by name.
    pub variables: std::collections::BTreeMap<String, String>,
    /// The run, whose files are under `runs/RUN_ID/`.
    pub run_id: String,
    /// `parquet`, `csv` or `json`.
    pub format: String,
    /// Hive partition columns of the files' folders.
    pub partition_by: Vec<String>,
    /// Rows in all files.
    pub rows: u64,
    /// Bytes in all files.
    pub bytes: u64,
    /// Columns of the result.
    pub schema: Vec<ManifestColumn>,
    /// The files, relative to the output prefix.
    pub files: Vec<ManifestFile>,
    /// When the run started and finished (RFC 3339, UTC).
    pub started: String,
    pub finished: String,
}

/// One column of a manifest's schema.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestColumn {
    pub name: String,
    /// The Arrow type, as Arrow prints it.
    pub data_type: String,
    pub nullable: bool,
}

/// One file of a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManifestFile {
    /// The path relative to the output prefix, such as `runs/RUN_ID/date=2024-01-01/part.parquet`.
    pub path: String,
    pub bytes: u64,
}

impl Manifest {
    /// The prefix, relative to the output prefix, of this run's files (with a trailing `/`).
    pub fn run_prefix(&self) -> String {
        format!("{RUNS_PREFIX}/{}/", self.run_id)
    }

    /// Reads the manifest under `prefix`, or `None` when there is none.
    pub async fn read(
        store: &dyn ObjectStore,
        prefix: &ObjectPath,
    ) -> Result<Option<Self>, ManifestError> {
        let path = prefix.clone().join(MANIFEST_FILE);
        let read_error = |source| ManifestError::Read {
            path: path.to_string(),
            source,
        };
        let bytes = match store.get(&path).await {
            Ok(result) => result.bytes().await.map_err(read_error)?,
            Err(datafusion::object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(read_error(e)),
        };
        let manifest: Self =
            serde_json::from_slice(&bytes).map_err(|e| ManifestError::Invalid {
                path: path.to_string(),
                reason: e.to_string(),
            })?;
        if manifest.run_id.is_empty() || manifest.run_id.contains('/') {
            return Err(ManifestError::Invalid {
                path: path.to_string(),
                reason: format!("run_id '{}' is not a run", manifest.run_id),
            });
        }
        Ok(Some(manifest))
    }

    /// Puts this manifest under `prefix` in one request, replacing the one there.
    pub async fn write(
        &self,
        store: &dyn ObjectStore,
        prefix: &ObjectPath,
    ) -> Result<(), ManifestError> {
        let path = prefix.clone().join(MANIFEST_FILE);
        let text = serde_json::to_vec_pretty(self).expect("a manifest serializes");
        store
            .put(&path, PutPayload::from(text))
            .await
            .map(|_| ())
            .map_err(|source| ManifestError::Write {
                path: path.to_string(),
                source,
            })
    }
}
