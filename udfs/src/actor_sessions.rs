//! `actor_sessions(micros, gap, since)`: the sessions of a group's events, as a list of
//! (session, started, ended, events).
//!
//! The first step of the `sessions` table function is `GROUP BY actor` cutting each actor's events
//! into sessions. A window function over `PARTITION BY actor ORDER BY ts` would sort all the events;
//! here each group keeps spans (first event, last event, count) instead, which merge: a span that
//! starts at most `gap` after the end of the one before it joins it, in any order of arrival. So an
//! event that continues its actor's last span costs no room, partial states of many cores or
//! executors combine by the same merge, and only the groups' spans are sorted, once, at the end.
//!
//! Times are microseconds since the epoch; `gap` is in microseconds too. Sessions that start before
//! `since` (when not NULL) are dropped from the result and are not numbered: they were read only to
//! know whether an event at `since` continues one.

use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, StructArray,
};
use datafusion::arrow::buffer::OffsetBuffer;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type};
use datafusion::common::{ScalarValue, exec_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::fold::{Expected, check_arguments, list_of, set_bound, state_field};

const NAME: &str = "actor_sessions";

/// Compaction merges the spans of every group once this many are held, at the least.
const FIRST_COMPACTION: usize = 1 << 20;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The sessions of the group's events: runs with no pause longer than gap (a \
pause exactly equal to gap continues a session), as a list of structs (session BIGINT from 1, \
started and ended BIGINT microseconds of the first and last event, events BIGINT), ordered by \
start. Times are BIGINT microseconds since the epoch; NULL times are skipped. Sessions that start \
before since are left out and not numbered (since NULL: none). The first step of the sessions \
table function; the same numbers as sessionize(ts, gap) over the group's events.",
    syntax_example = "actor_sessions(micros, gap_micros, since_micros)",
    sql_example = r#"```sql
> SELECT user_id, actor_sessions(CAST(CAST(ts AS TIMESTAMP) AS BIGINT), 1800000000, NULL)
  FROM events GROUP BY user_id;
```"#,
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
pub(crate) struct ActorSessions {
    signature: Signature,
}

impl ActorSessions {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

/// The fields of one session in the result.
pub(crate) fn session_fields() -> Fields {
    ["session", "started", "ended", "events"]
        .into_iter()
        .map(|name| Field::new(name, DataType::Int64, false))
        .collect()
}

impl AggregateUDFImpl for ActorSessions {
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
                ("micros", Expected::BigInt),
                ("gap_micros", Expected::BigInt),
                ("since_micros", Expected::BigInt),
            ],
        )?;
        Ok(list_of(DataType::Struct(session_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(ActorSessionsAccumulator(
            ActorSessionsGroups::default(),
        )))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(&args, "started", list_of(DataType::Int64)),
            state_field(&args, "ended", list_of(DataType::Int64)),
            state_field(&args, "events", list_of(DataType::Int64)),
            state_field(&args, "gap", DataType::Int64),
            state_field(&args, "since", DataType::Int64),
        ])
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(ActorSessionsGroups::default()))
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// Events of one actor with no pause longer than the gap between them: the first and last times
/// and how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) started: i64,
    pub(crate) ended: i64,
    pub(crate) events: i64,
}

impl Span {
    /// Whether `later`, which starts no earlier than this span, belongs to the same session.
    fn continues_into(&self, later: &Span, gap: i64) -> bool {
        later.started.saturating_sub(self.ended) <= gap
    }

    fn absorb(&mut self, later: &Span) {
        self.ended = self.ended.max(later.ended);
        self.events += later.events;
    }
}

/// Sorts `spans` by start and merges each into the one before when it continues it: the sessions
/// of all the events the spans hold.
fn merge_spans(spans: &mut Vec<Span>, gap: i64) {
    spans.sort_unstable_by_key(|span| span.started);
    let mut kept = 0;
    for index in 0..spans.len() {
        let span = spans[index];
        if kept > 0 && spans[kept - 1].continues_into(&span, gap) {
            spans[kept - 1].absorb(&span);
        } else {
            spans[kept] = span;
            kept += 1;
        }
    }
    spans.truncate(kept);
}

/// The value of a constant argument (or state column): the first non-NULL row's.
pub(crate) fn constant_at(array: &ArrayRef) -> Option<i64> {
    let values = array.as_primitive_opt::<Int64Type>()?;
    (0..values.len())
        .find(|row| values.is_valid(*row))
        .map(|row| values.value(row))
}

/// The spans of every group, as one flat list of (group, span) pairs: a push is a write to one
/// vector, not to one of a million small ones, and the pairs are sorted into groups only when they
/// are compacted or emitted.
#[derive(Debug, Default)]
pub(crate) struct ActorSessionsGroups {
    gap: Option<i64>,
    since: Option<i64>,
    pairs: Vec<(u32, Span)>,
    /// Per group, the span its next event most likely continues ([`NO_SPAN`]: none), kept out of
    /// `pairs`: events mostly come in time order, so most of them only move this span's end, in
    /// a vector indexed by group rather than at a far place in `pairs`.
    open: Vec<Span>,
    /// Spans held at which to compact next.
    compact_at: usize,
}

/// An open span of no events: none.
const NO_SPAN: Span = Span {
    started: 0,
    ended: 0,
    events: 0,
};

/// One emitted group's spans, merged and in order: `spans[offsets[g]..offsets[g + 1]]`.
pub(crate) struct Emitted {
    pub(crate) offsets: Vec<usize>,
    pub(crate) spans: Vec<Span>,
}

impl ActorSessionsGroups {
    pub(crate) fn read_settings(&mut self, gap: &ArrayRef, since: &ArrayRef) -> Result<()> {
        set_bound(NAME, &mut self.gap, constant_at(gap), "gap_micros")?;
        set_bound(NAME, &mut self.since, constant_at(since), "since_micros")?;
        if self.gap.is_some_and(|gap| gap <= 0) {
            return exec_err!("{NAME}: gap_micros must be positive");
        }
        Ok(())
    }

    pub(crate) fn grow(&mut self, total_num_groups: usize) {
        self.open.resize(total_num_groups, NO_SPAN);
    }

    /// The number of groups held.
    pub(crate) fn groups(&self) -> usize {
        self.open.len()
    }

    /// Renumbers every group `by` higher, leaving groups 0 to `by - 1` new and empty.
    pub(crate) fn shift_groups(&mut self, by: usize) {
        for (group, _) in &mut self.pairs {
            *group += by as u32;
        }
        self.open.splice(0..0, std::iter::repeat_n(NO_SPAN, by));
    }

    /// The gap and since read from the arguments or states so far.
    pub(crate) fn settings(&self) -> (Option<i64>, Option<i64>) {
        (self.gap, self.since)
    }

    pub(crate) fn add(&mut self, group: usize, span: Span) {
        let gap = self.gap.unwrap_or(0);
        let open = &mut self.open[group];
        if open.events == 0 {
            *open = span;
            return;
        }
        if span.started >= open.started && open.continues_into(&span, gap) {
            open.absorb(&span);
            return;
        }
        // An earlier span is set aside; a later one takes the open span's place.
        let aside = if span.started < open.started {
            span
        } else {
            std::mem::replace(open, span)
        };
        self.pairs.push((group as u32, aside));
        if self.pairs.len() >= self.compact_at.max(FIRST_COMPACTION) {
            self.compact();
        }
    }

    /// Moves the open spans into `pairs`.
    fn close_open_spans(&mut self) {
        for (group, open) in self.open.iter_mut().enumerate() {
            if open.events > 0 {
                self.pairs
                    .push((group as u32, std::mem::replace(open, NO_SPAN)));
            }
        }
    }

    /// Merges the spans of every group, so that room grows with the sessions, not the events.
    fn compact(&mut self) {
        self.close_open_spans();
        let groups = self.open.len();
        let Emitted { offsets, spans } =
            group_spans(std::mem::take(&mut self.pairs), groups, self.gap);
        self.pairs = Vec::with_capacity(spans.len());
        for (group, range) in offsets.windows(2).enumerate() {
            self.pairs.extend(
                spans[range[0]..range[1]]
                    .iter()
                    .map(|span| (group as u32, *span)),
            );
        }
        self.compact_at = 2 * self.pairs.len();
    }

    /// The merged spans of the groups `emit_to` takes; the groups after them are numbered from 0
    /// again.
    pub(crate) fn emit(&mut self, emit_to: EmitTo) -> Emitted {
        self.close_open_spans();
        let groups = match emit_to {
            EmitTo::All => self.open.len(),
            EmitTo::First(n) => n,
        };
        let emitted = if groups == self.open.len() {
            self.open.clear();
            std::mem::take(&mut self.pairs)
        } else {
            let boundary = groups as u32;
            let (emitted, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pairs)
                .into_iter()
                .partition(|(group, _)| *group < boundary);
            self.pairs = kept
                .into_iter()
                .map(|(group, span)| (group - boundary, span))
                .collect();
            self.open.drain(..groups);
            emitted
        };
        group_spans(emitted, groups, self.gap)
    }

    /// The state columns of the groups `emit_to` takes.
    fn state_arrays(&mut self, emit_to: EmitTo) -> Vec<ArrayRef> {
        let Emitted { offsets, spans } = self.emit(emit_to);
        let groups = offsets.len() - 1;
        let list = |value: fn(&Span) -> i64| -> ArrayRef {
            Arc::new(ListArray::new(
                Arc::new(Field::new_list_field(DataType::Int64, true)),
                OffsetBuffer::from_lengths(offsets.windows(2).map(|range| range[1] - range[0])),
                Arc::new(Int64Array::from_iter_values(spans.iter().map(value))),
                None,
            ))
        };
        vec![
            list(|span| span.started),
            list(|span| span.ended),
            list(|span| span.events),
            Arc::new(Int64Array::from(vec![self.gap; groups])),
            Arc::new(Int64Array::from(vec![self.since; groups])),
        ]
    }

    /// The sessions of the groups `emit_to` takes, numbered from 1 from `since` on.
    fn sessions(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let emitted = self.emit(emit_to);
        let (lengths, columns) = reported_sessions(&emitted, self.since, None);
        let rows = StructArray::try_new(session_fields(), columns, None)?;
        Ok(Arc::new(ListArray::try_new(
            Arc::new(Field::new_list_field(rows.data_type().clone(), true)),
            OffsetBuffer::from_lengths(lengths),
            Arc::new(rows),
            None,
        )?))
    }
}

/// The sessions of each group of `emitted` that start from `since` on, numbered from 1 per group:
/// how many each group has, and their columns, those of [`session_fields`], after the group's
/// actor (`actor_of(group)`) when that is given.
pub(crate) fn reported_sessions(
    emitted: &Emitted,
    since: Option<i64>,
    actor_of: Option<&dyn Fn(usize) -> i64>,
) -> (Vec<usize>, Vec<ArrayRef>) {
    let since = since.unwrap_or(i64::MIN);
    let Emitted { offsets, spans } = emitted;
    let mut lengths = Vec::with_capacity(offsets.len() - 1);
    let mut actors = Vec::new();
    let mut columns: [Vec<i64>; 4] = Default::default();
    for (group, range) in offsets.windows(2).enumerate() {
        let reported = spans[range[0]..range[1]]
            .iter()
            .filter(|span| span.started >= since);
        let mut count = 0;
        for (number, span) in reported.enumerate() {
            count += 1;
            for (column, value) in
                columns
                    .iter_mut()
                    .zip([number as i64 + 1, span.started, span.ended, span.events])
            {
                column.push(value);
            }
        }
        if let Some(actor_of) = actor_of {
            actors.extend(std::iter::repeat_n(actor_of(group), count));
        }
        lengths.push(count);
    }
    let actors = actor_of.map(|_| actors);
    let columns = actors
        .into_iter()
        .chain(columns)
        .map(|column| Arc::new(Int64Array::from(column)) as ArrayRef)
        .collect();
    (lengths, columns)
}

/// Sorts `pairs` into `groups` groups (a counting sort: each group's spans are then few) and
/// merges each group's spans.
fn group_spans(pairs: Vec<(u32, Span)>, groups: usize, gap: Option<i64>) -> Emitted {
    let mut offsets = vec![0usize; groups + 1];
    for &(group, _) in &pairs {
        offsets[group as usize + 1] += 1;
    }
    for index in 1..offsets.len() {
        offsets[index] += offsets[index - 1];
    }
    let mut sorted = vec![NO_SPAN; pairs.len()];
    let mut next = offsets.clone();
    for (group, span) in pairs {
        sorted[next[group as usize]] = span;
        next[group as usize] += 1;
    }
    let gap = gap.unwrap_or(0);
    let mut spans = Vec::with_capacity(sorted.len());
    let mut merged_offsets = Vec::with_capacity(offsets.len());
    merged_offsets.push(0);
    for range in offsets.windows(2) {
        let mut group = sorted[range[0]..range[1]].to_vec();
        merge_spans(&mut group, gap);
        spans.extend(group);
        merged_offsets.push(spans.len());
    }
    Emitted {
        offsets: merged_offsets,
        spans,
    }
}

/// The rows of an event batch to read: a time, and passing the filter.
fn selected_events<'a>(
    values: &'a ArrayRef,
    opt_filter: Option<&'a BooleanArray>,
) -> impl Iterator<Item = (usize, Span)> + 'a {
    let times = values.as_primitive::<Int64Type>();
    (0..times.len()).filter_map(move |row| {
        let selected = times.is_valid(row)
            && opt_filter.is_none_or(|filter| filter.is_valid(row) && filter.value(row));
        selected.then(|| {
            let time = times.value(row);
            (
                row,
                Span {
                    started: time,
                    ended: time,
                    events: 1,
                },
            )
        })
    })
}

/// Calls `add(row, span)` for every span in the state lists at each row.
fn for_each_state_span(states: &[ArrayRef], mut add: impl FnMut(usize, Span)) {
    let [started, ended, events] =
        [&states[0], &states[1], &states[2]].map(|lists| lists.as_list::<i32>());
    let values = [started, ended, events].map(|lists| lists.values().as_primitive::<Int64Type>());
    for (row, window) in started.offsets().windows(2).enumerate() {
        if started.is_null(row) {
            continue;
        }
        for index in window[0] as usize..window[1] as usize {
            add(
                row,
                Span {
                    started: values[0].value(index),
                    ended: values[1].value(index),
                    events: values[2].value(index),
                },
            );
        }
    }
}

impl GroupsAccumulator for ActorSessionsGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.read_settings(&values[1], &values[2])?;
        self.grow(total_num_groups);
        for (row, span) in selected_events(&values[0], opt_filter) {
            self.add(group_indices[row], span);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        self.sessions(emit_to)
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(self.state_arrays(emit_to))
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.read_settings(&values[3], &values[4])?;
        self.grow(total_num_groups);
        for_each_state_span(values, |row, span| self.add(group_indices[row], span));
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own, of its one event or of none.
        let mut groups = ActorSessionsGroups::default();
        groups.read_settings(&values[1], &values[2])?;
        groups.grow(values[0].len());
        for (row, span) in selected_events(&values[0], opt_filter) {
            groups.pairs.push((row as u32, span));
        }
        Ok(groups.state_arrays(EmitTo::All))
    }

    fn size(&self) -> usize {
        self.pairs.capacity() * size_of::<(u32, Span)>() + self.open.capacity() * size_of::<Span>()
    }
}

/// One group: the groups accumulator with a single group.
#[derive(Debug)]
struct ActorSessionsAccumulator(ActorSessionsGroups);

impl ActorSessionsAccumulator {
    fn one_group(values: &[ArrayRef]) -> Vec<usize> {
        vec![0; values.first().map_or(0, |array| array.len())]
    }
}

impl Accumulator for ActorSessionsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0
            .update_batch(values, &Self::one_group(values), None, 1)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states, &Self::one_group(states), 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.grow(1);
        self.0
            .state_arrays(EmitTo::All)
            .iter()
            .map(|array| ScalarValue::try_from_array(array, 0))
            .collect()
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.grow(1);
        ScalarValue::try_from_array(&self.0.sessions(EmitTo::All)?, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GAP: i64 = 30;

    fn column(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    fn arguments(times: &[Option<i64>], since: Option<i64>) -> Vec<ArrayRef> {
        vec![
            column(times),
            column(&vec![Some(GAP); times.len()]),
            column(&vec![since; times.len()]),
        ]
    }

    /// Each group's sessions as (session, started, ended, events).
    fn sessions_of(result: &ArrayRef) -> Vec<Vec<[i64; 4]>> {
        result
            .as_list::<i32>()
            .iter()
            .map(|list| {
                let list = list.expect("a list per group");
                let rows = list.as_struct();
                let field = |index: usize| rows.column(index).as_primitive::<Int64Type>().clone();
                let columns = [field(0), field(1), field(2), field(3)];
                (0..rows.len())
                    .map(|row| columns.clone().map(|column| column.value(row)))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn events_in_any_order_make_the_same_sessions_and_a_pause_equal_to_the_gap_continues() {
        // Group 0: 0, 30 (a pause of exactly the gap), 61 (31 later: a new session), 61 again.
        // Group 1: one event alone, and a NULL time that counts for nothing.
        let times = [Some(61), Some(0), Some(500), Some(30), None, Some(61)];
        let groups_of_rows = [0, 0, 1, 0, 1, 0];
        let mut groups = ActorSessionsGroups::default();
        groups
            .update_batch(&arguments(&times, None), &groups_of_rows, None, 2)
            .unwrap();
        assert_eq!(
            sessions_of(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![[1, 0, 30, 2], [2, 61, 61, 2]], vec![[1, 500, 500, 1]]]
        );
    }

    #[test]
    fn sessions_before_since_are_left_out_and_not_numbered() {
        let times = [Some(0), Some(20), Some(100), Some(200)];
        let mut groups = ActorSessionsGroups::default();
        groups
            .update_batch(&arguments(&times, Some(10)), &[0; 4], None, 1)
            .unwrap();
        // The session of 0 and 20 starts before since: an event at 20 continues it, unreported.
        assert_eq!(
            sessions_of(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![[1, 100, 100, 1], [2, 200, 200, 1]]]
        );
    }

    #[test]
    fn partial_states_merge_to_the_single_pass_result() {
        // Split so that neither half alone sees that 40 joins 15 and 70.
        let times = [Some(15), Some(70), Some(40), Some(200), Some(100)];
        let mut single = ActorSessionsGroups::default();
        single
            .update_batch(&arguments(&times, None), &[0; 5], None, 1)
            .unwrap();
        let expected = sessions_of(&single.evaluate(EmitTo::All).unwrap());
        assert_eq!(expected, vec![vec![[1, 15, 100, 4], [2, 200, 200, 1]]]);

        let mut merged = ActorSessionsGroups::default();
        for rows in [0..2, 2..5] {
            let mut partial = ActorSessionsGroups::default();
            let slice = &times[rows.clone()];
            partial
                .update_batch(&arguments(slice, None), &vec![0; slice.len()], None, 1)
                .unwrap();
            let state = partial.state(EmitTo::All).unwrap();
            merged.merge_batch(&state, &[0], 1).unwrap();
        }
        let converted = ActorSessionsGroups::default()
            .convert_to_state(&arguments(&times, None), None)
            .unwrap();
        let mut from_rows = ActorSessionsGroups::default();
        from_rows.merge_batch(&converted, &[0; 5], 1).unwrap();
        assert_eq!(
            sessions_of(&merged.evaluate(EmitTo::All).unwrap()),
            expected
        );
        assert_eq!(
            sessions_of(&from_rows.evaluate(EmitTo::All).unwrap()),
            expected
        );
    }

    #[test]
    fn emitting_the_first_groups_keeps_the_others_renumbered() {
        let mut groups = ActorSessionsGroups::default();
        groups
            .update_batch(
                &arguments(&[Some(1), Some(2), Some(3)], None),
                &[0, 1, 2],
                None,
                3,
            )
            .unwrap();
        assert_eq!(
            sessions_of(&groups.evaluate(EmitTo::First(2)).unwrap()),
            vec![vec![[1, 1, 1, 1]], vec![[1, 2, 2, 1]]]
        );
        groups
            .update_batch(&arguments(&[Some(20)], None), &[0], None, 1)
            .unwrap();
        assert_eq!(
            sessions_of(&groups.evaluate(EmitTo::All).unwrap()),
            vec![vec![[1, 3, 20, 2]]]
        );
    }

    #[test]
    fn compaction_keeps_the_sessions() {
        let mut groups = ActorSessionsGroups::default();
        // Every other event far from the last: each group keeps spans that compaction merges.
        let times: Vec<Option<i64>> = (0..8)
            .map(|i| Some([10, 0][i % 2] + 100 * (i as i64 / 2)))
            .collect();
        groups
            .update_batch(&arguments(&times, None), &[0; 8], None, 1)
            .unwrap();
        groups.compact();
        assert_eq!(groups.pairs.len(), 4);
        assert_eq!(
            sessions_of(&groups.evaluate(EmitTo::All).unwrap()),
            vec![
                (0..4)
                    .map(|k| [k + 1, 100 * k, 100 * k + 10, 2])
                    .collect::<Vec<_>>()
            ]
        );
    }

    #[test]
    fn the_single_group_accumulator_agrees() {
        let mut accumulator = ActorSessionsAccumulator(ActorSessionsGroups::default());
        accumulator
            .update_batch(&arguments(&[Some(5), Some(100), Some(0)], None))
            .unwrap();
        let value = accumulator.evaluate().unwrap().to_array().unwrap();
        assert_eq!(
            sessions_of(&value),
            vec![vec![[1, 0, 5, 2], [2, 100, 100, 1]]]
        );
    }
}
