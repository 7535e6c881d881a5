//! Accounts, their users' signup times, and each paying account's billing history.
//!
//! Everything the other tables depend on about an account (its plan, country, members, when it
//! pays and when it churns) is decided here, from the `accounts` stream alone, before any event
//! is drawn: the events then follow the account (activity fades before a churn), and
//! `subscriptions` and `invoices` are two views of the same list of charges, so that spreading the
//! invoices over their billing intervals reproduces the monthly MRR exactly.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::GenerateError;
use super::calendar::{Calendar, DAY_US, HOUR_US, SECOND_US};
use super::parquet_file::{Layout, write_parquet};
use super::random::{Draw, table_seed};
use super::vocabulary::{
    COUNTRIES, COUNTRY_WEIGHTS, CSMS, ENTERPRISE, ENTERPRISE_SEGMENT, FREE, HOUR_WEIGHTS,
    MID_MARKET, PLAN_WEIGHTS, PLANS, PRO, SEGMENTS, SMB, STARTER,
};

/// Signups per day grow linearly over the range, ending this many times higher than they start.
const SIGNUP_GROWTH: f64 = 4.0;
/// Chance that a signup drawn for a Saturday or Sunday is kept (the rest are redrawn).
const WEEKEND_SIGNUP_KEEP: f64 = 0.35;
/// Mean delay between an account's creation and a teammate's signup.
const TEAMMATE_JOIN_MEAN_DAYS: f64 = 10.0;
/// Teammates join at least this long after the owner, so the owner's invite can come first.
const TEAMMATE_MIN_DELAY_US: i64 = 120 * SECOND_US;
/// Accounts are created at least this long before the range ends, so their first sessions fit.
const LAST_CREATION_BEFORE_END_US: i64 = 2 * HOUR_US;

/// Monthly list price per seat in cents, by plan (free pays nothing).
const SEAT_PRICE_CENTS: [i64; 4] = [0, 1_500, 4_500, 9_000];
/// Enterprise contracts carry a platform fee on top of the seats.
const ENTERPRISE_PLATFORM_FEE_CENTS: i64 = 50_000;
/// Yearly contracts get 15% off the monthly price.
const YEARLY_PRICE_PERCENT: i64 = 85;
/// Share of accounts of each plan that pay yearly.
const YEARLY_SHARE: [f64; 4] = [0.0, 0.15, 0.35, 0.60];
/// Chance that a monthly account cancels at a month's renewal, by plan.
const MONTHLY_CHURN: [f64; 4] = [0.0, 0.05, 0.035, 0.02];
/// Chance that a yearly account does not renew at the end of its term, by plan.
const YEARLY_CHURN: [f64; 4] = [0.0, 0.25, 0.15, 0.10];
/// Chances, at each renewal, of adding seats or dropping one.
const EXPANSION: f64 = 0.07;
const CONTRACTION: f64 = 0.04;
/// No account cancels within its first months: its churn then shows in usage that fades over
/// the months before, not in an onboarding that never happened.
const MIN_TENURE_BEFORE_CHURN_US: i64 = 90 * DAY_US;
/// Share of churned accounts that pay again after a gap (mean gap in months below, plus one).
const REACTIVATION: f64 = 0.30;
const REACTIVATION_GAP_MEAN_MONTHS: f64 = 1.5;
/// Share of pro and enterprise accounts that later buy an add-on, billed monthly as its own line.
const ADD_ON: f64 = 0.12;
const ADD_ON_PRICES_CENTS: [i64; 2] = [9_900, 24_900];

/// One payment: a month's (or a year's) subscription line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Charge {
    /// Index of the account (account_id - 1).
    pub(crate) account: u32,
    /// Month index (see `Calendar`) the payment is made in and its interval starts in.
    pub(crate) month: u32,
    /// When it was paid, for new business and reactivations; renewals are paid on the first of
    /// the month, at a time drawn by the invoices table.
    pub(crate) paid_at_us: Option<i64>,
    pub(crate) yearly: bool,
    /// Monthly recurring revenue of this line in cents; a yearly invoice is 12 × this.
    pub(crate) mrr_cents: i64,
}

/// A stretch without a subscription: from a churn to a reactivation (or for good).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lapse {
    pub(crate) ends_subscription_us: i64,
    pub(crate) resumes_us: i64,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Account {
    pub(crate) created_us: i64,
    pub(crate) plan: u8,
    pub(crate) segment: u8,
    pub(crate) country: u8,
    pub(crate) csm: Option<u8>,
    /// Index of the owner (user_id - 1); the members are the next `members` users.
    pub(crate) first_user: u32,
    pub(crate) members: u32,
    /// Range of this account's lapses in `AccountFacts::lapses`.
    lapses_from: u32,
    lapses_to: u32,
}

