//! `actor_id_funnel(actor, window, ts, c1, ..., cN [, mode, ...])`: what the `funnel` table
//! function reports of every actor of a group, for actors that are integers: the actors that
//! reached each step, and the seconds each of them took from the step before.
//!
//! `window_funnel_events` under `GROUP BY actor` spent most of `funnel`'s time on the hash table
//! of a million actors and on a list of events allocated per actor (`perf`: 10% interning the
//! keys, 12% in `malloc` and `free`), and the report then crossed every actor with every step.
//! Integer actors, as surrogate keys are, need neither: the table function groups the rows by
//! `actor / 16384`, a group keeps its events in one list of (actor, time, steps), sorts them by
//! actor with a counting sort over the block's ids when it is evaluated, and runs
//! `window_funnel`'s own algorithm ([`Funnel::run`]) on each actor's events, so both plans reach
//! the same levels and chains by construction. The blocks still fold in parallel, on as many
//! cores or executors as there are.
//!
//! A group's result is one element per step with the actors of the group that reached it, then
//! one per actor and step k > 1 that it reached with the seconds from step k - 1 of its chain
//! (`funnel`'s median), which the table function sums and takes the median of per step. Every
//! group lists every step, so every segment with events gets every step, as in the other plan.
//!
//! The same accumulator gives `actor_id_window_funnel`'s (actor, level) of every actor of a block
//! ([`BlockOutput::Levels`]), which also keeps the rows without an actor or without an event: each
//! of those is a group of `GROUP BY actor`, so each must come out as a row.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBufferBuilder, Float64Array, Int32Array,
    Int64Array, ListArray, StructArray, UInt8Array, UInt32Array,
};
use datafusion::arrow::buffer::{NullBuffer, OffsetBuffer};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int64Type, TimeUnit};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_id_sessions::{IDS_PER_BLOCK, MOST_IDS_PER_GROUP};
use crate::fold::{Expected, check_arguments, list_of, state_field};
use crate::window_funnel::{
    Event, Funnel, FunnelFunction, Grouped, Scratch, TimeKind, check_funnel_types, extend_events,
    for_each_state, ticks_per_second,
};

const NAME: &str = "actor_id_funnel";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The funnel report of the group's actors, for integer actors: window_funnel's \
level and chain per actor (the same arguments after actor, the same algorithm and modes), as one \
list of structs (step INT from 1, actors BIGINT, seconds DOUBLE). First one element per step with \
the number of actors whose level is at least step (seconds NULL), then one element per actor and \
step k > 1 that it reached, with actors 0 and the seconds from step k - 1 to step k of the chain \
that reached its level first. Sum actors and take the median of seconds per step for the funnel \
table function's columns. A group's actors may span at most 1,048,576 ids (the funnel table \
function groups them by actor / 16384); ts must be a TIMESTAMP; rows with a NULL actor are \
skipped.",
    syntax_example = "actor_id_funnel(actor, window, ts, c1[, c2, ..., c32][, mode, ...])",
    sql_example = r#"```sql
> SELECT user_id / 16384 AS block,
         actor_id_funnel(user_id, INTERVAL '1 day', ts, event = 'signup', event = 'invite')
  FROM events GROUP BY 1;
