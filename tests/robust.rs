//! The `dams` binary against hostile input and crash leftovers: paths that escape the workspace
//! through symbolic links, paths no file should have, lost and damaged stores, scoring that fails
//! on every segment, two scoring processes on one run. Each test asserts the exit status, the
//! message, and what the store holds afterwards.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dams::labels::{LabelSource, Split};
use dams::store::{NewSegment, Store};
use dams::workspace::Workspace;

fn temp_ws() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path().join("ws")).unwrap();
    (dir, ws)
}

fn dams(ws: &Workspace, home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dams"))
        .arg("--workspace")
        .arg(ws.root())
        .args(args)
        .env("DAMS_CONFIG_DIR", home.join("cfg"))
        .env("DAMS_DATA_DIR", home.join("data"))
        .env("DAMS_CACHE_DIR", home.join("cache"))
        .env_remove("DAMS_WORKSPACE")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A 16 kHz mono 16-bit WAV of `secs` seconds (a tone).
fn wav(path: &Path, secs: f32) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for k in 0..(secs * 16_000.0) as usize {
        let v = 0.3 * (2.0 * std::f32::consts::PI * 440.0 * k as f32 / 16_000.0).sin();
        w.write_sample((v * 32_000.0) as i16).unwrap();
    }
    w.finalize().unwrap();
}

fn segment(path: &str) -> NewSegment {
    NewSegment {
        segment_path: path.into(),
        raw_file: "show.wav".into(),
        start_time: 0.0,
        end_time: 10.0,
        split: Split::Dev,
        label_source: LabelSource::none(),
        labels: None,
        scores: [None; 3],
        extra: None,
    }
}

