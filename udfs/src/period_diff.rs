//! `period_diff(period, start, end [, tz])`: how many calendar periods apart two times are.
//!
//! Retention and lifecycle reports number periods from a start ("week 3 after signup"): that
//! number is the count of whole calendar periods from the start's period to the end's, not the
//! elapsed time divided by a period length, which drifts across months of different lengths and
//! DST days. Counting periods this way, a Sunday and the following Monday are one week apart (with
//! Monday weeks), and the 23 hours of a spring-forward day are 23 hours.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, new_null_array};
use datafusion::arrow::buffer::NullBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Int64Type};
use datafusion::common::types::{logical_date, logical_string};
use datafusion::common::{Result, ScalarValue, internal_err, plan_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl,
    Signature, TypeSignature, TypeSignatureClass, Volatility,
};
use datafusion_macros::user_doc;

use crate::period::arguments::{
    Calendars, TimeColumn, batch_period, check_time_argument, check_zone_argument, literal_period,
    try_map_valid,
};

const NAME: &str = "period_diff";

#[user_doc(
    doc_section(label = "Time and Date Functions"),
    description = "Number of whole calendar periods (hour, day, week, month, quarter or year) \
from the period holding start to the period holding end, in a time zone, DST-correct: negative \
when end's period comes before start's. 2024-01-31 and 2024-02-01 are one month apart, \
2024-02-01 and 2024-02-29 none. Weeks start on the session's usagelake.week_start (default \
Monday). Where a zone's offset changes by 30 minutes, that half hour counts with a neighbouring \
hour. NULL in any argument gives NULL.",
    syntax_example = "period_diff(period, start, end[, tz])",
    sql_example = r#"```sql
> SELECT period_diff('hour', DATE '2024-03-10', DATE '2024-03-11', 'America/Los_Angeles') AS hours,
         period_diff('month', DATE '2024-01-31', DATE '2024-02-01') AS months;
