//! `sessionize(ts, gap) OVER (PARTITION BY actor ORDER BY ts)`: the number of each event's session.
//!
//! Product analytics reads usage in sessions: a run of an actor's events with no pause longer than
//! `gap` (30 minutes is the web analytics habit). By hand it takes two window passes, a `LAG` to
//! flag the events that start a session and a running `SUM` of the flags; here one pass over each
//! partition numbers the sessions from 1, as ClickHouse users do with `runningAccumulate` and
//! Snowflake users with `CONDITIONAL_TRUE_EVENT`.
//!
//! A pause exactly as long as `gap` continues the session: a new one starts only when the time
//! since the actor's previous event exceeds it. A row whose time is NULL gets a NULL session and
//! neither ends nor continues one, as the SQL `LAG`/`SUM` formulation over the non-NULL rows gives.
//! The gap is a fixed length (a day counts 24 hours), so the same pause means the same thing in
//! every time zone and across DST changes; months, whose length varies, are refused.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion::logical_expr::{
    Documentation, PartitionEvaluator, Signature, Volatility, WindowUDFImpl,
};
use datafusion::physical_expr::expressions::Literal;
use datafusion_macros::user_doc;

use crate::period::arguments::{Stage, check_time_argument};
use crate::window_funnel::ticks_per_second;

const NAME: &str = "sessionize";

const NANOS_PER_SECOND: i128 = 1_000_000_000;
const NANOS_PER_DAY: i128 = 86_400 * NANOS_PER_SECOND;

/// What the `gap` argument accepts, for errors.
pub(crate) const GAP_ACCEPTS: &str = "a positive INTERVAL constant of days, hours, minutes or seconds, such as \
     INTERVAL '30 minutes'";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Window function: the number of the row's session within its partition, a \
BIGINT from 1. Sessions are the runs of the partition's rows (ordered by ts) with no pause longer \
than gap: a new session starts at a row whose time is more than gap after the previous row's, and \
a pause exactly equal to gap continues the session. Rows at one timestamp share a session. A row \
whose ts is NULL gets NULL and neither ends nor continues a session. The window must order the \
rows by ts ascending (NULLs first or last); another order is an error. A DATE counts as its \
midnight. The gap is a fixed length: a day counts 24 hours, in every zone and across DST changes.",
    syntax_example = "sessionize(ts, gap) OVER (PARTITION BY actor ORDER BY ts)",
    sql_example = r#"```sql
> SELECT user_id, ts, sessionize(ts, INTERVAL '30 minutes') OVER (PARTITION BY user_id ORDER BY ts) AS session
  FROM (VALUES (1, TIMESTAMP '2024-03-01 10:00:00'), (1, TIMESTAMP '2024-03-01 10:30:00'),
               (1, TIMESTAMP '2024-03-01 11:00:01')) AS events(user_id, ts);
