//! Calendar periods in a time zone: the calendar logic shared by every function that reports by
//! hour, day, week, month, quarter or year.
//!
//! `period_start`, `period_diff` and the table functions built on them must agree on which period
//! an event falls in, or a user counted in one week by one function would land in another week in
//! the next. So there is one implementation, here: the local date of an instant, the first instant
//! of a local day or hour, the first day of a week, month, quarter or year, and a running period
//! number whose differences are whole calendar periods, all DST-correct in any IANA zone (a day in
//! America/Los_Angeles lasts 23 or 25 hours; a skipped local midnight starts its day at the first
//! valid instant after it).
//!
//! Values are plain integers, as Arrow stores them: instants are whole seconds since the Unix epoch
//! (UTC) and dates are days since 1970-01-01. Calendar arithmetic is done on those integers (no
//! chrono value per row); the zone is consulted only where an offset is not already known, and a
//! [`Calendar`] remembers the last local day it looked up, so the time-ordered runs of an event log
//! cost one lookup per day. The [`arguments`] module is the other half of the shared work: how the
//! functions read their time, period, zone and week-start arguments from SQL and Arrow.

use std::cell::Cell;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use crate::options::WeekStart;

const SECONDS_PER_HOUR: i64 = 3_600;
const SECONDS_PER_DAY: i64 = 86_400;

/// How far from 1970 an instant may lie, about 250,000 years either way. Within it chrono
/// represents every instant, every local date fits a DATE (`i32` days) and every hour start fits
/// a microsecond timestamp, so the arithmetic below cannot overflow.
const MAX_ABS_SECONDS: i64 = 7_889_000_000_000;

/// A calendar period that results are reported by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Period {
    Hour,
    Day,
    Week,
    Month,
    Quarter,
    Year,
}

impl Period {
    const ALL: [Period; 6] = [
        Period::Hour,
        Period::Day,
        Period::Week,
        Period::Month,
        Period::Quarter,
        Period::Year,
    ];

    /// The name SQL uses for the period.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
            Period::Quarter => "quarter",
            Period::Year => "year",
        }
    }

    /// The number of the period that holds local date `date`, on a scale where the next period
    /// is the next number; for weeks, `date` must be the week's first day (a week's number does
    /// not depend on its first weekday then). Days, and hours already numbered, are their own
    /// numbers.
    pub(crate) fn number(self, date: i64) -> i64 {
        match self {
            Period::Hour | Period::Day => date,
            // Every week start is the same weekday, so whole weeks divide out exactly.
            Period::Week => date.div_euclid(7),
            Period::Month | Period::Quarter | Period::Year => {
                let (year, month, _) = civil_from_days(date);
                let months = year * 12 + i64::from(month - 1);
                match self {
                    Period::Month => months,
                    Period::Quarter => months.div_euclid(3),
                    _ => year,
                }
            }
        }
    }

    /// The first day of the period numbered `number` by [`number`](Self::number); `like` is the
    /// first day of any period of the kind, which fixes the first weekday of weeks.
    pub(crate) fn first_day_of(self, number: i64, like: i64) -> i64 {
        let month_start = |months: i64| {
            // `rem_euclid(12)` is in 0..12.
            days_from_civil(months.div_euclid(12), months.rem_euclid(12) as u32 + 1, 1)
        };
        match self {
            Period::Hour | Period::Day => number,
            Period::Week => number * 7 + like.rem_euclid(7),
            Period::Month => month_start(number),
            Period::Quarter => month_start(number * 3),
            Period::Year => month_start(number * 12),
        }
    }
}

impl FromStr for Period {
    type Err = UnknownPeriod;

    /// Parses a period name, ignoring case (`'Week'` is `'week'`).
    fn from_str(text: &str) -> Result<Self, UnknownPeriod> {
        Period::ALL
            .into_iter()
            .find(|period| period.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| UnknownPeriod(text.to_string()))
    }
}

/// A period name that is not one of [`Period`]'s; its message lists the valid ones.
#[derive(Debug)]
pub(crate) struct UnknownPeriod(String);

impl fmt::Display for UnknownPeriod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' is not a period: use ", self.0)?;
        for (index, period) in Period::ALL.iter().enumerate() {
            let separator = match index {
                0 => "",
                _ if index == Period::ALL.len() - 1 => " or ",
                _ => ", ",
            };
            write!(f, "{separator}'{}'", period.name())?;
        }
        Ok(())
    }
}

/// A time value as the functions read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeValue {
    /// An instant, in seconds since the Unix epoch.
    Instant(i64),
    /// A local date, in days since 1970-01-01: already a date on the calendar, so no zone moves it.
    Date(i64),
}

impl TimeValue {
    /// The instant `seconds`, or `None` when it lies outside the supported range of years.
    pub(crate) fn instant(seconds: i64) -> Option<Self> {
        (seconds.unsigned_abs() <= MAX_ABS_SECONDS as u64).then_some(TimeValue::Instant(seconds))
    }

    /// The local date `days`, or `None` when it lies outside the supported range of years.
    pub(crate) fn date(days: i64) -> Option<Self> {
        (days.unsigned_abs() <= (MAX_ABS_SECONDS / SECONDS_PER_DAY) as u64)
            .then_some(TimeValue::Date(days))
    }
}

/// A span of instants `[start, end)` that is one whole local day, all of it at one UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalDay {
    start: i64,
    end: i64,
    offset: i64,
}

impl LocalDay {
    /// The local day holding an instant at `offset`, assuming the offset holds all day.
    fn around(instant: i64, offset: i64) -> Self {
        let local_midnight = (instant + offset).div_euclid(SECONDS_PER_DAY) * SECONDS_PER_DAY;
        LocalDay {
            start: local_midnight - offset,
            end: local_midnight - offset + SECONDS_PER_DAY,
            offset,
        }
    }

