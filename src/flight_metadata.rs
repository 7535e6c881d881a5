//! What the Flight SQL server says about itself: `GetSqlInfo` and `GetXdbcTypeInfo`.
//!
//! JDBC and ODBC clients (DBeaver, Tableau) build their SQL from these answers: the quote
//! character, whether the server is read-only, which functions and keywords exist, and which SQL
//! types map to which Arrow types. The function lists come from the session's own function
//! documentation, so they name what the engine really has, the metric functions included.

use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{Nullable, Searchable, SqlInfo, XdbcDataType, XdbcDatetimeSubcode};

/// Errors building the server's description of itself.
#[derive(Debug, thiserror::Error)]
#[error("could not describe the server: {0}")]
pub struct MetadataError(#[from] arrow_flight::error::FlightError);

/// Flight SQL's `SqlCaseSensitivity`: unquoted names are folded to lower case.
const LOWERCASE: i32 = 3;
/// Flight SQL's `SqlNullOrdering`: NULLs sort after every value in ascending order.
const NULLS_SORTED_HIGH: i32 = 0;
/// Flight SQL's `SqlOuterJoinsSupportLevel`: LEFT, RIGHT and FULL joins.
const FULL_OUTER_JOINS: i32 = 2;
/// Bitmask of `SqlSupportedGroupBy`: unrelated and beyond-select grouping.
const GROUP_BY_UNRELATED_AND_BEYOND_SELECT: i32 = 0b11;
/// Bitmask of `SupportedSqlGrammar`: the minimum and core grammars.
const MINIMUM_AND_CORE_GRAMMAR: i32 = 0b011;
/// Bitmask of `SqlSupportedSubqueries`: in comparisons, EXISTS and IN.
const SUBQUERIES: i32 = 0b0111;
/// Bitmask of `SqlSupportedUnions`: UNION and UNION ALL.
const UNIONS: i32 = 0b11;
/// Flight SQL's `SqlSupportedTransaction`: no transactions.
const NO_TRANSACTIONS: i32 = 0;

/// The functions of a documentation section, such as "Math Functions", sorted.
fn functions_in_section(ctx: &SessionContext, section: &str) -> Vec<String> {
    let state = ctx.state();
    let mut names: Vec<String> = state
        .scalar_functions()
        .values()
        .filter(|f| {
            f.documentation()
                .is_some_and(|doc| doc.doc_section.label == section)
        })
        .map(|f| f.name().to_string())
        .collect();
    names.sort();
    names
}

/// The `GetSqlInfo` answers of a server over `ctx`.
pub fn sql_info(ctx: &SessionContext, read_only: bool) -> Result<SqlInfoData, MetadataError> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "usagelake");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "1.5");
    info.append(SqlInfo::FlightSqlServerReadOnly, read_only);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::FlightSqlServerTransaction, NO_TRANSACTIONS);
    info.append(SqlInfo::FlightSqlServerCancel, false);
    info.append(SqlInfo::FlightSqlServerBulkIngestion, false);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, false);
    info.append(SqlInfo::SqlDdlTable, !read_only);
    info.append(SqlInfo::SqlIdentifierCase, LOWERCASE);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.append(SqlInfo::SqlNullOrdering, NULLS_SORTED_HIGH);
    let keywords: Vec<&str> = ALL_KEYWORDS.to_vec();
    info.append(SqlInfo::SqlKeywords, keywords.as_slice());
    for (item, section) in [
        (SqlInfo::SqlNumericFunctions, "Math Functions"),
        (SqlInfo::SqlStringFunctions, "String Functions"),
        (SqlInfo::SqlDatetimeFunctions, "Time and Date Functions"),
    ] {
        let names = functions_in_section(ctx, section);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        info.append(item, names.as_slice());
    }
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlExtraNameCharacters, "");
    info.append(SqlInfo::SqlSupportsColumnAliasing, true);
    info.append(SqlInfo::SqlNullPlusNullIsNull, true);
    info.append(SqlInfo::SqlSupportsTableCorrelationNames, true);
    info.append(SqlInfo::SqlSupportsDifferentTableCorrelationNames, false);
    info.append(SqlInfo::SqlSupportsExpressionsInOrderBy, true);
    info.append(SqlInfo::SqlSupportsOrderByUnrelated, true);
    info.append(
        SqlInfo::SqlSupportedGroupBy,
        GROUP_BY_UNRELATED_AND_BEYOND_SELECT,
    );
    info.append(SqlInfo::SqlSupportsLikeEscapeClause, true);
    info.append(SqlInfo::SqlSupportsNonNullableColumns, true);
    info.append(SqlInfo::SqlSupportedGrammar, MINIMUM_AND_CORE_GRAMMAR);
    info.append(SqlInfo::SqlSupportsIntegrityEnhancementFacility, false);
    info.append(SqlInfo::SqlOuterJoinsSupportLevel, FULL_OUTER_JOINS);
    info.append(SqlInfo::SqlSchemaTerm, "schema");
    info.append(SqlInfo::SqlProcedureTerm, "procedure");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlCatalogAtStart, true);
    info.append(SqlInfo::SqlSelectForUpdateSupported, false);
    info.append(SqlInfo::SqlStoredProceduresSupported, false);
    info.append(SqlInfo::SqlSupportedSubqueries, SUBQUERIES);
    info.append(SqlInfo::SqlCorrelatedSubqueriesSupported, true);
    info.append(SqlInfo::SqlSupportedUnions, UNIONS);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.append(SqlInfo::SqlDefaultTransactionIsolation, NO_TRANSACTIONS);
    info.append(SqlInfo::SqlDataDefinitionCausesTransactionCommit, false);
    info.append(SqlInfo::SqlDataDefinitionsInTransactionsIgnored, true);
    info.append(SqlInfo::SqlBatchUpdatesSupported, false);
    info.append(SqlInfo::SqlSavepointsSupported, false);
    info.append(SqlInfo::SqlNamedParametersSupported, false);
    info.append(SqlInfo::SqlStoredFunctionsUsingCallSyntaxSupported, false);
    Ok(info.build()?)
}

