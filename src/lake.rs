//! Lakes and tables: finding the tables of a lake folder and registering them in a session.
//!
//! A lake is a folder: each sub-folder of Parquet files (hive partition folders such as
//! `date=2024-01-01/` become partition columns) and each `.parquet` file is a table named after it;
//! `usagelake.toml` adds tables and says what folder names cannot (see [`crate::lake_config`]).
//!
//! A lake can also be a prefix of an object store (`s3://bucket/lake/`, see
//! [`crate::object_stores`]): its sub-prefixes and `.parquet` objects are its tables, as on disk.
//! A table folder holding a job's `_SUCCESS` manifest is read as the files the manifest names
//! (see [`crate::manifest`]), never a run that is still being written; a table of job outputs is
//! the union of every manifested output under its folder. A table can also be a list of files,
//! for stores that cannot list a folder (plain HTTP): one listing table over their URLs.
//!
//! Schemas are read from every file's footer and merged here rather than by DataFusion, so that a
//! conflict names both files and the column, and a file that is not Parquet is named at start-up
//! instead of failing some later query.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::TableProvider;
use datafusion::common::TableReference;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::DataFusionError;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::object_store::{ObjectMeta, ObjectStore, ObjectStoreExt};
use datafusion::prelude::SessionContext;
use futures::{StreamExt, TryStreamExt};

use crate::lake_config::{
    LAKE_CONFIG_FILE, LakeConfig, LakeConfigError, TableData as ConfiguredData,
};
use crate::manifest::{MANIFEST_FILE, Manifest, ManifestError, RUNS_PREFIX};
use crate::object_stores::{Location, ObjectStoreError, StoreOptions, as_folder, build_store};
use crate::runner::one_line;
use crate::time_partition::TimePartitionedTable;

const PARQUET_EXTENSION: &str = ".parquet";
/// The `format` of a manifest whose files a table can read.
const PARQUET_FORMAT: &str = "parquet";

/// Errors finding or registering tables.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error(
        "lake folder '{0}' does not exist: pass --lake with a folder of Parquet files, or make one with `usagelake gen --out {0}`"
    )]
    LakeMissing(PathBuf),
    #[error(
        "lake '{0}' is not a folder: pass --lake with a folder, or --table NAME={0} for a single file"
    )]
    LakeNotFolder(PathBuf),
    #[error("could not read lake folder '{path}': {source}")]
    ReadLake {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] LakeConfigError),
    #[error(transparent)]
    Store(#[from] ObjectStoreError),
    #[error("{0}")]
    Manifest(#[from] ManifestError),
    #[error(
        "lake '{location}' holds no tables: it needs sub-prefixes of Parquet files or .parquet objects (upload a lake there, or fix --lake)"
    )]
    RemoteLakeEmpty { location: String },
    #[error("{what} '{location}': {message}: {hint}")]
    Storage {
        what: String,
        location: String,
        message: String,
        hint: String,
    },
    #[error(
        "table '{table}': the manifest '{manifest}' names '{file}', which is missing: re-run the job that writes it"
    )]
    ManifestFileMissing {
        table: String,
        manifest: String,
        file: String,
    },
    #[error("--table '{0}' is not NAME=PATH: write it as --table events=./logs/events")]
    BadTableArgument(String),
    #[error(
        "table '{table}': '{location}' does not exist: fix its location in usagelake.toml or --table"
    )]
    LocationMissing { table: String, location: String },
    #[error("table '{table}': no .parquet files under '{location}'")]
    NoFiles { table: String, location: String },
    #[error(
        "table '{table}': no job outputs under '{location}' (prefixes holding a _SUCCESS manifest): publish one with `usagelake run JOB.sql --output` set to a prefix under it, or fix the location"
    )]
    NoJobOutputs { table: String, location: String },
    #[error(
        "table '{table}': the manifest '{manifest}' names {format} files, but tables read Parquet: re-run the job with --format parquet"
    )]
    ManifestFormat {
        table: String,
        manifest: String,
        format: String,
    },
    #[error(
        "table '{table}': '{file}' in files is not a .parquet file: name each Parquet file, or give a folder as location instead"
    )]
    FileNotParquet { table: String, file: String },
    #[error(
        "table '{table}': files '{first}' and '{other}' are in different stores (scheme and host): the files of one table share a store; make a table of each and UNION ALL them in SQL"
    )]
    FilesInTwoStores {
        table: String,
        first: String,
        other: String,
    },
    #[error(
        "table '{table}': '{file}' is not a readable Parquet file ({reason}): remove or replace it"
    )]
    NotParquet {
        table: String,
        file: String,
        reason: String,
    },
    #[error(
        "table '{}': column '{}' is {} in '{}' but {} in '{}': rewrite one file with the other's type, or move it to a table of its own",
        .0.table, .0.column, .0.first_type, .0.first_file, .0.other_type, .0.other_file
    )]
    ColumnTypeConflict(Box<ColumnTypeConflict>),
    #[error(
        "table '{table}': '{first_file}' is under partition folders ({first_keys}) but '{other_file}' under ({other_keys}): every file of a table needs the same partition folders"
    )]
    PartitionLayout {
        table: String,
        first_file: String,
        first_keys: String,
        other_file: String,
        other_keys: String,
    },
    #[error("table '{table}': {problem}")]
    TimeColumn { table: String, problem: String },
    #[error("table '{table}': {source}")]
    DataFusion {
        table: String,
        source: DataFusionError,
    },
}

