//! Bounded, seeded mutation fuzzing of the two parsers that read untrusted files: the manifest
//! importer and the audio decoder. Each seed of the committed corpus (`tests/fuzz/corpus/`) is
//! mutated (bit flips, random bytes, cuts, duplicated and spliced ranges, CSV/path tokens) and fed
//! in; a run is bounded by an iteration count and a time budget, so `cargo test` runs it in CI.
//!
//! Invariants checked on every input, not only "no panic":
//! - manifest: an accepted file stores exactly the rows it reports, every stored path is short,
//!   printable and normalised (one file, one row); a refused file stores nothing, and every problem
//!   has a line number and a bounded message;
//! - audio: decoding returns an error or finite samples in [-1, 1], and never takes long.
//!
//! A failing input is written to `$CARGO_TARGET_TMPDIR/fuzz-failures/` and named in the panic.
//! `DAMS_FUZZ_ITERS` and `DAMS_FUZZ_SECS` change the budget (e.g. a long local run), and
//! `DAMS_FUZZ_SEED` the seed.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dams::manifest::{ImportOptions, import_reader};
use dams::store::Store;
use dams::workspace::{MAX_PATH_BYTES, normalize_data_path};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus").join(kind);
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    assert!(v.len() >= 5, "the {kind} corpus is missing");
    v
}

/// Tokens that matter to a CSV parser and to path handling.
const TOKENS: &[&[u8]] = &[
    b",",
    b"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b"\0",
    b"\t",
    b";",
    b"../",
    b"./",
    b"/",
    b"\\",
    b".",
    b"segments/",
    b"\xef\xbb\xbf",
    b"\xff\xfe",
    b"\xc3",
    b"NaN",
    b"-inf",
    b"1e309",
    b"-0",
    b"gold",
    b"dev",
    b"train",
    b"1",
    b"0",
    b"true",
    b"segment_path",
    b"speech_label",
    b"\x1b[2J",
    b"\xe2\x80\xa8",
];

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8], tokens: bool) -> Vec<u8> {
    let mut b = seed.to_vec();
    let n = 1 + rng.below(6);
    for _ in 0..n {
        let len = b.len();
        match rng.below(if tokens { 9 } else { 7 }) {
            0 if len > 0 => {
                let i = rng.below(len);
                b[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                b[i] = rng.next() as u8;
            }
            2 => {
                let i = rng.below(len + 1);
                let k = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..k).map(|_| rng.next() as u8).collect();
                b.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let k = 1 + rng.below((len - i).min(64));
                b.drain(i..i + k);
            }
            4 => b.truncate(rng.below(len + 1)),
            5 if len > 0 => {
                // Duplicate a range (repeated rows, repeated chunks).
                let i = rng.below(len);
                let k = 1 + rng.below((len - i).min(256));
                let at = rng.below(len + 1);
                let piece = b[i..i + k].to_vec();
                b.splice(at..at, piece);
            }
            6 if !other.is_empty() => {
                // Splice in a piece of another seed.
                let i = rng.below(other.len());
                let k = 1 + rng.below((other.len() - i).min(256));
                let at = rng.below(len + 1);
                b.splice(at..at, other[i..i + k].iter().copied());
            }
            7 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                b.splice(at..at, t.iter().copied());
            }
            8 => {
                // A very long cell.
                let at = rng.below(len + 1);
                let k = [100, MAX_PATH_BYTES, MAX_PATH_BYTES + 1, 20_000][rng.below(4)];
                b.splice(at..at, std::iter::repeat_n(b'a', k));
            }
            _ => {}
        }
    }
    b
}

fn save_failure(kind: &str, i: u64, input: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{kind}-{i}.bin"));
    std::fs::write(&p, input).unwrap();
    p
}

fn panic_text(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<String>().cloned().or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
}

/// Import one input into a fresh store and check the invariants; `Err` describes a violation.
/// With `db`, the store is a file there (the staged, chunked import path), else in memory.
fn check_manifest(data_root: &Path, input: &[u8], db: Option<&Path>) -> Result<(), String> {
    let mut store = match db {
        Some(p) => {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", p.display()));
            }
            Store::open(p)
        }
        None => Store::open_in_memory(),
    }
    .map_err(|e| e.to_string())?;
    let opts = ImportOptions::default();
    let result = import_reader(&mut store, data_root, input, "fuzz.csv", &opts);
    let stored = store.segments(None).map_err(|e| e.to_string())?;
    if let Some(dir) = db.and_then(Path::parent) {
        let left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.ends_with(".stage"))
            .collect();
        if !left.is_empty() {
            return Err(format!("import left stage files behind: {left:?}"));
        }
    }
    match result {
        Ok(summary) => {
            if stored.len() != summary.counts.inserted {
                return Err(format!("reported {} inserted, stored {}", summary.counts.inserted, stored.len()));
            }
            for s in &stored {
                let p = &s.segment_path;
                if p.len() > MAX_PATH_BYTES || p.chars().any(char::is_control) {
                    return Err(format!("stored a path that should be refused: {p:?}"));
                }
                match normalize_data_path(data_root, p) {
                    Ok(n) if &n == p => {}
                    other => return Err(format!("stored path {p:?} is not normalised: {other:?}")),
                }
            }
        }
        Err(e) => {
            if !stored.is_empty() {
                return Err(format!("refused file ({e}) left {} rows in the store", stored.len()));
            }
            if let dams::manifest::ManifestError::Invalid { problems, .. } = &e {
                if problems.is_empty() {
                    return Err("refused with no problem listed".into());
                }
                for p in problems {
                    if p.line == 0 {
                        return Err(format!("problem without a line: {}", p.message));
                    }
                    if p.message.len() > 1_000 {
                        return Err(format!("problem message of {} bytes", p.message.len()));
                    }
                }
            }
        }
    }
    Ok(())
}