/// All account facts, indexed by account (account_id - 1) and by user (user_id - 1).
#[derive(Debug)]
pub(crate) struct AccountFacts {
    pub(crate) accounts: Vec<Account>,
    /// Sorted by account, then in payment order.
    pub(crate) charges: Vec<Charge>,
    lapses: Vec<Lapse>,
    pub(crate) user_account: Vec<u32>,
    pub(crate) user_signup_us: Vec<i64>,
}

impl AccountFacts {
    pub(crate) fn lapses(&self, account: &Account) -> &[Lapse] {
        &self.lapses[account.lapses_from as usize..account.lapses_to as usize]
    }
}

/// An account as drawn, before accounts are numbered in creation order.
struct Draft {
    account: Account,
    /// Signup of each member, the owner first.
    signups_us: Vec<i64>,
    charges: Vec<Charge>,
    lapses: Vec<Lapse>,
}

/// Draws accounts until every one of `users` users belongs to one.
pub(crate) fn draw_accounts(calendar: &Calendar, users: u32, seed: u64) -> AccountFacts {
    let stream = table_seed(seed, "accounts");
    let mut drafts = Vec::new();
    let mut assigned: u32 = 0;
    let mut entity: u64 = 0;
    while assigned < users {
        let mut draw = Draw::for_entity(stream, entity);
        let draft = draw_account(&mut draw, calendar, users - assigned);
        assigned += draft.account.members;
        drafts.push(draft);
        entity += 1;
    }
    // Number accounts (and so users) in creation order, as a product's database would.
    drafts.sort_by_key(|draft| draft.account.created_us);

    let mut facts = AccountFacts {
        accounts: Vec::with_capacity(drafts.len()),
        charges: Vec::new(),
        lapses: Vec::new(),
        user_account: Vec::with_capacity(users as usize),
        user_signup_us: Vec::with_capacity(users as usize),
    };
    for (index, draft) in drafts.into_iter().enumerate() {
        let index = index as u32;
        let mut account = draft.account;
        account.first_user = facts.user_signup_us.len() as u32;
        account.lapses_from = facts.lapses.len() as u32;
        facts.lapses.extend(draft.lapses);
        account.lapses_to = facts.lapses.len() as u32;
        facts
            .charges
            .extend(draft.charges.into_iter().map(|charge| Charge {
                account: index,
                ..charge
            }));
        facts
            .user_account
            .extend(std::iter::repeat_n(index, draft.signups_us.len()));
        facts.user_signup_us.extend(draft.signups_us);
        facts.accounts.push(account);
    }
    facts
}

fn draw_account(draw: &mut Draw, calendar: &Calendar, users_left: u32) -> Draft {
    let plan = draw.weighted(&PLAN_WEIGHTS) as u8;
    // Bigger plans come with bigger teams: mean sizes 2.2, 3, 5 and 12.
    let members = match plan {
        FREE => 1 + draw.geometric(1.2),
        STARTER => 1 + draw.geometric(2.0),
        PRO => 2 + draw.geometric(3.0),
        _ => 4 + draw.geometric(8.0),
    }
    .min(users_left);
    let segment = match plan {
        ENTERPRISE => ENTERPRISE_SEGMENT,
        PRO if members >= 6 || draw.chance(0.3) => MID_MARKET,
        _ => SMB,
    };
    let csm = match segment {
        ENTERPRISE_SEGMENT => Some(draw.below(CSMS.len() as u64) as u8),
        MID_MARKET if draw.chance(0.5) => Some(draw.below(CSMS.len() as u64) as u8),
        _ => None,
    };
    let country = draw.weighted(&COUNTRY_WEIGHTS) as u8;
    let created_us = draw_creation(draw, calendar);

    let end_us = calendar.end_us();
    let mut signups_us = Vec::with_capacity(members as usize);
    signups_us.push(created_us);
    for _ in 1..members {
        let delay_us = TEAMMATE_MIN_DELAY_US
            + (draw.exponential(TEAMMATE_JOIN_MEAN_DAYS) * DAY_US as f64) as i64;
        let joined_us = if created_us + delay_us < end_us {
            created_us + delay_us
        } else {
            // Too late for the range: join some time before it ends instead, so every user exists.
            let room_us = end_us - created_us - TEAMMATE_MIN_DELAY_US;
            created_us + TEAMMATE_MIN_DELAY_US / 2 + (draw.unit() * room_us as f64) as i64
        };
        signups_us.push(joined_us);
    }

    let (charges, lapses) = if plan == FREE {
        (Vec::new(), Vec::new())
    } else {
        let seats = if plan == ENTERPRISE {
            members + draw.below(u64::from(members) * 2) as u32
        } else {
            members
        };
        draw_billing(draw, calendar, plan, seats, created_us)
    };
    Draft {
        account: Account {
            created_us,
            plan,
            segment,
            country,
            csm,
            first_user: 0,
            members,
            lapses_from: 0,
            lapses_to: 0,
        },
        signups_us,
        charges,
        lapses,
    }
}