    fn contains(&self, instant: i64) -> bool {
        (self.start..self.end).contains(&instant)
    }
}

/// The calendar of one time zone and first day of the week.
///
/// Its methods take `&self` so that Arrow's kernels can call them from `Fn` closures; the cache of
/// the last local day lives in `Cell`s, which also keeps a `Calendar` to one thread, as one batch is.
#[derive(Debug)]
pub(crate) struct Calendar {
    tz: Tz,
    week_start: WeekStart,
    /// The UTC offset, in seconds, of a zone that has only ever had one: then every answer is
    /// arithmetic.
    fixed_offset: Option<i64>,
    /// A local day found to keep one offset from its first instant to its last.
    steady_day: Cell<Option<LocalDay>>,
    /// The local day of the last zone lookup, and whether it was already checked for steadiness.
    /// A day is checked when a second instant falls in it, so that unordered input, whose rows
    /// rarely share a day, pays for one lookup per row and no more.
    last_day: Cell<Option<(LocalDay, bool)>>,
}

impl Calendar {
    pub(crate) fn new(tz: Tz, week_start: WeekStart) -> Self {
        Calendar {
            tz,
            week_start,
            fixed_offset: fixed_offset(tz),
            steady_day: Cell::new(None),
            last_day: Cell::new(None),
        }
    }

    /// The UTC offset in seconds of a zone that has only ever had one.
    pub(crate) fn fixed_offset(&self) -> Option<i64> {
        self.fixed_offset
    }

    /// The local date of `time`.
    pub(crate) fn local_date(&self, time: TimeValue) -> i64 {
        match time {
            TimeValue::Instant(instant) => {
                (instant + self.offset_at(instant)).div_euclid(SECONDS_PER_DAY)
            }
            TimeValue::Date(date) => date,
        }
    }

    /// The instant at which the local hour holding `time` starts; for a date, the day's first
    /// instant.
    ///
    /// An hour is told apart by its offset too, so the hour 01:00 that repeats when clocks fall
    /// back is two hours with two starts. Where an offset change falls inside a local hour (a
    /// 30-minute shift), the part after the change is an hour of its own that starts at the change.
    pub(crate) fn hour_start(&self, time: TimeValue) -> i64 {
        let instant = match time {
            TimeValue::Instant(instant) => instant,
            // A day's first instant is always an hour start: midnight, or the offset change that
            // skipped it.
            TimeValue::Date(date) => return self.day_start(date),
        };
        let offset = self.offset_at(instant);
        // When the local clock read HH:00, had the current offset held for the whole hour.
        let start = instant - (instant + offset).rem_euclid(SECONDS_PER_HOUR);
        let offset_held = self.fixed_offset.is_some()
            || self
                .steady_day
                .get()
                .is_some_and(|day| day.contains(instant))
            || self.zone_offset(start) == offset;
        if offset_held {
            start
        } else {
            self.first_instant_at_offset(start, instant)
        }
    }

    /// The first instant of local date `date`: its midnight, or the first valid instant after it
    /// when the clocks skip midnight.
    pub(crate) fn day_start(&self, date: i64) -> i64 {
        let local_midnight = date * SECONDS_PER_DAY;
        if let Some(offset) = self.fixed_offset {
            return local_midnight - offset;
        }
        let midnight = naive_utc(local_midnight);
        match self.tz.from_local_datetime(&midnight) {
            LocalResult::Single(start) => start.timestamp(),
            LocalResult::Ambiguous(earliest, _) => earliest.timestamp(),
            LocalResult::None => GapInfo::new(&midnight, &self.tz)
                .and_then(|gap| gap.end)
                .map_or_else(
                    || local_midnight - self.zone_offset(local_midnight),
                    |end| end.timestamp(),
                ),
        }
    }

    /// The first date of the `period` holding local date `date`. An hour lies within its date, so
    /// for [`Period::Hour`] this is `date` itself.
    pub(crate) fn first_day(&self, period: Period, date: i64) -> i64 {
        match period {
            Period::Hour | Period::Day => date,
            Period::Week => date - self.days_into_week(date),
            Period::Month => {
                let (_, _, day_of_month) = civil_from_days(date);
                date - i64::from(day_of_month - 1)
            }
            Period::Quarter => {
                let (year, month, _) = civil_from_days(date);
                days_from_civil(year, month - (month - 1) % 3, 1)
            }
            Period::Year => days_from_civil(civil_from_days(date).0, 1, 1),
        }
    }

    /// The number of the `period` holding `time` on a scale that counts whole periods: the
    /// difference of two numbers is the number of periods from one to the other.
    ///
    /// Hours are numbered by their start instant, so in the few zones whose offset changes by 30
    /// minutes the half hour at the change counts together with a neighbouring hour.
    pub(crate) fn ordinal(&self, period: Period, time: TimeValue) -> i64 {
        if period == Period::Hour {
            return self.hour_start(time).div_euclid(SECONDS_PER_HOUR);
        }
        let date = self.local_date(time);
        match period {
            Period::Week => period.number(self.first_day(Period::Week, date)),
            _ => period.number(date),
        }
    }

    /// How many days `date` lies after the start of its week.
    fn days_into_week(&self, date: i64) -> i64 {
        // 1970-01-01 was a Thursday: 3 days after a Monday, 4 after a Sunday.
        let epoch_days_into_week = match self.week_start {
            WeekStart::Monday => 3,
            WeekStart::Sunday => 4,
        };
        (date + epoch_days_into_week).rem_euclid(7)
    }

