//! `feature_adoption_sets(actor, time, feature, in_range, released, min_uses, eligible_listed)`:
//! the report of `feature_adoption` in one aggregate over the rows, for integer actors.
//!
//! The general plan of `feature_adoption` groups the events by actor and by (feature, actor),
//! then joins those groups with the features and with each other; the hash tables of the two
//! `GROUP BY`s and the joins are most of its time. With integer actors the same facts fit in
//! vectors indexed by the actor itself: each event updates its actor's first-seen and last
//! in-range time and, in the same slot, its first use and use count of the event's feature, with
//! no hashing at all for short feature names (their Arrow view is the key). The
//! fold at the end computes what the joins and `percentile_cont` of the general plan compute, with
//! the same interpolation, so both plans give the same report.
//!
//! Three kinds of rows come in, told apart by which columns are NULL: events (actor and time),
//! launches (no actor, no time: a feature and its `released_at`) and the actors of an `eligible`
//! table (an actor, no time). States merge by taking minima, maxima and sums per actor.

use std::collections::HashMap;
use std::mem::{size_of, size_of_val};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, StringArray,
    StructArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Int32Type, Int64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::actor_sets::ActorMap;
use crate::fold::{
    Expected, check_arguments, list_of, report, set_bound, single_list, state_field,
};

const NAME: &str = "feature_adoption_sets";

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// The features whose uses live in each actor's own slot, next to its first and last times, so
/// that an event touches one place in memory; a later feature keeps its uses in a vector of its
/// own.
const INLINE_FEATURES: usize = 8;

/// How many rows ahead `update_batch` asks for an actor's slot: enough for a memory load to
/// arrive while the rows between are added.
const PREFETCH_ROWS: usize = 16;

/// The most short feature names looked up by their Arrow view alone, before hashing.
const VIEW_CACHE_LEN: usize = 32;

/// `percentile_cont`'s quantization of the interpolation weight (DataFusion's
/// `INTERPOLATION_PRECISION`), kept so that the percentiles equal the general plan's.
const INTERPOLATION_PRECISION: f64 = 1_000_000.0;

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "The integer-actor plan of `feature_adoption`, one aggregate in place of its \
        GROUP BYs and joins: returns every reported feature with its launch (microseconds), \
        eligible actors, adopters and the median and 90th percentile of days to adopt, as one \
        list. Rows with an actor and a time are events; rows with neither are launches (a \
        feature and its released_at in microseconds); rows with an actor and no time are the \
        actors of an eligible table. `feature_adoption` plans it for you.",
    syntax_example = "feature_adoption_sets(actor, time, feature, in_range, released, min_uses, eligible_listed)",
    sql_example = r#"```sql
> SELECT unnest(feature_adoption_sets(user_id, CAST(ts AS BIGINT), feature, true,
    CAST(NULL AS BIGINT), 1, false)) FROM events;