/// Two files of one table that disagree on a column's type.
#[derive(Debug)]
pub struct ColumnTypeConflict {
    table: String,
    column: String,
    first_file: String,
    first_type: DataType,
    other_file: String,
    other_type: DataType,
}

/// What a table reads: local paths or object-store URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableData {
    /// A folder or one file; a folder holding a job's `_SUCCESS` manifest is read by it.
    Location(Location),
    /// Files named one by one (`files` in `usagelake.toml`), in one store.
    Files(Vec<Location>),
    /// Every job output under a folder, each read by its manifest (`job_outputs = true`).
    JobOutputs(Location),
}

impl std::fmt::Display for TableData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Location(location) | Self::JobOutputs(location) => write!(f, "{location}"),
            Self::Files(files) => {
                let names: Vec<String> = files.iter().map(Location::to_string).collect();
                write!(f, "{}", names.join(", "))
            }
        }
    }
}

/// Where a table's data is and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSource {
    /// The SQL name of the table.
    pub name: String,
    /// What the table reads.
    pub data: TableData,
    /// The event-time column, if declared.
    pub time_column: Option<String>,
    /// A DATE partition column holding the UTC date of `time_column`.
    pub date_partition: Option<String>,
    /// Store options of this table (`options` in `usagelake.toml`), over the session's.
    pub store_options: BTreeMap<String, String>,
}

impl TableSource {
    fn plain(name: &str, location: Location) -> Self {
        Self {
            name: name.to_string(),
            data: TableData::Location(location),
            time_column: None,
            date_partition: None,
            store_options: BTreeMap::new(),
        }
    }

    /// Parses a `--table NAME=PATH` argument.
    pub fn from_argument(argument: &str) -> Result<Self, LakeError> {
        match argument.split_once('=') {
            Some((name, path)) if !name.trim().is_empty() && !path.trim().is_empty() => {
                Ok(Self::plain(name.trim(), Location::parse(path.trim())?))
            }
            _ => Err(LakeError::BadTableArgument(argument.to_string())),
        }
    }
}

/// The tables of the lake folder `lake`: its sub-folders and `.parquet` files, then the tables of
/// its `usagelake.toml` (which override discovered ones of the same name), sorted by name.
pub fn discover(lake: &Path) -> Result<Vec<TableSource>, LakeError> {
    if !lake.exists() {
        return Err(LakeError::LakeMissing(lake.to_path_buf()));
    }
    if !lake.is_dir() {
        return Err(LakeError::LakeNotFolder(lake.to_path_buf()));
    }
    let read_error = |source| LakeError::ReadLake {
        path: lake.to_path_buf(),
        source,
    };
    let mut tables = BTreeMap::new();
    for entry in std::fs::read_dir(lake).map_err(read_error)? {
        let path = entry.map_err(read_error)?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if is_hidden(file_name) {
            continue;
        }
        let name = if path.is_dir() {
            file_name
        } else if let Some(stem) = file_name.strip_suffix(PARQUET_EXTENSION) {
            stem
        } else {
            continue;
        };
        tables.insert(
            name.to_string(),
            TableSource::plain(name, Location::Local(path.clone())),
        );
    }
    if let Some(config) = LakeConfig::load(lake)? {
        add_configured_tables(&mut tables, &Location::Local(lake.to_path_buf()), config)?;
    }
    Ok(tables.into_values().collect())
}