    /// The UTC offset at `instant`, from the remembered local day when it holds the instant.
    fn offset_at(&self, instant: i64) -> i64 {
        if let Some(offset) = self.fixed_offset {
            return offset;
        }
        if let Some(day) = self.steady_day.get().filter(|day| day.contains(instant)) {
            return day.offset;
        }
        let offset = self.zone_offset(instant);
        let day = LocalDay::around(instant, offset);
        let checked = match self.last_day.get() {
            Some((last, checked)) if last == day => {
                // The offset at both ends equal to the offset inside means no change in the day:
                // no zone changes its offset twice within one day and back again.
                if !checked
                    && self.zone_offset(day.start) == offset
                    && self.zone_offset(day.end - 1) == offset
                {
                    self.steady_day.set(Some(day));
                }
                true
            }
            _ => false,
        };
        self.last_day.set(Some((day, checked)));
        offset
    }

    /// The zone's UTC offset at `instant`, in seconds, looked up in the zone's rules.
    fn zone_offset(&self, instant: i64) -> i64 {
        let offset = self.tz.offset_from_utc_datetime(&naive_utc(instant));
        i64::from(offset.fix().local_minus_utc())
    }

    /// The first instant after `before` and up to `at` that has `at`'s offset: the offset change
    /// between two instants whose offsets differ.
    fn first_instant_at_offset(&self, before: i64, at: i64) -> i64 {
        let offset = self.zone_offset(at);
        let (mut low, mut high) = (before, at);
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.zone_offset(middle) == offset {
                high = middle;
            } else {
                low = middle;
            }
        }
        high
    }
}

/// The offset of a zone that has only ever had one: UTC and its aliases, and the `Etc/GMT±N`
/// zones. The time zone database defines no other zone without a change of offset in its history
/// (Europe/Istanbul, at UTC+3 since 2016, had DST before), so they are all there is to recognise.
pub(crate) fn fixed_offset(tz: Tz) -> Option<i64> {
    let name = tz.name();
    let fixed = name.starts_with("Etc/")
        || matches!(
            name,
            "GMT" | "GMT0" | "GMT+0" | "GMT-0" | "Greenwich" | "UCT" | "UTC" | "Universal" | "Zulu"
        );
    fixed.then(|| {
        i64::from(
            tz.offset_from_utc_datetime(&naive_utc(0))
                .fix()
                .local_minus_utc(),
        )
    })
}

/// `seconds` since the epoch as chrono's date and time in UTC, clamped to chrono's range (which
/// the range check on input keeps every instant inside of).
fn naive_utc(seconds: i64) -> NaiveDateTime {
    DateTime::from_timestamp(seconds, 0)
        .unwrap_or(if seconds < 0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
        .naive_utc()
}

/// The proleptic Gregorian (year, month, day) of `days` since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: pure integer arithmetic, exact for any `i64` days of interest).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Count from 0000-03-01 so that the leap day ends each 4-year cycle.
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    // Both are small by construction: month in 1..=12, day in 1..=31.
    (year, month as u32, day as u32)
}

/// Days since 1970-01-01 of the proleptic Gregorian date `year`-`month`-`day` (Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// How the period functions read their arguments: checks at planning, where a literal's mistake
/// is reported before any data is read, and the per-batch reading of Arrow columns.
pub(crate) mod arguments {
    use std::fmt::Display;

    use chrono_tz::Tz;
    use datafusion::arrow::array::{
        Array, ArrayRef, ArrowPrimitiveType, AsArray, PrimitiveArray, StringViewArray,
    };
    use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{
        DataType, Date32Type, Date64Type, Field, TimeUnit, TimestampMicrosecondType,
        TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    use datafusion::common::config::ConfigOptions;
    use datafusion::common::{DataFusionError, Result, ScalarValue};
    use datafusion::logical_expr::ColumnarValue;

    use super::{Calendar, Period, TimeValue};
    use crate::options::{UsagelakeOptions, WeekStart, parse_tz};

    /// When a bad value was found: a literal's at planning, a column's while executing.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum Stage {
        Planning,
        Execution,
    }

    /// An error about argument `argument` of `function`, of the kind that fits `stage`.
    fn argument_error(
        stage: Stage,
        function: &str,
        argument: &str,
        detail: impl Display,
    ) -> DataFusionError {
        let message = format!("{function}: argument {argument}: {detail}");
        match stage {
            Stage::Planning => DataFusionError::Plan(message),
            Stage::Execution => DataFusionError::Execution(message),
        }
    }

    pub(crate) fn parse_period(stage: Stage, function: &str, text: &str) -> Result<Period> {
        text.parse()
            .map_err(|error| argument_error(stage, function, "period", error))
    }

    pub(crate) fn parse_zone(stage: Stage, function: &str, text: &str) -> Result<Tz> {
        parse_tz(text).map_err(|error| argument_error(stage, function, "tz", error.message()))
    }

    pub(crate) fn parse_week_start(stage: Stage, function: &str, text: &str) -> Result<WeekStart> {
        text.parse::<WeekStart>()
            .map_err(|error| argument_error(stage, function, "week_start", error.message()))
    }

    /// Checks at planning that a time argument is a TIMESTAMP (any unit, with or without a zone)
    /// or a DATE, and otherwise names the argument, the expression and its type.
    pub(crate) fn check_time_argument(function: &str, argument: &str, field: &Field) -> Result<()> {
        match field.data_type() {
            DataType::Timestamp(_, _) | DataType::Date32 | DataType::Date64 | DataType::Null => {
                Ok(())
            }
            other => Err(argument_error(
                Stage::Planning,
                function,
                argument,
                format!(
                    "must be a TIMESTAMP or a DATE, but `{}` has type {other}",
                    field.name()
                ),
            )),
        }
    }

