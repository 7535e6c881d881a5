//! What the actor-over-time table functions read from their arguments alike: the input with its
//! actor, time and segment columns and the calendar (zone and week start, else the session's), and
//! instants such as `since`, `until` and `as_of`.
//!
//! One reading for all of them, so that a DATE, a TIMESTAMP or a 'YYYY-MM-DD' string means the same
//! in every function, and every function names a bad argument the same way.

use chrono::NaiveDate;
use chrono_tz::Tz;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{Expr, LogicalPlan, lit};

use crate::lifecycle_counts::next_period_start;
use crate::options::{UsagelakeOptions, WeekStart};
use crate::period::arguments::{Stage, check_time_argument, parse_week_start, parse_zone};
use crate::period::{Calendar, Period, TimeValue};
use crate::table_function::BoundArguments;

/// A table function's input and the columns it reads.
pub(crate) struct ActorInput {
    pub(crate) plan: LogicalPlan,
    pub(crate) actor: Column,
    pub(crate) ts: Column,
    pub(crate) ts_type: DataType,
    /// The `segment` column, when given.
    pub(crate) segments: Vec<Column>,
    /// The zone and week start of its periods.
    pub(crate) calendar: Calendar,
    pub(crate) tz: Tz,
    pub(crate) week_start: WeekStart,
}

