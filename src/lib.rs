//! mbx: multi-architecture container builds, fast, verified and explained.
//!
//! The pipeline is the architecture: `setup → build → verify → report`, with
//! one [`run::RunRecord`] flowing through. See `src/` for one folder a stage.

pub mod build;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod docker;
pub mod error;
pub mod gha_cache;
pub mod inputs;
pub mod interrupt;
pub mod oci;
pub mod pipeline;
pub mod plan;
pub mod platform;
pub mod printer;
pub mod report;
pub mod run;
pub mod setup;
pub mod verify;
