//! `actor_id_sessions(actor, micros, gap, since)`: the sessions of every actor of a group, for
//! actors that are integers, as one list of (actor, session, started, ended, events).
//!
//! `actor_sessions` under `GROUP BY actor` spends half of the `sessions` table function's time on
//! the hash table of a million actors and on reaching each actor's spans through it, one cache
//! miss after another (`perf`: 22% interning the group keys, 27% adding the events). Integer
//! actors, as surrogate keys are, index their spans directly instead: the table function groups
//! the rows by `actor / 16384`, so that a group's actors lie in a block of ids whose spans are
//! reached without hashing and stay in cache, and the blocks still fold in parallel, on as many
//! cores or executors as there are, and unnest into batches that the second step spreads again.
//!
//! The spans are those of `actor_sessions` (its groups are this group's actors, numbered from the
//! lowest id seen), so both plans cut the same sessions by construction.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Int64Array, StructArray};
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sessions::{
    ActorSessionsGroups, Emitted, Span, reported_sessions, session_fields,
};
use crate::fold::{Expected, check_arguments, list_of, report, single_list, state_field};

const NAME: &str = "actor_id_sessions";

/// The widest range of actor ids one group may hold: a group's spans are indexed by the id.
pub(crate) const MOST_IDS_PER_GROUP: i64 = 1 << 20;

/// The ids of one block of actors, as the `sessions` table function groups them.
pub(crate) const IDS_PER_BLOCK: i64 = 1 << 14;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The sessions of every actor of the group, for integer actors: runs of an \
actor's events with no pause longer than gap (a pause exactly equal to gap continues a session), \
as one list of structs (actor BIGINT, session BIGINT from 1 per actor, started and ended BIGINT \
microseconds of the first and last event, events BIGINT), ordered by actor and start. The same \
sessions as actor_sessions under GROUP BY actor, without hashing the actors: a group's actors may \
span at most 1,048,576 ids (the sessions table function groups them by actor / 16384). Times are \
BIGINT microseconds since the epoch; rows with a NULL actor or time are skipped. Sessions that \
start before since are left out and not numbered (since NULL: none).",
    syntax_example = "actor_id_sessions(actor, micros, gap_micros, since_micros)",
    sql_example = r#"```sql
> SELECT user_id / 16384 AS block,
         actor_id_sessions(user_id, CAST(CAST(ts AS TIMESTAMP) AS BIGINT), 1800000000, NULL)
  FROM events GROUP BY 1;
