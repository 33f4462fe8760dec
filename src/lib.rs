//! dams — a terminal workbench for labeling radio audio as speech / music / noise and for
//! studying how pretrained teacher models label it.
//!
//! Core modules know nothing of the terminal; [`tui`] renders core state and the CLI calls the
//! same job functions.

pub mod audio;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod containment;
pub mod demo;
pub mod dsp;
#[cfg(feature = "burn")]
pub mod engine;
pub mod eval;
pub mod jobs;
pub mod labelmodel;
pub mod labels;
pub mod manifest;
pub mod pool;
pub mod pseudo;
pub mod recovery;
pub mod rng;
pub mod slurm;
pub mod store;
#[cfg(feature = "burn")]
pub mod student;
pub mod teachers;
pub mod tui;
pub mod workspace;