/// The tables of a lake at `lake`, a local folder or an object-store prefix (see [`discover`]).
pub async fn discover_location(
    ctx: &SessionContext,
    lake: &Location,
) -> Result<Vec<TableSource>, LakeError> {
    let url = match lake {
        Location::Local(path) => return discover(path),
        Location::Remote(url) => as_folder(url),
    };
    let storage_error = |error: datafusion::object_store::Error| {
        let message = crate::object_stores::storage_message(&DataFusionError::from(error));
        LakeError::Storage {
            what: "lake".to_string(),
            location: url.to_string(),
            hint: crate::object_stores::storage_hint(&url, &message),
            message,
        }
    };
    let store = ctx
        .runtime_env()
        .object_store_registry
        .get_store(&url)
        .map_err(|e| lake_store_error(&url, e))?;
    let prefix = ObjectPath::from_url_path(url.path()).map_err(|e| storage_error(e.into()))?;
    let listing = store
        .list_with_delimiter(Some(&prefix))
        .await
        .map_err(storage_error)?;
    let mut tables = BTreeMap::new();
    for folder in &listing.common_prefixes {
        let Some(name) = folder.filename() else {
            continue;
        };
        if !is_hidden(name) {
            let location = Location::Remote(url.join(&format!("{name}/")).map_err(|e| {
                ObjectStoreError::BadUrl {
                    location: format!("{url}{name}/"),
                    problem: e.to_string(),
                }
            })?);
            tables.insert(name.to_string(), TableSource::plain(name, location));
        }
    }
    let mut config = None;
    for object in &listing.objects {
        let Some(file_name) = object.location.filename() else {
            continue;
        };
        if file_name == LAKE_CONFIG_FILE {
            let text = store
                .get(&object.location)
                .await
                .map_err(storage_error)?
                .bytes()
                .await
                .map_err(storage_error)?;
            let path = PathBuf::from(format!("{url}{LAKE_CONFIG_FILE}"));
            config = Some(LakeConfig::parse(&path, &String::from_utf8_lossy(&text))?);
        } else if let Some(stem) = file_name.strip_suffix(PARQUET_EXTENSION)
            && !is_hidden(file_name)
        {
            let location =
                Location::Remote(url.join(file_name).map_err(|e| ObjectStoreError::BadUrl {
                    location: format!("{url}{file_name}"),
                    problem: e.to_string(),
                })?);
            tables.insert(stem.to_string(), TableSource::plain(stem, location));
        }
    }
    if let Some(config) = config {
        add_configured_tables(&mut tables, lake, config)?;
    }
    if tables.is_empty() {
        return Err(LakeError::RemoteLakeEmpty {
            location: url.to_string(),
        });
    }
    Ok(tables.into_values().collect())
}

/// A store that could not be built for a lake or table, said as what to fix.
fn lake_store_error(url: &url::Url, error: DataFusionError) -> LakeError {
    LakeError::Storage {
        what: "location".to_string(),
        location: url.to_string(),
        message: one_line(&error),
        hint: "fix the store options (--store-option or the table's options)".to_string(),
    }
}

/// Puts the tables of a lake's `usagelake.toml` in place of discovered ones of the same name.
fn add_configured_tables(
    tables: &mut BTreeMap<String, TableSource>,
    lake: &Location,
    config: LakeConfig,
) -> Result<(), LakeError> {
    for (name, table) in config.tables {
        let data = match table.data() {
            Ok(ConfiguredData::Location(location)) => TableData::Location(lake.join(location)?),
            Ok(ConfiguredData::JobOutputs(location)) => TableData::JobOutputs(lake.join(location)?),
            Ok(ConfiguredData::Files(files)) => TableData::Files(
                files
                    .iter()
                    .map(|file| lake.join(file))
                    .collect::<Result<_, _>>()?,
            ),
            Err(problem) => {
                return Err(LakeConfigError::Table {
                    path: PathBuf::from(format!("{lake}/{LAKE_CONFIG_FILE}")),
                    table: name,
                    problem,
                }
                .into());
            }
        };
        let source = TableSource {
            name: name.clone(),
            data,
            time_column: table.time_column,
            date_partition: table.date_partition,
            store_options: table.options,
        };
        tables.insert(name, source);
    }
    Ok(())
}

