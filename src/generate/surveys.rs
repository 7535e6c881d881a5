//! The `surveys` table: the users' answers to NPS and CES surveys.
//!
//! Customer-success teams join survey answers to usage, so the answers follow what drives the
//! events: a user answers from the healthy weights with the chance of its account's activity at
//! the time of the answer (`events::account_activity`: 1 for a healthy account, fading over the
//! days before a churn, near 0 while lapsed), cut to a quarter once the user itself has stopped
//! using the product (the lifetime of its `events::Profile`), and otherwise from the fading
//! weights. Promoters are therefore the users who keep using the product, and accounts that churn
//! answer lower before they go. The profile is read by replaying the user's first draws of the
//! events stream, which leaves that stream as it is; every draw of this table comes from the
//! user's own generator of the `surveys` stream, which no other table reads, so that adding the
//! table moved no draw of the others.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::GenerateError;
use super::accounts::AccountFacts;
use super::calendar::{Calendar, DAY_US};
use super::events::{account_activity, user_profile};
use super::parquet_file::{Layout, write_parquet};
use super::random::{Draw, table_seed};

/// The surveys: their `kind`, the share of users who answer one, and the weights of the answers
/// from the scale's lowest, for users of a healthy account and for the others. NPS answers run
/// from 0 to 10, CES answers from 1 ("very difficult") to 7 ("very easy").
struct Survey {
    kind: &'static str,
    lowest: i64,
    share: f64,
    healthy: &'static [u32],
    fading: &'static [u32],
}

const SURVEYS: [Survey; 2] = [
    Survey {
        kind: "nps",
        lowest: 0,
        share: 0.35,
        healthy: &[1, 1, 1, 2, 2, 3, 5, 10, 18, 30, 27],
        fading: &[8, 7, 9, 11, 11, 12, 12, 10, 8, 4, 2],
    },
    Survey {
        kind: "ces",
        lowest: 1,
        share: 0.25,
        healthy: &[1, 2, 4, 8, 15, 35, 35],
        fading: &[12, 18, 22, 20, 14, 8, 6],
    },
];

/// The chance of the healthy weights is cut to this share once a user has stopped using the
/// product.
const GONE_USER_HEALTH: f64 = 0.25;
/// A user is surveyed at the earliest this long after signing up, once it knows the product.
const FIRST_SURVEY_AFTER_SIGNUP_US: i64 = 14 * DAY_US;

struct Answer {
    answered_us: i64,
    user: u32,
    survey: usize,
    score: i64,
}

/// Writes `surveys.parquet`, sorted by answered_at, then user_id.
pub(crate) fn write_surveys(
    path: &Path,
    calendar: &Calendar,
    facts: &AccountFacts,
    seed: u64,
) -> Result<u64, GenerateError> {
    let stream = table_seed(seed, "surveys");
    let events_stream = table_seed(seed, "events");
    let end_us = calendar.end_us();
    let mut answers = vec![];
    for (user, &signup_us) in facts.user_signup_us.iter().enumerate() {
        let mut draw = Draw::for_entity(stream, user as u64 + 1);
        let account = &facts.accounts[facts.user_account[user] as usize];
        let lifetime_days = user_profile(events_stream, user as u32).1.lifetime_days;
        // Infinite for users who never leave.
        let active_until_us = signup_us as f64 + (lifetime_days + 1.0) * DAY_US as f64;
        for (index, survey) in SURVEYS.iter().enumerate() {
            let earliest_us = signup_us + FIRST_SURVEY_AFTER_SIGNUP_US;
            if !draw.chance(survey.share) || earliest_us >= end_us {
                continue;
            }
            let answered_us = earliest_us + draw.below((end_us - earliest_us) as u64) as i64;
            let mut health = account_activity(facts.lapses(account), answered_us);
            if answered_us as f64 > active_until_us {
                health *= GONE_USER_HEALTH;
            }
            let weights = if draw.chance(health) {
                survey.healthy
            } else {
                survey.fading
            };
            answers.push(Answer {
                answered_us,
                user: user as u32,
                survey: index,
                score: survey.lowest + draw.weighted(weights) as i64,
            });
        }
    }
    answers.sort_by_key(|answer| (answer.answered_us, answer.user, answer.survey));

    let accounts: Int64Array = answers
        .iter()
        .map(|answer| i64::from(facts.user_account[answer.user as usize]) + 1)
        .collect();
    let users: Int64Array = answers
        .iter()
        .map(|answer| i64::from(answer.user) + 1)
        .collect();
    let answered: TimestampMicrosecondArray = answers
        .iter()
        .map(|answer| Some(answer.answered_us))
        .collect::<TimestampMicrosecondArray>()
        .with_timezone("UTC");
    let kinds: StringArray = answers
        .iter()
        .map(|answer| Some(SURVEYS[answer.survey].kind))
        .collect();
    let scores: Int64Array = answers.iter().map(|answer| answer.score).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(accounts),
        Arc::new(users),
        Arc::new(answered),
        Arc::new(kinds),
        Arc::new(scores),
    ];
    let batch =
        RecordBatch::try_new(surveys_schema(), columns).map_err(|source| GenerateError::Arrow {
            path: path.to_path_buf(),
            source,
        })?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[2, 1],
            delta_encoded: &["answered_at"],
        },
    )?;
    Ok(answers.len() as u64)
}

fn surveys_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("account_id", DataType::Int64, false),
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "answered_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("kind", DataType::Utf8, false),
        Field::new("score", DataType::Int64, false),
    ]))
}