#[test]
fn fuzz_manifest_import() {
    let seeds = corpus("manifest");
    let iters = env_or("DAMS_FUZZ_ITERS", 1_500);
    let budget = Duration::from_secs(env_or("DAMS_FUZZ_SECS", 20));
    let mut rng = Rng(env_or("DAMS_FUZZ_SEED", 0x5eed_0f_da35));
    let dir = tempfile::tempdir().unwrap();
    let data_root = dir.path().join("data");
    std::fs::create_dir_all(data_root.join("segments")).unwrap();
    // Every seed as it is, first.
    let db = dir.path().join("fuzz.sqlite");
    for (name, s) in &seeds {
        for db in [None, Some(db.as_path())] {
            if let Err(v) = check_manifest(&data_root, s, db) {
                panic!("seed {name} ({}): {v}", if db.is_some() { "file store" } else { "in memory" });
            }
        }
    }
    let t0 = Instant::now();
    let mut n = 0;
    while n < iters && t0.elapsed() < budget {
        let (_, seed) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, other, true);
        // Every 10th input goes through a store on disk (stage + chunked apply).
        let on_disk = (n % 10 == 0).then_some(db.as_path());
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check_manifest(&data_root, &input, on_disk)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(v)) => panic!("input {}: {v}", save_failure("manifest", n, &input).display()),
            Err(e) => panic!("input {} panicked: {}", save_failure("manifest", n, &input).display(), panic_text(&*e)),
        }
        n += 1;
    }
    eprintln!("fuzz_manifest_import: {n} inputs in {:.1} s", t0.elapsed().as_secs_f64());
    assert!(n >= 50.min(iters), "only {n} inputs ran in the budget");
}

fn check_audio(path: &Path) -> Result<(), String> {
    let t0 = Instant::now();
    let r = dams::audio::load_mono_16k(path);
    let took = t0.elapsed();
    if took > Duration::from_secs(10) {
        return Err(format!("decoding took {took:?}"));
    }
    match r {
        Ok(x) => match x.iter().position(|v| !v.is_finite() || v.abs() > 1.0) {
            Some(i) => Err(format!("sample {i} is {}", x[i])),
            None => Ok(()),
        },
        Err(e) => {
            let m = e.to_string();
            if !m.contains(&path.display().to_string()) {
                return Err(format!("error does not name the file: {m}"));
            }
            Ok(())
        }
    }
}

#[test]
fn fuzz_audio_decode() {
    let seeds = corpus("audio");
    let iters = env_or("DAMS_FUZZ_ITERS", 400);
    let budget = Duration::from_secs(env_or("DAMS_FUZZ_SECS", 20));
    let mut rng = Rng(env_or("DAMS_FUZZ_SEED", 0xa0d1_0f_da35));
    let dir = tempfile::tempdir().unwrap();
    for (name, s) in &seeds {
        let p = dir.path().join(name);
        std::fs::write(&p, s).unwrap();
        if let Err(v) = check_audio(&p) {
            panic!("seed {name}: {v}");
        }
    }
    let t0 = Instant::now();
    let mut n = 0;
    while n < iters && t0.elapsed() < budget {
        let (name, seed) = &seeds[rng.below(seeds.len())];
        let (_, other) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed, other, false);
        // Keep the extension: it picks the format probe's hint.
        let p = dir.path().join(format!("m{n}_{name}"));
        std::fs::write(&p, &input).unwrap();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check_audio(&p)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(v)) => panic!("input {}: {v}", save_failure("audio", n, &input).display()),
            Err(e) => panic!("input {} panicked: {}", save_failure("audio", n, &input).display(), panic_text(&*e)),
        }
        let _ = std::fs::remove_file(&p);
        n += 1;
    }
    eprintln!("fuzz_audio_decode: {n} inputs in {:.1} s", t0.elapsed().as_secs_f64());
    assert!(n >= 20.min(iters), "only {n} inputs ran in the budget");
}
