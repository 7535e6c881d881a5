//! `usagelake_functions()`: every function of this crate with its documentation, as a table.
//!
//! DataFusion lists scalar and aggregate functions in `information_schema.routines`, but table
//! functions have no documentation there in DataFusion 55, and an analyst (or a BI tool) wants one
//! place that says what the metric library offers. The rows are built once, when the functions are
//! registered, from the same `Documentation` values that `SHOW FUNCTIONS` and `\h` use.

use std::sync::OnceLock;

use datafusion::common::{ScalarValue, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::planner::RelationPlannerContext;
use datafusion::logical_expr::{
    AggregateUDF, DocSection, Documentation, Expr, LogicalPlan, LogicalPlanBuilder, ScalarUDF,
    WindowUDF, col, lit,
};

use crate::table_function::{BoundArguments, MetricTableFunction};

/// The kinds of function a row can describe.
const KINDS: [&str; 4] = ["scalar", "aggregate", "window", "table"];

/// The columns of `usagelake_functions()`, in order.
const COLUMNS: [&str; 6] = [
    "name",
    "kind",
    "description",
    "syntax",
    "arguments",
    "example",
];

/// One documented function.
#[derive(Debug, Clone)]
struct FunctionRow {
    name: String,
    kind: &'static str,
    documentation: Documentation,
}

/// The `usagelake_functions()` table function.
#[derive(Debug)]
pub(crate) struct UsagelakeFunctions {
    rows: Vec<FunctionRow>,
}

fn own_documentation() -> &'static Documentation {
    static DOCUMENTATION: OnceLock<Documentation> = OnceLock::new();
    DOCUMENTATION.get_or_init(|| {
        Documentation::builder(
            DocSection {
                include: true,
                label: "Usagelake functions",
                description: None,
            },
            "Lists the functions of the usagelake metric library (scalar, aggregate, window and \
             table functions) with their description, syntax, arguments (one `name: description` per \
             line) and an example. DataFusion's built-in functions are listed by SHOW FUNCTIONS.",
            "usagelake_functions([kind [, name]])",
        )
        .with_argument(
            "kind",
            "Only functions of this kind: 'scalar', 'aggregate', 'window' or 'table'. Default: \
             all.",
        )
        .with_argument(
            "name",
            "Only functions whose name matches this LIKE pattern, such as 'period%'. Default: all.",
        )
        .with_sql_example(
            "SELECT name, description FROM usagelake_functions(kind => 'table');\n\
             SELECT syntax FROM usagelake_functions(name => 'period%');",
        )
        .build()
    })
}

impl UsagelakeFunctions {
    /// The listing of `scalars`, `aggregates`, `windows` and `tables`, and of itself.
    pub(crate) fn new(
        scalars: &[ScalarUDF],
        aggregates: &[AggregateUDF],
        windows: &[WindowUDF],
        tables: &[std::sync::Arc<dyn MetricTableFunction>],
    ) -> Self {
        let mut rows = Vec::new();
        let mut add = |name: &str, kind, documentation: Option<&Documentation>| {
            if let Some(documentation) = documentation {
                rows.push(FunctionRow {
                    name: name.to_string(),
                    kind,
                    documentation: documentation.clone(),
                });
            }
        };
        for function in scalars {
            add(function.name(), "scalar", function.documentation());
        }
        for function in aggregates {
            add(function.name(), "aggregate", function.documentation());
        }
        for function in windows {
            add(function.name(), "window", function.documentation());
        }
        for function in tables {
            add(function.name(), "table", Some(function.documentation()));
        }
        add("usagelake_functions", "table", Some(own_documentation()));
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        Self { rows }
    }
}

fn text(value: Option<&str>) -> Expr {
    lit(ScalarValue::Utf8(value.map(str::to_string)))
}

impl MetricTableFunction for UsagelakeFunctions {
    fn name(&self) -> &'static str {
        "usagelake_functions"
    }

    fn documentation(&self) -> &Documentation {
        own_documentation()
    }

    fn plan(
        &self,
        arguments: &BoundArguments,
        context: &mut dyn RelationPlannerContext,
    ) -> Result<LogicalPlan> {
        let kind = arguments.string("kind", context)?;
        if let Some(kind) = &kind
            && !KINDS.contains(&kind.as_str())
        {
            return plan_err!(
                "usagelake_functions: kind '{kind}' is not one of {}",
                KINDS.join(", ")
            );
        }
        let name = arguments.string("name", context)?;
        let values = self
            .rows
            .iter()
            .map(|row| {
                let doc = &row.documentation;
                let arguments = doc.arguments.as_ref().map(|arguments| {
                    arguments
                        .iter()
                        .map(|(name, description)| format!("{name}: {}", description.trim()))
                        .collect::<Vec<_>>()
                        .join("\n")
                });
                vec![
                    text(Some(&row.name)),
                    text(Some(row.kind)),
                    text(Some(doc.description.trim())),
                    text(Some(&doc.syntax_example)),
                    text(arguments.as_deref()),
                    text(doc.sql_example.as_deref().map(str::trim)),
                ]
            })
            .collect();
        let values = LogicalPlanBuilder::values(values)?;
        let columns: Vec<Expr> = values
            .schema()
            .columns()
            .into_iter()
            .zip(COLUMNS)
            .map(|(column, name)| Expr::Column(column).alias(name))
            .collect();
        let mut listing = values.project(columns)?;
        if let Some(kind) = kind {
            listing = listing.filter(col("kind").eq(lit(kind)))?;
        }
        if let Some(name) = name {
            listing = listing.filter(col("name").like(lit(name)))?;
        }
        listing.build()
    }
}
