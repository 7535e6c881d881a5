//! `sequence_match_events(pattern, ts, c1, ..., cN)`: ClickHouse's `sequenceMatchEvents`
//! aggregate, the times of the events that the steps `(?N)` of a pattern matched.
//!
//! Only the result is this file's: the arguments, the state and the accumulators are those of
//! `sequence_match` ([`SequenceFunction`]), the search is ClickHouse's
//! ([`Pattern::matched_events`]), and the list of times is built as `window_funnel_events` builds
//! its own ([`timestamps`]), in the time argument's unit and zone.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, ListArray};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::DataType;
use datafusion::error::Result;
use datafusion::logical_expr::Documentation;
use datafusion_macros::user_doc;

use crate::sequence_match::{SequenceFunction, SequenceOutput};
use crate::sequence_pattern::{Event, Pattern, TooComplex};
use crate::window_funnel::{TimeKind, chain_item_field, timestamps};

#[user_doc(
    doc_section(label = "General Functions"),
    description = "The times of the events that the steps `(?N)` of `pattern` matched, as \
        ClickHouse's `sequenceMatchEvents`: a list of TIMESTAMPs of `ts`'s unit and zone (a \
        DATE gives its midnight, as a TIMESTAMP without a zone), one per `(?N)` of the pattern, \
        in the pattern's order. When a chain matches, these are the events of the chain that \
        `sequence_match` finds (the first, as ClickHouse's backtracking search meets them); when \
        none does, the events of the longest chain that matches a beginning of the pattern (the \
        first such chain the search meets), so the list is shorter than the pattern's steps, \
        and empty when no event meets the first step. `cardinality(...)` equal to the number of \
        `(?N)` tells a full match from a partial one; a partial chain never skips a time \
        condition (ClickHouse before 26.9 could). Events, their order, the pattern and its \
        errors are those of `sequence_match`: rows that met at least one condition (a NULL \
        condition is false, a NULL time ignored), sorted by time and then by condition bitmask; \
        `(?N)`, `.`, `.*` and `(?t op secs)`. Takes 1 to 32 BOOLEAN conditions (ClickHouse \
        requires 2 or more; it takes only a DateTime, Date or unsigned integer time).",
    syntax_example = "sequence_match_events(pattern, ts, c1[, c2, ..., c32])",
    sql_example = r#"```sql
> CREATE TABLE t AS
  SELECT to_timestamp_seconds(column1) AS time, column2 AS number
  FROM (VALUES (1, 1), (2, 3), (3, 2), (4, 1), (5, 3), (6, 2));
> SELECT sequence_match_events('(?1).*(?2).*(?3)', time,
                               number = 1, number = 2, number = 3) AS steps
  FROM t;
+-----------------------------------------------------------------+
| steps                                                           |
+-----------------------------------------------------------------+
| [1970-01-01T00:00:01, 1970-01-01T00:00:03, 1970-01-01T00:00:05] |
+-----------------------------------------------------------------+
> SELECT sequence_match_events('(?1).*(?2).*(?3)', time,
                               number = 1, number = 2, number = 4) AS steps
  FROM t;