/// Files and folders that are not data: dot files and `_`-prefixed markers such as `_SUCCESS`.
fn is_hidden(file_name: &str) -> bool {
    file_name.starts_with('.') || file_name.starts_with('_')
}

/// Puts `overrides` in place of the tables of the same name in `tables`, or adds them.
pub fn apply_overrides(tables: &mut Vec<TableSource>, overrides: Vec<TableSource>) {
    for source in overrides {
        tables.retain(|t| t.name != source.name);
        tables.push(source);
    }
}

/// Registers every table of `sources` in `ctx`.
pub async fn register_tables(
    ctx: &SessionContext,
    sources: &[TableSource],
) -> Result<(), LakeError> {
    for source in sources {
        let table = open_table(ctx, source).await?;
        ctx.register_table(TableReference::bare(source.name.as_str()), table)
            .map_err(|source_error| LakeError::DataFusion {
                table: source.name.clone(),
                source: source_error,
            })?;
    }
    Ok(())
}

/// Files whose footers are read at once when opening a table: enough to hide the latency of an
/// object store, few enough to keep a local disk busy without thrashing it.
const CONCURRENT_FOOTER_READS: usize = 16;

/// Builds the table provider of one source: a listing table over its files with the merged schema
/// and partition columns, wrapped for time-range pruning when the source declares it.
pub async fn open_table(
    ctx: &SessionContext,
    source: &TableSource,
) -> Result<Arc<dyn TableProvider>, LakeError> {
    let table = source.name.as_str();
    let datafusion_error = |error| LakeError::DataFusion {
        table: table.to_string(),
        source: error,
    };
    let urls = table_urls(source)?;
    let state = ctx.state();
    if !source.store_options.is_empty() {
        register_table_store(ctx, source, &urls[0])?;
    }
    let format =
        Arc::new(ParquetFormat::default().with_options(state.table_options().parquet.clone()));
    let store = state
        .runtime_env()
        .object_store(urls[0].object_store())
        .map_err(datafusion_error)?;
    let store_url = urls[0].get_url().clone();
    let described = source.data.to_string();
    let storage_error = |location: &str, error: DataFusionError| match error.find_root() {
        DataFusionError::ObjectStore(_) => {
            let message = crate::object_stores::storage_message(&error);
            LakeError::Storage {
                what: format!("table '{table}'"),
                location: location.to_string(),
                hint: if store_url.scheme() == "file" {
                    "check the folder's permissions".to_string()
                } else {
                    crate::object_stores::storage_hint(&store_url, &message)
                },
                message,
            }
        }
        _ => datafusion_error(error),
    };
    let is_job_outputs = matches!(source.data, TableData::JobOutputs(_));
    let urls = if is_job_outputs {
        job_output_urls(store.as_ref(), &urls[0])
            .await
            .map_err(|e| storage_error(&described, e))?
    } else {
        urls
    };
    let parts: Vec<TablePart> = futures::stream::iter(urls)
        .map(|url| read_part(store.as_ref(), url))
        .buffered(CONCURRENT_FOOTER_READS)
        .try_collect()
        .await
        .map_err(|error| match error {
            ManifestError::Read { source, .. } => storage_error(&described, source.into()),
            error => error.into(),
        })?;
    // A manifest that went away since the listing leaves a prefix that is no output (any more).
    let parts: Vec<TablePart> = parts
        .into_iter()
        .filter(|part| !is_job_outputs || part.manifest.is_some())
        .collect();
    if is_job_outputs && parts.is_empty() {
        return Err(LakeError::NoJobOutputs {
            table: table.to_string(),
            location: described,
        });
    }

    let mut files: Vec<ObjectMeta> = Vec::new();
    let mut relative_paths: Vec<Vec<String>> = Vec::new();
    for part in &parts {
        let url = &part.url;
        let mut listed: Vec<ObjectMeta> = if url.is_collection() {
            url.list_all_files(&state, store.as_ref(), PARQUET_EXTENSION)
                .await
                .map_err(|e| storage_error(&described, e))?
                .try_filter(|f| futures::future::ready(f.size > 0))
                .try_collect()
                .await
                .map_err(|e| storage_error(&described, e))?
        } else {
            // A file is asked for, not listed: plain HTTP cannot list, so a missing file would
            // otherwise fail as a listing the server does not support.
            match store.head(url.prefix()).await {
                Ok(meta) => vec![meta],
                Err(datafusion::object_store::Error::NotFound { .. }) => {
                    return Err(LakeError::LocationMissing {
                        table: table.to_string(),
                        location: url.to_string(),
                    });
                }
                Err(e) => return Err(storage_error(url.as_str(), e.into())),
            }
        };
        listed.sort_by(|a, b| a.location.cmp(&b.location));
        if let Some((manifest, manifest_location)) = &part.manifest {
            listed = manifest_files(table, manifest_location, url.prefix(), manifest, listed)?;
        }
        for file in listed {
            relative_paths.push(
                url.strip_prefix(&file.location)
                    .map(|segments| segments.map(str::to_string).collect())
                    .unwrap_or_default(),
            );
            files.push(file);
        }
    }
    if files.is_empty() {
        return Err(LakeError::NoFiles {
            table: table.to_string(),
            location: described,
        });
    }
    let file_names: Vec<String> = files.iter().map(|f| format!("/{}", f.location)).collect();
    let partitions = infer_partitions(table, &file_names, &relative_paths)?;

    let file_schemas: Vec<SchemaRef> = futures::stream::iter(files.iter().zip(&file_names))
        .map(|(file, file_name)| {
            let (state, store, format) = (&state, &store, &format);
            async move {
                format
                    .infer_schema(state, store, std::slice::from_ref(file))
                    .await
                    .map_err(|e| LakeError::NotParquet {
                        table: table.to_string(),
                        file: file_name.clone(),
                        reason: one_line(&e),
                    })
            }
        })
        .buffered(CONCURRENT_FOOTER_READS)
        .try_collect()
        .await?;
    let mut merger = SchemaMerger::new(table);
    for (file_name, schema) in file_names.iter().zip(&file_schemas) {
        merger.add(file_name, schema)?;
    }
    let schema = merger.finish();

    let options = ListingOptions::new(format)
        .with_file_extension(PARQUET_EXTENSION)
        .with_table_partition_cols(partitions.clone());
    let config =
        ListingTableConfig::new_with_multi_paths(parts.into_iter().map(|part| part.url).collect())
            .with_listing_options(options)
            .with_schema(schema.clone());
    let listing = Arc::new(ListingTable::try_new(config).map_err(datafusion_error)?);

    if let Some(time_column) = &source.time_column {
        check_time_column(table, &schema, time_column)?;
        if let Some(date_column) = &source.date_partition {
            check_date_partition(table, &partitions, date_column)?;
            return Ok(Arc::new(TimePartitionedTable::new(
                listing,
                time_column,
                date_column,
            )));
        }
    }
    Ok(listing)
}

