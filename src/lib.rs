//! usagelake: SQL over Parquet usage logs, with product and revenue metric functions.
//!
//! The library holds everything the `usagelake` binary does, one module per job, so that the
//! integration tests and later front ends (Flight SQL, batch jobs) share one engine.

pub mod cli;
pub mod generate;
pub mod job;
pub mod lake;
pub mod lake_config;
pub mod manifest;
pub mod meta_command;
pub mod object_stores;
pub mod output;
pub mod repl;
pub mod runner;
pub mod session;
pub mod spinner;
pub mod statements;
pub mod time_partition;
