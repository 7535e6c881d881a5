//! Property test of the survey and growth aggregates `nps`, `ces` and `k_factor`: on many random
//! small tables, split over several partitions so that partial states merge, each must give what
//! a plain SQL formulation of its contract (`../shared/spec/metrics.md`, "Aggregate and window
//! functions") gives, per group and over the whole table.
//!
//! A table is `answers(g, score, effort, inviter, invited, converted)`: 0 to 300 rows in up to 4
//! partitions, 1 to 6 groups, NPS answers 0 to 10 and effort answers 1 to 7 with NULLs, inviters
//! from a small pool so that each sends several invitations, and NULL inviters, invited and
//! conversions. The plain SQL uses DataFusion's own functions only: NPS as two CASE counts over a
//! count, CES as `avg`, the K-factor as invitations over `count(DISTINCT inviter)` times converted
//! invitations over invitations, each NULL where its denominator is 0. Values are compared as text,
//! rounded to 9 decimals (the formulations add in different orders).
//!
//! A failure lists every failing seed with both results; `random_answers(seed)` rebuilds a seed's
//! table.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use usagelake::session::{SessionOptions, create_context};

use crate::properties::{Rng, execute, text_rows};

const SEEDS: std::ops::RangeInclusive<u64> = 1..=40;

/// The random table of `seed`, as the batches of its partitions.
fn random_answers(seed: u64) -> (Arc<Schema>, Vec<Vec<RecordBatch>>) {
    let mut rng = Rng::new(seed);
    let rows = rng.range(0, 300) as usize;
    let groups = rng.range(1, 6);
    let inviters = rng.range(1, 12);
    let maybe = |rng: &mut Rng, percent: u64, value: i64| rng.chance(percent).then_some(value);
    let mut columns: [Vec<Option<i64>>; 5] = Default::default();
    let mut converted = vec![];
    for _ in 0..rows {
        let values = [
            rng.range(0, groups - 1),
            rng.range(0, 10),
            rng.range(1, 7),
            rng.range(0, inviters - 1),
            rng.range(0, 1_000),
        ];
        let present = [100, 85, 80, 90, 92];
        for ((column, value), percent) in columns.iter_mut().zip(values).zip(present) {
            column.push(maybe(&mut rng, percent, value));
        }
        converted.push(rng.chance(90).then(|| rng.chance(30)));
    }
    let names = ["g", "score", "effort", "inviter", "invited"];
    let mut fields: Vec<Field> = names
        .iter()
        .map(|name| Field::new(*name, DataType::Int64, true))
        .collect();
    fields.push(Field::new("converted", DataType::Boolean, true));
    let schema = Arc::new(Schema::new(fields));
    let partitions = rng.range(1, 4) as usize;
    let chunk = rows.div_ceil(partitions).max(1);
    let batches = (0..partitions)
        .map(|part| {
            let range = (part * chunk).min(rows)..((part + 1) * chunk).min(rows);
            let mut arrays: Vec<ArrayRef> = columns
                .iter()
                .map(|column| {
                    Arc::new(Int64Array::from(column[range.clone()].to_vec())) as ArrayRef
                })
                .collect();
            arrays.push(Arc::new(BooleanArray::from(converted[range].to_vec())));
            vec![RecordBatch::try_new(Arc::clone(&schema), arrays).unwrap()]
        })
        .collect();
    (schema, batches)
}

const FUNCTIONS: &str = "round(nps(score), 9), round(ces(effort), 9), \
    round(k_factor(inviter, invited, converted), 9)";

/// The same figures by plain SQL; `invitation` marks the rows that are invitations.
const PLAIN: &str = "round(100.0 * (count(CASE WHEN score >= 9 THEN 1 END) \
        - count(CASE WHEN score <= 6 THEN 1 END)) / NULLIF(count(score), 0), 9), \
    round(avg(CAST(effort AS DOUBLE)), 9), \
    round(CAST(count(CASE WHEN invitation THEN 1 END) AS DOUBLE) \
        / NULLIF(count(DISTINCT CASE WHEN invitation THEN inviter END), 0) \
        * (CAST(count(CASE WHEN invitation AND converted THEN 1 END) AS DOUBLE) \
        / NULLIF(count(CASE WHEN invitation THEN 1 END), 0)), 9)";

#[tokio::test]
async fn survey_aggregates_match_plain_sql_on_random_tables() {
    let mut failures = vec![];
    let mut nonempty = 0;
    for seed in SEEDS {
        let options = SessionOptions {
            threads: Some(1 + (seed % 4) as usize),
            ..SessionOptions::default()
        };
        let ctx = create_context(&options).expect("session");
        let (schema, partitions) = random_answers(seed);
        let table = MemTable::try_new(schema, partitions).expect("table");
        ctx.register_table("answers", Arc::new(table))
            .expect("register");
        let invitations = "SELECT *, inviter IS NOT NULL AND invited IS NOT NULL AS invitation \
                           FROM answers";
        for (function_sql, plain_sql) in [
            (
                format!("SELECT g, {FUNCTIONS} FROM answers GROUP BY g ORDER BY g"),
                format!("SELECT g, {PLAIN} FROM ({invitations}) GROUP BY g ORDER BY g"),
            ),
            (
                format!("SELECT {FUNCTIONS} FROM answers"),
                format!("SELECT {PLAIN} FROM ({invitations})"),
            ),
        ] {
            let got = text_rows(&execute(&ctx, &function_sql).await.expect("functions")).1;
            let want = text_rows(&execute(&ctx, &plain_sql).await.expect("plain SQL")).1;
            if got != want {
                failures.push(format!(
                    "seed {seed}: {function_sql}\n got {got:?}\nwant {want:?}"
                ));
            }
            nonempty += usize::from(got.iter().any(|row| !row.contains("NULL")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Most tables have answers and invitations in every figure.
    assert!(nonempty > 40, "only {nonempty} results without NULL");
}
