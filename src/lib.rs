//! dams — a terminal workbench for labeling radio audio as speech / music / noise and for
//! studying how pretrained teacher models label it.
//!
//! Core modules know nothing of the terminal; [`tui`] renders core state and the CLI calls the
//! same job functions.

pub mod audio;
pub mod cli;
pub mod config;
pub mod demo;
#[cfg(feature = "burn")]
pub mod engine;
pub mod eval;
pub mod jobs;
pub mod labels;
pub mod pseudo;
pub mod store;
pub mod teachers;
pub mod workspace;