#[cfg(unix)]
#[test]
fn import_refuses_symlink_escapes_control_characters_and_overlong_paths_with_line_and_column() {
    let (d, ws) = temp_ws();
    let outside = d.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    wav(&outside.join("secret.wav"), 1.0);
    std::os::unix::fs::symlink(outside.join("secret.wav"), ws.segments_dir().join("file_link.wav")).unwrap();
    std::os::unix::fs::symlink(&outside, ws.segments_dir().join("dir_link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", ws.segments_dir().join("passwd.wav")).unwrap();
    wav(&ws.segments_dir().join("fine.wav"), 1.0);
    let long = format!("{}.wav", "a".repeat(5_000));
    let manifest = d.path().join("m.csv");
    std::fs::write(
        &manifest,
        format!(
            "split,segment_path\ndev,fine.wav\ndev,file_link.wav\ndev,segments/dir_link/secret.wav\ndev,passwd.wav\n\
             dev,\"line\nfeed.wav\"\ndev,{long}\ndev,segments/\ndev,.\ndev,segments/../x.wav\ndev,tab\there.wav\n"
        ),
    )
    .unwrap();
    let o = dams(&ws, d.path(), &["import", manifest.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    for (line, what) in [
        (3, "outside the workspace"),
        (4, "outside the workspace"),
        (5, "outside the workspace"),
        (6, "control character"),
        (8, "at most 4096"),
        (9, "does not name a file"),
        (10, "does not name a file"),
        (11, "does not name a file"),
        (12, "control character"),
    ] {
        let l =
            err.lines().find(|l| l.contains(&format!("line {line}, column 2 'segment_path'"))).unwrap_or_else(|| {
                panic!("no problem on line {line}:\n{err}");
            });
        assert!(l.contains(what), "line {line}: {l}");
    }
    assert!(err.len() < 8_000, "the 5,000-byte path is not echoed whole: {} bytes of errors", err.len());
    assert!(!err.contains(&long));
    assert_eq!(ws.open_store().unwrap().segment_count().unwrap(), 0, "nothing imported");
}

/// A segment imported as a plain file and later replaced by a link out of the workspace is not
/// read: the read path resolves the link and refuses it.
#[cfg(unix)]
#[test]
fn a_link_made_after_import_is_refused_at_read() {
    let (d, ws) = temp_ws();
    wav(&ws.segments_dir().join("a.wav"), 2.0);
    wav(&ws.segments_dir().join("b.wav"), 2.0);
    ws.open_store().unwrap().upsert_segments(&[segment("segments/a.wav"), segment("segments/b.wav")]).unwrap();
    let secret = d.path().join("secret.wav");
    wav(&secret, 2.0);
    std::fs::remove_file(ws.segments_dir().join("b.wav")).unwrap();
    std::os::unix::fs::symlink(&secret, ws.segments_dir().join("b.wav")).unwrap();
    let e = ws.resolve_data_path("segments/b.wav").unwrap_err().to_string();
    assert!(e.contains("outside the workspace") && e.contains(&secret.display().to_string()), "{e}");
    let o = dams(&ws, d.path(), &["stats"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "one of two failed: {out}\n{err}");
    assert!(err.contains("segments/b.wav") && err.contains("outside the workspace"), "{err}");
    assert!(err.contains("1 of 2 segments failed"), "{err}");
}

#[test]
fn a_zero_length_or_foreign_store_is_an_error_naming_the_file_and_is_left_alone() {
    let (d, ws) = temp_ws();
    ws.open_store().unwrap().upsert_segments(&[segment("segments/a.wav")]).unwrap();
    let db = ws.db_path();
    for f in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{f}", db.display()));
    }
    std::fs::write(&db, b"").unwrap();
    for args in [&["info"][..], &["import", "nothing.csv"], &["stats"]] {
        let o = dams(&ws, d.path(), args);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(&db.display().to_string()) && err.contains("empty"), "{args:?}: {err}");
    }
    assert_eq!(std::fs::metadata(&db).unwrap().len(), 0, "not recreated");
    std::fs::write(&db, b"segment_path\nx.wav\n").unwrap();
    let o = dams(&ws, d.path(), &["info"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(err.contains("not a SQLite database"), "{err}");
}

#[test]
fn dams_check_reports_damage_and_writes_are_refused_until_it_passes() {
    let (d, ws) = temp_ws();
    let rows: Vec<NewSegment> = (0..4000).map(|i| segment(&format!("segments/x{i:05}.wav"))).collect();
    {
        let mut s = ws.open_store().unwrap();
        s.upsert_segments(&rows).unwrap();
        s.conn().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
    }
    let o = dams(&ws, d.path(), &["check"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains(": ok"));
    let db = ws.db_path();
    let mut bytes = std::fs::read(&db).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16 * 1024].fill(0x5a);
    std::fs::write(&db, &bytes).unwrap();
    let o = dams(&ws, d.path(), &["check"]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("problem(s) found") && err.contains("check-failed"), "{err}");
    // Writes (and reads) are refused while it fails.
    let manifest = d.path().join("m.csv");
    std::fs::write(&manifest, "segment_path\nnew.wav\n").unwrap();
    let o = dams(&ws, d.path(), &["import", manifest.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("dams check") && err.contains(&db.display().to_string()), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "nothing was written into the damaged store");
}

/// A workspace with `good` playable 10-s segments and `bad` segments whose audio is missing.
fn scoring_ws(good: usize, bad: usize) -> (tempfile::TempDir, Workspace) {
    let (d, ws) = temp_ws();
    let mut rows = Vec::new();
    for i in 0..good {
        let p = format!("segments/good{i}.wav");
        wav(&ws.abs_data_path(&p), 10.0);
        rows.push(segment(&p));
    }
    for i in 0..bad {
        rows.push(segment(&format!("segments/missing{i}.wav")));
    }
    ws.open_store().unwrap().upsert_segments(&rows).unwrap();
    (d, ws)
}

fn runs(ws: &Workspace) -> Vec<(i64, String)> {
    let s = Store::open(ws.db_path()).unwrap();
    s.runs().unwrap().into_iter().map(|r| (r.id, r.state)).collect()
}

fn thresholds(ws: &Workspace) -> i64 {
    let s = Store::open(ws.db_path()).unwrap();
    s.conn().query_row("SELECT count(*) FROM thresholds", [], |r| r.get(0)).unwrap()
}

#[test]
fn score_that_fails_on_every_segment_exits_1_marks_the_run_failed_and_stores_no_thresholds() {
    let (d, ws) = scoring_ws(0, 3);
    let o = dams(&ws, d.path(), &["score", "--teacher", "builtin"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(err.contains("failed on all 3 segment(s)") && err.contains("missing0.wav"), "{err}");
    assert_eq!(runs(&ws), vec![(1, "failed".to_string())]);
    assert_eq!(thresholds(&ws), 0);
    let s = Store::open(ws.db_path()).unwrap();
    let job: String = s.conn().query_row("SELECT state FROM jobs ORDER BY id DESC LIMIT 1", [], |r| r.get(0)).unwrap();
    assert_eq!(job, "failed");
}

#[test]
fn score_that_fails_on_some_segments_says_how_many_and_exits_3() {
    let (d, ws) = scoring_ws(2, 1);
    let o = dams(&ws, d.path(), &["score", "--teacher", "builtin"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(3), "{out}\n{err}");
    assert!(err.contains("1 of 3 segments failed"), "{err}");
    assert!(err.contains("missing0.wav"), "{err}");
    assert_eq!(runs(&ws), vec![(1, "done".to_string())]);
    assert_eq!(thresholds(&ws), 3, "the teacher's defaults, since some segments were scored");
}

/// A second `dams score` on a run another live process is scoring stops with a message naming it;
/// once that process is gone, the run is resumed.
#[cfg(unix)]
#[test]
fn a_second_scoring_process_on_the_same_run_is_refused() {
    let (d, ws) = scoring_ws(2, 0);
    let o = dams(&ws, d.path(), &["score", "--teacher", "builtin"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    // As if that run had been cut off, and another process were scoring it right now.
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    {
        let s = Store::open(ws.db_path()).unwrap();
        s.conn().execute("UPDATE teacher_runs SET state = 'interrupted'", []).unwrap();
        s.conn().execute("DELETE FROM teacher_scores WHERE segment_id = 2", []).unwrap();
        s.conn()
            .execute("INSERT INTO run_leases (run_id, pid, acquired_at) VALUES (1, ?1, 'now')", [holder.id() as i64])
            .unwrap();
    }
    let o = dams(&ws, d.path(), &["score", "--teacher", "builtin"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!("run #1 is being scored by another dams process (pid {}, since", holder.id())),
        "{err}"
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    let o = dams(&ws, d.path(), &["score", "--teacher", "builtin"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{err}");
    assert!(out.contains("run #1 (builtin, resumed): 1 scored, 1 already scored"), "{out}");
}

/// Crash leftovers are cleaned by whichever dams command opens the workspace next.
#[cfg(unix)]
#[test]
fn any_command_cleans_part_files_and_marks_dead_jobs() {
    let (d, ws) = temp_ws();
    let dead = 2_147_483_000i64;
    let part_seg = ws.segments_dir().join(format!(".x_s0001.wav.{dead}.part"));
    let part_raw = ws.raw_dir().join(format!(".show.flac.{dead}.part"));
    std::fs::write(&part_seg, vec![0u8; 1000]).unwrap();
    std::fs::write(&part_raw, vec![0u8; 1000]).unwrap();
    {
        let mut s = Store::open(ws.db_path()).unwrap();
        let job = s.create_job("segment", "{}", None).unwrap();
        s.conn().execute("UPDATE jobs SET pid = ?1 WHERE id = ?2", [dead, job]).unwrap();
    }
    let o = dams(&ws, d.path(), &["info"]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(!part_seg.exists() && !part_raw.exists());
    let s = Store::open(ws.db_path()).unwrap();
    assert_eq!(s.jobs(1).unwrap()[0].state, "interrupted");
}

/// `dams import` into a file store goes through the stage and chunked apply: the result is the
/// same rows, and a manifest refused late (a bad last row) leaves neither rows nor a stage behind.
#[test]
fn staged_import_is_all_or_nothing() {
    let (d, ws) = temp_ws();
    let mut csv = String::from("segment_path,split,label_source,speech_label,music_label,noise_label\n");
    for i in 0..3000 {
        csv.push_str(&format!("s{i:05}.wav,dev,gold,1,0,{}\n", i % 2));
    }
    let bad = format!("{csv}s99999.wav,dev,gold,1,0,7\n");
    let m = d.path().join("bad.csv");
    std::fs::write(&m, bad).unwrap();
    let o = dams(&ws, d.path(), &["import", m.to_str().unwrap()]);
    let (_, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("line 3002, column 6 'noise_label'"), "{err}");
    assert_eq!(Store::open(ws.db_path()).unwrap().segment_count().unwrap(), 0);
    let stages: Vec<PathBuf> = std::fs::read_dir(ws.metadata_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".stage"))
        .collect();
    assert!(stages.is_empty(), "{stages:?}");
    let m = d.path().join("good.csv");
    std::fs::write(&m, &csv).unwrap();
    let o = dams(&ws, d.path(), &["import", m.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{:?}", text(&o));
    assert!(text(&o).0.contains("3000 rows: 3000 inserted"), "{:?}", text(&o));
    let s = Store::open(ws.db_path()).unwrap();
    assert_eq!(s.segment_count().unwrap(), 3000);
    let gold: i64 = s.conn().query_row("SELECT count(*) FROM gold_labels", [], |r| r.get(0)).unwrap();
    assert_eq!(gold, 3000);
    // Re-importing changes nothing.
    let o = dams(&ws, d.path(), &["import", m.to_str().unwrap()]);
    assert!(text(&o).0.contains("0 inserted, 0 updated, 3000 unchanged"), "{:?}", text(&o));
}
