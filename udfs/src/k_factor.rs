//! `k_factor(inviter, invited, converted)`: the viral coefficient of a group's invitations.
//!
//! Growth teams read K = invitations per inviting actor × the share of invitations that convert:
//! 100 users sending 300 invitations of which 60 convert give 3 × 0.2 = 0.6 new users per
//! inviter, and K above 1 is growth that feeds itself. By hand it takes a `count(DISTINCT ...)`
//! over a count and a sum, with the NULL inviters and NULL conversions easy to count in one and
//! not the other; here a row is an invitation when it names both its inviter and the invited, and
//! a NULL `converted` counts as not converted. A group without invitations gives NULL, never NaN.
//!
//! The state is the distinct inviters with the counts of invitations and conversions: the sets
//! merge by union and the counts by adding, so partial states of many cores or executors combine.

use std::collections::HashSet;
use std::mem::size_of_val;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::datatypes::{DataType, FieldRef, UInt64Type};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDFImpl, Documentation, Signature, Volatility,
};
use datafusion_macros::user_doc;

use crate::adoption_rate::check_boolean_argument;
use crate::fold::{list_of, state_field};

const NAME: &str = "k_factor";

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Viral coefficient (K-factor) of the group's invitations, as a DOUBLE: \
invitations per distinct inviter times the share of the invitations that converted. A row is one \
invitation when both inviter and invited are not NULL (rows with a NULL in either are ignored); a \
NULL converted counts as not converted. 100 inviters sending 300 invitations of which 60 convert \
give 3 * 0.2 = 0.6; above 1, every user brings in more than one. A group without invitations \
gives NULL.",
    syntax_example = "k_factor(inviter, invited, converted)",
    sql_example = r#"```sql
> SELECT k_factor(inviter, invited, converted) AS k
  FROM (VALUES (1, 10, true), (1, 11, false), (2, 12, true), (2, 13, false))
       AS invitations(inviter, invited, converted);
+-----+
| k   |
+-----+
| 1.0 |
+-----+
> SELECT date_trunc('month', invited_at) AS month, k_factor(inviter, invited, converted)
  FROM invitations GROUP BY 1 ORDER BY 1;