    /// Checks at planning that `period` is a string, and a period name when it is a literal:
    /// returns the period, or `None` when it is not a literal (yet).
    ///
    /// Not a literal is no error here: information_schema plans every function with no literals
    /// to list its signatures, and a constant expression only becomes a literal when the optimizer
    /// folds it. [`batch_period`] refuses a column when the query runs.
    pub(crate) fn literal_period(
        function: &str,
        field: &Field,
        literal: Option<&ScalarValue>,
    ) -> Result<Option<Period>> {
        check_text_type(function, "period", field)?;
        match literal.map(|value| value.try_as_str().flatten()) {
            Some(Some(text)) => parse_period(Stage::Planning, function, text).map(Some),
            Some(None) => Err(argument_error(
                Stage::Planning,
                function,
                "period",
                "must be a period such as 'week', not NULL",
            )),
            None => Ok(None),
        }
    }

    /// Checks at planning that the `tz` argument is a string and, when it is a literal, a zone.
    pub(crate) fn check_zone_argument(
        function: &str,
        field: &Field,
        literal: Option<&ScalarValue>,
    ) -> Result<()> {
        check_text_type(function, "tz", field)?;
        match literal.and_then(|value| value.try_as_str().flatten()) {
            Some(text) => parse_zone(Stage::Planning, function, text).map(drop),
            None => Ok(()),
        }
    }

    /// Checks at planning that the `week_start` argument is a string and, when it is a literal,
    /// a first day of the week.
    pub(crate) fn check_week_start_argument(
        function: &str,
        field: &Field,
        literal: Option<&ScalarValue>,
    ) -> Result<()> {
        check_text_type(function, "week_start", field)?;
        match literal.and_then(|value| value.try_as_str().flatten()) {
            Some(text) => parse_week_start(Stage::Planning, function, text).map(drop),
            None => Ok(()),
        }
    }

    fn check_text_type(function: &str, argument: &str, field: &Field) -> Result<()> {
        let is_text = |data_type: &DataType| {
            matches!(
                data_type,
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null
            )
        };
        let text = match field.data_type() {
            DataType::Dictionary(_, values) => is_text(values),
            data_type => is_text(data_type),
        };
        if text {
            Ok(())
        } else {
            Err(argument_error(
                Stage::Planning,
                function,
                argument,
                format!(
                    "must be a string, but `{}` has type {}",
                    field.name(),
                    field.data_type()
                ),
            ))
        }
    }

    /// The period of a batch, from the literal that planning already checked.
    pub(crate) fn batch_period(function: &str, value: &ColumnarValue) -> Result<Period> {
        match value {
            ColumnarValue::Scalar(scalar) => match scalar.try_as_str().flatten() {
                Some(text) => parse_period(Stage::Execution, function, text),
                None => Err(argument_error(
                    Stage::Execution,
                    function,
                    "period",
                    "must be a constant string such as 'week', not NULL",
                )),
            },
            ColumnarValue::Array(_) => Err(argument_error(
                Stage::Execution,
                function,
                "period",
                "must be a constant string such as 'week', not a column",
            )),
        }
    }

    /// A column of time values, read straight from Arrow's buffers.
    #[derive(Debug)]
    pub(crate) struct TimeColumn {
        function: &'static str,
        argument: &'static str,
        values: TimeValues,
        nulls: Option<NullBuffer>,
    }

    #[derive(Debug)]
    enum TimeValues {
        Timestamps {
            values: ScalarBuffer<i64>,
            ticks_per_second: i64,
        },
        Date32(ScalarBuffer<i32>),
        /// Milliseconds since the epoch of UTC midnights, as Arrow's Date64 stores dates.
        Date64(ScalarBuffer<i64>),
    }

    impl TimeColumn {
        /// Reads `array` of a type that [`check_time_argument`] accepts; a NULL-typed column
        /// reads as dates that are all NULL.
        pub(crate) fn try_new(
            function: &'static str,
            argument: &'static str,
            array: &ArrayRef,
        ) -> Result<Self> {
            let values = match array.data_type() {
                DataType::Timestamp(unit, _) => {
                    let (values, ticks_per_second) = match unit {
                        TimeUnit::Second => {
                            (array.as_primitive::<TimestampSecondType>().values(), 1)
                        }
                        TimeUnit::Millisecond => (
                            array.as_primitive::<TimestampMillisecondType>().values(),
                            1_000,
                        ),
                        TimeUnit::Microsecond => (
                            array.as_primitive::<TimestampMicrosecondType>().values(),
                            1_000_000,
                        ),
                        TimeUnit::Nanosecond => (
                            array.as_primitive::<TimestampNanosecondType>().values(),
                            1_000_000_000,
                        ),
                    };
                    TimeValues::Timestamps {
                        values: values.clone(),
                        ticks_per_second,
                    }
                }
                DataType::Date32 => {
                    TimeValues::Date32(array.as_primitive::<Date32Type>().values().clone())
                }
                DataType::Date64 => {
                    TimeValues::Date64(array.as_primitive::<Date64Type>().values().clone())
                }
                DataType::Null => TimeValues::Date32(ScalarBuffer::from(vec![0; array.len()])),
                other => {
                    return Err(argument_error(
                        Stage::Execution,
                        function,
                        argument,
                        format!("must be a TIMESTAMP or a DATE, not {other}"),
                    ));
                }
            };
            Ok(TimeColumn {
                function,
                argument,
                values,
                nulls: array.logical_nulls(),
            })
        }

        pub(crate) fn nulls(&self) -> Option<&NullBuffer> {
            self.nulls.as_ref()
        }

