//! `features`: when each product feature was released.
//!
//! Some features predate the range; the rest ship at fixed fractions of it, so every generated
//! lake has launches to measure adoption against. Only the hour of a release is drawn (from the
//! `features` stream); the events read the same release times, so no feature is used before it
//! exists.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::GenerateError;
use super::calendar::{Calendar, DAY_US, HOUR_US};
use super::parquet_file::{Layout, write_parquet};
use super::random::{Draw, table_seed};
use super::vocabulary::{FEATURES, Release};

/// Releases go out in the afternoon (UTC): between 13:00 and 18:00.
const FIRST_RELEASE_HOUR: i64 = 13;
const RELEASE_HOURS: u64 = 5;

/// A feature as the events see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FeatureRelease {
    pub(crate) released_us: i64,
    /// Released inside the range: users go through the adoption stages for it.
    pub(crate) launched_in_range: bool,
}

/// Release time of every feature in `FEATURES`, in the same order.
pub(crate) fn feature_releases(calendar: &Calendar, seed: u64) -> Vec<FeatureRelease> {
    let stream = table_seed(seed, "features");
    FEATURES
        .iter()
        .enumerate()
        .map(|(index, feature)| {
            let mut draw = Draw::for_entity(stream, index as u64 + 1);
            let (day_start_us, launched_in_range) = match feature.release {
                Release::DaysBeforeStart(days) => {
                    (calendar.start_us() - i64::from(days) * DAY_US, false)
                }
                Release::FractionOfRange(fraction) => {
                    let day = (fraction * f64::from(calendar.days())) as u32;
                    (calendar.day_start_us(day.min(calendar.days() - 1)), true)
                }
            };
            let hour_us = (FIRST_RELEASE_HOUR + draw.below(RELEASE_HOURS) as i64) * HOUR_US;
            FeatureRelease {
                released_us: day_start_us + hour_us + draw.below(HOUR_US as u64) as i64,
                launched_in_range,
            }
        })
        .collect()
}

/// Writes `features.parquet`, sorted by release time.
pub(crate) fn write_features(
    path: &Path,
    releases: &[FeatureRelease],
) -> Result<u64, GenerateError> {
    let mut order: Vec<usize> = (0..releases.len()).collect();
    order.sort_by_key(|&index| releases[index].released_us);
    let names: StringArray = order
        .iter()
        .map(|&index| Some(FEATURES[index].name))
        .collect();
    let released: TimestampMicrosecondArray = order
        .iter()
        .map(|&index| Some(releases[index].released_us))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let schema = Arc::new(Schema::new(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new(
            "released_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    let columns: Vec<ArrayRef> = vec![Arc::new(names), Arc::new(released)];
    let batch = RecordBatch::try_new(schema, columns).map_err(|source| GenerateError::Arrow {
        path: path.to_path_buf(),
        source,
    })?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[1],
            delta_encoded: &[],
        },
    )?;
    Ok(releases.len() as u64)
}
