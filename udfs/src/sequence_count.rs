//! `sequence_count(pattern, ts, c1, ..., cN)`: ClickHouse's `sequenceCount` aggregate, how many
//! chains of a group's events match a pattern, one after the other.
//!
//! Only the count is this file's: the arguments, the state and the accumulators are those of
//! `sequence_match` ([`SequenceFunction`]), and the counting is ClickHouse's
//! ([`Pattern::count`]): the backtracking search runs again from the event after each match.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array};
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use crate::sequence_match::{SequenceFunction, SequenceOutput};
use crate::sequence_pattern::{Event, Pattern, TooComplex};

#[user_doc(
    doc_section(label = "General Functions"),
    description = "The number of chains of the group's events that match `pattern`, as \
        ClickHouse's `sequenceCount`: the first chain is searched as `sequence_match` searches \
        it, and each next one from the event after the last event of the previous chain, so \
        chains do not overlap (from events 1, 1, 2, 2 the pattern '(?1).*(?2)' counts one \
        chain). Events, their order, the pattern and its errors are those of `sequence_match`: \
        rows that met at least one condition (a NULL condition is false, a NULL time ignored), \
        sorted by time and then by condition bitmask; `(?N)`, `.`, `.*` and `(?t op secs)`. A \
        group without events gives 0. Takes 1 to 32 BOOLEAN conditions (ClickHouse requires 2 \
        or more); returns a BIGINT (ClickHouse's UInt64).",
    syntax_example = "sequence_count(pattern, ts, c1[, c2, ..., c32])",
    sql_example = r#"```sql
> CREATE TABLE t AS
  SELECT to_timestamp_seconds(column1) AS time, column2 AS number
  FROM (VALUES (1, 1), (2, 3), (3, 2), (4, 1), (5, 3), (6, 2));
> SELECT sequence_count('(?1).*(?2)', time, number = 1, number = 2) AS chains FROM t;
+--------+
| chains |
+--------+
| 2      |
+--------+
```"#,
    argument(
        name = "pattern",
        description = "Constant string: the chain to count, such as '(?1).*(?2)'."
    ),
    argument(
        name = "ts",
        description = "TIMESTAMP (any unit, with or without a zone) or DATE: the time of the row."
    ),
    argument(
        name = "c1",
        description = "BOOLEAN condition that `(?1)` matches, such as `event = 'signup'`."
    ),
    argument(
        name = "c2, ..., c32",
        description = "BOOLEAN conditions that `(?2)`, ..., `(?32)` match."
    )
)]
/// The result and documentation of `sequence_count`.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct CountOutput;

/// The `sequence_count` aggregate function.
pub(crate) type SequenceCount = SequenceFunction<CountOutput>;

impl SequenceOutput for CountOutput {
    const NAME: &'static str = "sequence_count";
    type Value = i64;

    fn data_type(_time: &DataType) -> DataType {
        DataType::Int64
    }

    fn value(pattern: &Pattern, events: &[Event]) -> Result<i64, TooComplex> {
        // At most one chain per event.
        Ok(i64::try_from(pattern.count(events)?).unwrap_or(i64::MAX))
    }

    fn array(values: Vec<i64>, _time: &DataType) -> Result<ArrayRef> {
        Ok(Arc::new(Int64Array::from(values)))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Array, AsArray, BooleanArray, StringArray, TimestampSecondArray,
    };
    use datafusion::arrow::datatypes::{Field, FieldRef, Schema, TimeUnit};
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::function::AccumulatorArgs;
    use datafusion::logical_expr::{AggregateUDFImpl, EmitTo};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{Literal, col};

    use super::*;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Second, None), true),
            Field::new("a", DataType::Boolean, true),
            Field::new("b", DataType::Boolean, true),
        ])
    }

    /// The arguments of `sequence_count(pattern, ts, a, b)` as the physical planner passes them.
    fn with_args<T>(pattern: Arc<dyn PhysicalExpr>, make: impl FnOnce(AccumulatorArgs) -> T) -> T {
        let schema = schema();
        let exprs = vec![
            pattern,
            col("ts", &schema).unwrap(),
            col("a", &schema).unwrap(),
            col("b", &schema).unwrap(),
        ];
        let fields: Vec<FieldRef> = exprs
            .iter()
            .map(|expr| expr.return_field(&schema).unwrap())
            .collect();
        make(AccumulatorArgs {
            return_field: Arc::new(Field::new("sequence_count", DataType::Int64, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "sequence_count",
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        })
    }

    fn pattern(text: &str) -> Arc<dyn PhysicalExpr> {
        Arc::new(Literal::new(ScalarValue::from(text)))
    }

    /// ClickHouse's documented rows: number 1 at 1 and 4, 2 at 3 and 6, 3 (neither) at 2 and 5.
    fn documented_rows() -> Vec<ArrayRef> {
        vec![
            Arc::new(StringArray::from(vec!["(?1).*(?2)"; 6])),
            Arc::new(TimestampSecondArray::from(vec![1, 2, 3, 4, 5, 6])),
            Arc::new(BooleanArray::from(vec![
                true, false, false, true, false, false,
            ])),
            Arc::new(BooleanArray::from(vec![
                false, false, true, false, false, true,
            ])),
        ]
    }

    #[test]
    fn returns_a_bigint() {
        let udf = SequenceCount::new();
        assert_eq!(udf.name(), "sequence_count");
        assert_eq!(
            udf.return_type(&[DataType::Utf8, DataType::Date32, DataType::Boolean])
                .unwrap(),
            DataType::Int64
        );
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = SequenceCount::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(
            doc.syntax_example,
            "sequence_count(pattern, ts, c1[, c2, ..., c32])"
        );
        assert!(doc.description.contains("chains do not overlap"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 4);
        assert!(doc.sql_example.as_ref().unwrap().contains("| 2      |"));
    }

    #[test]
    fn counts_clickhouses_documented_example() {
        let mut accumulator = with_args(pattern("(?1).*(?2)"), |args| {
            SequenceCount::new().accumulator(args).unwrap()
        });
        accumulator.update_batch(&documented_rows()).unwrap();
        assert_eq!(accumulator.evaluate().unwrap(), ScalarValue::Int64(Some(2)));
    }

    #[test]
    fn counts_each_group_and_gives_zero_without_events() {
        let mut groups = with_args(pattern("(?1)(?2)"), |args| {
            SequenceCount::new()
                .create_groups_accumulator(args)
                .unwrap()
        });
        // Rows 1, 2 in group 0 (1 then 2, once), the rest in group 1 (1, 3, 1, 2: the 3 is no
        // event, so 1 then 2 again); group 2 has no rows.
        groups
            .update_batch(&documented_rows(), &[0, 1, 0, 1, 1, 1], None, 3)
            .unwrap();
        let counts = groups.evaluate(EmitTo::All).unwrap();
        let counts = counts.as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        assert_eq!(counts.values(), &[1, 1, 0]);
        assert_eq!(counts.null_count(), 0);
    }

    #[test]
    fn a_pattern_that_is_not_a_literal_is_refused_when_accumulating() {
        let error = with_args(col("ts", &schema()).unwrap(), |args| {
            SequenceCount::new()
                .create_groups_accumulator(args)
                .err()
                .unwrap()
        });
        assert!(
            error
                .to_string()
                .contains("sequence_count: argument pattern must be a constant string"),
            "{error}"
        );
    }
}
