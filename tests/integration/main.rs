//! Integration tests: they drive the real `usagelake` binary, through pipes and a pseudo-terminal,
//! over lakes written by the real generator.

mod adoption_properties;
mod cli;
mod generate;
mod lake;
mod properties;
mod queries;
mod repl;
mod revenue_properties;
mod support;
