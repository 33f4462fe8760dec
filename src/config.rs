//! User-level configuration (platform config dir from the `directories` crate).
//!
//! `<config_dir>/config.toml`:
//! ```toml
//! annotator = "alice"
//! keymap = "default"          # or "vim"
//! allow_gold_on_all_splits = false
//! ```
//! `<config_dir>/keymap.toml` is merged over the chosen preset; models are cached under
//! `<cache_dir>/models`, and the embedded demo workspace is unpacked under `<data_dir>/demo`.

use std::path::PathBuf;

use directories::ProjectDirs;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Name stored with every gold label.
    pub annotator: String,
    /// Keymap preset from `keymaps/` (`default` or `vim`).
    pub keymap: String,
    /// Allow gold labels on train/unlabeled/unsplit segments (the Python project only labels dev/test).
    pub allow_gold_on_all_splits: bool,
    /// Play the next segment automatically after commit-and-next.
    pub autoplay: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            annotator: std::env::var("USER").ok().filter(|u| !u.is_empty()).unwrap_or_else(|| "annotator".into()),
            keymap: "default".into(),
            allow_gold_on_all_splits: false,
            autoplay: false,
        }
    }
}

/// Platform directories. `DAMS_CONFIG_DIR`, `DAMS_DATA_DIR` and `DAMS_CACHE_DIR` override them
/// (tests and CI use these to stay out of the user's home).
#[derive(Debug, Clone)]
pub struct Dirs {
    pub config: PathBuf,
    pub data: PathBuf,
    pub cache: PathBuf,
}

impl Dirs {
    pub fn get() -> Dirs {
        let pd = ProjectDirs::from("org", "dams", "dams");
        let pick = |var: &str, f: &dyn Fn(&ProjectDirs) -> PathBuf, fallback: &str| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .or_else(|| pd.as_ref().map(f))
                .unwrap_or_else(|| std::env::temp_dir().join("dams").join(fallback))
        };
        Dirs {
            config: pick("DAMS_CONFIG_DIR", &|p| p.config_dir().to_path_buf(), "config"),
            data: pick("DAMS_DATA_DIR", &|p| p.data_dir().to_path_buf(), "data"),
            cache: pick("DAMS_CACHE_DIR", &|p| p.cache_dir().to_path_buf(), "cache"),
        }
    }
    pub fn config_file(&self) -> PathBuf {
        self.config.join("config.toml")
    }
    pub fn user_keymap(&self) -> PathBuf {
        self.config.join("keymap.toml")
    }
    pub fn model_cache(&self) -> PathBuf {
        self.cache.join("models")
    }
    pub fn demo_workspace(&self) -> PathBuf {
        self.data.join("demo")
    }
}

impl Config {
    /// Load the user's config; a missing file gives the defaults, a malformed one a clear error.
    pub fn load(dirs: &Dirs) -> anyhow::Result<Config> {
        let path = dirs.config_file();
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
        }
    }
}