/// The files of `listed` (a run's files) that `manifest` names, in its order; a named file that is
/// missing is an error, since the output it describes is no longer whole.
fn manifest_files(
    table: &str,
    manifest_location: &str,
    run_prefix: &ObjectPath,
    manifest: &Manifest,
    listed: Vec<ObjectMeta>,
) -> Result<Vec<ObjectMeta>, LakeError> {
    if manifest.format != PARQUET_FORMAT {
        return Err(LakeError::ManifestFormat {
            table: table.to_string(),
            manifest: manifest_location.to_string(),
            format: manifest.format.clone(),
        });
    }
    let mut by_path: BTreeMap<String, ObjectMeta> = listed
        .into_iter()
        .filter_map(|meta| {
            let relative: Vec<_> = meta.location.prefix_match(run_prefix)?.collect();
            let relative = relative
                .iter()
                .map(|p| p.as_ref())
                .collect::<Vec<_>>()
                .join("/");
            Some((format!("{}{relative}", manifest.run_prefix()), meta))
        })
        .collect();
    manifest
        .files
        .iter()
        .filter(|file| file.path.ends_with(PARQUET_EXTENSION))
        .map(|file| {
            by_path
                .remove(&file.path)
                .ok_or_else(|| LakeError::ManifestFileMissing {
                    table: table.to_string(),
                    manifest: manifest_location.to_string(),
                    file: file.path.clone(),
                })
        })
        .collect()
}

/// Registers the store of a table that has options of its own: the session's options with the
/// table's over them, for the table's bucket.
fn register_table_store(
    ctx: &SessionContext,
    source: &TableSource,
    url: &ListingTableUrl,
) -> Result<(), LakeError> {
    let session_options = ctx
        .state()
        .config()
        .get_extension::<StoreOptions>()
        .map(|options| options.as_ref().clone())
        .unwrap_or_default();
    let bucket = url.object_store();
    let store = build_store(
        bucket.as_ref(),
        &session_options.merged(&source.store_options),
    )?;
    ctx.register_object_store(bucket.as_ref(), store);
    Ok(())
}