```"#,
    argument(name = "inviter", description = "The actor who invited, of any type."),
    argument(
        name = "invited",
        description = "Who was invited (an e-mail, a user id), of any type."
    ),
    argument(
        name = "converted",
        description = "BOOLEAN: whether the invitation converted (the invited signed up)."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct KFactor {
    signature: Signature,
}

impl KFactor {
    pub(crate) fn new() -> Self {
        Self {
            signature: Signature::any(3, Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for KFactor {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        check_boolean_argument(NAME, "converted", "signed_up_at IS NOT NULL", &arg_types[2])?;
        Ok(DataType::Float64)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(KFactorAccumulator {
            inviter_type: args.expr_fields[0].data_type().clone(),
            inviters: HashSet::new(),
            invitations: 0,
            converted: 0,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            state_field(
                &args,
                "inviters",
                list_of(args.input_fields[0].data_type().clone()),
            ),
            state_field(&args, "invitations", DataType::UInt64),
            state_field(&args, "converted", DataType::UInt64),
        ])
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[derive(Debug)]
struct KFactorAccumulator {
    inviter_type: DataType,
    inviters: HashSet<ScalarValue>,
    invitations: u64,
    converted: u64,
}

impl KFactorAccumulator {
    fn add_inviters(
        &mut self,
        inviters: &ArrayRef,
        rows: impl Iterator<Item = usize>,
    ) -> Result<()> {
        for row in rows {
            self.inviters
                .insert(ScalarValue::try_from_array(inviters, row)?);
        }
        Ok(())
    }
}

impl Accumulator for KFactorAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let (inviters, invited) = (&values[0], &values[1]);
        let converted = values[2].as_boolean_opt();
        let invitations: Vec<usize> = (0..inviters.len())
            .filter(|&row| inviters.is_valid(row) && invited.is_valid(row))
            .collect();
        self.invitations += invitations.len() as u64;
        self.converted += invitations
            .iter()
            .filter(|&&row| converted.is_some_and(|c| c.is_valid(row) && c.value(row)))
            .count() as u64;
        self.add_inviters(inviters, invitations.into_iter())
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let inviters = states[0].as_list::<i32>();
        for row in 0..inviters.len() {
            if inviters.is_valid(row) {
                let values = inviters.value(row);
                self.add_inviters(&values, 0..values.len())?;
            }
        }
        let sum = |state: &ArrayRef| {
            state
                .as_primitive::<UInt64Type>()
                .iter()
                .flatten()
                .sum::<u64>()
        };
        self.invitations += sum(&states[1]);
        self.converted += sum(&states[2]);
        Ok(())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let inviters: Vec<ScalarValue> = self.inviters.iter().cloned().collect();
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(
                &inviters,
                &self.inviter_type,
            )),
            ScalarValue::UInt64(Some(self.invitations)),
            ScalarValue::UInt64(Some(self.converted)),
        ])
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let (inviters, invitations) = (self.inviters.len() as f64, self.invitations as f64);
        Ok(ScalarValue::Float64((self.invitations > 0).then(|| {
            (invitations / inviters) * (self.converted as f64 / invitations)
        })))
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.inviters.capacity() * size_of_val(&ScalarValue::Null)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_merge::merge_state;
    use std::sync::Arc;

    use datafusion::arrow::array::{BooleanArray, Int64Array};

    use super::*;

    fn accumulator() -> KFactorAccumulator {
        KFactorAccumulator {
            inviter_type: DataType::Int64,
            inviters: HashSet::new(),
            invitations: 0,
            converted: 0,
        }
    }

    fn batch(rows: &[(Option<i64>, Option<i64>, Option<bool>)]) -> Vec<ArrayRef> {
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(BooleanArray::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ]
    }

    #[test]
    fn invitations_per_inviter_times_conversion() {
        let mut k = accumulator();
        // Inviters 1 and 2 send 5 invitations (the rows with a NULL inviter or invited do not
        // count), 2 of them converted (a NULL is not): 5 / 2 × 2 / 5 = 1.0.
        k.update_batch(&batch(&[
            (Some(1), Some(10), Some(true)),
            (Some(1), Some(11), Some(false)),
            (Some(1), Some(12), None),
            (Some(2), Some(13), Some(true)),
            (Some(2), Some(14), Some(false)),
            (None, Some(15), Some(true)),
            (Some(3), None, Some(true)),
        ]))
        .unwrap();
        assert_eq!(k.evaluate().unwrap(), ScalarValue::Float64(Some(1.0)));
    }

    #[test]
    fn states_merge_inviters_by_union_and_counts_by_adding() {
        let mut merged = accumulator();
        for rows in [
            [
                (Some(7), Some(1), Some(true)),
                (Some(8), Some(2), Some(false)),
            ],
            [
                (Some(7), Some(3), Some(true)),
                (Some(7), Some(4), Some(false)),
            ],
        ] {
            let mut partial = accumulator();
            partial.update_batch(&batch(&rows)).unwrap();
            merge_state(&mut partial, &mut merged);
        }
        // Inviters 7 and 8, 4 invitations, 2 converted: 4 / 2 × 2 / 4 = 1.0.
        assert_eq!(merged.evaluate().unwrap(), ScalarValue::Float64(Some(1.0)));
    }

    #[test]
    fn no_invitations_is_null() {
        let mut k = accumulator();
        k.update_batch(&batch(&[(None, Some(1), Some(true))]))
            .unwrap();
        assert_eq!(k.evaluate().unwrap(), ScalarValue::Float64(None));
        assert_eq!(k.state().unwrap().len(), 3);
    }
}
