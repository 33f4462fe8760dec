//! What every integration test that runs the `dams` binary shares: a command whose user-level dirs (config, data,
//! cache, the Hugging Face cache) all live under the test's own folder, with nothing of the user's environment
//! leaking in (workspace, annotator, hub endpoint, token) and no network or GPU probing.

#![allow(dead_code)]

use std::path::Path;
use std::process::Command;

/// `dams` with its user dirs under `home` (`home/config`, `home/data`, `home/cache`, `home/hf`).
pub fn dams(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_dams"));
    c.env("DAMS_CONFIG_DIR", home.join("config"))
        .env("DAMS_DATA_DIR", home.join("data"))
        .env("DAMS_CACHE_DIR", home.join("cache"))
        .env("HF_HUB_CACHE", home.join("hf"))
        .env("HF_HUB_OFFLINE", "1")
        .env("DAMS_NO_GPU", "1")
        .env_remove("DAMS_WORKSPACE")
        .env_remove("DAMS_ANNOTATOR")
        .env_remove("HF_HOME")
        .env_remove("HF_ENDPOINT")
        .env_remove("HF_TOKEN");
    c
}
