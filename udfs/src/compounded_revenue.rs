//! `compounded_revenue(mrr, monthly_churn, months)`: what a churn rate compounds to.
//!
//! A monthly churn rate looks small, and its effect over a year is hard to see: recurring revenue
//! that loses a share `c` each month brings `mrr × Σ_{k=0}^{months-1} (1 - c)^k` over `months`
//! months, and a negative `c` (net expansion: the customers who stay grow by more than the others
//! take away) compounds upward. With 5% monthly churn a year brings 9.19 months of today's MRR;
//! with −5% it brings 15.92, about 73% more. Written by hand it takes `power` and a
//! `generate_series` or the closed form `(1 - (1 - c)^n) / c`, which divides by zero at `c = 0`
//! and loses digits for a small `c`; this computes `-expm1(n × ln(1 - c)) / c`, accurate for any
//! `c`, with `c = 0` as `mrr × months`.
//!
//! A churn above 1 (more than the whole revenue lost in a month) has no meaning and gives NULL,
//! as does a result too large for a DOUBLE. `months` must be a whole number of 0 or more: a
//! fraction of a month is no term of the sum, so it is an error that names the value.

use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, Documentation, ScalarFunctionArgs, ScalarUDFImpl, Signature,
};
use datafusion_macros::user_doc;

use crate::number_arguments::{double_of_three, number_signature, three_number_methods};

const NAME: &str = "compounded_revenue";
const ARGUMENTS: [&str; 3] = ["mrr", "monthly_churn", "months"];

#[user_doc(
    doc_section(label = "Usagelake functions"),
    description = "Revenue over `months` months from recurring revenue that changes by \
-monthly_churn each month, as a DOUBLE: mrr * sum of (1 - monthly_churn)^k for k from 0 to \
months - 1 (the first month brings mrr). A negative monthly_churn is net expansion and compounds \
upward: with 5% monthly churn 100 of MRR brings 919.28 in a year, with -5% 1,591.71, about 73% \
more. months = 0 gives 0; a monthly_churn of 0 gives mrr * months; a monthly_churn above 1, or a \
result too large for a DOUBLE, gives NULL; months that is negative or not a whole number is an \
error. NULL in any argument gives NULL. DECIMAL arguments are read as DOUBLE.",
    syntax_example = "compounded_revenue(mrr, monthly_churn, months)",
    sql_example = r#"```sql
> SELECT round(compounded_revenue(100, 0.05, 12), 2) AS churning,
         round(compounded_revenue(100, -0.05, 12), 2) AS expanding,
         compounded_revenue(100, 0, 12) AS flat;
+----------+-----------+--------+
| churning | expanding | flat   |
+----------+-----------+--------+
| 919.28   | 1591.71   | 1200.0 |
+----------+-----------+--------+
```"#,
    argument(
        name = "mrr",
        description = "Monthly recurring revenue in the first month. Any integer, float or \
DECIMAL."
    ),
    argument(
        name = "monthly_churn",
        description = "The share of revenue lost each month, as a fraction (0.05 for 5%; \
negative for net expansion), for example from churn_rate(). Any integer, float or DECIMAL."
    ),
    argument(
        name = "months",
        description = "How many months to add up: a whole number of 0 or more, of any numeric \
type."
    )
)]
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct CompoundedRevenue {
    signature: Signature,
}

impl CompoundedRevenue {
    pub(crate) fn new() -> Self {
        Self {
            signature: number_signature(&[3]),
        }
    }
}

/// `mrr × Σ_{k<months} (1 - churn)^k`, or `None` where it has no answer.
fn compounded(mrr: f64, churn: f64, months: f64) -> Result<Option<f64>> {
    if !(months >= 0.0 && months.fract() == 0.0) {
        return exec_err!(
            "{NAME}: argument months must be a whole number of 0 or more, not {months}"
        );
    }
    if churn > 1.0 || churn.is_nan() {
        return Ok(None);
    }
    let months_of_mrr = if months == 0.0 {
        0.0
    } else if churn == 0.0 {
        months
    } else {
        // 1 - (1 - c)^n without the cancellation of subtracting two numbers close to 1.
        -(months * (-churn).ln_1p()).exp_m1() / churn
    };
    let revenue = mrr * months_of_mrr;
    Ok(revenue.is_finite().then_some(revenue))
}

impl ScalarUDFImpl for CompoundedRevenue {
    three_number_methods!(
        NAME,
        "compounded_revenue(mrr, monthly_churn, months)",
        ARGUMENTS
    );

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        double_of_three(&args, compounded)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(got: Option<f64>, want: f64) {
        let got = got.expect("a value");
        assert!(
            (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }

    #[test]
    fn minus_five_percent_brings_about_73_percent_more_in_a_year_than_plus_five() {
        // By hand, with the geometric sum Σ_{k<12} r^k = (r^12 - 1) / (r - 1):
        // r = 1.05: 1.05^12 = 1.795856326022..., (1.795856326022 - 1) / 0.05 = 15.917126520...
        // r = 0.95: 0.95^12 = 0.540360087662..., (1 - 0.540360087662) / 0.05 = 9.192798246...
        // 15.917126520 / 9.192798246 = 1.7314778..., 73.1% more.
        let expanding = compounded(100.0, -0.05, 12.0).unwrap();
        let churning = compounded(100.0, 0.05, 12.0).unwrap();
        near(expanding, 1_591.712_652_044_26);
        near(churning, 919.279_824_674_726);
        let more = expanding.unwrap() / churning.unwrap() - 1.0;
        assert!((more - 0.731_477_847).abs() < 1e-8, "{more}");
    }

    #[test]
    fn small_cases_match_the_sum_term_by_term() {
        // 10% churn for 3 months: 100 + 90 + 81 = 271.
        near(compounded(100.0, 0.1, 3.0).unwrap(), 271.0);
        // One month is the MRR itself; no churn is MRR × months; full churn leaves the first month.
        near(compounded(100.0, 0.3, 1.0).unwrap(), 100.0);
        near(compounded(100.0, 0.0, 12.0).unwrap(), 1_200.0);
        near(compounded(100.0, 1.0, 12.0).unwrap(), 100.0);
        // A churn of one in a billion over 12 months: 12 - 66e-9 (Σ k = 66), where the plain
        // closed form would lose most digits.
        near(compounded(1.0, 1e-9, 12.0).unwrap(), 12.0 - 66e-9);
        assert_eq!(compounded(100.0, 0.05, 0.0).unwrap(), Some(0.0));
    }

    #[test]
    fn no_answer_is_null_and_a_wrong_month_count_an_error() {
        assert_eq!(compounded(100.0, 1.5, 12.0).unwrap(), None);
        assert_eq!(compounded(100.0, f64::NAN, 12.0).unwrap(), None);
        assert_eq!(compounded(1e300, -1.0, 2000.0).unwrap(), None);
        for months in [-1.0, 2.5, f64::NAN] {
            let error = compounded(100.0, 0.05, months).unwrap_err().to_string();
            assert!(
                error.contains("compounded_revenue: argument months must be a whole number"),
                "{error}"
            );
        }
    }
}