/// One listing of a table: a folder or file, or the run that a job output's manifest names.
struct TablePart {
    url: ListingTableUrl,
    /// The manifest that names the part's files, with where it is.
    manifest: Option<(Manifest, String)>,
}

/// What `url` reads: the run its manifest names when it is a job's output, else `url` itself.
async fn read_part(
    store: &dyn ObjectStore,
    url: ListingTableUrl,
) -> Result<TablePart, ManifestError> {
    let manifest = if url.is_collection() {
        Manifest::read(store, url.prefix()).await?
    } else {
        None
    };
    let Some(manifest) = manifest else {
        return Ok(TablePart {
            url,
            manifest: None,
        });
    };
    let manifest_location = format!("{}{MANIFEST_FILE}", url.as_str());
    let run = format!("{}{}", url.as_str(), manifest.run_prefix());
    let url = ListingTableUrl::parse(&run).map_err(|e| ManifestError::Invalid {
        path: manifest_location.clone(),
        reason: one_line(&e),
    })?;
    Ok(TablePart {
        url,
        manifest: Some((manifest, manifest_location)),
    })
}

/// The job outputs under `folder`, found in one listing: the prefixes that hold a `_SUCCESS`
/// manifest, sorted. A prefix whose run is still being written has none yet and is not one; a
/// manifest among a run's files (under `runs/`) is data of that run, not an output.
async fn job_output_urls(
    store: &dyn ObjectStore,
    folder: &ListingTableUrl,
) -> Result<Vec<ListingTableUrl>, DataFusionError> {
    let mut outputs: Vec<String> = store
        .list(Some(folder.prefix()))
        .try_filter_map(|meta| {
            let relative: Vec<String> = meta
                .location
                .prefix_match(folder.prefix())
                .map(|parts| parts.map(|part| part.as_ref().to_string()).collect())
                .unwrap_or_default();
            let output = match relative.split_last() {
                Some((name, folders))
                    if name == MANIFEST_FILE && !folders.iter().any(|f| f == RUNS_PREFIX) =>
                {
                    Some(folders.iter().map(|f| format!("{f}/")).collect::<String>())
                }
                _ => None,
            };
            futures::future::ready(Ok(output))
        })
        .try_collect()
        .await?;
    outputs.sort();
    outputs
        .iter()
        .map(|relative| ListingTableUrl::parse(format!("{}{relative}", folder.as_str())))
        .collect()
}

