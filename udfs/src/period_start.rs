//! `period_start(ts, period [, tz [, week_start]])`: the calendar period an event belongs to.
//!
//! The building block of every report by period: `GROUP BY period_start(ts, 'week')` puts each
//! event in its local calendar week, DST-correct, in the same weeks as the table functions use.
//! Periods of a day or longer come back as the DATE of their first day, since that is how people
//! name them and it sorts and joins cleanly; an hour comes back as the instant it starts
//! (`TIMESTAMP WITH TIME ZONE`), because a local hour repeats when clocks fall back and only the
//! instant tells the two apart. The return type so depends on `period`, which must be a literal.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Date32Array, new_null_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, FieldRef, TimeUnit, TimestampMicrosecondType,
};
use datafusion::common::types::{logical_date, logical_string};
use datafusion::common::{Result, ScalarValue, exec_err, internal_err, plan_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion_macros::user_doc;

use crate::period::Period;
use crate::period::arguments::{
    Calendars, TimeColumn, batch_period, check_time_argument, check_week_start_argument,
    check_zone_argument, literal_period, try_map_valid,
};

const NAME: &str = "period_start";

/// Microseconds in a second: an hour start is returned as a microsecond timestamp.
const MICROS_PER_SECOND: i64 = 1_000_000;

#[user_doc(
    doc_section(label = "Time and Date Functions"),
    description = "Start of the calendar period (hour, day, week, month, quarter or year) that \
holds a time, in a time zone, DST-correct: a DATE, the local date of the period's first day, or \
for 'hour' a TIMESTAMP WITH TIME ZONE, the instant the local hour starts (a local hour repeats \
when clocks fall back). A local midnight that the clocks skip starts its day at the first valid \
instant after it. NULL in any argument gives NULL.",
    syntax_example = "period_start(ts, period[, tz[, week_start]])",
    sql_example = r#"```sql
> SELECT period_start(TIMESTAMP '2024-03-10 07:30:00', 'day', 'America/Los_Angeles') AS day;
+------------+
| day        |
+------------+
| 2024-03-09 |
+------------+
> SELECT period_start(DATE '2024-03-10', 'week', 'UTC', 'sunday') AS week;
+------------+
| week       |
+------------+
| 2024-03-10 |
+------------+
> SELECT period_start(TIMESTAMP '2024-11-03 09:30:00', 'hour', 'America/Los_Angeles') AS hour;
+----------------------+
| hour                 |
+----------------------+
| 2024-11-03T09:00:00Z |
+----------------------+
```"#,
    argument(
        name = "ts",
        description = "The time: a TIMESTAMP of any unit (one without a time zone is read as \
UTC) or a DATE (already a local date)."
    ),
    argument(
        name = "period",
        description = "A constant string, in any case: 'hour', 'day', 'week', 'month', \
'quarter' or 'year'. It decides the return type, so it cannot be a column."
    ),
    argument(
        name = "tz",
        description = "IANA time zone of the calendar, such as 'Europe/Istanbul'. Default: the \
session setting usagelake.tz, else 'UTC'."
    ),
    argument(
        name = "week_start",
        description = "First day of a week: 'monday' or 'sunday'. Default: the session setting \
usagelake.week_start, else 'monday'."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeriodStart {
    signature: Signature,
}

impl PeriodStart {
    pub(crate) fn new() -> Self {
        let text = || Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        let times = [
            TypeSignatureClass::Timestamp,
            TypeSignatureClass::Native(logical_date()),
        ];
        let mut variants = Vec::new();
        for time in times {
            for settings in 0..=2 {
                let mut arguments = vec![Coercion::new_exact(time.clone()), text()];
                arguments.extend((0..settings).map(|_| text()));
                variants.push(TypeSignature::Coercible(arguments));
            }
        }
        // The variants above are the calls that information_schema lists. Any other call reaches
        // `return_field_from_args` unchanged through this one, so that its error names the
        // argument, the expression and its type, where DataFusion's would only say that no
        // signature matched.
        variants.push(TypeSignature::UserDefined);
        Self {
            // Stable, not Immutable: without a tz argument the result depends on the session's
            // usagelake.tz, which may change between queries.
            signature: Signature::one_of(variants, Volatility::Stable),
        }
    }
}

impl ScalarUDFImpl for PeriodStart {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        Ok(arg_types.to_vec())
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        internal_err!("{NAME}: return_field_from_args should be called instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = args.arg_fields;
        let literals = args.scalar_arguments;
        if !(2..=4).contains(&fields.len()) {
            return plan_err!(
                "{NAME} takes 2 to 4 arguments, {NAME}(ts, period [, tz [, week_start]]), \
                 but was given {}",
                fields.len()
            );
        }
        check_time_argument(NAME, "ts", &fields[0])?;
        let period = literal_period(NAME, &fields[1], literals[1])?;
        if let Some(field) = fields.get(2) {
            check_zone_argument(NAME, field, literals[2])?;
        }
        if let Some(field) = fields.get(3) {
            check_week_start_argument(NAME, field, literals[3])?;
        }
        // Without a literal, plan the type of most periods; `invoke_with_args` checks it.
        let data_type = period.map_or(DataType::Date32, return_type);
        Ok(Arc::new(Field::new(NAME, data_type, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ScalarFunctionArgs {
            args,
            number_rows,
            config_options,
            return_field,
            ..
        } = args;
        let period = batch_period(NAME, &args[1])?;
        if return_type(period) != *return_field.data_type() {
            // Planned as DATE without a literal, then folded to 'hour' by the optimizer.
            return exec_err!(
                "{NAME}: argument period: must be a literal string such as 'week', not an \
                 expression"
            );
        }
        let all_scalars = args
            .iter()
            .all(|argument| matches!(argument, ColumnarValue::Scalar(_)));
        let rows = if all_scalars { 1 } else { number_rows };
        let times = TimeColumn::try_new(NAME, "ts", &args[0].to_array(rows)?)?;
        let mut calendars =
            Calendars::try_new(NAME, args.get(2), args.get(3), &config_options, rows)?;
        let nulls = NullBuffer::union(times.nulls(), calendars.nulls());
        let starts: ArrayRef = if nulls
            .as_ref()
            .is_some_and(|nulls| nulls.null_count() == rows)
        {
            new_null_array(&return_type(period), rows)
        } else if period == Period::Hour {
            let starts = try_map_valid::<TimestampMicrosecondType>(rows, nulls, |row| {
                let time = times.get(row)?;
                // Instants lie within 250,000 years of 1970, so microseconds cannot overflow.
                Ok(calendars.at(row)?.hour_start(time) * MICROS_PER_SECOND)
            })?;
            Arc::new(starts.with_timezone("UTC"))
        } else if let Some((calendar, dates)) = calendars.constant().and_then(|calendar| {
            let dates = times.local_dates(calendar.fixed_offset())?;
            Some((calendar, dates))
        }) {
            // Dates, and instants in UTC and other fixed zones: arithmetic, with no lookups.
            let starts: Vec<i32> = match period {
                Period::Day => dates,
                _ => dates
                    .into_iter()
                    .map(|date| calendar.first_day(period, i64::from(date)) as i32)
                    .collect(),
            };
            Arc::new(Date32Array::new(starts.into(), nulls))
        } else {
            Arc::new(try_map_valid::<Date32Type>(rows, nulls, |row| {
                let time = times.get(row)?;
                let calendar = calendars.at(row)?;
                let first_day = calendar.first_day(period, calendar.local_date(time));
                // Dates lie within 250,000 years of 1970, well inside DATE's range.
                Ok(first_day as i32)
            })?)
        };
        Ok(if all_scalars {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&starts, 0)?)
        } else {
            ColumnarValue::Array(starts)
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// DATE for periods of a day or longer; for an hour, the instant it starts, since the same local
/// hour can occur twice.
fn return_type(period: Period) -> DataType {
    match period {
        Period::Hour => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => DataType::Date32,
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Array, AsArray, Date32Array, StringArray, TimestampMicrosecondArray,
        TimestampNanosecondArray, TimestampSecondArray,
    };
    use datafusion::common::config::ConfigOptions;

    use super::*;
    use crate::options::{UsagelakeOptions, WeekStart};

    // Hand-computed epoch values. 2024-01-01 is day 19723 (1_704_067_200 s); 2024-03-10 is day
    // 19792 (Jan 31 + Feb 29 + 9 days later), a Sunday; 2024-03-04, its Monday, is day 19786.
    const DAY_2024_03_04: i32 = 19_786;
    const DAY_2024_03_09: i32 = 19_791;
    const DAY_2024_03_10: i32 = 19_792;
    const MIDNIGHT_UTC_2024_03_10: i64 = 1_710_028_800;

    fn field(data_type: DataType) -> FieldRef {
        Arc::new(Field::new("arg", data_type, true))
    }

    fn invoke(args: Vec<ColumnarValue>, config: ConfigOptions) -> Result<ColumnarValue> {
        let rows = args
            .iter()
            .find_map(|argument| match argument {
                ColumnarValue::Array(array) => Some(array.len()),
                ColumnarValue::Scalar(_) => None,
            })
            .unwrap_or(1);
        let arg_fields = args
            .iter()
            .map(|argument| field(argument.data_type()))
            .collect::<Vec<_>>();
        let period = match &args[1] {
            ColumnarValue::Scalar(ScalarValue::Utf8(Some(text))) => text.parse().unwrap(),
            _ => unreachable!("tests pass the period as a literal"),
        };
        PeriodStart::new().invoke_with_args(ScalarFunctionArgs {
            args,
            arg_fields,
            number_rows: rows,
            return_field: field(return_type(period)),
            config_options: Arc::new(config),
        })
    }

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn dates(result: ColumnarValue) -> Vec<Option<i32>> {
        let ColumnarValue::Array(array) = result else {
            panic!("expected an array, got {result:?}")
        };
        array.as_primitive::<Date32Type>().iter().collect()
    }

    #[test]
    fn day_in_los_angeles_of_an_early_utc_morning_is_the_previous_date() {
        // 2024-03-10 07:30 UTC is 2024-03-09 23:30 PST.
        let ts = TimestampNanosecondArray::from(vec![
            (MIDNIGHT_UTC_2024_03_10 + 7 * 3_600 + 1_800) * 1_000_000_000,
        ]);
        let result = invoke(
            vec![
                ColumnarValue::Array(Arc::new(ts)),
                text("day"),
                text("America/Los_Angeles"),
            ],
            ConfigOptions::default(),
        )
        .unwrap();
        assert_eq!(dates(result), vec![Some(DAY_2024_03_09)]);
    }

    #[test]
    fn week_of_a_sunday_depends_on_the_week_start() {
        let ts = Arc::new(Date32Array::from(vec![DAY_2024_03_10]));
        let monday_weeks = invoke(
            vec![ColumnarValue::Array(ts.clone()), text("WEEK")],
            ConfigOptions::default(),
        )
        .unwrap();
        let sunday_weeks = invoke(
            vec![
                ColumnarValue::Array(ts),
                text("week"),
                text("UTC"),
                text("Sunday"),
            ],
            ConfigOptions::default(),
        )
        .unwrap();
        assert_eq!(dates(monday_weeks), vec![Some(DAY_2024_03_04)]);
        assert_eq!(dates(sunday_weeks), vec![Some(DAY_2024_03_10)]);
    }

    #[test]
    fn omitted_zone_and_week_start_come_from_the_session() {
        let mut config = ConfigOptions::default();
        config.extensions.insert(UsagelakeOptions {
            tz: chrono_tz::Tz::Asia__Tokyo,
            week_start: WeekStart::Sunday,
        });
        // 2024-03-09 15:00 UTC is 2024-03-10 00:00 in Tokyo: a Sunday, which starts its week.
        let ts = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10 - 9 * 3_600]);
        let result = invoke(
            vec![ColumnarValue::Array(Arc::new(ts)), text("week")],
            config,
        )
        .unwrap();
        assert_eq!(dates(result), vec![Some(DAY_2024_03_10)]);
    }

    #[test]
    fn hour_start_is_an_instant_in_utc_microseconds() {
        // 2024-11-03 09:30 UTC is 01:30 PST, the second 01:00 hour of the night, which began at
        // 09:00 UTC (1_730_624_400 s).
        let ts = TimestampSecondArray::from(vec![1_730_626_200]);
        let result = invoke(
            vec![
                ColumnarValue::Array(Arc::new(ts)),
                text("hour"),
                text("America/Los_Angeles"),
            ],
            ConfigOptions::default(),
        )
        .unwrap();
        let ColumnarValue::Array(array) = result else {
            panic!("expected an array")
        };
        let starts = array
            .as_any()
            .downcast_ref::<TimestampMicrosecondArray>()
            .unwrap();
        assert_eq!(starts.timezone(), Some("UTC"));
        assert_eq!(starts.value(0), 1_730_624_400 * MICROS_PER_SECOND);
    }

    #[test]
    fn null_time_or_null_zone_gives_null() {
        let ts = TimestampSecondArray::from(vec![Some(MIDNIGHT_UTC_2024_03_10), None]);
        let with_null_time = invoke(
            vec![ColumnarValue::Array(Arc::new(ts.clone())), text("day")],
            ConfigOptions::default(),
        )
        .unwrap();
        let with_null_zone = invoke(
            vec![
                ColumnarValue::Array(Arc::new(ts)),
                text("day"),
                ColumnarValue::Scalar(ScalarValue::Utf8(None)),
            ],
            ConfigOptions::default(),
        )
        .unwrap();
        assert_eq!(dates(with_null_time), vec![Some(DAY_2024_03_10), None]);
        assert_eq!(dates(with_null_zone), vec![None, None]);
    }

    #[test]
    fn zone_column_gives_each_row_its_own_calendar() {
        // Midnight UTC of 2024-03-10 is still 2024-03-09 in Los Angeles, already the 10th in Tokyo.
        let ts = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10; 3]);
        let zones = StringArray::from(vec![Some("America/Los_Angeles"), Some("Asia/Tokyo"), None]);
        let result = invoke(
            vec![
                ColumnarValue::Array(Arc::new(ts)),
                text("day"),
                ColumnarValue::Array(Arc::new(zones)),
            ],
            ConfigOptions::default(),
        )
        .unwrap();
        assert_eq!(
            dates(result),
            vec![Some(DAY_2024_03_09), Some(DAY_2024_03_10), None]
        );
    }

    #[test]
    fn unknown_zone_in_a_column_fails_naming_it() {
        let ts = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10]);
        let zones = StringArray::from(vec!["Mars/Olympus"]);
        let error = invoke(
            vec![
                ColumnarValue::Array(Arc::new(ts)),
                text("day"),
                ColumnarValue::Array(Arc::new(zones)),
            ],
            ConfigOptions::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            error.contains("period_start: argument tz: time zone 'Mars/Olympus'"),
            "{error}"
        );
    }

    #[test]
    fn return_type_is_date_for_days_and_timestamp_for_hours() {
        let function = PeriodStart::new();
        let fields = [
            field(DataType::Timestamp(TimeUnit::Nanosecond, None)),
            field(DataType::Utf8),
        ];
        let return_type_for = |period: &str| {
            let period = ScalarValue::Utf8(Some(period.to_string()));
            function
                .return_field_from_args(ReturnFieldArgs {
                    arg_fields: &fields,
                    scalar_arguments: &[None, Some(&period)],
                })
                .unwrap()
                .data_type()
                .clone()
        };
        assert_eq!(return_type_for("Quarter"), DataType::Date32);
        assert_eq!(
            return_type_for("hour"),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn period_column_is_refused_when_the_query_runs() {
        let function = PeriodStart::new();
        let fields = [field(DataType::Date32), field(DataType::Utf8)];
        let planned = function
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, None],
            })
            .unwrap();
        assert_eq!(planned.data_type(), &DataType::Date32);
        let error = function
            .invoke_with_args(ScalarFunctionArgs {
                args: vec![
                    ColumnarValue::Array(Arc::new(Date32Array::from(vec![DAY_2024_03_10]))),
                    ColumnarValue::Array(Arc::new(StringArray::from(vec!["day"]))),
                ],
                arg_fields: fields.to_vec(),
                number_rows: 1,
                return_field: planned,
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("period_start: argument period: must be a constant string"),
            "{error}"
        );
    }

    #[test]
    fn planning_rejects_a_null_period() {
        let fields = [field(DataType::Date32), field(DataType::Utf8)];
        let error = PeriodStart::new()
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, Some(&ScalarValue::Utf8(None))],
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("argument period: must be a period such as 'week', not NULL"),
            "{error}"
        );
    }

    #[test]
    fn planning_rejects_a_text_time_naming_argument_and_type() {
        let fields = [
            Arc::new(Field::new("signup", DataType::Utf8, true)),
            field(DataType::Utf8),
        ];
        let period = ScalarValue::Utf8(Some("day".to_string()));
        let error = PeriodStart::new()
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[None, Some(&period)],
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "period_start: argument ts: must be a TIMESTAMP or a DATE, but `signup` has type Utf8"
            ),
            "{error}"
        );
    }

    #[test]
    fn documentation_lists_every_argument() {
        let function = PeriodStart::new();
        let documentation = function.documentation().unwrap();
        let names = documentation
            .arguments
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["ts", "period", "tz", "week_start"]);
    }
}