```"#,
    argument(name = "actor", description = "An integer: the actor."),
    argument(
        name = "micros",
        description = "BIGINT: the event time in microseconds since the epoch."
    ),
    argument(
        name = "gap_micros",
        description = "BIGINT constant: the longest pause within a session, in microseconds."
    ),
    argument(
        name = "since_micros",
        description = "BIGINT constant or NULL: sessions that start before it are left out."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActorIdSessions {
    signature: Signature,
}

impl ActorIdSessions {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(4, Volatility::Immutable),
        }
    }
}

/// The fields of one session in the result: its actor, then those of `actor_sessions`.
fn actor_session_fields() -> Fields {
    std::iter::once(Arc::new(Field::new("actor", DataType::Int64, false)))
        .chain(session_fields().iter().cloned())
        .collect()
}

impl AggregateUDFImpl for ActorIdSessions {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_arguments(
            NAME,
            arg_types,
            &[
                ("actor", Expected::Integer),
                ("micros", Expected::BigInt),
                ("gap_micros", Expected::BigInt),
                ("since_micros", Expected::BigInt),
            ],
        )?;
        Ok(list_of(DataType::Struct(actor_session_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::<ActorIdSessionsAccumulator>::default())
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(&args, "actors", list_of(DataType::Int64)),
            state_field(&args, "started", list_of(DataType::Int64)),
            state_field(&args, "ended", list_of(DataType::Int64)),
            state_field(&args, "events", list_of(DataType::Int64)),
            state_field(&args, "gap", DataType::Int64),
            state_field(&args, "since", DataType::Int64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The spans of the group's actors: group `g` of `spans` is actor `base + g`.
#[derive(Debug, Default)]
struct ActorIdSessionsAccumulator {
    base: Option<i64>,
    spans: ActorSessionsGroups,
}

impl ActorIdSessionsAccumulator {
    /// Makes room for the actors from `low` to `high` and returns the base: a lower actor than
    /// any before renumbers the groups.
    fn cover(&mut self, low: i64, high: i64) -> Result<i64> {
        let held = self.spans.groups() as i64;
        let (base, top) = match self.base {
            Some(base) => (base.min(low), (base + held - 1).max(high)),
            None => (low, high),
        };
        let ids = i128::from(top) - i128::from(base) + 1;
        if ids > i128::from(MOST_IDS_PER_GROUP) {
            return exec_err!(
                "{NAME}: the actors of one group span {ids} ids ({base} to {top}), more than \
                 {MOST_IDS_PER_GROUP}: group the rows by actor / {IDS_PER_BLOCK}, or use \
                 actor_sessions with GROUP BY actor"
            );
        }
        if let Some(old) = self.base
            && base < old
        {
            self.spans.shift_groups((old - base) as usize);
        }
        self.base = Some(base);
        self.spans.grow(ids as usize);
        Ok(base)
    }

    /// Adds each row's span, `(actor, span)`, of which `low` and `high` are the least and most
    /// actor.
    fn add_spans(
        &mut self,
        (low, high): (i64, i64),
        spans: impl Iterator<Item = (i64, Span)>,
    ) -> Result<()> {
        let base = self.cover(low, high)?;
        for (actor, span) in spans {
            self.spans.add((actor - base) as usize, span);
        }
        Ok(())
    }

    /// The merged spans of every actor, which leaves the accumulator empty.
    fn take(&mut self) -> (i64, Emitted) {
        let base = self.base.take().unwrap_or_default();
        (base, self.spans.emit(EmitTo::All))
    }
}

/// The least and most valid value of `actors`, if any.
fn actor_range(actors: &Int64Array) -> Option<(i64, i64)> {
    Some((min(actors)?, max(actors)?))
}

impl Accumulator for ActorIdSessionsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.spans.read_settings(&values[2], &values[3])?;
        let actors = cast(&values[0], &DataType::Int64)?;
        let actors = actors.as_primitive::<Int64Type>();
        let times = values[1].as_primitive::<Int64Type>();
        let Some(range) = actor_range(actors) else {
            return Ok(());
        };
        let rows = (0..actors.len()).filter(|&row| actors.is_valid(row) && times.is_valid(row));
        self.add_spans(
            range,
            rows.map(|row| {
                let time = times.value(row);
                let span = Span {
                    started: time,
                    ended: time,
                    events: 1,
                };
                (actors.value(row), span)
            }),
        )
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (gap, since) = self.spans.settings();
        let (base, Emitted { offsets, spans }) = self.take();
        let actors = offsets.windows(2).enumerate().flat_map(|(group, range)| {
            std::iter::repeat_n(base + group as i64, range[1] - range[0])
        });
        let list = |value: fn(&Span) -> i64| {
            single_list(Arc::new(Int64Array::from_iter_values(
                spans.iter().map(value),
            )))
        };
        Ok(vec![
            single_list(Arc::new(Int64Array::from_iter_values(actors))),
            list(|span| span.started),
            list(|span| span.ended),
            list(|span| span.events),
            ScalarValue::Int64(gap),
            ScalarValue::Int64(since),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.spans.read_settings(&states[4], &states[5])?;
        let lists =
            [&states[0], &states[1], &states[2], &states[3]].map(|list| list.as_list::<i32>());
        for row in 0..states[0].len() {
            if lists[0].is_null(row) {
                continue;
            }
            let [actors, started, ended, events] = lists.map(|list| list.value(row));
            let [actors, started, ended, events] = [&actors, &started, &ended, &events]
                .map(|values| values.as_primitive::<Int64Type>().clone());
            let Some(range) = actor_range(&actors) else {
                continue;
            };
            self.add_spans(
                range,
                (0..actors.len()).map(|index| {
                    let span = Span {
                        started: started.value(index),
                        ended: ended.value(index),
                        events: events.value(index),
                    };
                    (actors.value(index), span)
                }),
            )?;
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (_, since) = self.spans.settings();
        let (base, emitted) = self.take();
        let actor_of = |group: usize| base + group as i64;
        let (_, columns) = reported_sessions(&emitted, since, Some(&actor_of));
        report(StructArray::try_new(actor_session_fields(), columns, None)?)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.spans.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;
    use crate::test_random::Random;

    const GAP: i64 = 30;

    fn arguments(events: &[(Option<i64>, Option<i64>)], since: Option<i64>) -> Vec<ArrayRef> {
        let column = |values: Vec<Option<i64>>| Arc::new(Int64Array::from(values)) as ArrayRef;
        vec![
            column(events.iter().map(|event| event.0).collect()),
            column(events.iter().map(|event| event.1).collect()),
            column(vec![Some(GAP); events.len()]),
            column(vec![since; events.len()]),
        ]
    }

    /// The sessions of a result as (actor, session, started, ended, events).
    fn sessions_of(value: ScalarValue) -> Vec<[i64; 5]> {
        let array = value.to_array().unwrap();
        let rows = array.as_list::<i32>().value(0);
        let rows = rows.as_struct();
        let columns: Vec<Int64Array> = (0..5)
            .map(|index| rows.column(index).as_primitive::<Int64Type>().clone())
            .collect();
        (0..rows.len())
            .map(|row| std::array::from_fn(|index| columns[index].value(row)))
            .collect()
    }

    /// `actor_sessions`' answer for the same events under GROUP BY actor (the groups numbered by
    /// actor in order), as (actor, session, started, ended, events).
    fn per_actor_sessions(
        events: &[(Option<i64>, Option<i64>)],
        since: Option<i64>,
    ) -> Vec<[i64; 5]> {
        let actors: Vec<i64> = {
            let mut actors: Vec<i64> = events.iter().filter_map(|event| event.0).collect();
            actors.sort_unstable();
            actors.dedup();
            actors
        };
        let rows: Vec<(usize, Option<i64>)> = events
            .iter()
            .filter_map(|(actor, time)| Some((actors.binary_search(&(*actor)?).ok()?, *time)))
            .collect();
        let times = Arc::new(Int64Array::from(
            rows.iter().map(|row| row.1).collect::<Vec<_>>(),
        ));
        let groups_of_rows: Vec<usize> = rows.iter().map(|row| row.0).collect();
        let mut groups = ActorSessionsGroups::default();
        groups
            .update_batch(
                &[
                    times.clone(),
                    Arc::new(Int64Array::from(vec![GAP; rows.len()])),
                    Arc::new(Int64Array::from(vec![since; rows.len()])),
                ],
                &groups_of_rows,
                None,
                actors.len(),
            )
            .unwrap();
        let result = groups.evaluate(EmitTo::All).unwrap();
        let lists = result.as_list::<i32>();
        let mut sessions = vec![];
        for (group, actor) in actors.iter().enumerate() {
            let rows = lists.value(group);
            let rows = rows.as_struct();
            for row in 0..rows.len() {
                let value =
                    |index: usize| rows.column(index).as_primitive::<Int64Type>().value(row);
                sessions.push([*actor, value(0), value(1), value(2), value(3)]);
            }
        }
        sessions
    }

    #[test]
    fn sessions_are_those_of_actor_sessions_per_actor_in_any_order_of_ids() {
        // Actors come high first, then lower ones that renumber the groups; NULLs are skipped.
        let events = [
            (Some(9), Some(100)),
            (Some(9), Some(130)),
            (Some(4), Some(0)),
            (Some(-2), Some(50)),
            (Some(9), Some(161)),
            (None, Some(5)),
            (Some(4), None),
            (Some(4), Some(30)),
            (Some(-2), Some(40)),
        ];
        let mut accumulator = ActorIdSessionsAccumulator::default();
        accumulator
            .update_batch(&arguments(&events[..3], None))
            .unwrap();
        accumulator
            .update_batch(&arguments(&events[3..], None))
            .unwrap();
        let sessions = sessions_of(accumulator.evaluate().unwrap());
        // Hand-computed: -2 has one session (40, 50); 4 one of 0 and 30 (a pause equal to the
        // gap); 9 one of 100 and 130, and 161 starts another (31 after 130).
        assert_eq!(
            sessions,
            vec![
                [-2, 1, 40, 50, 2],
                [4, 1, 0, 30, 2],
                [9, 1, 100, 130, 2],
                [9, 2, 161, 161, 1],
            ]
        );
        assert_eq!(sessions, per_actor_sessions(&events, None));
    }

    #[test]
    fn merged_partial_states_agree_with_actor_sessions_on_random_events() {
        // 40 actors with ids spread over ±500, 600 events in 4 partial states.
        let mut random = Random(0x2545_f491_4f6c_dd1d);
        let mut next = |below: u64| random.below(below);
        let ids: Vec<i64> = (0..40).map(|_| next(1_000) as i64 - 500).collect();
        let events: Vec<(Option<i64>, Option<i64>)> = (0..600)
            .map(|_| (Some(ids[next(40) as usize]), Some(next(2_000) as i64)))
            .collect();
        for since in [None, Some(700)] {
            let mut merged = ActorIdSessionsAccumulator::default();
            for part in events.chunks(150) {
                let mut partial = ActorIdSessionsAccumulator::default();
                partial.update_batch(&arguments(part, since)).unwrap();
                merge_state(&mut partial, &mut merged);
            }
            let sessions = sessions_of(merged.evaluate().unwrap());
            assert!(sessions.len() > 40, "{} sessions", sessions.len());
            assert_eq!(
                sessions,
                per_actor_sessions(&events, since),
                "since {since:?}"
            );
        }
    }

    #[test]
    fn actors_spread_over_too_many_ids_are_an_error_naming_the_fix() {
        let mut accumulator = ActorIdSessionsAccumulator::default();
        let events = [(Some(0), Some(1)), (Some(MOST_IDS_PER_GROUP), Some(2))];
        let error = accumulator
            .update_batch(&arguments(&events, None))
            .unwrap_err()
            .to_string();
        assert!(error.contains("span 1048577 ids"), "{error}");
        assert!(error.contains("group the rows by actor / 16384"), "{error}");
    }
}
