//! `window_funnel_events(window, ts, c1, ..., cN [, mode, ...])`: the step times of the chain
//! behind `window_funnel`'s level.
//!
//! Everything but the result and the documentation is `window_funnel`'s: the same arguments,
//! checks, state and run of ClickHouse's algorithm ([`FunnelFunction`], to which
//! `funnel_function_methods!` forwards the `AggregateUDFImpl` methods). The run records, for
//! each new highest level, the step that reached it and the chain it extended, so the chain
//! costs nothing until it is read out.

use datafusion::logical_expr::{AggregateUDFImpl, Documentation};
use datafusion_macros::user_doc;

use crate::window_funnel::{FunnelFunction, FunnelOutput, funnel_function_methods};

#[user_doc(
    doc_section(label = "General Functions"),
    description = "The step times of the funnel chain behind `window_funnel`'s level, as a list \
        of TIMESTAMPs of `ts`'s unit and zone (a DATE gives its midnight, as a TIMESTAMP without \
        a zone): the chain that reached the highest level first, that is whose last step is the \
        earliest of any chain of that level, with the earlier steps that ClickHouse's algorithm \
        holds when it completes (each the latest event of its step that extended the chain \
        still in its window). An empty list at level 0; the list's length is always \
        `window_funnel`'s level. Takes the same arguments and modes as `window_funnel`.",
    syntax_example = "window_funnel_events(window, ts, c1[, c2, ..., c32][, mode, ...])",
    sql_example = r#"```sql
> SELECT user_id,
         window_funnel_events(INTERVAL '1 hour', ts,
                              event = 'view', event = 'cart', event = 'checkout') AS steps
  FROM events GROUP BY user_id ORDER BY user_id;
+---------+------------------------------------------------------------------+
| user_id | steps                                                            |
+---------+------------------------------------------------------------------+
| 1       | [2024-05-01T10:00:00, 2024-05-01T10:05:00, 2024-05-01T10:20:00] |
| 2       | [2024-05-01T11:00:00]                                            |
+---------+------------------------------------------------------------------+
> SELECT user_id, steps[2] - steps[1] AS time_to_cart
  FROM (SELECT user_id,
               window_funnel_events(INTERVAL '1 hour', ts, event = 'view', event = 'cart')
                 AS steps
        FROM events GROUP BY user_id)
  WHERE cardinality(steps) = 2;
```"#,
    argument(
        name = "window",
        description = "Constant positive INTERVAL (such as INTERVAL '1 hour') or integer number \
            of seconds: how long after step 1 the last step may come, inclusive."
    ),
    argument(
        name = "ts",
        description = "TIMESTAMP (any unit, with or without a zone) or DATE: the time of the row."
    ),
    argument(
        name = "c1, ..., c32",
        description = "BOOLEAN conditions for the steps of the funnel, in order, such as \
            `event = 'signup'`."
    ),
    argument(
        name = "mode",
        description = "Optional constant strings after the last condition: \
            'strict_deduplication', 'strict_order', 'strict_increase', 'strict_once'."
    )
)]
/// The `window_funnel_events` aggregate function.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct WindowFunnelEvents {
    function: FunnelFunction,
}

impl WindowFunnelEvents {
    pub(crate) fn new() -> Self {
        Self {
            function: FunnelFunction::new("window_funnel_events", FunnelOutput::Chain),
        }
    }
}

impl Default for WindowFunnelEvents {
    fn default() -> Self {
        Self::new()
    }
}

impl AggregateUDFImpl for WindowFunnelEvents {
    funnel_function_methods!();

    fn documentation(&self) -> Option<&Documentation> {
        self.doc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};

    #[test]
    fn return_type_is_a_list_of_the_time_type() {
        let udf = WindowFunnelEvents::new();
        let zoned = DataType::Timestamp(TimeUnit::Millisecond, Some("+02:00".into()));
        let types = [
            DataType::Interval(IntervalUnit::MonthDayNano),
            zoned.clone(),
            DataType::Boolean,
            DataType::Boolean,
            DataType::Utf8,
        ];
        assert_eq!(
            udf.return_type(&types).unwrap(),
            DataType::List(Arc::new(Field::new_list_field(zoned, true)))
        );
    }

    #[test]
    fn errors_name_this_function() {
        let error = WindowFunnelEvents::new()
            .return_type(&[DataType::Boolean])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("window_funnel_events takes a window"),
            "{error}"
        );
    }

    #[test]
    fn documentation_has_description_syntax_arguments_and_example() {
        let udf = WindowFunnelEvents::new();
        let doc = udf.documentation().unwrap();
        assert_eq!(
            doc.syntax_example,
            "window_funnel_events(window, ts, c1[, c2, ..., c32][, mode, ...])"
        );
        assert!(doc.description.contains("reached the highest level first"));
        assert_eq!(doc.arguments.as_ref().unwrap().len(), 4);
        assert!(
            doc.sql_example
                .as_ref()
                .unwrap()
                .contains("window_funnel_events(")
        );
    }
}