+-------+--------+
| hours | months |
+-------+--------+
| 23    | 1      |
+-------+--------+
```"#,
    argument(
        name = "period",
        description = "A constant string, in any case: 'hour', 'day', 'week', 'month', \
'quarter' or 'year'."
    ),
    argument(
        name = "start",
        description = "The earlier time: a TIMESTAMP of any unit (one without a time zone is \
read as UTC) or a DATE (a local date)."
    ),
    argument(
        name = "end",
        description = "The later time, of the same kinds as start; it may be of another type."
    ),
    argument(
        name = "tz",
        description = "IANA time zone of the calendar, such as 'Europe/Istanbul'. Default: the \
session setting usagelake.tz, else 'UTC'."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct PeriodDiff {
    signature: Signature,
}

impl PeriodDiff {
    pub(crate) fn new() -> Self {
        let text = || Coercion::new_exact(TypeSignatureClass::Native(logical_string()));
        let times = || {
            [
                TypeSignatureClass::Timestamp,
                TypeSignatureClass::Native(logical_date()),
            ]
        };
        let mut variants = Vec::new();
        for start in times() {
            for end in times() {
                for with_zone in [false, true] {
                    let mut arguments = vec![
                        text(),
                        Coercion::new_exact(start.clone()),
                        Coercion::new_exact(end.clone()),
                    ];
                    if with_zone {
                        arguments.push(text());
                    }
                    variants.push(TypeSignature::Coercible(arguments));
                }
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

impl ScalarUDFImpl for PeriodDiff {
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

    /// Always BIGINT; implemented here rather than in `return_type` to check the literal
    /// arguments while planning.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let fields = args.arg_fields;
        let literals = args.scalar_arguments;
        if !(3..=4).contains(&fields.len()) {
            return plan_err!(
                "{NAME} takes 3 or 4 arguments, {NAME}(period, start, end [, tz]), but was given {}",
                fields.len()
            );
        }
        literal_period(NAME, &fields[0], literals[0])?;
        check_time_argument(NAME, "start", &fields[1])?;
        check_time_argument(NAME, "end", &fields[2])?;
        if let Some(field) = fields.get(3) {
            check_zone_argument(NAME, field, literals[3])?;
        }
        Ok(Arc::new(Field::new(NAME, DataType::Int64, true)))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let ScalarFunctionArgs {
            args,
            number_rows,
            config_options,
            ..
        } = args;
        let period = batch_period(NAME, &args[0])?;
        let all_scalars = args
            .iter()
            .all(|argument| matches!(argument, ColumnarValue::Scalar(_)));
        let rows = if all_scalars { 1 } else { number_rows };
        let starts = TimeColumn::try_new(NAME, "start", &args[1].to_array(rows)?)?;
        let ends = TimeColumn::try_new(NAME, "end", &args[2].to_array(rows)?)?;
        // Weeks start on the session's week start: the function has no argument for it.
        let mut calendars = Calendars::try_new(NAME, args.get(3), None, &config_options, rows)?;
        let nulls = NullBuffer::union(
            NullBuffer::union(starts.nulls(), ends.nulls()).as_ref(),
            calendars.nulls(),
        );
        let differences: ArrayRef = if nulls
            .as_ref()
            .is_some_and(|nulls| nulls.null_count() == rows)
        {
            new_null_array(&DataType::Int64, rows)
        } else {
            Arc::new(try_map_valid::<Int64Type>(rows, nulls, |row| {
                let (start, end) = (starts.get(row)?, ends.get(row)?);
                let calendar = calendars.at(row)?;
                // Ordinals of times within 250,000 years of 1970 are far from overflowing.
                Ok(calendar.ordinal(period, end) - calendar.ordinal(period, start))
            })?)
        };
        Ok(if all_scalars {
            ColumnarValue::Scalar(ScalarValue::try_from_array(&differences, 0)?)
        } else {
            ColumnarValue::Array(differences)
        })
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Array, AsArray, Date32Array, TimestampMillisecondArray, TimestampSecondArray,
    };
    use datafusion::common::config::ConfigOptions;

    use super::*;

    // Hand-computed epoch values: 2024-03-10 00:00 UTC is 1_710_028_800 s (day 19792); on that
    // day Los Angeles changed from PST (UTC-8) to PDT (UTC-7) at 10:00 UTC.
    const MIDNIGHT_UTC_2024_03_10: i64 = 1_710_028_800;
    const HOUR: i64 = 3_600;

    fn field(data_type: DataType) -> FieldRef {
        Arc::new(Field::new("arg", data_type, true))
    }

    fn text(value: &str) -> ColumnarValue {
        ColumnarValue::Scalar(ScalarValue::Utf8(Some(value.to_string())))
    }

    fn differences(args: Vec<ColumnarValue>) -> Vec<Option<i64>> {
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
            .collect();
        let result = PeriodDiff::new()
            .invoke_with_args(ScalarFunctionArgs {
                args,
                arg_fields,
                number_rows: rows,
                return_field: field(DataType::Int64),
                config_options: Arc::new(ConfigOptions::default()),
            })
            .unwrap();
        let ColumnarValue::Array(array) = result else {
            panic!("expected an array, got {result:?}")
        };
        array.as_primitive::<Int64Type>().iter().collect()
    }

    #[test]
    fn spring_forward_day_in_los_angeles_has_23_hours() {
        // Local midnight of 2024-03-10 (08:00 UTC) to local midnight of 2024-03-11 (07:00 UTC).
        let starts = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10 + 8 * HOUR]);
        let ends = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10 + 31 * HOUR]);
        let result = differences(vec![
            text("hour"),
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
            text("America/Los_Angeles"),
        ]);
        assert_eq!(result, vec![Some(23)]);
    }

    #[test]
    fn a_minute_across_local_midnight_is_one_day_and_backwards_is_negative() {
        // Istanbul is UTC+3: 20:59:30 and 21:00:30 UTC on 2024-03-09 straddle its midnight.
        let before = MIDNIGHT_UTC_2024_03_10 - 3 * HOUR - 30;
        let after = MIDNIGHT_UTC_2024_03_10 - 3 * HOUR + 30;
        let starts = TimestampMillisecondArray::from(vec![before * 1_000, after * 1_000]);
        let ends = TimestampMillisecondArray::from(vec![after * 1_000, before * 1_000]);
        let result = differences(vec![
            text("day"),
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
            text("Europe/Istanbul"),
        ]);
        assert_eq!(result, vec![Some(1), Some(-1)]);
    }

    #[test]
    fn dates_a_day_apart_across_a_year_end_are_a_month_quarter_and_year_apart() {
        // 2023-12-31 is day 19722, 2024-01-01 day 19723.
        let starts = Arc::new(Date32Array::from(vec![19_722]));
        let ends = Arc::new(Date32Array::from(vec![19_723]));
        for period in ["month", "quarter", "year"] {
            let result = differences(vec![
                text(period),
                ColumnarValue::Array(starts.clone()),
                ColumnarValue::Array(ends.clone()),
            ]);
            assert_eq!(result, vec![Some(1)], "{period}");
        }
    }

    #[test]
    fn a_date_against_a_timestamp_counts_from_the_dates_midnight() {
        // DATE 2024-03-10 means its local midnight; 2024-03-10 05:00 UTC is 5 hours later.
        let starts = Date32Array::from(vec![19_792]);
        let ends = TimestampSecondArray::from(vec![MIDNIGHT_UTC_2024_03_10 + 5 * HOUR]);
        let result = differences(vec![
            text("hour"),
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
        ]);
        assert_eq!(result, vec![Some(5)]);
    }

    #[test]
    fn null_start_gives_null() {
        let starts = TimestampSecondArray::from(vec![None, Some(MIDNIGHT_UTC_2024_03_10)]);
        let ends = TimestampSecondArray::from(vec![Some(MIDNIGHT_UTC_2024_03_10); 2]);
        let result = differences(vec![
            text("day"),
            ColumnarValue::Array(Arc::new(starts)),
            ColumnarValue::Array(Arc::new(ends)),
        ]);
        assert_eq!(result, vec![None, Some(0)]);
    }

    #[test]
    fn planning_rejects_an_unknown_period_listing_the_valid_ones() {
        let fields = [
            field(DataType::Utf8),
            field(DataType::Date32),
            field(DataType::Date32),
        ];
        let period = ScalarValue::Utf8(Some("fortnight".to_string()));
        let error = PeriodDiff::new()
            .return_field_from_args(ReturnFieldArgs {
                arg_fields: &fields,
                scalar_arguments: &[Some(&period), None, None],
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "period_diff: argument period: 'fortnight' is not a period: use 'hour', 'day', \
                 'week', 'month', 'quarter' or 'year'"
            ),
            "{error}"
        );
    }

    #[test]
    fn documentation_lists_every_argument() {
        let function = PeriodDiff::new();
        let documentation = function.documentation().unwrap();
        let names = documentation
            .arguments
            .as_ref()
            .unwrap()
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<Vec<_>>();
        assert_eq!(names, ["period", "start", "end", "tz"]);
    }
}
