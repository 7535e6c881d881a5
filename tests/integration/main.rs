//! Integration tests: they drive the real `usagelake` binary, through pipes and a pseudo-terminal,
//! over lakes written by the real generator, against a real S3 server (moto) on loopback, and the
//! real Flight SQL server through real clients.

mod adoption_properties;
mod cli;
mod clickhouse_differential;
mod cloud_emulators;
mod cloud_stores;
mod fault_proxy;
mod flight_clients;
mod flight_rust;
mod generate;
mod http_tables;
mod job_outputs;
mod jobs;
mod lake;
mod object_storage;
mod properties;
mod python;
mod queries;
mod repl;
mod revenue_properties;
mod s3_server;
mod server;
mod server_process;
mod sessions_properties;
mod support;
mod survey_properties;