/// A creation time: days weighted by linear growth and against weekends, hours by a working day.
fn draw_creation(draw: &mut Draw, calendar: &Calendar) -> i64 {
    let days = calendar.days();
    let day = loop {
        // Inverse CDF of the density 1 + g·x on [0, 1), with g = SIGNUP_GROWTH - 1.
        let g = SIGNUP_GROWTH - 1.0;
        let x = ((1.0 + 2.0 * g * draw.unit() * (1.0 + g / 2.0)).sqrt() - 1.0) / g;
        let day = ((x * f64::from(days)) as u32).min(days - 1);
        if !calendar.is_weekend(day) || draw.chance(WEEKEND_SIGNUP_KEEP) {
            break day;
        }
    };
    let hour = draw.weighted(&HOUR_WEIGHTS) as i64;
    let created_us =
        calendar.day_start_us(day) + hour * HOUR_US + draw.below(HOUR_US as u64) as i64;
    created_us.min(calendar.end_us() - LAST_CREATION_BEFORE_END_US)
}

fn monthly_price_cents(plan: u8, seats: u32, yearly: bool) -> i64 {
    let fee = if plan == ENTERPRISE {
        ENTERPRISE_PLATFORM_FEE_CENTS
    } else {
        0
    };
    let list = SEAT_PRICE_CENTS[plan as usize] * i64::from(seats) + fee;
    if yearly {
        list * YEARLY_PRICE_PERCENT / 100
    } else {
        list
    }
}

/// Month by month: renewals with expansion and contraction, churn (monthly accounts at any
/// renewal, yearly ones only at the end of a term), reactivation after a gap, and add-ons.
fn draw_billing(
    draw: &mut Draw,
    calendar: &Calendar,
    plan: u8,
    seats: u32,
    created_us: i64,
) -> (Vec<Charge>, Vec<Lapse>) {
    let plan_index = plan as usize;
    let yearly = draw.chance(YEARLY_SHARE[plan_index]);
    let created_month = calendar.month_of(created_us) as u32;
    let months = calendar.months() as u32;
    let add_on = (plan >= PRO && draw.chance(ADD_ON)).then(|| {
        let starts = created_month + 1 + draw.geometric(2.0);
        (
            starts,
            ADD_ON_PRICES_CENTS[draw.below(ADD_ON_PRICES_CENTS.len() as u64) as usize],
        )
    });

    let mut seats = seats;
    let mut charges = vec![Charge {
        account: 0,
        month: created_month,
        paid_at_us: Some(created_us),
        yearly,
        mrr_cents: monthly_price_cents(plan, seats, yearly),
    }];
    let mut lapses = Vec::new();
    let mut term_start = created_month;
    let mut active = true;
    // The add-on lasts until the account first churns.
    let mut add_on_live = add_on.is_some();
    let mut reactivation_month = None;
    for month in created_month + 1..months {
        if active {
            let renewal_due = !yearly || month == term_start + 12;
            if renewal_due {
                let churn = if yearly {
                    YEARLY_CHURN[plan_index]
                } else {
                    MONTHLY_CHURN[plan_index]
                };
                let tenured = calendar.month_start_us(month as usize) - created_us
                    >= MIN_TENURE_BEFORE_CHURN_US;
                if tenured && draw.chance(churn) {
                    active = false;
                    add_on_live = false;
                    lapses.push(Lapse {
                        ends_subscription_us: calendar.month_start_us(month as usize),
                        resumes_us: i64::MAX,
                    });
                    reactivation_month = draw
                        .chance(REACTIVATION)
                        .then(|| month + 1 + draw.geometric(REACTIVATION_GAP_MEAN_MONTHS));
                    continue;
                }
                if draw.chance(EXPANSION) {
                    seats += 1 + draw.below(3) as u32;
                } else if seats > 1 && draw.chance(CONTRACTION) {
                    seats -= 1;
                }
                charges.push(Charge {
                    account: 0,
                    month,
                    paid_at_us: None,
                    yearly,
                    mrr_cents: monthly_price_cents(plan, seats, yearly),
                });
                term_start = month;
            }
            if let Some((_, price)) = add_on.filter(|&(starts, _)| add_on_live && month >= starts) {
                charges.push(Charge {
                    account: 0,
                    month,
                    paid_at_us: None,
                    yearly: false,
                    mrr_cents: price,
                });
            }
        } else if reactivation_month == Some(month) {
            // Pays again on some day of the month that lies inside the range.
            let from_us = calendar.month_start_us(month as usize);
            let to_us = calendar
                .month_start_us(month as usize + 1)
                .min(calendar.end_us());
            let paid_us = from_us + draw.below((to_us - from_us) as u64) as i64;
            seats = seats.saturating_sub(draw.below(2) as u32).max(1);
            charges.push(Charge {
                account: 0,
                month,
                paid_at_us: Some(paid_us),
                yearly,
                mrr_cents: monthly_price_cents(plan, seats, yearly),
            });
            if let Some(lapse) = lapses.last_mut() {
                lapse.resumes_us = paid_us;
            }
            active = true;
            term_start = month;
        }
    }
    (charges, lapses)
}