/// One SQL type as `GetXdbcTypeInfo` describes it.
fn xdbc_type(
    name: &str,
    data_type: XdbcDataType,
    column_size: Option<i32>,
    literal_quote: Option<&str>,
    datetime_subcode: Option<XdbcDatetimeSubcode>,
) -> XdbcTypeInfo {
    let numeric = matches!(
        data_type,
        XdbcDataType::XdbcTinyint
            | XdbcDataType::XdbcSmallint
            | XdbcDataType::XdbcInteger
            | XdbcDataType::XdbcBigint
            | XdbcDataType::XdbcReal
            | XdbcDataType::XdbcDouble
            | XdbcDataType::XdbcDecimal
    );
    XdbcTypeInfo {
        type_name: name.into(),
        data_type,
        column_size,
        literal_prefix: literal_quote.map(Into::into),
        literal_suffix: literal_quote.map(Into::into),
        create_params: (data_type == XdbcDataType::XdbcDecimal)
            .then(|| vec!["precision".into(), "scale".into()]),
        nullable: Nullable::NullabilityNullable,
        case_sensitive: data_type == XdbcDataType::XdbcVarchar,
        searchable: Searchable::Full,
        unsigned_attribute: numeric.then_some(false),
        fixed_prec_scale: data_type == XdbcDataType::XdbcDecimal,
        auto_increment: numeric.then_some(false),
        local_type_name: Some(name.into()),
        minimum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(0),
        maximum_scale: (data_type == XdbcDataType::XdbcDecimal).then_some(38),
        sql_data_type: if datetime_subcode.is_some() {
            XdbcDataType::XdbcDatetime
        } else {
            data_type
        },
        datetime_subcode,
        num_prec_radix: numeric.then_some(10),
        interval_precision: None,
    }
}

/// The SQL types of the engine, as `GetXdbcTypeInfo` lists them.
pub fn xdbc_types() -> Result<XdbcTypeInfoData, MetadataError> {
    use XdbcDataType as T;
    use XdbcDatetimeSubcode as S;
    let mut types = XdbcTypeInfoDataBuilder::new();
    for info in [
        xdbc_type("BOOLEAN", T::XdbcBit, Some(1), None, None),
        xdbc_type("TINYINT", T::XdbcTinyint, Some(3), None, None),
        xdbc_type("SMALLINT", T::XdbcSmallint, Some(5), None, None),
        xdbc_type("INTEGER", T::XdbcInteger, Some(10), None, None),
        xdbc_type("BIGINT", T::XdbcBigint, Some(19), None, None),
        xdbc_type("REAL", T::XdbcReal, Some(7), None, None),
        xdbc_type("DOUBLE", T::XdbcDouble, Some(15), None, None),
        xdbc_type("DECIMAL", T::XdbcDecimal, Some(38), None, None),
        xdbc_type("VARCHAR", T::XdbcVarchar, None, Some("'"), None),
        xdbc_type("BYTEA", T::XdbcVarbinary, None, None, None),
        // XDBC's DATE subcode is 1, the number it shares with YEAR, the name prost kept.
        xdbc_type(
            "DATE",
            T::XdbcDate,
            Some(10),
            Some("'"),
            Some(S::XdbcSubcodeYear),
        ),
        xdbc_type(
            "TIME",
            T::XdbcTime,
            Some(15),
            Some("'"),
            Some(S::XdbcSubcodeTime),
        ),
        xdbc_type(
            "TIMESTAMP",
            T::XdbcTimestamp,
            Some(26),
            Some("'"),
            Some(S::XdbcSubcodeTimestamp),
        ),
        xdbc_type("INTERVAL", T::XdbcInterval, None, Some("'"), None),
    ] {
        types.append(info);
    }
    Ok(types.build()?)
}