        /// The local date of every row by arithmetic alone (NULL rows get a date too, to be
        /// masked): a DATE column holds them already, and a TIMESTAMP column needs a zone whose
        /// UTC offset is always `fixed_offset` seconds. `None` otherwise, or when a value lies
        /// outside the supported range, which [`get`] names.
        ///
        /// [`get`]: TimeColumn::get
        pub(crate) fn local_dates(&self, fixed_offset: Option<i64>) -> Option<Vec<i32>> {
            // Each value is checked before its conversion, as `get` would check it.
            let outside = |values: &[i64], limit: i64| {
                values
                    .iter()
                    .any(|value| value.unsigned_abs() > limit as u64)
            };
            match &self.values {
                TimeValues::Date32(values) => {
                    let max_days = super::MAX_ABS_SECONDS / super::SECONDS_PER_DAY;
                    let inside = values
                        .iter()
                        .all(|date| i64::from(*date).unsigned_abs() <= max_days as u64);
                    inside.then(|| values.to_vec())
                }
                TimeValues::Date64(values) => {
                    let millis_per_day = super::SECONDS_PER_DAY * 1_000;
                    if outside(values, super::MAX_ABS_SECONDS * 1_000) {
                        return None;
                    }
                    Some(
                        values
                            .iter()
                            .map(|millis| millis.div_euclid(millis_per_day) as i32)
                            .collect(),
                    )
                }
                TimeValues::Timestamps {
                    values,
                    ticks_per_second,
                } => {
                    let offset = fixed_offset?;
                    if outside(
                        values,
                        super::MAX_ABS_SECONDS.saturating_mul(*ticks_per_second),
                    ) {
                        return None;
                    }
                    // One division by a constant per row: the compiler turns it into a multiply.
                    fn dates<const TICKS_PER_SECOND: i64>(values: &[i64], offset: i64) -> Vec<i32> {
                        let offset = offset * TICKS_PER_SECOND;
                        values
                            .iter()
                            .map(|value| {
                                value
                                    .saturating_add(offset)
                                    .div_euclid(TICKS_PER_SECOND * super::SECONDS_PER_DAY)
                                    as i32
                            })
                            .collect()
                    }
                    Some(match ticks_per_second {
                        1 => dates::<1>(values, offset),
                        1_000 => dates::<1_000>(values, offset),
                        1_000_000 => dates::<1_000_000>(values, offset),
                        _ => dates::<1_000_000_000>(values, offset),
                    })
                }
            }
        }

        /// The value at `row`, which must be valid (not NULL).
        pub(crate) fn get(&self, row: usize) -> Result<TimeValue> {
            let value = match &self.values {
                TimeValues::Timestamps {
                    values,
                    ticks_per_second,
                } => TimeValue::instant(values[row].div_euclid(*ticks_per_second)),
                TimeValues::Date32(values) => TimeValue::date(i64::from(values[row])),
                TimeValues::Date64(values) => {
                    TimeValue::date(values[row].div_euclid(super::SECONDS_PER_DAY * 1_000))
                }
            };
            value.ok_or_else(|| {
                argument_error(
                    Stage::Execution,
                    self.function,
                    self.argument,
                    "the value lies more than 250,000 years from 1970, outside the supported range",
                )
            })
        }
    }

    /// A zone or week-start setting of a batch: one for every row, or a string per row.
    #[derive(Debug)]
    enum Setting<T> {
        Constant(T),
        PerRow(StringViewArray),
    }

    impl<T: Copy> Setting<T> {
        /// Reads an argument, `default` when it is absent. `None` when it is a NULL constant.
        fn try_new(
            function: &str,
            name: &str,
            argument: Option<&ColumnarValue>,
            default: T,
            parse: impl Fn(&str) -> Result<T>,
        ) -> Result<Option<Self>> {
            Ok(match argument {
                None => Some(Setting::Constant(default)),
                Some(ColumnarValue::Scalar(value)) if value.is_null() => None,
                Some(ColumnarValue::Scalar(value)) => match value.try_as_str().flatten() {
                    Some(text) => Some(Setting::Constant(parse(text)?)),
                    None => {
                        return Err(argument_error(
                            Stage::Execution,
                            function,
                            name,
                            format!("must be a string, not {}", value.data_type()),
                        ));
                    }
                },
                Some(ColumnarValue::Array(array)) => Some(Setting::PerRow(
                    cast(array, &DataType::Utf8View)?.as_string_view().clone(),
                )),
            })
        }

        fn nulls(&self) -> Option<&NullBuffer> {
            match self {
                Setting::Constant(_) => None,
                Setting::PerRow(texts) => texts.nulls(),
            }
        }

        fn at(&self, row: usize, parse: impl Fn(&str) -> Result<T>) -> Result<T> {
            match self {
                Setting::Constant(value) => Ok(*value),
                Setting::PerRow(texts) => parse(texts.value(row)),
            }
        }

        fn same_at(&self, row: usize, other_row: usize) -> bool {
            match self {
                Setting::Constant(_) => true,
                Setting::PerRow(texts) => texts.value(row) == texts.value(other_row),
            }
        }
    }

    /// The calendars of one batch: the zone and week start come from the arguments, else from the
    /// session settings `usagelake.tz` and `usagelake.week_start`, else UTC and Monday. When both
    /// are constants (the usual case) one [`Calendar`] serves every row; a zone column gets a
    /// calendar per run of rows with the same zone.
    #[derive(Debug)]
    pub(crate) struct Calendars {
        function: &'static str,
        zone: Setting<Tz>,
        week_start: Setting<WeekStart>,
        /// Whether the zone or the week start is a column.
        varies_by_row: bool,
        /// Rows whose zone or week start is NULL, and so whose result is NULL.
        nulls: Option<NullBuffer>,
        calendar: Calendar,
        /// The row whose settings built `calendar`, when they vary by row.
        calendar_row: Option<usize>,
    }

