//! `subscriptions` and `invoices`: two views of the accounts' charges.
//!
//! A monthly charge is one subscription row and one invoice of its MRR; a yearly charge is an
//! invoice of 12 × MRR at the start of its term and one subscription row for each month of the
//! term that falls inside the range. So spreading every invoice over its interval gives back the
//! subscriptions exactly, which is what revenue reconciliation expects of real billing data.

use std::path::Path;
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{
    ArrayRef, Date32Array, Decimal128Array, Int64Array, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use super::GenerateError;
use super::accounts::{AccountFacts, Charge};
use super::calendar::{Calendar, HOUR_US};
use super::parquet_file::{Layout, write_parquet};
use super::random::{Draw, table_seed};
use super::vocabulary::PLANS;

/// Renewals are charged in the first hours of the month's first day.
const RENEWAL_WINDOW_US: i64 = 6 * HOUR_US;
const MONEY_PRECISION: u8 = 12;
const MONEY_SCALE: i8 = 2;

fn money_type() -> DataType {
    DataType::Decimal128(MONEY_PRECISION, MONEY_SCALE)
}

fn money_array(cents: Vec<i128>) -> Result<Decimal128Array, ArrowError> {
    Decimal128Array::from(cents).with_precision_and_scale(MONEY_PRECISION, MONEY_SCALE)
}

fn days_since_epoch(date: NaiveDate) -> i32 {
    date.signed_duration_since(NaiveDate::default()).num_days() as i32
}

/// Writes `subscriptions.parquet`: one row per account, month and subscription line, sorted by
/// month then account_id.
pub(crate) fn write_subscriptions(
    path: &Path,
    calendar: &Calendar,
    facts: &AccountFacts,
) -> Result<u64, GenerateError> {
    let months = calendar.months() as u32;
    // (month, account, mrr), in charge order so that equal keys keep a stable order.
    let mut rows: Vec<(u32, u32, i64)> = Vec::new();
    for charge in &facts.charges {
        let covered = if charge.yearly { 12 } else { 1 };
        for month in charge.month..(charge.month + covered).min(months) {
            rows.push((month, charge.account, charge.mrr_cents));
        }
    }
    rows.sort_by_key(|&(month, account, _)| (month, account));

    let accounts: Int64Array = rows
        .iter()
        .map(|&(_, account, _)| Some(i64::from(account) + 1))
        .collect();
    let month_days: Vec<i32> = (0..calendar.months())
        .map(|month| days_since_epoch(calendar.month_first_day(month)))
        .collect();
    let month_column: Date32Array = rows
        .iter()
        .map(|&(month, _, _)| Some(month_days[month as usize]))
        .collect();
    let plans: StringArray = rows
        .iter()
        .map(|&(_, account, _)| Some(PLANS[facts.accounts[account as usize].plan as usize]))
        .collect();
    let arrow_error = |source| GenerateError::Arrow {
        path: path.to_path_buf(),
        source,
    };
    let mrr = money_array(
        rows.iter()
            .map(|&(_, _, cents)| i128::from(cents))
            .collect(),
    )
    .map_err(arrow_error)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, false),
        Field::new("month", DataType::Date32, false),
        Field::new("mrr", money_type(), false),
        Field::new("plan", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(accounts),
        Arc::new(month_column),
        Arc::new(mrr),
        Arc::new(plans),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(arrow_error)?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[1, 0],
            delta_encoded: &["month"],
        },
    )?;
    Ok(rows.len() as u64)
}

/// When a charge was paid: its own time for new business and reactivations, otherwise early on
/// the first of its month, drawn from the account's stream in the `invoices` table.
fn paid_at_us(charge: &Charge, calendar: &Calendar, draw: &mut Draw) -> i64 {
    match charge.paid_at_us {
        Some(paid_at_us) => paid_at_us,
        None => {
            calendar.month_start_us(charge.month as usize)
                + draw.below(RENEWAL_WINDOW_US as u64) as i64
        }
    }
}

/// Writes `invoices.parquet`: one row per charge, sorted by paid_at then account_id.
pub(crate) fn write_invoices(
    path: &Path,
    calendar: &Calendar,
    facts: &AccountFacts,
    seed: u64,
) -> Result<u64, GenerateError> {
    let stream = table_seed(seed, "invoices");
    // (paid_at, account, amount in cents, yearly)
    let mut rows: Vec<(i64, u32, i64, bool)> = Vec::with_capacity(facts.charges.len());
    // Charges come grouped by account: one stream per account, drawn in payment order.
    for account_charges in facts.charges.chunk_by(|a, b| a.account == b.account) {
        let account = account_charges[0].account;
        let mut draw = Draw::for_entity(stream, u64::from(account) + 1);
        for charge in account_charges {
            let amount = if charge.yearly {
                12 * charge.mrr_cents
            } else {
                charge.mrr_cents
            };
            rows.push((
                paid_at_us(charge, calendar, &mut draw),
                account,
                amount,
                charge.yearly,
            ));
        }
    }
    rows.sort_by_key(|&(paid_at, account, _, _)| (paid_at, account));

    let accounts: Int64Array = rows
        .iter()
        .map(|&(_, account, _, _)| Some(i64::from(account) + 1))
        .collect();
    let paid_at: TimestampMicrosecondArray = rows
        .iter()
        .map(|&(paid_at, _, _, _)| Some(paid_at))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let intervals: StringArray = rows
        .iter()
        .map(|&(_, _, _, yearly)| Some(if yearly { "year" } else { "month" }))
        .collect();
    let arrow_error = |source| GenerateError::Arrow {
        path: path.to_path_buf(),
        source,
    };
    let amounts = money_array(
        rows.iter()
            .map(|&(_, _, cents, _)| i128::from(cents))
            .collect(),
    )
    .map_err(arrow_error)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, false),
        Field::new(
            "paid_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("amount", money_type(), false),
        Field::new("billing_interval", DataType::Utf8, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(accounts),
        Arc::new(paid_at),
        Arc::new(amounts),
        Arc::new(intervals),
    ];
    let batch = RecordBatch::try_new(schema, columns).map_err(arrow_error)?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[1, 0],
            delta_encoded: &["paid_at"],
        },
    )?;
    Ok(rows.len() as u64)
}