impl ActorInput {
    /// Reads the `table`, `actor` (default `user_id`), `ts` (default `ts`), `segment`, `tz` and
    /// `week_start` arguments; the last two default to the session's `usagelake.*` settings.
    pub(crate) fn read(
        function: &str,
        arguments: &BoundArguments,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Self> {
        let plan = arguments.input("table", context)?;
        let actor = arguments.column("actor", "user_id", &plan, context)?;
        let ts = arguments.column("ts", "ts", &plan, context)?;
        let segments = match arguments.get("segment") {
            Some(_) => vec![arguments.column("segment", "", &plan, context)?],
            None => vec![],
        };
        let ts_type = {
            let (_, field) = plan.schema().qualified_field_from_column(&ts)?;
            check_time_argument(function, "ts", field)?;
            field.data_type().clone()
        };
        let session = context
            .context_provider()
            .options()
            .extensions
            .get::<UsagelakeOptions>()
            .cloned()
            .unwrap_or_default();
        let tz = match arguments.string("tz", context)? {
            Some(name) => parse_zone(Stage::Planning, function, &name)?,
            None => session.tz,
        };
        let week_start = match arguments.string("week_start", context)? {
            Some(text) => parse_week_start(Stage::Planning, function, &text)?,
            None => session.week_start,
        };
        Ok(Self {
            plan,
            actor,
            ts,
            ts_type,
            segments,
            calendar: Calendar::new(tz, week_start),
            tz,
            week_start,
        })
    }

    /// The type of the actor column.
    pub(crate) fn actor_type(&self) -> Result<DataType> {
        let (_, field) = self
            .plan
            .schema()
            .qualified_field_from_column(&self.actor)?;
        Ok(field.data_type().clone())
    }

    /// A constant of the time column's type at the first instant of local day `day`, to compare
    /// the column with (so that the range reaches the scan).
    pub(crate) fn day_start_literal(&self, day: i64) -> Expr {
        match &self.ts_type {
            DataType::Timestamp(_, tz) => lit(ScalarValue::TimestampMicrosecond(
                Some(self.calendar.day_start(day) * 1_000_000),
                tz.clone(),
            )),
            // A DATE column holds local dates already.
            _ => lit(ScalarValue::Date32(Some(day as i32))),
        }
    }

    /// `ts < bound`, in the column's own terms (a DATE counts by its first instant), to filter the
    /// scan with.
    pub(crate) fn before(&self, bound: &TimeBound) -> Expr {
        let time = Expr::Column(self.ts.clone());
        match &self.ts_type {
            DataType::Timestamp(_, tz) => time.lt(lit(ScalarValue::TimestampMicrosecond(
                Some(bound.micros),
                tz.clone(),
            ))),
            _ => time.lt(self.day_start_literal(bound.first_day)),
        }
    }
}

/// An instant argument such as `since`, `until` or `as_of`, read in a calendar.
#[derive(Debug)]
pub(crate) struct TimeBound {
    /// The instant, in microseconds since the epoch: a date's first instant.
    pub(crate) micros: i64,
    /// Its local date, as days since 1970-01-01.
    pub(crate) local_date: i64,
    /// The first local day that starts at or after it.
    pub(crate) first_day: i64,
    /// As given, for error messages.
    pub(crate) text: String,
}

/// The instant given for `parameter`: a DATE (its first instant in the calendar's zone), a
/// TIMESTAMP (one without a zone is UTC), or a 'YYYY-MM-DD' string; `None` when not given or NULL.
pub(crate) fn time_bound(
    function: &str,
    arguments: &BoundArguments,
    parameter: &str,
    calendar: &Calendar,
    context: &mut dyn RelationPlannerContext,
) -> Result<Option<TimeBound>> {
    let bad = |value: &ScalarValue| {
        plan_err!(
            "{function}: argument '{parameter}' must be a DATE, a TIMESTAMP or a 'YYYY-MM-DD' \
             string, such as DATE '2024-03-01', not {value}"
        )
    };
    let Some(value) = arguments.constant(parameter, context)? else {
        return Ok(None);
    };
    if value.is_null() {
        return Ok(None);
    }
    let text = value.to_string();
    let date = |days: i64| {
        let Some(TimeValue::Date(days)) = TimeValue::date(days) else {
            return bad(&value);
        };
        Ok(Some(TimeBound {
            micros: calendar.day_start(days) * 1_000_000,
            local_date: days,
            first_day: days,
            text: text.clone(),
        }))
    };
    if let Some(Some(string)) = value.try_as_str() {
        return match NaiveDate::parse_from_str(string.trim(), "%Y-%m-%d") {
            Ok(day) => date((day - chrono::DateTime::UNIX_EPOCH.date_naive()).num_days()),
            Err(_) => bad(&value),
        };
    }
    let micros = match &value {
        ScalarValue::Date32(Some(days)) => return date(i64::from(*days)),
        ScalarValue::Date64(Some(millis)) => return date(millis.div_euclid(86_400_000)),
        _ => match value.cast_to(&DataType::Timestamp(TimeUnit::Microsecond, None)) {
            Ok(ScalarValue::TimestampMicrosecond(Some(micros), _)) => micros,
            _ => return bad(&value),
        },
    };
    let Some(instant) = TimeValue::instant(micros.div_euclid(1_000_000)) else {
        return bad(&value);
    };
    let local_date = calendar.local_date(instant);
    // A period is reported when its first instant is in the range.
    let first_day = if calendar.day_start(local_date) * 1_000_000 < micros {
        local_date + 1
    } else {
        local_date
    };
    Ok(Some(TimeBound {
        micros,
        local_date,
        first_day,
        text,
    }))
}

/// The `period` argument of a function that reports by calendar periods of a day or longer:
/// 'week' when not given.
pub(crate) fn report_period(function: &str, text: Option<String>) -> Result<Period> {
    let Some(text) = text else {
        return Ok(Period::Week);
    };
    match text.parse::<Period>() {
        Ok(Period::Hour) | Err(_) => plan_err!(
            "{function}: argument period: '{text}' is not a period that {function} reports by: \
             use 'day', 'week', 'month', 'quarter' or 'year'"
        ),
        Ok(period) => Ok(period),
    }
}

/// The range of a report by `period`: `until`, and the first period reported, the first that
/// starts at or after `since`.
pub(crate) struct PeriodRange {
    pub(crate) until: Option<TimeBound>,
    pub(crate) first_period: Option<i32>,
}

impl PeriodRange {
    pub(crate) fn read(
        function: &str,
        arguments: &BoundArguments,
        period: Period,
        calendar: &Calendar,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Self> {
        let since = time_bound(function, arguments, "since", calendar, context)?;
        let until = time_bound(function, arguments, "until", calendar, context)?;
        if let (Some(since), Some(until)) = (&since, &until)
            && since.micros >= until.micros
        {
            return plan_err!(
                "{function}: arguments since and until: since must be before until, but the \
                 range [{}, {}) is empty",
                since.text,
                until.text
            );
        }
        let first_period = match &since {
            Some(since) => {
                let start = calendar.first_day(period, since.first_day) as i32;
                if i64::from(start) < since.first_day {
                    Some(next_period_start(period, start)?)
                } else {
                    Some(start)
                }
            }
            None => None,
        };
        Ok(Self {
            until,
            first_period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_period_defaults_to_week_and_refuses_hour_listing_the_valid_ones() {
        assert_eq!(report_period("lifecycle", None).unwrap(), Period::Week);
        assert_eq!(
            report_period("lifecycle", Some("Month".into())).unwrap(),
            Period::Month
        );
        let error = report_period("lifecycle", Some("hour".into()))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "lifecycle: argument period: 'hour' is not a period that lifecycle reports by: \
                 use 'day', 'week', 'month', 'quarter' or 'year'"
            ),
            "{error}"
        );
    }
}