+--------------------------------------------+
| steps                                      |
+--------------------------------------------+
| [1970-01-01T00:00:01, 1970-01-01T00:00:03] |
+--------------------------------------------+
```"#,
    argument(
        name = "pattern",
        description = "Constant string: the chain to look for, such as '(?1).*(?t<=3600)(?2)'."
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
/// The result and documentation of `sequence_match_events`.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct EventsOutput;

/// The `sequence_match_events` aggregate function.
pub(crate) type SequenceMatchEvents = SequenceFunction<EventsOutput>;

impl SequenceOutput for EventsOutput {
    const NAME: &'static str = "sequence_match_events";
    /// The times of the matched events.
    type Value = Vec<i64>;

    fn data_type(time: &DataType) -> DataType {
        DataType::List(chain_item_field(&TimeKind::of(time)))
    }

    fn value(pattern: &Pattern, events: &[Event]) -> Result<Vec<i64>, TooComplex> {
        Ok(pattern
            .matched_events(events)?
            .into_iter()
            .map(|index| events[index].time)
            .collect())
    }

    fn array(values: Vec<Vec<i64>>, time: &DataType) -> Result<ArrayRef> {
        let time = TimeKind::of(time);
        let offsets = OffsetBuffer::from_lengths(values.iter().map(Vec::len));
        let times = timestamps(&time, values.into_iter().flatten().collect());
        Ok(Arc::new(ListArray::try_new(
            chain_item_field(&time),
            offsets,
            times,
            None,
        )?))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Array, AsArray, BooleanArray, StringArray};
    use datafusion::arrow::array::{TimestampMillisecondArray, TimestampSecondArray};
    use datafusion::arrow::datatypes::{
        Field, FieldRef, Schema, TimeUnit, TimestampMillisecondType, TimestampSecondType,
    };
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::function::AccumulatorArgs;
    use datafusion::logical_expr::{AggregateUDFImpl, EmitTo};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{Literal, col};

    use super::*;

    fn schema(time: DataType) -> Schema {
        Schema::new(vec![
            Field::new("ts", time, true),
            Field::new("a", DataType::Boolean, true),
            Field::new("b", DataType::Boolean, true),
            Field::new("c", DataType::Boolean, true),
        ])
    }

    /// The arguments of `sequence_match_events(pattern, ts, a, b, c)` as the physical planner
    /// passes them.
    fn with_args<T>(pattern: &str, time: DataType, make: impl FnOnce(AccumulatorArgs) -> T) -> T {
        let schema = schema(time);
        let exprs: Vec<Arc<dyn PhysicalExpr>> = vec![
            Arc::new(Literal::new(ScalarValue::from(pattern))),
            col("ts", &schema).unwrap(),
            col("a", &schema).unwrap(),
            col("b", &schema).unwrap(),
            col("c", &schema).unwrap(),
        ];
        let fields: Vec<FieldRef> = exprs
            .iter()
            .map(|expr| expr.return_field(&schema).unwrap())
            .collect();
        let output = EventsOutput::data_type(fields[1].data_type());
        make(AccumulatorArgs {
            return_field: Arc::new(Field::new("sequence_match_events", output, true)),
            schema: &schema,
            ignore_nulls: false,
            order_bys: &[],
            is_reversed: false,
            name: "sequence_match_events",
            is_distinct: false,
            exprs: &exprs,
            expr_fields: &fields,
        })
    }

    /// ClickHouse's documented rows: number 1 at 1 and 4, 3 at 2 and 5, 2 at 3 and 6, with the
    /// conditions number = 1, number = 2, number = 3.
    fn documented_rows(times: ArrayRef) -> Vec<ArrayRef> {
        let numbers = [1, 3, 2, 1, 3, 2];
        let condition = |n: i32| -> ArrayRef {
            Arc::new(
                numbers
                    .iter()
                    .map(|&x| Some(x == n))
                    .collect::<BooleanArray>(),
            )
        };
        vec![
            Arc::new(StringArray::from(vec!["unused"; 6])),
            times,
            condition(1),
            condition(2),
            condition(3),
        ]
    }

    fn seconds(list: &ScalarValue) -> Vec<i64> {
        let ScalarValue::List(list) = list else {
            panic!("not a list: {list:?}");
        };
        list.value(0)
            .as_primitive::<TimestampSecondType>()
            .values()
            .to_vec()
    }

    #[test]
    fn returns_a_list_of_the_time_type() {
        let udf = SequenceMatchEvents::new();
        assert_eq!(udf.name(), "sequence_match_events");
        let zoned = DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into()));
        assert_eq!(
            udf.return_type(&[DataType::Utf8, zoned.clone(), DataType::Boolean])
                .unwrap(),
            DataType::List(Arc::new(Field::new_list_field(zoned, true)))
        );
        assert_eq!(
            udf.return_type(&[DataType::Utf8, DataType::Date32, DataType::Boolean])
                .unwrap(),
            DataType::List(Arc::new(Field::new_list_field(
                DataType::Timestamp(TimeUnit::Second, None),
                true
            )))
        );
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = SequenceMatchEvents::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(
            doc.syntax_example,
            "sequence_match_events(pattern, ts, c1[, c2, ..., c32])"
        );
        assert!(doc.description.contains("longest chain"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 4);
    }

    #[test]
    fn gives_clickhouses_documented_answers() {
        let rows = documented_rows(Arc::new(TimestampSecondArray::from(vec![1, 2, 3, 4, 5, 6])));
        let time = DataType::Timestamp(TimeUnit::Second, None);
        // Every row is an event here. '(?3)(?3)' never matches: its longest partial chain is
        // the first 3, at 2.
        for (pattern, expected) in [
            ("(?1).*(?2).*(?3)", vec![1, 3, 5]),
            ("(?1)(?3)", vec![1, 2]),
            ("(?2).*(?1).*(?2)", vec![3, 4, 6]),
            ("(?3)(?3)", vec![2]),
        ] {
            let mut accumulator = with_args(pattern, time.clone(), |args| {
                SequenceMatchEvents::new().accumulator(args).unwrap()
            });
            accumulator.update_batch(&rows).unwrap();
            assert_eq!(
                seconds(&accumulator.evaluate().unwrap()),
                expected,
                "{pattern}"
            );
        }
    }

    #[test]
    fn each_group_gets_its_list_in_the_time_unit_and_merged_states_agree() {
        let times: ArrayRef = Arc::new(
            TimestampMillisecondArray::from(vec![1_000, 2_000, 3_000, 4_000, 5_000, 6_000])
                .with_timezone("+02:00"),
        );
        let time = times.data_type().clone();
        let make = || {
            with_args("(?1).*(?2)", time.clone(), |args| {
                SequenceMatchEvents::new()
                    .create_groups_accumulator(args)
                    .unwrap()
            })
        };
        // Group 0: rows 1 (c1 at 1 s) and 3 (c2 at 3 s); group 1: rows 4, 5, 6 (c1 at 4 s, c2
        // at 6 s) and row 2 (c3 only); group 2 has no rows.
        let groups_of_rows = [0, 1, 0, 1, 1, 1];
        let mut direct = make();
        direct
            .update_batch(&documented_rows(times.clone()), &groups_of_rows, None, 3)
            .unwrap();
        let direct = direct.evaluate(EmitTo::All).unwrap();
        let lists = direct.as_list::<i32>();
        assert_eq!(lists.data_type(), &EventsOutput::data_type(&time));
        let millis = |group: usize| -> Vec<i64> {
            lists
                .value(group)
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .to_vec()
        };
        assert_eq!(millis(0), [1_000, 3_000]);
        assert_eq!(millis(1), [4_000, 6_000]);
        assert!(millis(2).is_empty());
        assert_eq!(lists.null_count(), 0);

        // The same rows in two partitions, merged, give the same lists.
        let rows = documented_rows(times);
        let mut partial = make();
        partial
            .update_batch(&rows, &groups_of_rows, None, 3)
            .unwrap();
        let state = partial.state(EmitTo::All).unwrap();
        let mut merged = make();
        merged.merge_batch(&state, &[2, 1, 0], 3).unwrap();
        let merged = merged.evaluate(EmitTo::All).unwrap();
        let merged = merged.as_list::<i32>();
        assert_eq!(merged.value(2).as_ref(), lists.value(0).as_ref());
        assert_eq!(merged.value(1).as_ref(), lists.value(1).as_ref());
        assert!(merged.value(0).is_empty());
    }
}
