//! The `invitations` table: one row per `invite` event, and whether the invited user activated.
//!
//! In the events an account's owner invites each teammate shortly before the teammate signs up,
//! so every invitation is accepted; what growth teams then ask is whether the invited user stayed.
//! An invitation is `converted` when the invited user activated: it has an event at least 7 days
//! (7 × 24 h) after its signup event. `k_factor(inviter, invited, converted)` is then the invites
//! per inviter times the share of invited users that became active users. Invitations of the
//! range's last 7 days cannot have converted yet.
//!
//! Every row is derived from what the events generator handed back (each `invite` event, each
//! user's last event time), so the table draws nothing and needs no random stream of its own:
//! `invited_at` is the `invite` event's `ts`, to the microsecond, and no draw of any table moved.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;

use super::GenerateError;
use super::accounts::AccountFacts;
use super::calendar::DAY_US;
use super::events::WrittenEvents;
use super::parquet_file::{Layout, write_parquet};

/// An invited user activated when it used the product at least this long after signing up.
const ACTIVATED_AFTER_SIGNUP_US: i64 = 7 * DAY_US;

/// Whether a user who signed up at `signup_us` and whose last event is at `last_event_us`
/// activated.
fn activated(signup_us: i64, last_event_us: i64) -> bool {
    last_event_us >= signup_us + ACTIVATED_AFTER_SIGNUP_US
}

/// Writes `invitations.parquet`, sorted by invited_at, then inviter.
pub(crate) fn write_invitations(
    path: &Path,
    events: &WrittenEvents,
    facts: &AccountFacts,
) -> Result<u64, GenerateError> {
    let mut invites = events.invites.clone();
    invites.sort_unstable_by_key(|invite| (invite.ts_us, invite.inviter, invite.invited));

    let inviters: Int64Array = invites
        .iter()
        .map(|invite| i64::from(invite.inviter) + 1)
        .collect();
    let invited: Int64Array = invites
        .iter()
        .map(|invite| i64::from(invite.invited) + 1)
        .collect();
    let invited_at =
        TimestampMicrosecondArray::from_iter_values(invites.iter().map(|invite| invite.ts_us))
            .with_timezone("UTC");
    let converted: BooleanArray = invites
        .iter()
        .map(|invite| {
            let user = invite.invited as usize;
            Some(activated(
                facts.user_signup_us[user],
                events.last_event_us[user],
            ))
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(inviters),
        Arc::new(invited),
        Arc::new(invited_at),
        Arc::new(converted),
    ];
    let batch = RecordBatch::try_new(invitations_schema(), columns).map_err(|source| {
        GenerateError::Arrow {
            path: path.to_path_buf(),
            source,
        }
    })?;
    write_parquet(
        path,
        &batch,
        Layout {
            sorted_by: &[2, 0],
            delta_encoded: &["invited_at"],
        },
    )?;
    Ok(invites.len() as u64)
}

fn invitations_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("inviter", DataType::Int64, false),
        Field::new("invited", DataType::Int64, false),
        Field::new(
            "invited_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("converted", DataType::Boolean, false),
    ]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::accounts::draw_accounts;
    use crate::generate::calendar::Calendar;
    use crate::generate::events::write_events;
    use crate::generate::features::feature_releases;
    use chrono::NaiveDate;

    /// The accounts of `users` users over 120 days and their events, written to a scratch folder.
    fn generated(users: u32, seed: u64) -> (AccountFacts, WrittenEvents) {
        let start = NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
        let calendar = Calendar::new(start, 120).expect("calendar");
        let facts = draw_accounts(&calendar, users, seed);
        let releases = feature_releases(&calendar, seed);
        let dir = tempfile::tempdir().expect("scratch folder");
        let events =
            write_events(dir.path(), &calendar, &facts, &releases, seed).expect("write events");
        (facts, events)
    }

    fn invite_keys(events: &WrittenEvents) -> Vec<(i64, u32, u32)> {
        let invites = events.invites.iter();
        invites
            .map(|invite| (invite.ts_us, invite.inviter, invite.invited))
            .collect()
    }

    #[test]
    fn a_user_activated_from_an_event_seven_full_days_after_signup() {
        let signup_us = 1_000 * DAY_US + 123;
        assert!(activated(signup_us, signup_us + 7 * DAY_US));
        assert!(activated(signup_us, signup_us + 30 * DAY_US));
        assert!(!activated(signup_us, signup_us + 7 * DAY_US - 1));
        assert!(!activated(signup_us, signup_us));
    }

    #[test]
    fn every_teammate_is_invited_once_by_its_owner_before_signing_up() {
        let (facts, events) = generated(2_000, 3);
        let owners = facts.accounts.len();
        assert_eq!(events.invites.len(), 2_000 - owners, "one per teammate");
        let mut invited = vec![false; 2_000];
        for invite in &events.invites {
            let user = invite.invited as usize;
            let account = &facts.accounts[facts.user_account[user] as usize];
            assert_eq!(invite.inviter, account.first_user, "the owner invites");
            assert!(!invited[user], "user {user} invited twice");
            invited[user] = true;
            let owner_signup_us = facts.user_signup_us[account.first_user as usize];
            assert!(owner_signup_us < invite.ts_us, "after the owner's signup");
            assert!(
                invite.ts_us <= facts.user_signup_us[user],
                "before the signup"
            );
        }
        for account in &facts.accounts {
            assert!(
                !invited[account.first_user as usize],
                "owners are not invited"
            );
        }
    }

    #[test]
    fn the_last_event_of_a_user_is_at_or_after_its_signup() {
        let (facts, events) = generated(500, 4);
        assert_eq!(events.last_event_us.len(), 500);
        for (user, &last_us) in events.last_event_us.iter().enumerate() {
            assert!(last_us >= facts.user_signup_us[user], "user {user}");
        }
        // Core users keep coming back for weeks; tourists leave within days.
        let activated_users = (0..500)
            .filter(|&user| activated(facts.user_signup_us[user], events.last_event_us[user]))
            .count();
        assert!(
            (100..400).contains(&activated_users),
            "{activated_users} of 500 activated"
        );
    }

    #[test]
    fn the_same_seed_hands_back_the_same_invites_and_another_seed_others() {
        let (_, first) = generated(1_000, 5);
        let (_, again) = generated(1_000, 5);
        let (_, other) = generated(1_000, 6);
        assert_eq!(invite_keys(&first), invite_keys(&again));
        assert_eq!(first.last_event_us, again.last_event_us);
        assert_ne!(invite_keys(&first), invite_keys(&other));
    }
}