```"#,
    argument(name = "actor", description = "An integer: the actor of the event."),
    argument(
        name = "time",
        description = "BIGINT: the event time in microseconds since the epoch."
    ),
    argument(
        name = "feature",
        description = "A string: the feature the event uses, or NULL."
    ),
    argument(
        name = "in_range",
        description = "BOOLEAN: whether the event counts towards uses and eligibility."
    ),
    argument(
        name = "released",
        description = "BIGINT: on a launch row, the feature's release in microseconds."
    ),
    argument(
        name = "min_uses",
        description = "A constant BIGINT: the uses in the range that make an adopter."
    ),
    argument(
        name = "eligible_listed",
        description = "A constant BOOLEAN: whether the eligible actors are those of the eligible \
            rows rather than those active at or after the launch."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct FeatureAdoptionSets {
    signature: Signature,
}

impl FeatureAdoptionSets {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(7, Volatility::Immutable),
        }
    }
}

/// The fields of one report row.
pub(crate) fn report_fields() -> Fields {
    Fields::from(vec![
        Field::new("feature", DataType::Utf8, false),
        Field::new("launch", DataType::Int64, true),
        Field::new("eligible", DataType::Int64, false),
        Field::new("adopters", DataType::Int64, false),
        Field::new("median_days", DataType::Float64, true),
        Field::new("p90_days", DataType::Float64, true),
    ])
}

/// The state fields: types, in the order of [`AdoptionSetsAccumulator::state`].
const STATE_TYPES: [(&str, DataType); 12] = [
    ("actors", DataType::Int64),
    ("first_seen", DataType::Int64),
    ("last_in_range", DataType::Int64),
    ("listed", DataType::Boolean),
    ("features", DataType::Utf8),
    ("feature_listed", DataType::Boolean),
    ("released", DataType::Int64),
    ("use_features", DataType::Int32),
    ("use_actors", DataType::Int64),
    ("first_uses", DataType::Int64),
    ("uses", DataType::Int64),
    ("bounds", DataType::Int64),
];

impl AggregateUDFImpl for FeatureAdoptionSets {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        use Expected::*;
        let expected = [
            ("actor", Integer),
            ("time", BigInt),
            ("feature", String),
            ("in_range", Boolean),
            ("released", BigInt),
            ("min_uses", BigInt),
            ("eligible_listed", Boolean),
        ];
        check_arguments(NAME, arg_types, &expected)?;
        Ok(list_of(DataType::Struct(report_fields())))
    }

    fn accumulator(&self, _args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(AdoptionSetsAccumulator::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(STATE_TYPES
            .iter()
            .map(|(name, data_type)| state_field(&args, name, list_of(data_type.clone())))
            .collect())
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

/// What is known of one actor.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ActorFacts {
    /// Its first event over all history; `i64::MAX` for none.
    first_seen: i64,
    /// Its last event in the range; `i64::MIN` for none.
    last_in_range: i64,
    /// Whether the eligible table lists it.
    listed: bool,
    /// Its uses of the first [`INLINE_FEATURES`] features.
    uses: [Uses; INLINE_FEATURES],
}

/// One actor's uses of one feature.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Uses {
    /// Its first use over all history; `i64::MAX` for none.
    first: i64,
    /// Its uses in the range.
    in_range: i64,
}

const NO_USES: Uses = Uses {
    first: i64::MAX,
    in_range: 0,
};

const NO_ACTOR: ActorFacts = ActorFacts {
    first_seen: i64::MAX,
    last_in_range: i64::MIN,
    listed: false,
    uses: [NO_USES; INLINE_FEATURES],
};

/// One feature: whether a launch row named it, its earliest `released_at`, and (past the inline
/// features) its uses by actor.
#[derive(Debug)]
struct Feature {
    name: String,
    listed: bool,
    released: Option<i64>,
    uses: Option<ActorMap<Uses>>,
}

#[derive(Debug)]
struct AdoptionSetsAccumulator {
    actors: ActorMap<ActorFacts>,
    features: Vec<Feature>,
    feature_index: HashMap<String, usize>,
    /// Features by the Arrow view of their name, for names short enough to be inline in it.
    view_cache: Vec<(u128, usize)>,
    min_uses: Option<i64>,
    eligible_listed: Option<bool>,
}

impl Default for AdoptionSetsAccumulator {
    fn default() -> Self {
        Self {
            actors: ActorMap::new(NO_ACTOR),
            features: Vec::new(),
            feature_index: HashMap::new(),
            view_cache: Vec::new(),
            min_uses: None,
            eligible_listed: None,
        }
    }
}

impl AdoptionSetsAccumulator {
    /// The index of feature `name`, added if new.
    fn feature(&mut self, name: &str) -> usize {
        if let Some(index) = self.feature_index.get(name) {
            return *index;
        }
        let index = self.features.len();
        self.features.push(Feature {
            name: name.to_string(),
            listed: false,
            released: None,
            uses: (index >= INLINE_FEATURES).then(|| ActorMap::new(NO_USES)),
        });
        self.feature_index.insert(name.to_string(), index);
        index
    }

    fn add_launch(&mut self, feature: usize, listed: bool, released: Option<i64>) {
        let feature = &mut self.features[feature];
        feature.listed |= listed;
        feature.released = min_of(feature.released, released);
    }

    fn add_actor(&mut self, actor: i64, facts: ActorFacts) {
        let known = self.actors.entry(actor);
        known.first_seen = known.first_seen.min(facts.first_seen);
        known.last_in_range = known.last_in_range.max(facts.last_in_range);
        known.listed |= facts.listed;
    }

    /// The uses of `feature` by `actor`, and a place to set them.
    #[inline]
    fn uses_entry(&mut self, feature: usize, actor: i64) -> &mut Uses {
        match self.features[feature].uses.as_mut() {
            Some(uses) => uses.entry(actor),
            None => &mut self.actors.entry(actor).uses[feature],
        }
    }

    /// Every actor's uses of `feature`, in no particular order.
    fn feature_uses(&self, feature: usize) -> Box<dyn Iterator<Item = (i64, Uses)> + '_> {
        match &self.features[feature].uses {
            Some(uses) => uses.pairs(),
            None => Box::new(
                self.actors
                    .pairs()
                    .map(move |(actor, facts)| (actor, facts.uses[feature]))
                    .filter(|(_, uses)| *uses != NO_USES),
            ),
        }
    }

    fn add_uses(&mut self, feature: usize, actor: i64, uses: Uses) {
        let known = self.uses_entry(feature, actor);
        known.first = known.first.min(uses.first);
        known.in_range += uses.in_range;
    }

    /// The index of the feature whose name has Arrow view `view` (its length in the low 32 bits),
    /// looked up by the view itself when the name is inline in it.
    #[inline]
    fn feature_of_view(&mut self, view: u128, name: &str) -> usize {
        if name.len() > 12 {
            return self.feature(name);
        }
        if let Some((_, index)) = self.view_cache.iter().find(|(known, _)| *known == view) {
            return *index;
        }
        let index = self.feature(name);
        if self.view_cache.len() < VIEW_CACHE_LEN {
            self.view_cache.push((view, index));
        }
        index
    }

    fn set_bounds(&mut self, min_uses: Option<i64>, eligible_listed: Option<bool>) -> Result<()> {
        set_bound(NAME, &mut self.min_uses, min_uses, "min_uses")?;
        set_bound(
            NAME,
            &mut self.eligible_listed,
            eligible_listed,
            "eligible_listed",
        )
    }

    /// The report row of `feature`, if it is reported: used in the range, or named by a launch.
    fn feature_report(&self, index: usize, last_times: &[i64], listed: i64) -> Option<Row> {
        let feature = &self.features[index];
        let mut first_use_any = None;
        let mut used_in_range = false;
        for (_, uses) in self.feature_uses(index) {
            first_use_any = min_of(first_use_any, Some(uses.first));
            used_in_range |= uses.in_range > 0;
        }
        if !(used_in_range || feature.listed) {
            return None;
        }
        let launch = min_of(first_use_any, feature.released);
        let eligible_listed = self.eligible_listed.unwrap_or(false);
        let eligible = match (eligible_listed, launch) {
            (true, _) => listed,
            (false, None) => 0,
            // `last_times` is sorted: the actors at or after the launch are its tail.
            (false, Some(launch)) => {
                (last_times.len() - last_times.partition_point(|last| *last < launch)) as i64
            }
        };
        let min_uses = self.min_uses.unwrap_or(1);
        let mut days: Vec<f64> = self
            .feature_uses(index)
            .filter(|(_, uses)| uses.in_range >= min_uses)
            .filter_map(|(actor, uses)| {
                let facts = self.actors.get(actor);
                if eligible_listed && !facts.listed {
                    return None;
                }
                // An adopter used the feature, so it was seen and the feature launched.
                let start = facts.first_seen.max(launch.unwrap_or(i64::MIN));
                Some((uses.first - start) as f64 / MICROS_PER_DAY)
            })
            .collect();
        days.sort_unstable_by(f64::total_cmp);
        Some(Row {
            feature: feature.name.clone(),
            launch,
            eligible,
            adopters: days.len() as i64,
            median_days: percentile(&days, 0.5),
            p90_days: percentile(&days, 0.9),
        })
    }
}

/// One row of the report.
struct Row {
    feature: String,
    launch: Option<i64>,
    eligible: i64,
    adopters: i64,
    median_days: Option<f64>,
    p90_days: Option<f64>,
}

/// The smaller of two optional values, ignoring a missing one (as SQL's `least`).
fn min_of(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// `percentile_cont(fraction)` of `sorted`, computed as DataFusion computes it: between the
/// neighbours of position `fraction * (n - 1)`, with its weight quantized.
fn percentile(sorted: &[f64], fraction: f64) -> Option<f64> {
    match sorted.len() {
        0 => None,
        1 => Some(sorted[0]),
        len => {
            let index = fraction * ((len - 1) as f64);
            let (lower, upper) = (index.floor() as usize, index.ceil() as usize);
            if lower == upper {
                return Some(sorted[lower]);
            }
            let scaled = ((index - lower as f64) * INTERPOLATION_PRECISION) as usize;
            let weight = scaled as f64 / INTERPOLATION_PRECISION;
            Some(sorted[lower] + (sorted[upper] - sorted[lower]) * weight)
        }
    }
}

impl Accumulator for AdoptionSetsAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        if values[0].is_empty() {
            return Ok(());
        }
        // The bounds are constants: one row of each batch says what they are.
        let min_uses = values[5].as_primitive_opt::<Int64Type>();
        let eligible_listed = values[6].as_boolean_opt();
        self.set_bounds(
            min_uses.and_then(|array| array.is_valid(0).then(|| array.value(0))),
            eligible_listed.and_then(|array| array.is_valid(0).then(|| array.value(0))),
        )?;
        let actors = cast(&values[0], &DataType::Int64)?;
        let actors = actors.as_primitive::<Int64Type>();
        let times = values[1].as_primitive::<Int64Type>();
        let features = cast(&values[2], &DataType::Utf8View)?;
        let features = features.as_string_view();
        let in_range = values[3].as_boolean();
        let released = values[4].as_primitive::<Int64Type>();
        let views = features.views();
        let actor_ids = actors.values();
        for row in 0..actors.len() {
            if let Some(ahead) = actor_ids.get(row + PREFETCH_ROWS) {
                self.actors.prefetch(*ahead);
            }
            let feature = features
                .is_valid(row)
                .then(|| self.feature_of_view(views[row], features.value(row)));
            match (actors.is_valid(row), times.is_valid(row)) {
                (true, true) => {
                    let (actor, time) = (actors.value(row), times.value(row));
                    let counted = in_range.is_valid(row) && in_range.value(row);
                    let facts = self.actors.entry(actor);
                    facts.first_seen = facts.first_seen.min(time);
                    if counted {
                        facts.last_in_range = facts.last_in_range.max(time);
                    }
                    let uses = match feature {
                        Some(index) if index < INLINE_FEATURES => Some(&mut facts.uses[index]),
                        Some(index) => self.features[index]
                            .uses
                            .as_mut()
                            .map(|uses| uses.entry(actor)),
                        None => None,
                    };
                    if let Some(uses) = uses {
                        uses.first = uses.first.min(time);
                        uses.in_range += i64::from(counted);
                    }
                }
                (true, false) => self.actors.entry(actors.value(row)).listed = true,
                (false, _) => {
                    if let Some(index) = feature {
                        let released = released.is_valid(row).then(|| released.value(row));
                        self.add_launch(index, true, released);
                    }
                }
            }
        }
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let (mut actors, mut first_seen, mut last_in_range, mut listed) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (actor, facts) in self.actors.pairs() {
            actors.push(actor);
            first_seen.push(facts.first_seen);
            last_in_range.push(facts.last_in_range);
            listed.push(facts.listed);
        }
        let (mut use_features, mut use_actors, mut first_uses, mut uses) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for index in 0..self.features.len() {
            for (actor, feature_uses) in self.feature_uses(index) {
                use_features.push(index as i32);
                use_actors.push(actor);
                first_uses.push(feature_uses.first);
                uses.push(feature_uses.in_range);
            }
        }
        let lists: [ArrayRef; 12] = [
            Arc::new(Int64Array::from(actors)),
            Arc::new(Int64Array::from(first_seen)),
            Arc::new(Int64Array::from(last_in_range)),
            Arc::new(BooleanArray::from(listed)),
            Arc::new(StringArray::from_iter_values(
                self.features.iter().map(|feature| feature.name.as_str()),
            )),
            Arc::new(BooleanArray::from_iter(
                self.features.iter().map(|feature| Some(feature.listed)),
            )),
            Arc::new(Int64Array::from_iter(
                self.features.iter().map(|feature| feature.released),
            )),
            Arc::new(Int32Array::from(use_features)),
            Arc::new(Int64Array::from(use_actors)),
            Arc::new(Int64Array::from(first_uses)),
            Arc::new(Int64Array::from(uses)),
            // min_uses, then eligible_listed as 0 or 1 (NULL while unknown).
            Arc::new(Int64Array::from(vec![
                self.min_uses,
                self.eligible_listed.map(i64::from),
            ])),
        ];
        Ok(lists.into_iter().map(single_list).collect())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for row in 0..states[0].len() {
            if states[0].is_null(row) {
                continue;
            }
            let list = |index: usize| states[index].as_list::<i32>().value(row);
            let bounds = list(11);
            let bounds = bounds.as_primitive::<Int64Type>();
            let bound = |index: usize| bounds.is_valid(index).then(|| bounds.value(index));
            self.set_bounds(bound(0), bound(1).map(|listed| listed != 0))?;
            let (actors, first_seen, last_in_range, listed) = (list(0), list(1), list(2), list(3));
            let (first_seen, last_in_range) = (
                first_seen.as_primitive::<Int64Type>(),
                last_in_range.as_primitive::<Int64Type>(),
            );
            let listed = listed.as_boolean();
            for (index, actor) in actors
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .enumerate()
            {
                let facts = ActorFacts {
                    first_seen: first_seen.value(index),
                    last_in_range: last_in_range.value(index),
                    listed: listed.value(index),
                    uses: [NO_USES; INLINE_FEATURES],
                };
                self.add_actor(*actor, facts);
            }
            let (names, feature_listed, released) = (list(4), list(5), list(6));
            let names = names.as_string::<i32>();
            let feature_listed = feature_listed.as_boolean();
            let released = released.as_primitive::<Int64Type>();
            let mut indexes = Vec::with_capacity(names.len());
            for index in 0..names.len() {
                let feature = self.feature(names.value(index));
                let released = released.is_valid(index).then(|| released.value(index));
                self.add_launch(feature, feature_listed.value(index), released);
                indexes.push(feature);
            }
            let (use_features, use_actors, first_uses, uses) =
                (list(7), list(8), list(9), list(10));
            let use_features = use_features.as_primitive::<Int32Type>();
            let use_actors = use_actors.as_primitive::<Int64Type>();
            let first_uses = first_uses.as_primitive::<Int64Type>();
            let uses = uses.as_primitive::<Int64Type>();
            for index in 0..use_features.len() {
                let feature_uses = Uses {
                    first: first_uses.value(index),
                    in_range: uses.value(index),
                };
                self.add_uses(
                    indexes[use_features.value(index) as usize],
                    use_actors.value(index),
                    feature_uses,
                );
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut last_times = Vec::new();
        let mut listed = 0;
        for (_, facts) in self.actors.pairs() {
            if facts.last_in_range != i64::MIN {
                last_times.push(facts.last_in_range);
            }
            listed += i64::from(facts.listed);
        }
        last_times.sort_unstable();
        let rows: Vec<Row> = self
            .features
            .iter()
            .enumerate()
            .filter_map(|(index, _)| self.feature_report(index, &last_times, listed))
            .collect();
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(
                rows.iter().map(|row| row.feature.as_str()),
            )),
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.launch))),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|row| row.eligible),
            )),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|row| row.adopters),
            )),
            Arc::new(Float64Array::from_iter(
                rows.iter().map(|row| row.median_days),
            )),
            Arc::new(Float64Array::from_iter(rows.iter().map(|row| row.p90_days))),
        ];
        report(StructArray::try_new(report_fields(), columns, None)?)
    }

    fn size(&self) -> usize {
        size_of_val(self)
            + self.actors.size()
            + self
                .features
                .iter()
                .map(|feature| {
                    size_of::<Feature>()
                        + 2 * feature.name.len()
                        + feature.uses.as_ref().map_or(0, ActorMap::size)
                })
                .sum::<usize>()
            + self.feature_index.capacity() * size_of::<(String, usize)>()
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{BooleanArray, Int64Array, StringArray};

    use super::*;

    const DAY: i64 = 86_400_000_000;

    /// A row: actor, time, feature, released.
    type TestRow<'a> = (Option<i64>, Option<i64>, Option<&'a str>, Option<i64>);

    /// One batch of rows, all in the range, min_uses 1.
    fn batch(rows: &[TestRow]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.0))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.1))),
            Arc::new(StringArray::from_iter(rows.iter().map(|row| row.2))),
            Arc::new(BooleanArray::from(vec![true; rows.len()])),
            Arc::new(Int64Array::from_iter(rows.iter().map(|row| row.3))),
            Arc::new(Int64Array::from(vec![1; rows.len()])),
            Arc::new(BooleanArray::from(vec![false; rows.len()])),
        ]
    }

    #[test]
    fn percentiles_interpolate_between_neighbours() {
        // Position 0.5 * 2 = 1 is a value; 0.9 * 2 = 1.8 is 0.8 of the way from 1.5 to 3.
        assert_eq!(percentile(&[0.0, 1.5, 3.0], 0.5), Some(1.5));
        assert_eq!(percentile(&[0.0, 1.5, 3.0], 0.9), Some(2.7));
        assert_eq!(percentile(&[4.0], 0.9), Some(4.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn merged_states_give_the_report_of_all_rows() {
        // Actor 1 is seen on day 0 and uses a on day 2; actor 2 (far from 1, so the map turns
        // into a hash map) is seen on day 1 and uses a on day 5; actor 3 only has an event on
        // day 6. A launch row releases a on day 1 and names b, which nobody uses.
        let far = 1 << 40;
        let mut first = AdoptionSetsAccumulator::default();
        first
            .update_batch(&batch(&[
                (Some(1), Some(0), None, None),
                (Some(far), Some(5 * DAY), Some("a"), None),
            ]))
            .unwrap();
        let mut second = AdoptionSetsAccumulator::default();
        second
            .update_batch(&batch(&[
                (Some(1), Some(2 * DAY), Some("a"), None),
                (Some(far), Some(DAY), None, None),
                (Some(3), Some(6 * DAY), None, None),
                (None, None, Some("a"), Some(DAY)),
                (None, None, Some("b"), None),
            ]))
            .unwrap();
        let mut merged = AdoptionSetsAccumulator::default();
        for partial in [&mut first, &mut second] {
            let state: Vec<ArrayRef> = partial
                .state()
                .unwrap()
                .iter()
                .map(|value| value.to_array().unwrap())
                .collect();
            merged.merge_batch(&state).unwrap();
        }
        let ScalarValue::List(report) = merged.evaluate().unwrap() else {
            panic!("the report is a list");
        };
        let rows = report.value(0);
        let rows = rows.as_struct();
        // a launched on day 1: all three actors have an event at or after it; actor 1 took 2 - 1
        // days, actor 2 5 - 1: median 2.5, p90 1 + 0.9 * 3 = 3.7. b has no launch and no one
        // eligible.
        let column = |name: &str| Arc::clone(rows.column_by_name(name).unwrap());
        assert_eq!(
            column("feature")
                .as_string::<i32>()
                .iter()
                .collect::<Vec<_>>(),
            [Some("a"), Some("b")]
        );
        assert_eq!(
            column("launch")
                .as_primitive::<Int64Type>()
                .iter()
                .collect::<Vec<_>>(),
            [Some(DAY), None]
        );
        assert_eq!(
            column("eligible").as_primitive::<Int64Type>().values(),
            &[3, 0]
        );
        assert_eq!(
            column("adopters").as_primitive::<Int64Type>().values(),
            &[2, 0]
        );
        let median = column("median_days");
        let median = median.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert_eq!(median.iter().collect::<Vec<_>>(), [Some(2.5), None]);
        let p90 = column("p90_days");
        let p90 = p90.as_primitive::<datafusion::arrow::datatypes::Float64Type>();
        assert!((p90.value(0) - 3.7).abs() < 1e-12);
    }
}
