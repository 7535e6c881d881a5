//! Integration tests: they drive the real `usagelake` binary, through pipes and a pseudo-terminal,
//! over lakes written by the real generator, and the real Flight SQL server through real clients.

mod adoption_properties;
mod cli;
mod flight_clients;
mod flight_rust;
mod generate;
mod lake;
mod properties;
mod python;
mod queries;
mod repl;
mod revenue_properties;
mod server;
mod support;
mod survey_properties;