/// The listing URLs of a table: one for a folder or file, one per file of a list of files. A
/// listing table reads all its files through the store of the first, so a list's files share one.
fn table_urls(source: &TableSource) -> Result<Vec<ListingTableUrl>, LakeError> {
    let files = match &source.data {
        TableData::Location(location) | TableData::JobOutputs(location) => {
            return Ok(vec![table_url(&source.name, location)?]);
        }
        TableData::Files(files) => files,
    };
    let urls = files
        .iter()
        .map(|file| {
            if !file.to_string().ends_with(PARQUET_EXTENSION) {
                return Err(LakeError::FileNotParquet {
                    table: source.name.clone(),
                    file: file.to_string(),
                });
            }
            table_url(&source.name, file)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let first = &urls[0];
    if let Some(other) = urls
        .iter()
        .find(|url| url.object_store() != first.object_store())
    {
        return Err(LakeError::FilesInTwoStores {
            table: source.name.clone(),
            first: first.to_string(),
            other: other.to_string(),
        });
    }
    Ok(urls)
}

/// The listing URL of a location: a folder (with the trailing `/` that marks one) or a file.
fn table_url(table: &str, location: &Location) -> Result<ListingTableUrl, LakeError> {
    let parse = |text: &str| {
        ListingTableUrl::parse(text).map_err(|error| LakeError::DataFusion {
            table: table.to_string(),
            source: error,
        })
    };
    let path = match location {
        Location::Local(path) => path,
        // A key ending in .parquet is a file; anything else a prefix, whose `/` keeps
        // `events/` from also matching `events_old/`.
        Location::Remote(url) if url.path().ends_with(PARQUET_EXTENSION) => {
            return parse(url.as_str());
        }
        Location::Remote(url) => return parse(as_folder(url).as_str()),
    };
    let missing = || LakeError::LocationMissing {
        table: table.to_string(),
        location: path.display().to_string(),
    };
    let absolute = std::path::absolute(path).map_err(|_| missing())?;
    if !absolute.exists() {
        return Err(missing());
    }
    let mut text = absolute.display().to_string();
    if absolute.is_dir() && !text.ends_with('/') {
        text.push('/');
    }
    parse(&text)
}

/// The hive partition columns of a table, from the `key=value` folders of its files, typed DATE
/// when every value is a date, BIGINT when every value is an integer, and VARCHAR otherwise.
fn infer_partitions(
    table: &str,
    files: &[String],
    relative_paths: &[Vec<String>],
) -> Result<Vec<(String, DataType)>, LakeError> {
    let partition_values = |segments: &Vec<String>| -> Vec<(String, String)> {
        let folders = &segments[..segments.len().saturating_sub(1)];
        folders
            .iter()
            .filter_map(|s| {
                s.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    };
    let Some(first) = relative_paths.first() else {
        return Ok(vec![]);
    };
    let keys: Vec<String> = partition_values(first)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut values: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    for (file, segments) in files.iter().zip(relative_paths) {
        let pairs = partition_values(segments);
        let file_keys: Vec<&String> = pairs.iter().map(|(k, _)| k).collect();
        if file_keys != keys.iter().collect::<Vec<_>>() {
            return Err(LakeError::PartitionLayout {
                table: table.to_string(),
                first_file: files[0].clone(),
                first_keys: keys.join(", "),
                other_file: file.clone(),
                other_keys: file_keys
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        for (slot, (_, value)) in values.iter_mut().zip(pairs) {
            slot.push(value);
        }
    }
    Ok(keys
        .into_iter()
        .zip(values)
        .map(|(key, values)| (key, partition_type(&values)))
        .collect())
}

fn partition_type(values: &[String]) -> DataType {
    let is_date = |v: &String| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok();
    if values.iter().all(is_date) {
        DataType::Date32
    } else if values.iter().all(|v| v.parse::<i64>().is_ok()) {
        DataType::Int64
    } else {
        DataType::Utf8
    }
}

/// Merges the schemas of a table's files: a column some files lack becomes nullable (the scan
/// reads it as NULL there); a column whose type differs between files is an error naming both.
struct SchemaMerger<'a> {
    table: &'a str,
    /// Each column with the first file that had it, in order of first appearance.
    fields: Vec<(Field, String)>,
    files_seen: usize,
}

impl<'a> SchemaMerger<'a> {
    fn new(table: &'a str) -> Self {
        Self {
            table,
            fields: Vec::new(),
            files_seen: 0,
        }
    }

    fn add(&mut self, file: &str, schema: &SchemaRef) -> Result<(), LakeError> {
        for (field, _) in &mut self.fields {
            if schema.field_with_name(field.name()).is_err() {
                *field = field.clone().with_nullable(true);
            }
        }
        for field in schema.fields() {
            match self
                .fields
                .iter_mut()
                .find(|(f, _)| f.name() == field.name())
            {
                Some((existing, first_file)) => {
                    if existing.data_type() != field.data_type() {
                        return Err(LakeError::ColumnTypeConflict(Box::new(
                            ColumnTypeConflict {
                                table: self.table.to_string(),
                                column: field.name().clone(),
                                first_file: first_file.clone(),
                                first_type: existing.data_type().clone(),
                                other_file: file.to_string(),
                                other_type: field.data_type().clone(),
                            },
                        )));
                    }
                    if field.is_nullable() {
                        *existing = existing.clone().with_nullable(true);
                    }
                }
                None => {
                    // A column that earlier files lack is NULL in them.
                    let nullable = field.is_nullable() || self.files_seen > 0;
                    let field = Field::new(field.name(), field.data_type().clone(), nullable);
                    self.fields.push((field, file.to_string()));
                }
            }
        }
        self.files_seen += 1;
        Ok(())
    }

    fn finish(self) -> SchemaRef {
        Arc::new(Schema::new(
            self.fields.into_iter().map(|(f, _)| f).collect::<Vec<_>>(),
        ))
    }
}

fn check_time_column(table: &str, schema: &Schema, column: &str) -> Result<(), LakeError> {
    let problem = match schema.field_with_name(column) {
        Err(_) => format!(
            "time_column '{column}' is not a column of the table: its columns are {}",
            schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Ok(field)
            if matches!(
                field.data_type(),
                DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64
            ) =>
        {
            return Ok(());
        }
        Ok(field) => format!(
            "time_column '{column}' is {}, not a TIMESTAMP or DATE",
            field.data_type()
        ),
    };
    Err(LakeError::TimeColumn {
        table: table.to_string(),
        problem,
    })
}

fn check_date_partition(
    table: &str,
    partitions: &[(String, DataType)],
    column: &str,
) -> Result<(), LakeError> {
    let problem = match partitions.iter().find(|(name, _)| name == column) {
        Some((_, DataType::Date32)) => return Ok(()),
        Some((_, data_type)) => format!(
            "date_partition '{column}' holds {data_type} values, not dates such as {column}=2024-01-01"
        ),
        None => format!(
            "date_partition '{column}' is not a partition folder of the table: its files need to sit under {column}=YYYY-MM-DD/ folders"
        ),
    };
    Err(LakeError::TimeColumn {
        table: table.to_string(),
        problem,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &[(&str, DataType, bool)]) -> SchemaRef {
        Arc::new(Schema::new(
            fields
                .iter()
                .map(|(n, t, null)| Field::new(*n, t.clone(), *null))
                .collect::<Vec<_>>(),
        ))
    }

    #[test]
    fn a_new_column_in_a_later_file_is_merged_as_nullable() {
        let mut merger = SchemaMerger::new("events");
        merger
            .add("a.parquet", &schema(&[("ts", DataType::Int64, false)]))
            .unwrap();
        merger
            .add(
                "b.parquet",
                &schema(&[
                    ("ts", DataType::Int64, false),
                    ("device", DataType::Utf8, false),
                ]),
            )
            .unwrap();
        let merged = merger.finish();
        assert!(!merged.field_with_name("ts").unwrap().is_nullable());
        assert!(merged.field_with_name("device").unwrap().is_nullable());
    }

    #[test]
    fn a_column_missing_from_a_later_file_becomes_nullable() {
        let mut merger = SchemaMerger::new("events");
        let both = schema(&[
            ("ts", DataType::Int64, false),
            ("device", DataType::Utf8, false),
        ]);
        merger.add("a.parquet", &both).unwrap();
        merger
            .add("b.parquet", &schema(&[("ts", DataType::Int64, false)]))
            .unwrap();
        assert!(
            merger
                .finish()
                .field_with_name("device")
                .unwrap()
                .is_nullable()
        );
    }

    #[test]
    fn a_type_conflict_names_both_files_and_the_column() {
        let mut merger = SchemaMerger::new("events");
        merger
            .add("a.parquet", &schema(&[("user_id", DataType::Int64, true)]))
            .unwrap();
        let error = merger
            .add("b.parquet", &schema(&[("user_id", DataType::Utf8, true)]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "table 'events': column 'user_id' is Int64 in 'a.parquet' but Utf8 in 'b.parquet': \
             rewrite one file with the other's type, or move it to a table of its own"
        );
    }

    #[test]
    fn partition_types_follow_their_values() {
        let paths = |values: &[&str]| -> Vec<Vec<String>> {
            values
                .iter()
                .map(|v| vec![v.to_string(), "part.parquet".to_string()])
                .collect()
        };
        let files = vec!["x".to_string(); 2];
        let infer = |values: &[&str]| infer_partitions("t", &files, &paths(values)).unwrap();
        assert_eq!(
            infer(&["date=2024-01-01", "date=2024-01-02"]),
            vec![("date".to_string(), DataType::Date32)]
        );
        assert_eq!(
            infer(&["hour=1", "hour=23"]),
            vec![("hour".to_string(), DataType::Int64)]
        );
        assert_eq!(
            infer(&["country=TR", "country=US"]),
            vec![("country".to_string(), DataType::Utf8)]
        );
    }

    #[test]
    fn table_argument_needs_name_and_path() {
        assert_eq!(
            TableSource::from_argument("events=./logs").unwrap().data,
            TableData::Location(Location::Local(PathBuf::from("./logs")))
        );
        for bad in ["events", "=./logs", "events="] {
            assert!(matches!(
                TableSource::from_argument(bad),
                Err(LakeError::BadTableArgument(_))
            ));
        }
    }
}
