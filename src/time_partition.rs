//! Pruning date partitions by ranges on a time column.
//!
//! Usage lakes are partitioned by day (`date=2024-01-01/`) but queried by time
//! (`WHERE ts >= TIMESTAMP '2024-03-01'`). DataFusion prunes hive partitions only by filters on the
//! partition column itself, so a time range alone would open every file. When a lake declares that a
//! partition column holds the UTC date of its time column, [`TimePartitionedTable`] derives the
//! matching date bounds from each time filter and hands them to the scan. The derived filters are
//! implied by the originals, so they change which files are opened, never which rows are returned.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::{Column, ScalarValue, Statistics};
use datafusion::error::Result;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A table whose `date_column` partitions hold the UTC date of `time_column`.
#[derive(Debug)]
pub struct TimePartitionedTable {
    inner: Arc<dyn TableProvider>,
    time_column: String,
    date_column: String,
}

impl TimePartitionedTable {
    /// Wraps `inner`, whose hive partition column `date_column` is the UTC date of `time_column`.
    pub fn new(inner: Arc<dyn TableProvider>, time_column: &str, date_column: &str) -> Self {
        Self {
            inner,
            time_column: time_column.to_string(),
            date_column: date_column.to_string(),
        }
    }

    /// The original filters followed by the date bounds they imply.
    fn with_date_bounds(&self, filters: &[Expr]) -> Vec<Expr> {
        let derived = filters.iter().filter_map(|f| self.date_bound(f));
        filters.iter().cloned().chain(derived).collect()
    }

    /// The bound on the date column implied by `filter`, when it compares the time column with a
    /// constant instant.
    fn date_bound(&self, filter: &Expr) -> Option<Expr> {
        let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
            return None;
        };
        let (instant, op) = match (self.instant_of(right), self.instant_of(left)) {
            (Some(instant), _) if self.is_time_column(left) => (instant, *op),
            (_, Some(instant)) if self.is_time_column(right) => (instant, op.swap()?),
            _ => return None,
        };
        let date_of = |micros: i64| Expr::Literal(ScalarValue::Date32(Some(utc_day(micros))), None);
        let date = Expr::Column(Column::new_unqualified(&self.date_column));
        Some(match op {
            Operator::Eq => date.eq(date_of(instant)),
            Operator::Gt | Operator::GtEq => date.gt_eq(date_of(instant)),
            // `ts < midnight` ends on the day before.
            Operator::Lt => date.lt_eq(date_of(instant - 1)),
            Operator::LtEq => date.lt_eq(date_of(instant)),
            _ => return None,
        })
    }

    /// True for the time column, possibly under a cast between timestamp types (which keeps the
    /// instant, so bounds on it are bounds on the column).
    fn is_time_column(&self, expr: &Expr) -> bool {
        match expr {
            Expr::Column(column) => column.name == self.time_column,
            Expr::Cast(cast) if cast.field.data_type().is_temporal() => {
                self.is_time_column(&cast.expr)
            }
            Expr::TryCast(cast) if cast.field.data_type().is_temporal() => {
                self.is_time_column(&cast.expr)
            }
            _ => false,
        }
    }

    /// The instant, in microseconds since the epoch (UTC), of a constant timestamp or date.
    fn instant_of(&self, expr: &Expr) -> Option<i64> {
        let Expr::Literal(value, _) = expr else {
            return None;
        };
        match value {
            ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
            ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
            ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
            ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
            ScalarValue::Date32(Some(days)) => i64::from(*days).checked_mul(MICROS_PER_DAY),
            _ => None,
        }
    }
}

/// The UTC day, as days since the epoch, holding an instant.
fn utc_day(micros: i64) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

#[async_trait]
impl TableProvider for TimePartitionedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = self.with_date_bounds(filters);
        self.inner.scan(state, projection, &filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let filters = self.with_date_bounds(args.filters().unwrap_or(&[]));
        let args = ScanArgs::default()
            .with_projection(args.projection())
            .with_limit(args.limit())
            .with_statistics_requests(args.statistics_requests())
            .with_filters(Some(&filters));
        self.inner.scan_with_args(state, args).await
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        self.inner.supports_filters_pushdown(filters)
    }

    fn statistics(&self) -> Option<Statistics> {
        self.inner.statistics()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::datasource::empty::EmptyTable;
    use datafusion::logical_expr::{col, lit};
    use std::sync::Arc;

    fn table() -> TimePartitionedTable {
        let schema = Arc::new(datafusion::arrow::datatypes::Schema::empty());
        TimePartitionedTable::new(Arc::new(EmptyTable::new(schema)), "ts", "date")
    }

    fn micros(text: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(text)
            .unwrap()
            .timestamp_micros()
    }

    fn ts(text: &str) -> Expr {
        lit(ScalarValue::TimestampMicrosecond(
            Some(micros(text)),
            Some("UTC".into()),
        ))
    }

    fn date(text: &str) -> Expr {
        let day = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap();
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        lit(ScalarValue::Date32(Some((day - epoch).num_days() as i32)))
    }

    #[test]
    fn lower_bound_on_time_bounds_the_date_from_below() {
        let bound = table().date_bound(&col("ts").gt_eq(ts("2024-03-01T10:00:00Z")));
        assert_eq!(bound, Some(col("date").gt_eq(date("2024-03-01"))));
    }

    #[test]
    fn strict_upper_bound_at_midnight_ends_on_the_previous_day() {
        let bound = table().date_bound(&col("ts").lt(ts("2024-03-02T00:00:00Z")));
        assert_eq!(bound, Some(col("date").lt_eq(date("2024-03-01"))));
    }

    #[test]
    fn constant_on_the_left_is_mirrored() {
        let bound = table().date_bound(&ts("2024-03-02T05:00:00Z").gt(col("ts")));
        assert_eq!(bound, Some(col("date").lt_eq(date("2024-03-02"))));
    }

    #[test]
    fn instants_before_the_epoch_fall_on_the_right_day() {
        let bound = table().date_bound(&col("ts").gt_eq(ts("1969-12-31T23:00:00Z")));
        assert_eq!(bound, Some(col("date").gt_eq(date("1969-12-31"))));
    }

    #[test]
    fn filters_on_other_columns_derive_nothing() {
        let table = table();
        assert_eq!(table.date_bound(&col("user_id").gt(lit(5i64))), None);
        assert_eq!(
            table.date_bound(&col("ts").not_eq(ts("2024-03-02T00:00:00Z"))),
            None
        );
    }
}