+---------+---------------------+---------+
| user_id | ts                  | session |
+---------+---------------------+---------+
| 1       | 2024-03-01T10:00:00 | 1       |
| 1       | 2024-03-01T10:30:00 | 1       |
| 1       | 2024-03-01T11:00:01 | 2       |
+---------+---------------------+---------+
```"#,
    argument(
        name = "ts",
        description = "The event time: a TIMESTAMP (any unit, with or without a zone) or a DATE."
    ),
    argument(
        name = "gap",
        description = "The longest pause within a session: a positive INTERVAL constant of days, \
hours, minutes or seconds (a day is 24 hours), such as INTERVAL '30 minutes'."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct Sessionize {
    signature: Signature,
}

impl Sessionize {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl WindowUDFImpl for Sessionize {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        args: PartitionEvaluatorArgs,
    ) -> Result<Box<dyn PartitionEvaluator>> {
        let gap = match args.input_exprs()[1].downcast_ref::<Literal>() {
            Some(literal) => gap_nanos(Stage::Execution, NAME, literal.value())?,
            None => {
                return exec_err!(
                    "{NAME}: argument gap: must be {GAP_ACCEPTS}, not a column or other expression"
                );
            }
        };
        let ts_type = args.input_fields()[0].data_type();
        let (ticks_per_second, ticks_per_value) = match ts_type {
            DataType::Timestamp(unit, _) => (ticks_per_second(*unit), 1),
            // A DATE counts as its midnight: days in seconds, Date64 in its milliseconds.
            DataType::Date32 => (1, 86_400),
            _ => (1_000, 1),
        };
        let gap_ticks = gap * ticks_per_second / NANOS_PER_SECOND;
        Ok(Box::new(SessionizeEvaluator {
            // Rounded down: a pause of whole ticks exceeds the gap exactly when it exceeds this.
            gap_ticks: i64::try_from(gap_ticks).unwrap_or(i64::MAX),
            ticks_per_value,
        }))
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> Result<FieldRef> {
        let fields = field_args.input_fields();
        check_time_argument(NAME, "ts", &fields[0])?;
        check_gap_type(NAME, &fields[1])?;
        Ok(Arc::new(Field::new(
            field_args.name(),
            DataType::Int64,
            true,
        )))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Refuses at planning a `gap` whose type is not an INTERVAL (nor a NULL, which the evaluator
/// names).
pub(crate) fn check_gap_type(function: &str, field: &Field) -> Result<()> {
    match field.data_type() {
        DataType::Interval(_) | DataType::Null => Ok(()),
        other => plan_err!(
            "{function}: argument gap: must be {GAP_ACCEPTS}, but `{}` has type {other}",
            field.name()
        ),
    }
}

/// The length of a `gap` constant in nanoseconds: an INTERVAL longer than zero without months.
/// An error of the kind that fits `stage` names the argument and what it accepts.
pub(crate) fn gap_nanos(stage: Stage, function: &str, value: &ScalarValue) -> Result<i128> {
    let refuse = |detail: String| {
        let message = format!("{function}: argument gap: must be {GAP_ACCEPTS}{detail}");
        Err(match stage {
            Stage::Planning => DataFusionError::Plan(message),
            Stage::Execution => DataFusionError::Execution(message),
        })
    };
    let (months, days, nanos) = match value {
        ScalarValue::IntervalYearMonth(Some(months)) => (*months, 0, 0),
        ScalarValue::IntervalDayTime(Some(interval)) => (
            0,
            interval.days,
            i64::from(interval.milliseconds) * 1_000_000,
        ),
        ScalarValue::IntervalMonthDayNano(Some(interval)) => {
            (interval.months, interval.days, interval.nanoseconds)
        }
        other if other.is_null() => return refuse(", not NULL".to_string()),
        other => return refuse(format!(", not {other} of type {}", other.data_type())),
    };
    if months != 0 {
        return refuse(format!(
            "; months have no fixed length, but {value} has {months}"
        ));
    }
    let length = i128::from(days) * NANOS_PER_DAY + i128::from(nanos);
    if length <= 0 {
        return refuse(format!(", but is {value}"));
    }
    Ok(length)
}

/// The raw values of a time column, as the window sees them (the type is checked at planning).
fn time_values(array: &ArrayRef) -> Result<Vec<Option<i64>>> {
    Ok(match array.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            array.as_primitive::<TimestampSecondType>().iter().collect()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .collect(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => array
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .collect(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => array
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .collect(),
        DataType::Date32 => array
            .as_primitive::<Date32Type>()
            .iter()
            .map(|day| day.map(i64::from))
            .collect(),
        DataType::Date64 => array.as_primitive::<Date64Type>().iter().collect(),
        DataType::Null => vec![None; array.len()],
        other => {
            return exec_err!("{NAME}: argument ts: must be a TIMESTAMP or a DATE, not {other}");
        }
    })
}

/// Numbers the sessions of one partition.
#[derive(Debug)]
struct SessionizeEvaluator {
    gap_ticks: i64,
    /// Ticks in one stored value: 86,400 seconds in a Date32's day, else 1.
    ticks_per_value: i64,
}

impl SessionizeEvaluator {
    fn sessions(&self, times: &[Option<i64>]) -> Result<Int64Array> {
        let mut session = 0_i64;
        let mut previous: Option<i64> = None;
        let mut numbers = Vec::with_capacity(times.len());
        for time in times {
            let Some(time) = time.map(|value| value.saturating_mul(self.ticks_per_value)) else {
                numbers.push(None);
                continue;
            };
            match previous {
                Some(previous) if time < previous => {
                    return exec_err!(
                        "{NAME}: the rows must be ordered by ts ascending: write \
                         sessionize(ts, gap) OVER (PARTITION BY actor ORDER BY ts)"
                    );
                }
                Some(previous) if time - previous <= self.gap_ticks => {}
                _ => session += 1,
            }
            previous = Some(time);
            numbers.push(Some(session));
        }
        Ok(Int64Array::from(numbers))
    }
}

impl PartitionEvaluator for SessionizeEvaluator {
    fn evaluate_all(&mut self, values: &[ArrayRef], _num_rows: usize) -> Result<ArrayRef> {
        Ok(Arc::new(self.sessions(&time_values(&values[0])?)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::IntervalMonthDayNano;

    const MINUTE: i64 = 60;

    fn evaluator(gap_seconds: i64) -> SessionizeEvaluator {
        SessionizeEvaluator {
            gap_ticks: gap_seconds,
            ticks_per_value: 1,
        }
    }

    #[test]
    fn a_pause_equal_to_the_gap_continues_and_a_longer_one_starts_a_session() {
        let times = [
            0,
            30 * MINUTE,
            60 * MINUTE + 1,
            60 * MINUTE + 1,
            200 * MINUTE,
        ];
        let numbers = evaluator(30 * MINUTE).sessions(&times.map(Some)).unwrap();
        assert_eq!(numbers.values().to_vec(), vec![1, 1, 2, 2, 3]);
    }

    #[test]
    fn a_null_time_gets_null_and_does_not_break_a_session() {
        let numbers = evaluator(10)
            .sessions(&[None, Some(0), None, Some(10), Some(21)])
            .unwrap();
        assert_eq!(
            numbers.iter().collect::<Vec<_>>(),
            vec![None, Some(1), None, Some(1), Some(2)]
        );
    }

    #[test]
    fn rows_out_of_time_order_are_an_error() {
        let error = evaluator(10)
            .sessions(&[Some(5), Some(1)])
            .unwrap_err()
            .to_string();
        assert!(error.contains("ordered by ts ascending"), "{error}");
    }

    #[test]
    fn dates_count_as_midnights() {
        let days = SessionizeEvaluator {
            gap_ticks: 86_400,
            ticks_per_value: 86_400,
        };
        let numbers = days.sessions(&[Some(0), Some(1), Some(3)]).unwrap();
        assert_eq!(numbers.values().to_vec(), vec![1, 1, 2]);
    }

    #[test]
    fn the_gap_must_be_a_positive_interval_without_months() {
        let interval = |months, days, nanos| {
            ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(months, days, nanos)))
        };
        assert_eq!(
            gap_nanos(Stage::Planning, NAME, &interval(0, 1, 1_000)).unwrap(),
            NANOS_PER_DAY + 1_000
        );
        for (value, expected) in [
            (interval(0, 0, 0), "but is"),
            (interval(0, -1, 0), "but is"),
            (interval(1, 0, 0), "months have no fixed length"),
            (ScalarValue::Int64(Some(30)), "not 30 of type Int64"),
            (ScalarValue::Null, "not NULL"),
        ] {
            let error = gap_nanos(Stage::Execution, NAME, &value)
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("sessionize: argument gap: must be"),
                "{error}"
            );
            assert!(error.contains(expected), "{value}: {error}");
        }
    }

    #[test]
    fn a_gap_of_a_non_interval_type_is_refused_at_planning() {
        let error = check_gap_type(NAME, &Field::new("minutes", DataType::Int64, true))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("argument gap: must be a positive INTERVAL constant")
                && error.contains("`minutes` has type Int64"),
            "{error}"
        );
    }
}