```"#,
    argument(name = "actor", description = "An integer: the actor."),
    argument(
        name = "window, ts, c1, ..., c32, mode",
        description = "As for window_funnel, with ts a TIMESTAMP."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct ActorIdFunnel {
    signature: Signature,
}

impl ActorIdFunnel {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

/// The funnel of a call of `function`: its arguments after the actor.
pub(crate) fn funnel_of(function: &'static str, args: &AccumulatorArgs) -> Result<Funnel> {
    Funnel::from_arguments(function, &args.exprs[1..], &args.expr_fields[1..])
}

/// The argument types of an aggregate of blocks of actors: the actor's own, then
/// `window_funnel`'s.
pub(crate) fn coerce_actor_funnel_types(
    function: &str,
    arg_types: &[DataType],
) -> Result<Vec<DataType>> {
    let Some((actor, funnel)) = arg_types.split_first() else {
        return plan_err!("{function} takes an actor, then window_funnel's arguments");
    };
    let mut types = vec![actor.clone()];
    types.extend(FunnelFunction::coerce_types(funnel));
    Ok(types)
}

/// The result type of an aggregate of blocks of actors, once its arguments are checked: an
/// integer actor, then `window_funnel`'s with a TIMESTAMP ts.
pub(crate) fn block_return_type(
    function: &str,
    output: BlockOutput,
    arg_types: &[DataType],
) -> Result<DataType> {
    check_arguments(function, arg_types, &[("actor", Expected::Integer)])?;
    let funnel = arg_types.get(1..).unwrap_or_default();
    check_funnel_types(function, funnel)?;
    if !matches!(funnel.get(1), Some(DataType::Timestamp(..))) {
        return plan_err!(
            "{function}: ts must be a TIMESTAMP, not {}; use window_funnel_events with GROUP BY \
             actor for DATEs",
            funnel[1]
        );
    }
    let fields = match output {
        BlockOutput::Report => step_fields(),
        BlockOutput::Levels => level_fields(),
    };
    Ok(list_of(DataType::Struct(fields)))
}

/// The state of an aggregate of blocks of actors: its events' actors (NULL for a NULL actor),
/// times and steps, and the actors of rows without an event ([`BlockOutput::Levels`] only).
pub(crate) fn block_state_fields(args: &StateFieldsArgs) -> Vec<FieldRef> {
    vec![
        state_field(args, "actors", list_of(DataType::Int64)),
        state_field(args, "times", list_of(DataType::Int64)),
        state_field(args, "steps", list_of(DataType::UInt32)),
        state_field(args, "present", list_of(DataType::Int64)),
    ]
}

/// What an aggregate of blocks of actors gives for each group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum BlockOutput {
    /// `actor_id_funnel`'s report; rows with a NULL actor are skipped.
    Report,
    /// `actor_id_window_funnel`'s (actor, level) of every actor, NULL the actor of the rows
    /// without one.
    Levels,
}

/// The fields of one element of `actor_id_window_funnel`'s result.
fn level_fields() -> Fields {
    Fields::from(vec![
        Field::new("actor", DataType::Int64, true),
        Field::new("level", DataType::UInt8, false),
    ])
}

/// The fields of one element of the result.
fn step_fields() -> Fields {
    Fields::from(vec![
        Field::new("step", DataType::Int32, false),
        Field::new("actors", DataType::Int64, false),
        Field::new("seconds", DataType::Float64, true),
    ])
}

/// The methods of `AggregateUDFImpl` that `actor_id_funnel` and `actor_id_window_funnel` share,
/// all but `documentation`, for a struct whose `signature` field is its signature: `$name` is the
/// function's name, `$output` its [`BlockOutput`].
macro_rules! actor_block_methods {
    ($name:expr, $output:expr) => {
        fn name(&self) -> &str {
            $name
        }

        fn signature(&self) -> &datafusion::logical_expr::Signature {
            &self.signature
        }

        fn coerce_types(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::DataType>> {
            $crate::actor_id_funnel::coerce_actor_funnel_types($name, arg_types)
        }

        fn return_type(
            &self,
            arg_types: &[datafusion::arrow::datatypes::DataType],
        ) -> datafusion::error::Result<datafusion::arrow::datatypes::DataType> {
            $crate::actor_id_funnel::block_return_type($name, $output, arg_types)
        }

        fn accumulator(
            &self,
            args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::Accumulator>> {
            let groups = $crate::actor_id_funnel::ActorIdFunnelGroups::new(
                $crate::actor_id_funnel::funnel_of($name, &args)?,
                $output,
            );
            Ok(Box::new($crate::actor_id_funnel::ActorIdFunnelAccumulator(
                groups,
            )))
        }

        fn groups_accumulator_supported(
            &self,
            _args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> bool {
            true
        }

        fn create_groups_accumulator(
            &self,
            args: datafusion::logical_expr::function::AccumulatorArgs,
        ) -> datafusion::error::Result<Box<dyn datafusion::logical_expr::GroupsAccumulator>> {
            Ok(Box::new($crate::actor_id_funnel::ActorIdFunnelGroups::new(
                $crate::actor_id_funnel::funnel_of($name, &args)?,
                $output,
            )))
        }

        fn state_fields(
            &self,
            args: datafusion::logical_expr::function::StateFieldsArgs,
        ) -> datafusion::error::Result<Vec<datafusion::arrow::datatypes::FieldRef>> {
            Ok($crate::actor_id_funnel::block_state_fields(&args))
        }

        fn simplify(
            &self,
        ) -> Option<datafusion::logical_expr::function::AggregateFunctionSimplification> {
            Some($crate::window_funnel::check_constants_when_simplified(
                $name, 1,
            ))
        }
    };
}

pub(crate) use actor_block_methods;

impl AggregateUDFImpl for ActorIdFunnel {
    actor_block_methods!(NAME, BlockOutput::Report);

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// The events of one group, each with its actor at the same index.
#[derive(Debug, Default)]
struct GroupEvents {
    actors: Vec<i64>,
    events: Vec<Event>,
    /// The events of rows without an actor, kept for [`BlockOutput::Levels`] only.
    without_actor: Vec<Event>,
    /// For [`BlockOutput::Levels`] only: the actors of rows that gave no event (they met no step
    /// or have no time), NULL for a row without an actor. Each still makes its actor a row of
    /// the result, as it makes a group of `GROUP BY actor`.
    present: Vec<Option<i64>>,
}

/// The columns of the result's elements, for any number of groups.
#[derive(Debug, Default)]
struct Elements {
    steps: Vec<i32>,
    actors: Vec<i64>,
    seconds: Vec<Option<f64>>,
}

impl GroupEvents {
    fn size(&self) -> usize {
        self.actors.capacity() * size_of::<i64>()
            + (self.events.capacity() + self.without_actor.capacity()) * size_of::<Event>()
            + self.present.capacity() * size_of::<Option<i64>>()
    }

    /// The events in order of actor (in the order they came within an actor): group `id` of the
    /// result holds the events of the group's least actor (returned first) + `id`.
    fn by_actor(&self) -> Result<(i64, Grouped)> {
        let ids = || {
            self.actors
                .iter()
                .copied()
                .chain(self.present.iter().flatten().copied())
        };
        let (Some(low), Some(high)) = (ids().min(), ids().max()) else {
            return Ok((0, Grouped::by_group(0, std::iter::empty())));
        };
        let ids = i128::from(high) - i128::from(low) + 1;
        if ids > i128::from(MOST_IDS_PER_GROUP) {
            return exec_err!(
                "{NAME}: the actors of one group span {ids} ids ({low} to {high}), more than \
                 {MOST_IDS_PER_GROUP}: group the rows by actor / {IDS_PER_BLOCK}, or use \
                 window_funnel_events with GROUP BY actor"
            );
        }
        let events = self
            .actors
            .iter()
            .zip(&self.events)
            .map(|(&actor, &event)| ((actor - low) as usize, event));
        Ok((low, Grouped::by_group(ids as usize, events)))
    }

    /// Appends the level of each actor of the group, in order of actor, then that of the rows
    /// without an actor, if any.
    fn levels(
        &mut self,
        funnel: &Funnel,
        scratch: &mut Scratch,
        actors: &mut Vec<Option<i64>>,
        levels: &mut Vec<u8>,
    ) -> Result<()> {
        let (low, mut by_actor) = self.by_actor()?;
        let mut present = vec![false; by_actor.groups()];
        for actor in self.present.iter().flatten() {
            present[(actor - low) as usize] = true;
        }
        let mut level_of = |events: &mut [Event]| match events.is_empty() {
            true => 0,
            false => funnel.run(events, scratch).level,
        };
        for (id, events) in by_actor.slices().enumerate() {
            if !events.is_empty() || present[id] {
                actors.push(Some(low + id as i64));
                levels.push(level_of(events));
            }
        }
        if !self.without_actor.is_empty() || self.present.contains(&None) {
            actors.push(None);
            levels.push(level_of(&mut self.without_actor));
        }
        Ok(())
    }

    /// Appends the group's elements: one per step with the actors that reached it, then one per
    /// actor and later step reached with its seconds from the step before.
    fn report(&self, funnel: &Funnel, scratch: &mut Scratch, out: &mut Elements) -> Result<()> {
        let unit = match funnel.time() {
            TimeKind::Timestamp(unit, _) => *unit,
            other => return exec_err!("{NAME}: ts reached execution as {other:?}"),
        };
        let first = out.steps.len();
        out.steps.extend(1..=funnel.steps() as i32);
        out.actors.extend(std::iter::repeat_n(0, funnel.steps()));
        out.seconds
            .extend(std::iter::repeat_n(None, funnel.steps()));
        let (_, mut by_actor) = self.by_actor()?;
        let mut times = Vec::new();
        for events in by_actor.slices().filter(|events| !events.is_empty()) {
            let reached = funnel.run(events, scratch);
            let level = usize::from(reached.level);
            out.actors[first..first + level]
                .iter_mut()
                .for_each(|actors| *actors += 1);
            if level > 1 {
                times.clear();
                scratch.push_chain(reached, &mut times);
                for step in 1..level {
                    let taken = micros(unit, times[step]) - micros(unit, times[step - 1]);
                    out.steps.push(step as i32 + 1);
                    out.actors.push(0);
                    out.seconds.push(Some(taken as f64 / 1_000_000.0));
                }
            }
        }
        Ok(())
    }
}

/// `ticks` of `unit` as whole microseconds, as a cast to a microsecond TIMESTAMP truncates them.
fn micros(unit: TimeUnit, ticks: i64) -> i64 {
    (i128::from(ticks) * 1_000_000 / ticks_per_second(unit)) as i64
}

/// A list array of `values`, split at `offsets`.
fn list(offsets: &OffsetBuffer<i32>, values: ArrayRef) -> ArrayRef {
    let item = Arc::new(Field::new_list_field(values.data_type().clone(), true));
    Arc::new(ListArray::new(item, offsets.clone(), values, None))
}

/// The aggregate for every group of a GROUP BY.
#[derive(Debug)]
pub(crate) struct ActorIdFunnelGroups {
    funnel: Funnel,
    output: BlockOutput,
    groups: Vec<GroupEvents>,
    scratch: Scratch,
}

impl ActorIdFunnelGroups {
    pub(crate) fn new(funnel: Funnel, output: BlockOutput) -> Self {
        Self {
            funnel,
            output,
            groups: Vec::new(),
            scratch: Scratch::default(),
        }
    }

    /// Each group's elements of the report.
    fn reports(&mut self, groups: &[GroupEvents]) -> Result<ArrayRef> {
        let mut elements = Elements::default();
        let mut lengths = Vec::with_capacity(groups.len());
        for group in groups {
            let before = elements.steps.len();
            group.report(&self.funnel, &mut self.scratch, &mut elements)?;
            lengths.push(elements.steps.len() - before);
        }
        let rows = StructArray::try_new(
            step_fields(),
            vec![
                Arc::new(Int32Array::from(elements.steps)),
                Arc::new(Int64Array::from(elements.actors)),
                Arc::new(Float64Array::from(elements.seconds)),
            ],
            None,
        )?;
        Ok(list(&OffsetBuffer::from_lengths(lengths), Arc::new(rows)))
    }

    /// Each group's (actor, level) elements.
    fn levels(&mut self, groups: &mut [GroupEvents]) -> Result<ArrayRef> {
        let (mut actors, mut levels) = (Vec::new(), Vec::new());
        let mut lengths = Vec::with_capacity(groups.len());
        for group in groups {
            let before = levels.len();
            group.levels(&self.funnel, &mut self.scratch, &mut actors, &mut levels)?;
            lengths.push(levels.len() - before);
        }
        let rows = StructArray::try_new(
            level_fields(),
            vec![
                Arc::new(Int64Array::from(actors)),
                Arc::new(UInt8Array::from(levels)),
            ],
            None,
        )?;
        Ok(list(&OffsetBuffer::from_lengths(lengths), Arc::new(rows)))
    }
}

impl GroupsAccumulator for ActorIdFunnelGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups
            .resize_with(total_num_groups, GroupEvents::default);
        let actor_column = cast(&values[0], &DataType::Int64)?;
        let actor_column = actor_column.as_primitive::<Int64Type>();
        let groups = &mut self.groups;
        let levels = self.output == BlockOutput::Levels;
        let mut gave_event = vec![false; if levels { actor_column.len() } else { 0 }];
        self.funnel
            .for_each_event(&values[1..], opt_filter, |row, event| {
                let group = &mut groups[group_indices[row]];
                if actor_column.is_valid(row) {
                    group.actors.push(actor_column.value(row));
                    group.events.push(event);
                } else if levels {
                    group.without_actor.push(event);
                }
                if levels {
                    gave_event[row] = true;
                }
            })?;
        // Every row makes its actor a row of the levels, as every row makes a group of
        // `GROUP BY actor`, FILTER or not.
        for (row, _) in gave_event.iter().enumerate().filter(|(_, gave)| !**gave) {
            let actor = actor_column.is_valid(row).then(|| actor_column.value(row));
            groups[group_indices[row]].present.push(actor);
        }
        Ok(())
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let groups = emit_to.take_needed(&mut self.groups);
        let offsets = OffsetBuffer::from_lengths(
            groups
                .iter()
                .map(|group| group.actors.len() + group.without_actor.len()),
        );
        // A group's events with an actor, then those without (a NULL actor), copied slice by
        // slice into arrays sized up front: built by iterators of options, the state took a
        // quarter of the partial aggregate's time.
        let total = offsets.last().copied().unwrap_or_default() as usize;
        let (mut ids, mut times, mut steps) = (
            Vec::with_capacity(total),
            Vec::with_capacity(total),
            Vec::with_capacity(total),
        );
        let without_actor = groups.iter().any(|group| !group.without_actor.is_empty());
        let mut valid = without_actor.then(|| BooleanBufferBuilder::new(total));
        for group in &groups {
            ids.extend_from_slice(&group.actors);
            ids.resize(ids.len() + group.without_actor.len(), 0);
            if let Some(valid) = &mut valid {
                valid.append_n(group.actors.len(), true);
                valid.append_n(group.without_actor.len(), false);
            }
            for event in group.events.iter().chain(&group.without_actor) {
                times.push(event.ts);
                steps.push(event.steps);
            }
        }
        let actors = Int64Array::new(
            ids.into(),
            valid.map(|mut valid| NullBuffer::new(valid.finish())),
        );
        let present = OffsetBuffer::from_lengths(groups.iter().map(|group| group.present.len()));
        let present_actors: Int64Array = groups
            .iter()
            .flat_map(|group| group.present.iter().copied())
            .collect();
        Ok(vec![
            list(&offsets, Arc::new(actors)),
            list(&offsets, Arc::new(Int64Array::from(times))),
            list(&offsets, Arc::new(UInt32Array::from(steps))),
            list(&present, Arc::new(present_actors)),
        ])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.groups
            .resize_with(total_num_groups, GroupEvents::default);
        let (Some(actor_lists), Some(present_lists)) = (
            values[0].as_list_opt::<i32>(),
            values.get(3).and_then(|state| state.as_list_opt::<i32>()),
        ) else {
            return exec_err!("{NAME}: the state is not four lists");
        };
        let groups = &mut self.groups;
        let mut result = Ok(());
        for_each_state(NAME, &values[1..], |row, times, steps| {
            let list = actor_lists.value(row);
            let ids = list.as_primitive::<Int64Type>();
            if ids.len() != times.len() {
                result = exec_err!("{NAME}: a state has more actors than events or fewer");
                return;
            }
            let group = &mut groups[group_indices[row]];
            let present = present_lists.value(row);
            group
                .present
                .extend(present.as_primitive::<Int64Type>().iter());
            if ids.null_count() == 0 {
                group.actors.extend_from_slice(ids.values());
                extend_events(&mut group.events, times, steps);
                return;
            }
            for (index, id) in ids.iter().enumerate() {
                let event = Event {
                    ts: times[index],
                    steps: steps[index],
                };
                match id {
                    Some(id) => {
                        group.actors.push(id);
                        group.events.push(event);
                    }
                    None => group.without_actor.push(event),
                }
            }
        })?;
        result
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let mut groups = emit_to.take_needed(&mut self.groups);
        match self.output {
            BlockOutput::Report => self.reports(&groups),
            BlockOutput::Levels => self.levels(&mut groups),
        }
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        // Each row becomes a group of its own: its event, or none.
        let rows = values.first().map_or(0, |array| array.len());
        let mut one_per_row = Self::new(self.funnel.clone(), self.output);
        let group_indices: Vec<usize> = (0..rows).collect();
        one_per_row.update_batch(values, &group_indices, opt_filter, rows)?;
        one_per_row.state(EmitTo::All)
    }

    fn size(&self) -> usize {
        self.groups.capacity() * size_of::<GroupEvents>()
            + self.groups.iter().map(GroupEvents::size).sum::<usize>()
            + self.scratch.size()
    }
}

/// The aggregate over a single group (no GROUP BY): the groups' accumulator with one group.
#[derive(Debug)]
pub(crate) struct ActorIdFunnelAccumulator(pub(crate) ActorIdFunnelGroups);

impl ActorIdFunnelAccumulator {
    /// The accumulator's one group, made if no row came.
    fn one_group(&mut self) -> &mut ActorIdFunnelGroups {
        self.0.groups.resize_with(1, GroupEvents::default);
        &mut self.0
    }
}

impl Accumulator for ActorIdFunnelAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let rows = values.first().map_or(0, |array| array.len());
        self.one_group()
            .update_batch(values, &vec![0; rows], None, 1)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let states = self.one_group().state(EmitTo::All)?;
        states
            .iter()
            .map(|state| ScalarValue::try_from_array(state, 0))
            .collect()
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let rows = states.first().map_or(0, |array| array.len());
        self.one_group().merge_batch(states, &vec![0; rows], 1)
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let report = self.one_group().evaluate(EmitTo::All)?;
        ScalarValue::try_from_array(&report, 0)
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.0.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_merge::merge_state;

    use datafusion::arrow::array::TimestampSecondArray;
    use datafusion::arrow::datatypes::{Float64Type, Int32Type, IntervalMonthDayNano, UInt8Type};
    use datafusion::physical_expr::PhysicalExpr;
    use datafusion::physical_expr::expressions::{Column, Literal};

    use crate::test_random::Random;

    const STEPS: usize = 3;

    /// An accumulator of `actor_id_funnel(actor, INTERVAL '1 hour', ts, c1, c2, c3)` over a
    /// TIMESTAMP(s) column.
    fn accumulator() -> ActorIdFunnelAccumulator {
        accumulator_of(BlockOutput::Report)
    }

    /// The same call with `output`.
    fn accumulator_of(output: BlockOutput) -> ActorIdFunnelAccumulator {
        let hour = ScalarValue::IntervalMonthDayNano(Some(IntervalMonthDayNano::new(
            0,
            0,
            3_600_000_000_000,
        )));
        let mut fields = vec![
            Arc::new(Field::new("window", hour.data_type(), true)),
            Arc::new(Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Second, None),
                true,
            )),
        ];
        let mut exprs: Vec<Arc<dyn PhysicalExpr>> =
            vec![Arc::new(Literal::new(hour)), Arc::new(Column::new("ts", 2))];
        for k in 1..=STEPS {
            fields.push(Arc::new(Field::new(
                format!("c{k}"),
                DataType::Boolean,
                true,
            )));
            exprs.push(Arc::new(Column::new(&format!("c{k}"), k + 2)));
        }
        let funnel = Funnel::from_arguments(NAME, &exprs, &fields).unwrap();
        ActorIdFunnelAccumulator(ActorIdFunnelGroups::new(funnel, output))
    }

    /// The argument arrays of rows (actor, seconds, the step the row meets, 1-based; 0 for
    /// none).
    fn batch(rows: &[(Option<i64>, i64, usize)]) -> Vec<ArrayRef> {
        let mut values: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|row| row.0).collect::<Vec<_>>(),
            )),
            // The window's column is not read: the funnel takes the call's literal.
            Arc::new(Int64Array::from(vec![0; rows.len()])),
            Arc::new(TimestampSecondArray::from(
                rows.iter().map(|row| row.1).collect::<Vec<_>>(),
            )),
        ];
        for k in 1..=STEPS {
            values.push(Arc::new(BooleanArray::from(
                rows.iter().map(|row| row.2 == k).collect::<Vec<_>>(),
            )));
        }
        values
    }

    /// A result's elements as (step, actors, seconds).
    fn elements(value: ScalarValue) -> Vec<(i32, i64, Option<f64>)> {
        let array = value.to_array().unwrap();
        let rows = array.as_list::<i32>().value(0);
        let rows = rows.as_struct();
        let steps = rows.column(0).as_primitive::<Int32Type>();
        let actors = rows.column(1).as_primitive::<Int64Type>();
        let seconds = rows.column(2).as_primitive::<Float64Type>();
        (0..rows.len())
            .map(|row| {
                let taken = seconds.is_valid(row).then(|| seconds.value(row));
                (steps.value(row), actors.value(row), taken)
            })
            .collect()
    }

    #[test]
    fn each_actor_is_counted_at_its_level_with_its_chains_seconds() {
        // Actor 7: steps 1, 2, 3 at 0 s, 600 s, 2,400 s. Actor 9: step 1 at 100 s and step 2
        // 7,200 s later, outside the hour. Actor 8: step 2 alone. A NULL actor is skipped.
        let mut funnel = accumulator();
        funnel
            .update_batch(&batch(&[
                (Some(7), 2_400, 3),
                (Some(9), 100, 1),
                (Some(7), 0, 1),
                (Some(8), 50, 2),
                (None, 0, 1),
                (Some(9), 7_300, 2),
                (Some(7), 600, 2),
            ]))
            .unwrap();
        assert_eq!(
            elements(funnel.evaluate().unwrap()),
            vec![
                (1, 2, None),
                (2, 1, None),
                (3, 1, None),
                (2, 0, Some(600.0)),
                (3, 0, Some(1_800.0)),
            ]
        );
    }

    #[test]
    fn merged_partial_states_report_what_one_pass_reports() {
        let mut random = Random(0x5eed_f00d);
        let rows: Vec<(Option<i64>, i64, usize)> = (0..900)
            .map(|_| {
                let actor = 1_000 + random.below(40) as i64 * 300;
                let seconds = random.below(6 * 3_600) as i64;
                (
                    Some(actor),
                    seconds,
                    1 + random.below(STEPS as u64) as usize,
                )
            })
            .collect();
        let mut whole = accumulator();
        whole.update_batch(&batch(&rows)).unwrap();
        let mut merged = accumulator();
        for part in rows.chunks(250) {
            let mut partial = accumulator();
            partial.update_batch(&batch(part)).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        let expected = elements(whole.evaluate().unwrap());
        assert!(expected[0].1 > 20, "most actors reach step 1: {expected:?}");
        assert!(expected.len() > STEPS + 20, "and many step 2: {expected:?}");
        assert_eq!(elements(merged.evaluate().unwrap()), expected);
    }

    #[test]
    fn a_group_spanning_too_many_ids_is_refused_with_the_grouping_to_use() {
        let mut funnel = accumulator();
        funnel
            .update_batch(&batch(&[(Some(0), 0, 1), (Some(MOST_IDS_PER_GROUP), 0, 1)]))
            .unwrap();
        let error = funnel.evaluate().unwrap_err().to_string();
        assert!(error.contains("group the rows by actor / 16384"), "{error}");
    }

    /// A result of `actor_id_window_funnel` as (actor, level).
    fn levels(value: ScalarValue) -> Vec<(Option<i64>, u8)> {
        let array = value.to_array().unwrap();
        let rows = array.as_list::<i32>().value(0);
        let rows = rows.as_struct();
        let actors = rows.column(0).as_primitive::<Int64Type>();
        let levels = rows.column(1).as_primitive::<UInt8Type>();
        (0..rows.len())
            .map(|row| {
                let actor = actors.is_valid(row).then(|| actors.value(row));
                (actor, levels.value(row))
            })
            .collect()
    }

    #[test]
    fn every_actor_gets_its_level_even_without_a_step_and_the_null_actor_last() {
        // 7: steps 1, 2 within the hour. 9: step 1, then step 2 too late. 8: no step met.
        // NULL: steps 1, 2, 3 within the hour.
        let mut funnel = accumulator_of(BlockOutput::Levels);
        funnel
            .update_batch(&batch(&[
                (Some(9), 100, 1),
                (None, 10, 2),
                (Some(7), 600, 2),
                (Some(8), 50, 0),
                (None, 0, 1),
                (Some(9), 7_300, 2),
                (Some(7), 0, 1),
                (None, 20, 3),
            ]))
            .unwrap();
        assert_eq!(
            levels(funnel.evaluate().unwrap()),
            vec![(Some(7), 2), (Some(8), 0), (Some(9), 1), (None, 3)]
        );
    }

    #[test]
    fn merged_partial_levels_equal_one_pass() {
        let mut random = Random(0x00dd_ba11);
        let rows: Vec<(Option<i64>, i64, usize)> = (0..900)
            .map(|_| {
                let actor = (random.below(20) != 0).then(|| 500 + random.below(60) as i64 * 7);
                let seconds = random.below(4 * 3_600) as i64;
                (actor, seconds, random.below(STEPS as u64 + 1) as usize)
            })
            .collect();
        let mut whole = accumulator_of(BlockOutput::Levels);
        whole.update_batch(&batch(&rows)).unwrap();
        let mut merged = accumulator_of(BlockOutput::Levels);
        for part in rows.chunks(200) {
            let mut partial = accumulator_of(BlockOutput::Levels);
            partial.update_batch(&batch(part)).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        let expected = levels(whole.evaluate().unwrap());
        assert_eq!(
            expected.len(),
            61,
            "60 actors and the NULL one: {expected:?}"
        );
        assert!(expected.iter().any(|(_, level)| *level == 0));
        assert!(expected.iter().any(|(_, level)| *level == STEPS as u8));
        assert_eq!(levels(merged.evaluate().unwrap()), expected);
    }
}
