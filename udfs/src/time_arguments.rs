//! What the actor-over-time table functions read from their arguments alike: the input with its
//! actor, time and segment columns and the calendar (zone and week start, else the session's), and
//! instants such as `since`, `until` and `as_of`.
//!
//! One reading for all of them, so that a DATE, a TIMESTAMP or a 'YYYY-MM-DD' string means the same
//! in every function, and every function names a bad argument the same way.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Tz;
use datafusion::arrow::datatypes::{DataType, TimeUnit};
use datafusion::common::{Column, ScalarValue, plan_datafusion_err, plan_err};
use datafusion::error::Result;
use datafusion::functions::datetime::expr_fn::to_timestamp_seconds;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{Expr, LogicalPlan, ScalarUDF, cast, lit};

use crate::lifecycle_counts::next_period_start;
use crate::options::{UsagelakeOptions, WeekStart};
use crate::period::arguments::{Stage, check_time_argument, parse_week_start, parse_zone};
use crate::period::{Calendar, Period, TimeValue};
use crate::period_start::PeriodStart;
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
        Self::read_columns(function, arguments, ("actor", "user_id"), "ts", context)
    }

    /// As [`read`](Self::read), with the actor argument named and defaulted by `actor` (such as
    /// `("account", "account_id")`) and the time column defaulting to `ts_default`.
    pub(crate) fn read_columns(
        function: &str,
        arguments: &BoundArguments,
        actor: (&str, &str),
        ts_default: &str,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<Self> {
        let plan = arguments.input("table", context)?;
        let actor = arguments.column(actor.0, actor.1, &plan, context)?;
        let ts = arguments.column("ts", ts_default, &plan, context)?;
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

    /// For each event, the key of its last-event bound and of its `period`, as the folds take
    /// them: its local day and the first day of its period, or, for hours, its hour's number for
    /// both ([`HourKeys`]).
    pub(crate) fn day_and_period(&self, period: Period) -> (Expr, Expr) {
        let time = Expr::Column(self.ts.clone());
        let period_start = ScalarUDF::from(PeriodStart::new());
        if period == Period::Hour {
            let hour =
                HourKeys::key(period_start.call(vec![time, lit("hour"), lit(self.tz.name())]));
            return (hour.clone(), hour);
        }
        let day = period_start.call(vec![time, lit("day"), lit(self.tz.name())]);
        // The period of the local day: the zone is applied once per row, not twice.
        let active_period = period_start.call(vec![
            day.clone(),
            lit(period.name()),
            lit(self.tz.name()),
            lit(self.week_start.to_string()),
        ]);
        (day, active_period)
    }

    /// The output column `name` of period keys made by [`day_and_period`](Self::day_and_period):
    /// DATEs as they are, hours as the instants they start.
    pub(crate) fn period_column(&self, period: Period, key: Expr, name: &str) -> Expr {
        match period {
            Period::Hour => HourKeys::start(key, &self.tz).alias(name),
            _ => key.alias(name),
        }
    }

    /// The `period` argument, as [`report_period`] reads it, in this input's zone: an hour is
    /// refused where hours do not start an hour apart.
    pub(crate) fn report_period(
        &self,
        function: &str,
        text: Option<String>,
        hours: bool,
    ) -> Result<Period> {
        let period = report_period(function, text, hours)?;
        if period == Period::Hour {
            HourKeys::check_zone(function, &self.tz)?;
        }
        Ok(period)
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
        Expr::Column(self.ts.clone()).lt(self.bound_literal(bound))
    }

    /// `ts >= bound`, in the column's own terms.
    pub(crate) fn at_or_after(&self, bound: &TimeBound) -> Expr {
        Expr::Column(self.ts.clone()).gt_eq(self.bound_literal(bound))
    }

    /// `bound` as a constant of the time column's type: a DATE column compares with the first
    /// local day that starts at or after it.
    fn bound_literal(&self, bound: &TimeBound) -> Expr {
        match &self.ts_type {
            DataType::Timestamp(_, tz) => lit(ScalarValue::TimestampMicrosecond(
                Some(bound.micros),
                tz.clone(),
            )),
            _ => self.day_start_literal(bound.first_day),
        }
    }

    /// The time column as microseconds since the epoch: a TIMESTAMP without a zone is UTC, a DATE
    /// its local midnight in the input's zone.
    pub(crate) fn micros(&self) -> Expr {
        micros_of(Expr::Column(self.ts.clone()), &self.ts_type, &self.tz)
    }
}

/// `time`, a TIMESTAMP or DATE of type `data_type`, as microseconds since the epoch: a TIMESTAMP
/// without a zone is UTC, a DATE its local midnight in `tz` (a time without a zone cast to one is
/// read as local time there).
pub(crate) fn micros_of(time: Expr, data_type: &DataType, tz: &Tz) -> Expr {
    let micros = |zone: Option<Arc<str>>| DataType::Timestamp(TimeUnit::Microsecond, zone);
    let instant = match data_type {
        DataType::Timestamp(_, zone) => cast(time, micros(zone.clone())),
        _ => cast(cast(time, micros(None)), micros(Some(Arc::from(tz.name())))),
    };
    cast(instant, DataType::Int64)
}

/// A DATE constant (a day, or an hour's number), or a NULL DATE.
pub(crate) fn date_literal(day: Option<i64>) -> Expr {
    lit(ScalarValue::Date32(day.map(|day| day as i32)))
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
    match TimeBound::at(calendar, micros, text) {
        Some(bound) => Ok(Some(bound)),
        None => bad(&value),
    }
}

impl TimeBound {
    /// The bound at instant `micros`, in `calendar`; `None` outside the supported years.
    pub(crate) fn at(calendar: &Calendar, micros: i64, text: String) -> Option<Self> {
        let instant = TimeValue::instant(micros.div_euclid(1_000_000))?;
        let local_date = calendar.local_date(instant);
        // A period is reported when its first instant is in the range.
        let first_day = if calendar.day_start(local_date) * 1_000_000 < micros {
            local_date + 1
        } else {
            local_date
        };
        Some(TimeBound {
            micros,
            local_date,
            first_day,
            text,
        })
    }
}

/// The `period` argument of a function that reports by calendar periods, of a day or longer
/// unless `hours`: 'week' when not given.
pub(crate) fn report_period(function: &str, text: Option<String>, hours: bool) -> Result<Period> {
    let Some(text) = text else {
        return Ok(Period::Week);
    };
    match text.parse::<Period>() {
        Ok(Period::Hour) if hours => Ok(Period::Hour),
        Ok(Period::Hour) | Err(_) => {
            let hour = if hours { "'hour', " } else { "" };
            plan_err!(
                "{function}: argument period: '{text}' is not a period that {function} reports \
                 by: use {hour}'day', 'week', 'month', 'quarter' or 'year'"
            )
        }
        Ok(period) => Ok(period),
    }
}

/// Hours as the folds count them: by number, the UTC hour since 1970 in which the hour starts,
/// carried in a DATE column as days are, so that the next hour is the next number. Local hours
/// start an hour apart, across DST changes too (the repeated 01:00 is two hours), except in
/// Australia/Lord_Howe, whose clocks shift by 30 minutes; there hours are refused.
pub(crate) struct HourKeys;

const MICROS_PER_HOUR: i64 = 3_600_000_000;

impl HourKeys {
    /// Refuses a zone whose hours do not start an hour apart.
    fn check_zone(function: &str, tz: &Tz) -> Result<()> {
        match tz.name() {
            "Australia/Lord_Howe" | "Australia/LHI" => plan_err!(
                "{function}: argument period: 'hour' is not supported in {}, whose clocks \
                 change by 30 minutes; use 'day' or a longer period there",
                tz.name()
            ),
            _ => Ok(()),
        }
    }

    /// The number of the hour that starts at `start` (the `period_start(ts, 'hour')` instant).
    pub(crate) fn key(start: Expr) -> Expr {
        let micros = cast(start, DataType::Int64);
        // Floor division, also before 1970: remainders in SQL take the dividend's sign.
        let remainder =
            (micros.clone() % lit(MICROS_PER_HOUR) + lit(MICROS_PER_HOUR)) % lit(MICROS_PER_HOUR);
        let hours = (micros - remainder) / lit(MICROS_PER_HOUR);
        cast(cast(hours, DataType::Int32), DataType::Date32)
    }

    /// The instant hour `key` starts, as `period_start(ts, 'hour', tz)` gives it: the start of the
    /// hour that holds the last second of UTC hour `key` (a start lies within its UTC hour).
    pub(crate) fn start(key: Expr, tz: &Tz) -> Expr {
        let seconds =
            cast(cast(key, DataType::Int32), DataType::Int64) * lit(3600_i64) + lit(3599_i64);
        ScalarUDF::from(PeriodStart::new()).call(vec![
            to_timestamp_seconds(vec![seconds]),
            lit("hour"),
            lit(tz.name()),
        ])
    }

    /// The number of the hour that holds `micros`, and of the first hour starting at or after it.
    fn around(calendar: &Calendar, micros: i64) -> Option<(i64, i64)> {
        let instant = TimeValue::instant(micros.div_euclid(1_000_000))?;
        let start = calendar.hour_start(instant);
        let holding = start.div_euclid(3600);
        let later = i64::from(start * 1_000_000 < micros);
        Some((holding, holding + later))
    }
}

/// The range of a report by `period`: `until`, and the first period reported, the first that
/// starts at or after `since`; periods starting at or after `end_key` are not reported, and one
/// ending after `complete_key` is incomplete (days, or hour numbers for hours).
pub(crate) struct PeriodRange {
    pub(crate) until: Option<TimeBound>,
    pub(crate) first_period: Option<i32>,
    pub(crate) end_key: Option<i64>,
    pub(crate) complete_key: Option<i64>,
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
        if period == Period::Hour {
            let around = |bound: &Option<TimeBound>| match bound {
                Some(bound) => HourKeys::around(calendar, bound.micros)
                    .map(Some)
                    .ok_or_else(|| {
                        plan_datafusion_err!(
                            "{function}: {} lies outside the supported range of years",
                            bound.text
                        )
                    }),
                None => Ok(None),
            };
            let (since, until_hours) = (around(&since)?, around(&until)?);
            return Ok(Self {
                first_period: since.map(|(_, first)| first as i32),
                end_key: until_hours.map(|(_, end)| end),
                complete_key: until_hours.map(|(holding, _)| holding),
                until,
            });
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
            end_key: until.as_ref().map(|until| until.first_day),
            complete_key: until.as_ref().map(|until| until.local_date),
            until,
            first_period,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_period_defaults_to_week_and_takes_hour_only_where_allowed() {
        assert_eq!(
            report_period("lifecycle", None, true).unwrap(),
            Period::Week
        );
        assert_eq!(
            report_period("lifecycle", Some("Month".into()), true).unwrap(),
            Period::Month
        );
        assert_eq!(
            report_period("lifecycle", Some("hour".into()), true).unwrap(),
            Period::Hour
        );
        let error = report_period("cohort_retention", Some("hour".into()), false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains(
                "cohort_retention: argument period: 'hour' is not a period that cohort_retention \
                 reports by: use 'day', 'week', 'month', 'quarter' or 'year'"
            ),
            "{error}"
        );
    }
}
