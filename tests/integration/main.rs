//! Integration tests: they drive the real `usagelake` binary, through pipes and a pseudo-terminal,
//! over lakes written by the real generator, and against a real S3 server (moto) on loopback.

mod adoption_properties;
mod cli;
mod fault_proxy;
mod generate;
mod jobs;
mod lake;
mod object_storage;
mod properties;
mod queries;
mod repl;
mod revenue_properties;
mod s3_server;
mod support;
