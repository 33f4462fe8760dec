//! The layering `docs/architecture.md` describes, checked on the source: core modules know nothing of the terminal,
//! and the teacher core does not import the catalog or the students (students register through the catalog).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `files` that mention any of `needles` outside comments: `(file:line, text)`.
fn uses(files: &[PathBuf], needles: &[&str]) -> Vec<String> {
    let mut hits = Vec::new();
    for f in files {
        for (i, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if needles.iter().any(|n| code.contains(n)) {
                hits.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    hits
}

fn files_of(modules: &[&str]) -> Vec<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    for m in modules {
        let dir = src.join(m);
        if dir.is_dir() {
            rust_files(&dir, &mut files);
        }
        let file = src.join(format!("{m}.rs"));
        if file.is_file() {
            files.push(file);
        }
    }
    assert!(!files.is_empty());
    files
}

#[test]
fn core_modules_know_nothing_of_the_terminal() {
    let core = files_of(&[
        "audio",
        "catalog",
        "config",
        "demo",
        "dsp",
        "engine",
        "eval",
        "jobs",
        "labels",
        "manifest",
        "pseudo",
        "rng",
        "slurm",
        "store",
        "student",
        "teachers",
        "workspace",
    ]);
    let hits = uses(&core, &["ratatui", "crossterm", "crate::tui", "indicatif"]);
    assert!(hits.is_empty(), "core modules import terminal code:\n{}", hits.join("\n"));
}

#[test]
fn the_sharding_core_does_not_reach_up_to_the_command_line() {
    let hits = uses(&files_of(&["slurm"]), &["crate::cli", "crate::tui", "println!"]);
    assert!(hits.is_empty(), "src/slurm reaches up to a front end:\n{}", hits.join("\n"));
}

#[test]
fn teachers_do_not_import_the_catalog_or_the_students() {
    let hits = uses(&files_of(&["teachers"]), &["crate::catalog", "crate::student", "crate::cli", "crate::jobs"]);
    assert!(hits.is_empty(), "the teacher core reaches up:\n{}", hits.join("\n"));
}