/// Writes `accounts.parquet`, sorted by account_id (which is also creation order).
pub(crate) fn write_accounts(path: &Path, facts: &AccountFacts) -> Result<u64, GenerateError> {
    let accounts = &facts.accounts;
    let ids: Int64Array = (1..=accounts.len() as i64).collect();
    let created: TimestampMicrosecondArray = accounts
        .iter()
        .map(|account| Some(account.created_us))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let plan: StringArray = accounts
        .iter()
        .map(|account| Some(PLANS[account.plan as usize]))
        .collect();
    let segment: StringArray = accounts
        .iter()
        .map(|account| Some(SEGMENTS[account.segment as usize]))
        .collect();
    let country: StringArray = accounts
        .iter()
        .map(|account| Some(COUNTRIES[account.country as usize]))
        .collect();
    let csm: StringArray = accounts
        .iter()
        .map(|account| account.csm.map(|csm| CSMS[csm as usize]))
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(created),
        Arc::new(plan),
        Arc::new(segment),
        Arc::new(country),
        Arc::new(csm),
    ];
    let batch = RecordBatch::try_new(accounts_schema(), columns).map_err(|source| {
        GenerateError::Arrow {
            path: path.to_path_buf(),
            source,
        }
    })?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[0],
            delta_encoded: &["account_id", "created_at"],
        },
    )?;
    Ok(accounts.len() as u64)
}

fn accounts_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, false),
        Field::new(
            "created_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("plan", DataType::Utf8, false),
        Field::new("segment", DataType::Utf8, false),
        Field::new("country", DataType::Utf8, false),
        Field::new("csm", DataType::Utf8, true),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn calendar() -> Calendar {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
        Calendar::new(start, 365).expect("calendar")
    }

    #[test]
    fn every_user_belongs_to_exactly_one_account_in_creation_order() {
        let facts = draw_accounts(&calendar(), 5_000, 7);
        assert_eq!(facts.user_account.len(), 5_000);
        let members: u32 = facts.accounts.iter().map(|account| account.members).sum();
        assert_eq!(members, 5_000);
        assert!(
            facts
                .accounts
                .windows(2)
                .all(|pair| pair[0].created_us <= pair[1].created_us)
        );
        for (index, account) in facts.accounts.iter().enumerate() {
            assert_eq!(
                facts.user_account[account.first_user as usize],
                index as u32
            );
            assert_eq!(
                facts.user_signup_us[account.first_user as usize],
                account.created_us
            );
        }
    }

    #[test]
    fn teams_average_three_to_four_users() {
        let facts = draw_accounts(&calendar(), 100_000, 7);
        let mean = 100_000.0 / facts.accounts.len() as f64;
        assert!((3.0..=4.0).contains(&mean), "mean team size {mean}");
    }

    #[test]
    fn later_half_of_the_range_has_more_signups_than_the_first() {
        let calendar = calendar();
        let facts = draw_accounts(&calendar, 20_000, 7);
        let middle = calendar.day_start_us(calendar.days() / 2);
        let late = facts
            .user_signup_us
            .iter()
            .filter(|&&signup| signup >= middle)
            .count();
        assert!(late > 20_000 * 6 / 10, "late signups {late}");
        assert!(
            facts
                .user_signup_us
                .iter()
                .all(|&signup| signup < calendar.end_us())
        );
    }

    #[test]
    fn yearly_charges_keep_their_price_for_the_whole_term() {
        let facts = draw_accounts(&calendar(), 20_000, 9);
        for pair in facts.charges.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            if first.account == next.account && first.yearly && next.yearly {
                assert!(
                    next.month >= first.month + 12,
                    "yearly term cut short: {first:?} then {next:?}"
                );
            }
        }
        assert!(facts.charges.iter().any(|charge| charge.yearly));
        assert!(facts.charges.iter().all(|charge| charge.mrr_cents > 0));
    }
}