    impl Calendars {
        pub(crate) fn try_new(
            function: &'static str,
            zone: Option<&ColumnarValue>,
            week_start: Option<&ColumnarValue>,
            config: &ConfigOptions,
            rows: usize,
        ) -> Result<Self> {
            let defaults = config
                .extensions
                .get::<UsagelakeOptions>()
                .cloned()
                .unwrap_or_default();
            let zone = Setting::try_new(function, "tz", zone, defaults.tz, |text| {
                parse_zone(Stage::Execution, function, text)
            })?;
            let week_start = Setting::try_new(
                function,
                "week_start",
                week_start,
                defaults.week_start,
                |text| parse_week_start(Stage::Execution, function, text),
            )?;
            let (zone, week_start, nulls) = match (zone, week_start) {
                (Some(zone), Some(week_start)) => {
                    let nulls = NullBuffer::union(zone.nulls(), week_start.nulls());
                    (zone, week_start, nulls)
                }
                // A NULL zone or week start makes every result NULL.
                _ => (
                    Setting::Constant(defaults.tz),
                    Setting::Constant(defaults.week_start),
                    Some(NullBuffer::new_null(rows)),
                ),
            };
            let (calendar, varies_by_row) = match (&zone, &week_start) {
                (Setting::Constant(tz), Setting::Constant(week_start)) => {
                    (Calendar::new(*tz, *week_start), false)
                }
                // Replaced by the first row's calendar before any use.
                _ => (Calendar::new(defaults.tz, defaults.week_start), true),
            };
            Ok(Calendars {
                function,
                zone,
                week_start,
                varies_by_row,
                nulls,
                calendar,
                calendar_row: None,
            })
        }

        /// Rows whose result is NULL because a setting is NULL.
        pub(crate) fn nulls(&self) -> Option<&NullBuffer> {
            self.nulls.as_ref()
        }

        /// The one calendar of every row, when neither the zone nor the week start varies.
        pub(crate) fn constant(&self) -> Option<&Calendar> {
            (!self.varies_by_row).then_some(&self.calendar)
        }

        /// The calendar of a row whose settings are not NULL.
        pub(crate) fn at(&mut self, row: usize) -> Result<&Calendar> {
            if self.varies_by_row
                && !self.calendar_row.is_some_and(|built| {
                    self.zone.same_at(built, row) && self.week_start.same_at(built, row)
                })
            {
                let function = self.function;
                let tz = self
                    .zone
                    .at(row, |text| parse_zone(Stage::Execution, function, text))?;
                let week_start = self.week_start.at(row, |text| {
                    parse_week_start(Stage::Execution, function, text)
                })?;
                self.calendar = Calendar::new(tz, week_start);
                self.calendar_row = Some(row);
            }
            Ok(&self.calendar)
        }
    }

