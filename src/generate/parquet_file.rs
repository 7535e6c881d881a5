//! Writes one record batch as one Parquet file with the lake's layout: zstd at level 1 (the
//! generator is bound by compression time, and level 1 already shrinks these columns well), row
//! groups of at most a million rows, and the sort order recorded in `sorting_columns` so that
//! readers can trust it without re-sorting.

use std::fs::File;
use std::path::Path;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use super::GenerateError;

const MAX_ROW_GROUP_ROWS: usize = 1_000_000;
const ZSTD_LEVEL: i32 = 1;

/// How a table's rows are laid out in its files.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Layout {
    /// Columns (by index) the rows are sorted by, ascending, most significant first.
    pub(crate) sorted_by: &'static [usize],
    /// Columns that are sorted or nearly so: delta encoding stores them in a few bits a row,
    /// where a dictionary would overflow and fall back to plain values.
    pub(crate) delta_encoded: &'static [&'static str],
}

/// Writes `batch` to a new file at `path` (replacing any file there).
pub(crate) fn write_parquet(
    path: &Path,
    batch: &RecordBatch,
    layout: Layout,
) -> Result<(), GenerateError> {
    let parquet_error = |source: ParquetError| GenerateError::Parquet {
        path: path.to_path_buf(),
        source,
    };
    let zstd = ZstdLevel::try_new(ZSTD_LEVEL).map_err(parquet_error)?;
    let sorting_columns = layout
        .sorted_by
        .iter()
        .map(|&column| SortingColumn {
            column_idx: column as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let mut properties = WriterProperties::builder()
        .set_compression(Compression::ZSTD(zstd))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_sorting_columns(Some(sorting_columns));
    for &column in layout.delta_encoded {
        properties = properties
            .set_column_dictionary_enabled(ColumnPath::from(column), false)
            .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
    }
    let file = File::create(path).map_err(|source| GenerateError::Io {
        action: "create",
        path: path.to_path_buf(),
        source,
    })?;
    // The Parquet writer buffers its output itself, so the file is handed over unwrapped.
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(properties.build()))
        .map_err(parquet_error)?;
    writer.write(batch).map_err(parquet_error)?;
    writer.into_inner().map_err(parquet_error)?;
    Ok(())
}
