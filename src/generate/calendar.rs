//! The generated time range as days and months in UTC microseconds.
//!
//! Events are bucketed by UTC day (the `date=` partitions) and billing by calendar month, so the
//! generator needs fast day and month arithmetic on raw timestamps. Months are those that overlap
//! the range: the first is the start date's month, the last the month of the final day.

use chrono::{Datelike, NaiveDate};

pub(crate) const SECOND_US: i64 = 1_000_000;
pub(crate) const HOUR_US: i64 = 3_600 * SECOND_US;
pub(crate) const DAY_US: i64 = 24 * HOUR_US;

/// The range [start, start + days) in UTC.
#[derive(Debug, Clone)]
pub(crate) struct Calendar {
    start_date: NaiveDate,
    days: u32,
    start_us: i64,
    /// Weekday of the first day, 0 = Monday.
    first_weekday: u32,
    /// Start of each month that overlaps the range, plus the start of the month after the last.
    month_starts_us: Vec<i64>,
    /// First day of each month that overlaps the range.
    month_first_days: Vec<NaiveDate>,
}

/// Midnight UTC of `date` in microseconds since the Unix epoch.
pub(crate) fn date_start_us(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map_or(0, |midnight| midnight.and_utc().timestamp_micros())
}

/// The first day of the month `months_after` months after the month of `date`.
fn month_after(date: NaiveDate, months_after: u32) -> Option<NaiveDate> {
    let month0 = date.year() * 12 + date.month0() as i32 + months_after as i32;
    NaiveDate::from_ymd_opt(month0.div_euclid(12), month0.rem_euclid(12) as u32 + 1, 1)
}

impl Calendar {
    /// The calendar for `days` days from `start`, or None when the range leaves chrono's dates.
    pub(crate) fn new(start_date: NaiveDate, days: u32) -> Option<Self> {
        let last_day =
            start_date.checked_add_days(chrono::Days::new(u64::from(days).checked_sub(1)?))?;
        // One date past the end must exist too, for the end of the range and of the last month.
        last_day.succ_opt()?;
        let mut month_first_days = Vec::new();
        let mut month = month_after(start_date, 0)?;
        while month <= last_day {
            month_first_days.push(month);
            month = month_after(month, 1)?;
        }
        let mut month_starts_us: Vec<i64> = month_first_days
            .iter()
            .map(|&day| date_start_us(day))
            .collect();
        month_starts_us.push(date_start_us(month));
        Some(Self {
            start_date,
            days,
            start_us: date_start_us(start_date),
            first_weekday: start_date.weekday().num_days_from_monday(),
            month_starts_us,
            month_first_days,
        })
    }

    pub(crate) fn days(&self) -> u32 {
        self.days
    }

    pub(crate) fn start_us(&self) -> i64 {
        self.start_us
    }

    /// The first instant after the range.
    pub(crate) fn end_us(&self) -> i64 {
        self.start_us + i64::from(self.days) * DAY_US
    }

    pub(crate) fn day_start_us(&self, day: u32) -> i64 {
        self.start_us + i64::from(day) * DAY_US
    }

    /// The day index of a timestamp inside the range.
    pub(crate) fn day_of(&self, ts_us: i64) -> u32 {
        ((ts_us - self.start_us).div_euclid(DAY_US)) as u32
    }

    pub(crate) fn date_of_day(&self, day: u32) -> NaiveDate {
        self.start_date + chrono::Days::new(u64::from(day))
    }

    /// True for Saturday and Sunday.
    pub(crate) fn is_weekend(&self, day: u32) -> bool {
        (self.first_weekday + day) % 7 >= 5
    }

    /// Number of months that overlap the range.
    pub(crate) fn months(&self) -> usize {
        self.month_first_days.len()
    }

    /// Start of month `month` (an index into the overlapping months; `months()` gives the start
    /// of the month after the range).
    pub(crate) fn month_start_us(&self, month: usize) -> i64 {
        self.month_starts_us[month]
    }

    pub(crate) fn month_first_day(&self, month: usize) -> NaiveDate {
        self.month_first_days[month]
    }

    /// The month index of a timestamp inside the range.
    pub(crate) fn month_of(&self, ts_us: i64) -> usize {
        self.month_starts_us
            .partition_point(|&start| start <= ts_us)
            - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid test date")
    }

    #[test]
    fn a_leap_year_from_new_year_spans_twelve_months_ending_on_december_30() {
        let calendar = Calendar::new(date(2024, 1, 1), 365).expect("calendar");
        assert_eq!(calendar.months(), 12);
        assert_eq!(calendar.date_of_day(364), date(2024, 12, 30));
        assert_eq!(calendar.month_first_day(11), date(2024, 12, 1));
        assert_eq!(calendar.end_us() - calendar.start_us(), 365 * DAY_US);
    }

    #[test]
    fn months_that_only_overlap_the_range_are_included() {
        let calendar = Calendar::new(date(2024, 1, 20), 20).expect("calendar");
        assert_eq!(calendar.months(), 2);
        assert_eq!(calendar.month_first_day(0), date(2024, 1, 1));
        assert_eq!(calendar.month_start_us(2), date_start_us(date(2024, 3, 1)));
    }

    #[test]
    fn timestamps_map_to_their_day_and_month() {
        let calendar = Calendar::new(date(2024, 1, 1), 60).expect("calendar");
        let feb_3_noon = date_start_us(date(2024, 2, 3)) + 12 * HOUR_US;
        assert_eq!(calendar.day_of(feb_3_noon), 33);
        assert_eq!(calendar.month_of(feb_3_noon), 1);
        assert_eq!(calendar.month_of(calendar.start_us()), 0);
        assert_eq!(calendar.month_of(date_start_us(date(2024, 2, 1)) - 1), 0);
    }

    #[test]
    fn weekends_are_saturday_and_sunday() {
        // 2024-01-01 is a Monday.
        let calendar = Calendar::new(date(2024, 1, 1), 14).expect("calendar");
        let weekend: Vec<u32> = (0..14).filter(|&day| calendar.is_weekend(day)).collect();
        assert_eq!(weekend, vec![5, 6, 12, 13]);
    }

    #[test]
    fn an_empty_range_has_no_calendar() {
        assert!(Calendar::new(date(2024, 1, 1), 0).is_none());
    }
}
