//! usagelake: SQL over Parquet usage logs, with product and revenue metric functions.
//!
//! The library holds everything the `usagelake` binary does, one module per job, so that the
//! integration tests and the front ends (the REPL, one-shot queries, the Flight SQL server) share one
//! engine.

pub mod admission;
pub mod cli;
pub mod flight_auth;
pub mod flight_metadata;
pub mod flight_service;
pub mod flight_sql;
pub mod generate;
pub mod job;
pub mod lake;
pub mod lake_config;
pub mod manifest;
pub mod meta_command;
pub mod object_stores;
pub mod output;
pub mod placeholders;
pub mod repl;
pub mod runner;
pub mod scan_balance;
pub mod serve;
pub mod session;
pub mod spinner;
pub mod sql_policy;
pub mod statements;
pub mod time_partition;
