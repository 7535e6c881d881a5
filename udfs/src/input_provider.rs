//! Finding the tables a table function reads.
//!
//! DataFusion resolves a statement's tables before planning it, from the relations its SQL names,
//! and the planner then sees only those. The input of `active_users('events')` is a string, so
//! `events` is not among them. [`InputProvider`] answers the planner's questions as the session
//! does, and looks a table it was not given up in the session's catalogs, where the lake's tables
//! are registered.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, FieldRef, SchemaRef};
use datafusion::catalog::CatalogProviderList;
use datafusion::common::config::ConfigOptions;
use datafusion::common::file_options::file_type::FileType;
use datafusion::common::{TableReference, plan_datafusion_err};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::logical_expr::planner::{
    ContextProvider, ExprPlanner, RelationPlanner, TypePlanner,
};
use datafusion::logical_expr::{
    AggregateUDF, Expr, HigherOrderUDF, ScalarUDF, TableSource, WindowUDF,
};

/// The session's planning context, with the session's catalogs behind it for tables.
pub(crate) struct InputProvider<'a> {
    pub(crate) session: &'a dyn ContextProvider,
    pub(crate) catalogs: &'a Arc<dyn CatalogProviderList>,
}

impl InputProvider<'_> {
    fn catalog_table(&self, name: &TableReference) -> Result<Arc<dyn TableSource>> {
        let catalog_options = &self.session.options().catalog;
        let resolved = name.clone().resolve(
            &catalog_options.default_catalog,
            &catalog_options.default_schema,
        );
        let schema = self
            .catalogs
            .catalog(&resolved.catalog)
            .and_then(|catalog| catalog.schema(&resolved.schema));
        let table = match schema {
            // The lake's schemas are in memory, so the lookup is ready at once.
            Some(schema) => futures::executor::block_on(schema.table(&resolved.table))?,
            None => None,
        };
        table
            .map(provider_as_source)
            .ok_or_else(|| plan_datafusion_err!("table '{resolved}' not found"))
    }
}

impl ContextProvider for InputProvider<'_> {
    fn get_table_source(&self, name: TableReference) -> Result<Arc<dyn TableSource>> {
        self.session
            .get_table_source(name.clone())
            .or_else(|_| self.catalog_table(&name))
    }

    fn get_file_type(&self, ext: &str) -> Result<Arc<dyn FileType>> {
        self.session.get_file_type(ext)
    }

    fn get_table_function_source(
        &self,
        name: &str,
        args: Vec<Expr>,
    ) -> Result<Arc<dyn TableSource>> {
        self.session.get_table_function_source(name, args)
    }

    fn create_cte_work_table(&self, name: &str, schema: SchemaRef) -> Result<Arc<dyn TableSource>> {
        self.session.create_cte_work_table(name, schema)
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        self.session.get_expr_planners()
    }

    fn get_relation_planners(&self) -> &[Arc<dyn RelationPlanner>] {
        self.session.get_relation_planners()
    }

    fn get_type_planner(&self) -> Option<Arc<dyn TypePlanner>> {
        self.session.get_type_planner()
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.session.get_function_meta(name)
    }

    fn get_higher_order_meta(&self, name: &str) -> Option<Arc<HigherOrderUDF>> {
        self.session.get_higher_order_meta(name)
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.session.get_aggregate_meta(name)
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        self.session.get_window_meta(name)
    }

    fn get_variable_type(&self, variable_names: &[String]) -> Option<DataType> {
        self.session.get_variable_type(variable_names)
    }

    fn get_variable_field(&self, variable_names: &[String]) -> Option<FieldRef> {
        self.session.get_variable_field(variable_names)
    }

    fn options(&self) -> &ConfigOptions {
        self.session.options()
    }

    fn udf_names(&self) -> Vec<String> {
        self.session.udf_names()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        self.session.higher_order_function_names()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.session.udaf_names()
    }

    fn udwf_names(&self) -> Vec<String> {
        self.session.udwf_names()
    }
}