    /// Computes `value_at(row)` for every row that `nulls` marks valid, leaving the others NULL,
    /// into one buffer allocated up front.
    pub(crate) fn try_map_valid<O: ArrowPrimitiveType>(
        rows: usize,
        nulls: Option<NullBuffer>,
        mut value_at: impl FnMut(usize) -> Result<O::Native>,
    ) -> Result<PrimitiveArray<O>> {
        let mut values = vec![O::Native::default(); rows];
        match &nulls {
            None => {
                for (row, value) in values.iter_mut().enumerate() {
                    *value = value_at(row)?;
                }
            }
            Some(nulls) => {
                for row in nulls.valid_indices() {
                    values[row] = value_at(row)?;
                }
            }
        }
        Ok(PrimitiveArray::new(values.into(), nulls))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-computed values, checked against the system's `date`. Days since 1970-01-01:
    const DAY_2024_03_09: i64 = 19_791;
    const DAY_2024_03_10: i64 = 19_792; // a Sunday; Los Angeles springs forward
    const DAY_2024_03_11: i64 = 19_793;
    const DAY_2024_05_15: i64 = 19_858; // a Wednesday
    const DAY_2024_11_03: i64 = 20_030; // Los Angeles falls back
    // Instants, in seconds since the epoch, of local midnights in Los Angeles:
    const LA_MIDNIGHT_2024_03_09: i64 = 1_709_971_200; // 08:00 UTC, PST
    const LA_MIDNIGHT_2024_03_10: i64 = 1_710_057_600; // 08:00 UTC, PST
    const LA_MIDNIGHT_2024_03_11: i64 = 1_710_140_400; // 07:00 UTC, PDT: 23 hours later
    const LA_MIDNIGHT_2024_11_03: i64 = 1_730_617_200; // 07:00 UTC, PDT
    const LA_MIDNIGHT_2024_11_04: i64 = 1_730_707_200; // 08:00 UTC, PST: 25 hours later

    fn los_angeles() -> Calendar {
        Calendar::new(Tz::America__Los_Angeles, WeekStart::Monday)
    }

    fn utc(week_start: WeekStart) -> Calendar {
        Calendar::new(Tz::UTC, week_start)
    }

    #[test]
    fn period_names_parse_in_any_case() {
        assert_eq!("Week".parse::<Period>().unwrap(), Period::Week);
        assert_eq!("HOUR".parse::<Period>().unwrap(), Period::Hour);
        assert_eq!("quarter".parse::<Period>().unwrap(), Period::Quarter);
    }

    #[test]
    fn unknown_period_lists_the_valid_ones() {
        let error = "fortnight".parse::<Period>().unwrap_err().to_string();
        assert_eq!(
            error,
            "'fortnight' is not a period: use 'hour', 'day', 'week', 'month', 'quarter' or 'year'"
        );
    }

    #[test]
    fn civil_dates_convert_both_ways() {
        assert_eq!(civil_from_days(DAY_2024_03_10), (2024, 3, 10));
        assert_eq!(days_from_civil(2024, 3, 10), DAY_2024_03_10);
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(days_from_civil(1969, 12, 1), -31);
    }

    #[test]
    fn local_date_in_los_angeles_changes_at_each_local_midnight_across_dst() {
        let expected_date = |instant: i64| match instant {
            _ if instant < LA_MIDNIGHT_2024_03_09 => DAY_2024_03_09 - 1,
            _ if instant < LA_MIDNIGHT_2024_03_10 => DAY_2024_03_09,
            _ if instant < LA_MIDNIGHT_2024_03_11 => DAY_2024_03_10,
            _ => DAY_2024_03_11,
        };
        // Every 15 minutes from 2024-03-09 00:00 UTC to 2024-03-12 00:00 UTC, in time order (as
        // a log is, where the calendar's day cache does the work) and backwards.
        let instants = (1_709_942_400..1_710_201_600)
            .step_by(900)
            .collect::<Vec<i64>>();
        for order in [instants.clone(), instants.into_iter().rev().collect()] {
            let calendar = los_angeles();
            for instant in order {
                assert_eq!(
                    calendar.local_date(TimeValue::Instant(instant)),
                    expected_date(instant),
                    "at {instant}"
                );
            }
        }
    }

    #[test]
    fn dst_days_in_los_angeles_start_at_local_midnight_and_last_23_and_25_hours() {
        let calendar = los_angeles();
        assert_eq!(calendar.day_start(DAY_2024_03_10), LA_MIDNIGHT_2024_03_10);
        assert_eq!(calendar.day_start(DAY_2024_03_11), LA_MIDNIGHT_2024_03_11);
        assert_eq!(calendar.day_start(DAY_2024_11_03), LA_MIDNIGHT_2024_11_03);
        assert_eq!(
            calendar.day_start(DAY_2024_11_03 + 1),
            LA_MIDNIGHT_2024_11_04
        );
        assert_eq!(LA_MIDNIGHT_2024_03_11 - LA_MIDNIGHT_2024_03_10, 23 * 3_600);
        assert_eq!(LA_MIDNIGHT_2024_11_04 - LA_MIDNIGHT_2024_11_03, 25 * 3_600);
    }

    #[test]
    fn skipped_midnight_starts_the_day_at_the_first_valid_instant() {
        // Santiago moved from UTC-4 to UTC-3 at 2024-09-08 00:00 local, straight to 01:00, that is
        // at 04:00 UTC (1_725_768_000).
        let calendar = Calendar::new(Tz::America__Santiago, WeekStart::Monday);
        let day_2024_09_08 = 19_974;
        assert_eq!(calendar.day_start(day_2024_09_08), 1_725_768_000);
        assert_eq!(
            calendar.local_date(TimeValue::Instant(1_725_767_999)),
            day_2024_09_08 - 1
        );
        assert_eq!(
            calendar.local_date(TimeValue::Instant(1_725_768_000)),
            day_2024_09_08
        );
        assert_eq!(
            calendar.hour_start(TimeValue::Date(day_2024_09_08)),
            1_725_768_000
        );
    }

    #[test]
    fn local_hour_repeats_when_clocks_fall_back() {
        let calendar = los_angeles();
        // 01:30 PDT (08:30 UTC) is in the hour from 08:00 UTC; 01:30 PST (09:30 UTC) in the one
        // from 09:00 UTC.
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(1_730_622_600)),
            1_730_620_800
        );
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(1_730_626_200)),
            1_730_624_400
        );
    }

    #[test]
    fn hours_around_spring_forward_start_on_the_hour() {
        let calendar = los_angeles();
        // 01:30 PST is 09:30 UTC, its hour from 09:00 UTC; 03:30 PDT is 10:30 UTC, its hour from
        // 10:00 UTC, when the clocks jumped from 02:00 to 03:00.
        let nine_utc = LA_MIDNIGHT_2024_03_10 + 3_600;
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(nine_utc + 1_800)),
            nine_utc
        );
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(nine_utc + 5_400)),
            nine_utc + 3_600
        );
    }

    #[test]
    fn hour_after_a_half_hour_shift_starts_at_the_shift() {
        // Lord Howe Island moved from UTC+10:30 to UTC+11 at 2024-10-06 02:00 local (15:30 UTC
        // on 2024-10-05, 1_728_142_200): 02:00 became 02:30. 02:45 local (15:45 UTC) is in an
        // hour that began at the shift, not at 02:00 in the new offset, which never was.
        let calendar = Calendar::new(Tz::Australia__Lord_Howe, WeekStart::Monday);
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(1_728_142_200 + 900)),
            1_728_142_200
        );
    }

    #[test]
    fn hours_in_a_half_hour_zone_start_at_half_past_utc() {
        // 2024-01-01 10:10 UTC is 15:40 in Kolkata (UTC+5:30); its hour began at 15:00 local,
        // 09:30 UTC.
        let calendar = Calendar::new(Tz::Asia__Kolkata, WeekStart::Monday);
        assert_eq!(
            calendar.hour_start(TimeValue::Instant(1_704_103_800)),
            1_704_101_400
        );
    }

    #[test]
    fn first_days_of_weeks_months_quarters_and_years() {
        let monday = utc(WeekStart::Monday);
        let sunday = utc(WeekStart::Sunday);
        assert_eq!(
            monday.first_day(Period::Day, DAY_2024_05_15),
            DAY_2024_05_15
        );
        assert_eq!(monday.first_day(Period::Week, DAY_2024_05_15), 19_856); // Mon 2024-05-13
        assert_eq!(sunday.first_day(Period::Week, DAY_2024_05_15), 19_855); // Sun 2024-05-12
        assert_eq!(monday.first_day(Period::Month, DAY_2024_05_15), 19_844); // 2024-05-01
        assert_eq!(monday.first_day(Period::Quarter, DAY_2024_05_15), 19_814); // 2024-04-01
        assert_eq!(monday.first_day(Period::Year, DAY_2024_05_15), 19_723); // 2024-01-01
        // A Sunday is the last day of a Monday week and the first of a Sunday week.
        assert_eq!(
            monday.first_day(Period::Week, DAY_2024_03_10),
            DAY_2024_03_10 - 6
        );
        assert_eq!(
            sunday.first_day(Period::Week, DAY_2024_03_10),
            DAY_2024_03_10
        );
    }

    #[test]
    fn period_numbers_count_on_by_one_and_map_back_to_first_days() {
        let calendar = utc(WeekStart::Sunday);
        for period in [
            Period::Day,
            Period::Week,
            Period::Month,
            Period::Quarter,
            Period::Year,
        ] {
            // 1969-12-01 to 2030: before the epoch too.
            let mut start = calendar.first_day(period, -31);
            let like = start;
            let mut number = period.number(start);
            while start < 22_000 {
                assert_eq!(period.number(start), number, "{period:?} {start}");
                assert_eq!(
                    period.first_day_of(number, like),
                    start,
                    "{period:?} {number}"
                );
                start = crate::lifecycle_counts::next_period_start(period, start as i32)
                    .unwrap()
                    .into();
                number += 1;
            }
        }
        // 2024-03-01 is month 2024 * 12 + 2.
        assert_eq!(Period::Month.number(19_783), 24_290);
    }

    #[test]
    fn ordinals_count_calendar_periods_not_elapsed_time() {
        let monday = utc(WeekStart::Monday);
        let sunday = utc(WeekStart::Sunday);
        let diff = |calendar: &Calendar, period, start, end| {
            calendar.ordinal(period, TimeValue::Date(end))
                - calendar.ordinal(period, TimeValue::Date(start))
        };
        let (jan_31, feb_01, feb_29, mar_31, apr_01) = (19_753, 19_754, 19_782, 19_813, 19_814);
        assert_eq!(diff(&monday, Period::Month, jan_31, feb_01), 1);
        assert_eq!(diff(&monday, Period::Month, feb_01, feb_29), 0);
        assert_eq!(diff(&monday, Period::Month, feb_29, jan_31), -1);
        assert_eq!(diff(&monday, Period::Quarter, mar_31, apr_01), 1);
        assert_eq!(diff(&monday, Period::Quarter, jan_31, mar_31), 0);
        assert_eq!(diff(&monday, Period::Year, 19_722, 19_723), 1); // 2023-12-31 to 2024-01-01
        assert_eq!(diff(&monday, Period::Day, jan_31, feb_29), 29);
        // Sunday 2024-03-10 to Monday 2024-03-11.
        assert_eq!(
            diff(&monday, Period::Week, DAY_2024_03_10, DAY_2024_03_11),
            1
        );
        assert_eq!(
            diff(&sunday, Period::Week, DAY_2024_03_10, DAY_2024_03_11),
            0
        );
        assert_eq!(
            diff(&monday, Period::Hour, DAY_2024_03_10, DAY_2024_03_11),
            24
        );
    }

    #[test]
    fn hours_of_the_dst_days_in_los_angeles_number_23_and_25() {
        let calendar = los_angeles();
        let hours = |start: i64, end: i64| {
            calendar.ordinal(Period::Hour, TimeValue::Instant(end))
                - calendar.ordinal(Period::Hour, TimeValue::Instant(start))
        };
        assert_eq!(hours(LA_MIDNIGHT_2024_03_10, LA_MIDNIGHT_2024_03_11), 23);
        assert_eq!(hours(LA_MIDNIGHT_2024_11_03, LA_MIDNIGHT_2024_11_04), 25);
        let days = calendar.ordinal(Period::Day, TimeValue::Instant(LA_MIDNIGHT_2024_03_11))
            - calendar.ordinal(Period::Day, TimeValue::Instant(LA_MIDNIGHT_2024_03_10));
        assert_eq!(days, 1);
    }

    #[test]
    fn only_utc_and_etc_zones_have_a_fixed_offset() {
        assert_eq!(fixed_offset(Tz::UTC), Some(0));
        assert_eq!(fixed_offset(Tz::Zulu), Some(0));
        assert_eq!(fixed_offset(Tz::Etc__GMTPlus3), Some(-3 * 3_600));
        assert_eq!(fixed_offset(Tz::Europe__Istanbul), None);
    }

    #[test]
    fn fixed_offset_zone_dates_follow_the_offset() {
        // Etc/GMT-3 is UTC+3: 21:00 UTC on 2024-03-09 is already 2024-03-10.
        let calendar = Calendar::new(Tz::Etc__GMTMinus3, WeekStart::Monday);
        let nine_pm_utc = DAY_2024_03_10 * 86_400 - 3 * 3_600;
        assert_eq!(
            calendar.local_date(TimeValue::Instant(nine_pm_utc - 1)),
            DAY_2024_03_09
        );
        assert_eq!(
            calendar.local_date(TimeValue::Instant(nine_pm_utc)),
            DAY_2024_03_10
        );
        assert_eq!(calendar.day_start(DAY_2024_03_10), nine_pm_utc);
    }

    #[test]
    fn instants_before_1970_fall_on_earlier_dates() {
        let calendar = utc(WeekStart::Monday);
        let last_second_of_1969 = TimeValue::Instant(-1);
        assert_eq!(calendar.local_date(last_second_of_1969), -1);
        assert_eq!(calendar.first_day(Period::Month, -1), -31); // 1969-12-01
        assert_eq!(calendar.hour_start(last_second_of_1969), -3_600);
    }

    #[test]
    fn values_beyond_250000_years_are_refused() {
        assert_eq!(TimeValue::instant(i64::MAX), None);
        assert_eq!(TimeValue::date(i64::from(i32::MIN)), None);
        assert_eq!(TimeValue::instant(-1), Some(TimeValue::Instant(-1)));
    }
}
