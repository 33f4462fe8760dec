//! Sharded scoring (`dams slurm submit`, `dams score --plan --shard`, `dams merge`, `dams slurm status`) on the
//! demo workspace: without a scheduler (shards run by hand, as GNU parallel or a Kubernetes Indexed Job would
//! run them), and on a real Slurm when one is there (`tools/slurm/start.sh` exports `SLURM_CONF`; `.ci/run` starts
//! one). Tests that need Slurm print "skipped: no Slurm (...)" and pass when there is none.

mod common;

use std::path::PathBuf;
use std::process::Output;

use dams::store::Store;

struct Demo {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    ws: PathBuf,
}

fn demo() -> Demo {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let ws = tmp.path().join("ws");
    dams::demo::ensure_at(&ws, false).unwrap();
    Demo { home, ws, _tmp: tmp }
}

impl Demo {
    fn dams(&self, args: &[&str]) -> Output {
        let mut c = common::dams(&self.home);
        c.arg("--workspace").arg(&self.ws).args(args).env_remove(dams::slurm::shard::FAIL_HOOK_ENV);
        c.output().unwrap()
    }
    fn ok(&self, args: &[&str]) -> String {
        let o = self.dams(args);
        let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(o.status.success(), "dams {args:?} failed ({}):\n{out}\n{err}", o.status);
        out.into_owned()
    }
    fn run_dir(&self, name: &str) -> PathBuf {
        self.ws.join("data/metadata/experiments/slurm").join(name)
    }
    fn store(&self) -> Store {
        Store::open(self.ws.join("data/metadata/dams.sqlite")).unwrap()
    }
}

/// Every score and raw output of a run, in segment order.
fn scores(store: &Store, run: i64) -> Vec<(i64, [f32; 3], Option<Vec<f32>>)> {
    store.run_rows_page(run, i64::MIN, i64::MAX, true).unwrap()
}

/// The rows a merge writes, to compare before and after another merge.
fn snapshot(store: &Store) -> String {
    let c = store.conn();
    let mut out = String::new();
    for sql in [
        "SELECT id, teacher, checksum, settings, state, finished_at FROM teacher_runs ORDER BY id",
        "SELECT run_id, segment_id, speech, music, noise, hex(logits) FROM teacher_scores ORDER BY 1, 2",
        "SELECT * FROM shard_parts ORDER BY 1, 2",
        "SELECT * FROM shard_runs ORDER BY 1",
        "SELECT id, teacher, class, value, method, run_id FROM thresholds ORDER BY id",
        "SELECT model_checksum, kind, segment_id, dim, hex(vec) FROM embeddings ORDER BY 1, 2, 3",
    ] {
        let mut stmt = c.prepare(sql).unwrap();
        let n = stmt.column_count();
        let rows = stmt
            .query_map([], |r| Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|")))
            .unwrap();
        for r in rows {
            out.push_str(&r.unwrap());
            out.push('\n');
        }
    }
    out
}

/// The id of the latest run in the store.
fn latest_run(store: &Store) -> i64 {
    store.runs().unwrap().last().unwrap().id
}

/// Score the demo unsharded (the reference) and return its run id.
fn reference_run(d: &Demo) -> i64 {
    d.ok(&["score", "--teacher", "builtin"]);
    latest_run(&d.store())
}

fn run_state(store: &Store, run: i64) -> String {
    store.conn().query_row("SELECT state FROM teacher_runs WHERE id = ?1", [run], |r| r.get(0)).unwrap()
}

#[test]
fn shards_run_by_hand_merge_into_exactly_the_unsharded_scores_and_a_second_merge_changes_nothing() {
    let d = demo();
    let reference = reference_run(&d);
    let want = scores(&d.store(), reference);
    assert_eq!(want.len(), 143);
    let runs_before = d.store().runs().unwrap().len();

    let out = d.ok(&["slurm", "submit", "--teacher", "builtin", "--shards", "4", "--dry-run", "--name", "p4"]);
    assert!(out.contains("143 segments in 4 shards") && out.contains("--array=0-3 "), "{out}");
    let dir = d.run_dir("p4");
    let plan = dir.join("plan.json");
    let plan_s = plan.to_str().unwrap();
    for f in ["plan.json", "score.sbatch", "merge.sbatch"] {
        assert!(dir.join(f).is_file(), "{f}");
    }
    // GNU parallel style (explicit index) for shards 0 and 1; Kubernetes style (JOB_COMPLETION_INDEX) for 3.
    d.ok(&["score", "--plan", plan_s, "--shard", "0"]);
    d.ok(&["score", "--plan", plan_s, "--shard", "1"]);
    let mut k8s = common::dams(&d.home);
    let o = k8s.args(["score", "--plan", plan_s, "--shard", "auto"]).env("JOB_COMPLETION_INDEX", "3").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("shard 3 of 4"));
    // A shard that is already published is not scored again.
    let again = d.ok(&["score", "--plan", plan_s, "--shard", "1"]);
    assert!(again.contains("already complete"), "{again}");
    // Shards never write the workspace database: no run yet.
    assert_eq!(d.store().runs().unwrap().len(), runs_before);

    // Three of four parts: the merge imports them, the run is not complete, exit status 3 (partial).
    let o = d.dams(&["merge", "p4"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(3), "{text}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        text.contains("3 part(s) imported now") && text.contains("1 missing") && text.contains("partial"),
        "{text}"
    );
    let store = d.store();
    let run = latest_run(&store);
    assert_ne!(run, reference);
    assert_eq!(run_state(&store, run), "interrupted");
    let st = d.ok(&["slurm", "status", "p4"]);
    assert!(st.contains("complete 3, partial 0, missing 1; merged 3/4"), "{st}");
    assert!(st.contains("sbatch --parsable --array=2 ") && st.contains("--kill-on-invalid-dep=yes"), "{st}");
    // A local `dams score` never resumes a run that a merge is filling: it starts (and finishes) its own.
    drop(store);

    d.ok(&["score", "--plan", plan_s, "--shard", "2"]);
    let out = d.ok(&["merge", d.run_dir("p4").to_str().unwrap()]);
    assert!(out.contains("1 part(s) imported now") && out.contains("3 already in"), "{out}");
    assert!(out.contains(&format!("teacher run #{run} is complete (now)")), "{out}");
    let store = d.store();
    assert_eq!(run_state(&store, run), "done");
    // Exactly the unsharded scores (and raw outputs), the same run settings and weights.
    assert_eq!(scores(&store, run), want);
    let head = |id| store.run_head(id).unwrap().unwrap();
    assert_eq!((head(run).settings, head(run).checksum), (head(reference).settings, head(reference).checksum));

    // A second merge changes nothing.
    let before = snapshot(&store);
    let out = d.ok(&["merge", "p4"]);
    assert!(out.contains("0 part(s) imported now") && out.contains("4 already in"), "{out}");
    assert_eq!(snapshot(&d.store()), before);

    // A part changed after its import is refused, and nothing changes in the workspace.
    let part = dir.join("parts/part-00002.sqlite");
    let c = rusqlite::Connection::open(&part).unwrap();
    c.execute("UPDATE scores SET speech = 0.123 WHERE segment_id = (SELECT min(segment_id) FROM scores)", []).unwrap();
    drop(c);
    let o = d.dams(&["merge", "p4"]);
    assert!(!o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("refused shard 2") && text.contains("changed after it was merged"), "{text}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("1 part(s) refused"));
    assert_eq!(snapshot(&d.store()), before);
}

#[test]
fn a_half_done_part_resumes_and_parts_with_other_weights_or_plans_are_refused() {
    let d = demo();
    d.ok(&["slurm", "submit", "--shards", "2", "--split", "dev,test", "--dry-run", "--name", "p2"]);
    let dir = d.run_dir("p2");
    let plan_s = dir.join("plan.json").to_str().unwrap().to_string();
    let e = d.dams(&["score", "--plan", &plan_s, "--shard", "2"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("shard 2 does not exist: the plan"), "{e:?}");
    let e = d.dams(&["score", "--plan", &plan_s, "--shard", "auto"]);
    assert!(String::from_utf8_lossy(&e.stderr).contains("--shard auto found no index"), "{e:?}");

    // A shard cut off half-way: its .partial keeps what was committed and the next attempt resumes it.
    d.ok(&["score", "--plan", &plan_s, "--shard", "0"]);
    let fin = dir.join("parts/part-00000.sqlite");
    let whole: Vec<(i64, f64)> = {
        let c = rusqlite::Connection::open(&fin).unwrap();
        let mut s = c.prepare("SELECT segment_id, speech FROM scores ORDER BY 1").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(whole.len(), 40, "dev + test = 81 segments, shard 0 has 40");
    let partial = dir.join("parts/part-00000.sqlite.partial");
    std::fs::rename(&fin, &partial).unwrap();
    {
        let c = rusqlite::Connection::open(&partial).unwrap();
        c.execute("DELETE FROM scores WHERE segment_id > ?1", [whole[15].0]).unwrap();
        c.execute("DELETE FROM meta WHERE key = 'finished_at'", []).unwrap();
    }
    let st = d.ok(&["slurm", "status", "p2"]);
    assert!(st.contains("shard    0: partial (16/40)") && st.contains("shard    1: missing"), "{st}");
    let out = d.ok(&["score", "--plan", &plan_s, "--shard", "0"]);
    assert!(out.contains("(resumed): 24 scored, 16 already scored"), "{out}");
    assert!(!partial.exists() && fin.exists());
    let c = rusqlite::Connection::open(&fin).unwrap();
    let resumed: Vec<(i64, f64)> = {
        let mut s = c.prepare("SELECT segment_id, speech FROM scores ORDER BY 1").unwrap();
        s.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(resumed, whole);
    let sessions: String = c.query_row("SELECT value FROM meta WHERE key = 'sessions'", [], |r| r.get(0)).unwrap();
    assert_eq!(sessions, "2");
    drop(c);

    // Shard 1 ran with other weights (as a node with another install would): refused, nothing of it imported.
    d.ok(&["score", "--plan", &plan_s, "--shard", "1"]);
    let p1 = dir.join("parts/part-00001.sqlite");
    let c = rusqlite::Connection::open(&p1).unwrap();
    c.execute("UPDATE meta SET value = 'sha256:0000' WHERE key = 'checksum'", []).unwrap();
    drop(c);
    let o = d.dams(&["merge", "p2"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(
        text.contains("refused shard 1") && text.contains("weights checksum sha256:0000 is not the plan's"),
        "{text}"
    );
    assert!(text.contains("1 part(s) imported now (40 rows: shards 0)"), "{text}");
    let store = d.store();
    let run = latest_run(&store);
    assert_eq!(scores(&store, run).len(), 40);
    assert_eq!(run_state(&store, run), "interrupted");
    drop(store);

    // A part of another plan (copied in from another run folder) is refused too.
    d.ok(&["slurm", "submit", "--shards", "2", "--split", "dev,test", "--dry-run", "--name", "other"]);
    let other = d.run_dir("other");
    d.ok(&["score", "--plan", other.join("plan.json").to_str().unwrap(), "--shard", "1"]);
    std::fs::copy(other.join("parts/part-00001.sqlite"), &p1).unwrap();
    let o = d.dams(&["merge", "p2"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("refused shard 1") && text.contains("made for another plan"), "{text}");

    // The real part of shard 1: the run completes with exactly the unsharded scores of dev + test.
    std::fs::remove_file(&p1).unwrap();
    d.ok(&["score", "--plan", &plan_s, "--shard", "1"]);
    // A row of another shard slipped into the part: refused before anything is written.
    let c = rusqlite::Connection::open(&p1).unwrap();
    c.execute("INSERT INTO scores (segment_id, speech, music, noise) VALUES (?1, 0.5, 0.5, 0.5)", [whole[0].0])
        .unwrap();
    drop(c);
    let o = d.dams(&["merge", "p2"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(text.contains(&format!("it holds item #{}, which is not in shard 1", whole[0].0)), "{text}");
    let c = rusqlite::Connection::open(&p1).unwrap();
    c.execute("DELETE FROM scores WHERE segment_id = ?1", [whole[0].0]).unwrap();
    drop(c);
    let out = d.ok(&["merge", "p2"]);
    assert!(out.contains("is complete (now)"), "{out}");
    d.ok(&["score", "--teacher", "builtin", "--split", "dev,test"]);
    let store = d.store();
    let local = latest_run(&store);
    assert_ne!(local, run, "a local score never resumes the sharded run");
    assert_eq!(scores(&store, run), scores(&store, local));
}

/// Whether a Slurm with a usable node answers here, or why not. Quick when there is none: no slurm.conf (at
/// `SLURM_CONF` or /etc/slurm) is an answer, and sinfo (which retries a missing controller) gets 15 s.
fn slurm() -> Result<(), String> {
    let conf = std::env::var_os("SLURM_CONF").map(PathBuf::from).unwrap_or_else(|| "/etc/slurm/slurm.conf".into());
    if !conf.is_file() {
        return Err(format!("no {} (SLURM_CONF); start one with tools/slurm/start.sh", conf.display()));
    }
    let mut child = match std::process::Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return Err(format!("sinfo cannot run: {e}")),
    };
    let t = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if t.elapsed().as_secs() >= 15 {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("sinfo got no answer in 15 s (SLURM_CONF={})", conf.display()));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let o = child.wait_with_output().unwrap();
    let s = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        return Err(format!("sinfo failed: {}", String::from_utf8_lossy(&o.stderr).trim()));
    }
    if s.lines().any(|l| ["idle", "mixed", "allocated"].contains(&l.trim())) {
        Ok(())
    } else {
        Err(format!("no usable node (sinfo: {})", s.trim()))
    }
}

macro_rules! need_slurm {
    () => {
        if let Err(why) = slurm() {
            eprintln!("skipped: no Slurm ({why})");
            return;
        }
    };
}

fn wait_gone(job: &str) {
    let t = std::time::Instant::now();
    loop {
        let o = std::process::Command::new("squeue").args(["-h", "-j", job]).output().unwrap();
        if String::from_utf8_lossy(&o.stdout).trim().is_empty() {
            return;
        }
        assert!(t.elapsed().as_secs() < 300, "job {job} still queued after 300 s");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

fn job_state(job: &str) -> String {
    let o = std::process::Command::new("scontrol").args(["show", "job", job]).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    text.split_whitespace().find_map(|w| w.strip_prefix("JobState=")).unwrap_or("?").to_string()
}

#[test]
fn slurm_array_scores_like_a_local_run_a_failed_shard_cancels_the_merge_and_a_resubmit_completes_it() {
    need_slurm!();
    let d = demo();
    let reference = reference_run(&d);
    let want = scores(&d.store(), reference);

    // 4 array tasks (2 at a time) and the merge: the run equals the unsharded one.
    let out = d.ok(&["slurm", "submit", "--shards", "4", "--max-parallel", "2", "--name", "ok", "--wait"]);
    assert!(out.contains("submitted array job") && out.contains("merged 4/4"), "{out}");
    let store = d.store();
    let run = latest_run(&store);
    assert_ne!(run, reference);
    assert_eq!(run_state(&store, run), "done");
    assert_eq!(scores(&store, run), want);
    let hosts: Vec<String> = {
        let mut s = store.conn().prepare("SELECT job_id FROM shard_parts ORDER BY shard").unwrap();
        s.query_map([], |r| r.get(0)).unwrap().map(|r| r.unwrap()).collect()
    };
    assert_eq!(hosts.len(), 4);
    assert!(hosts.iter().all(|h| h.starts_with("slurm ")), "{hosts:?}");
    drop(store);

    // Shard 2 fails (test hook): the merge job is cancelled, not left pending; nothing reaches the workspace.
    let before = snapshot(&d.store());
    let mut c = common::dams(&d.home);
    let o = c
        .arg("--workspace")
        .arg(&d.ws)
        .args(["slurm", "submit", "--shards", "4", "--max-parallel", "2", "--name", "fail", "--wait"])
        .env(dams::slurm::shard::FAIL_HOOK_ENV, "2")
        .output()
        .unwrap();
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(!o.status.success(), "{out}");
    assert!(err.contains("not merged complete") && err.contains("merge job CANCELLED"), "{out}\n{err}");
    let merge_job =
        out.lines().find_map(|l| l.strip_prefix("submitted merge job ")).unwrap().split(' ').next().unwrap();
    assert_eq!(job_state(merge_job), "CANCELLED");
    assert_eq!(snapshot(&d.store()), before);
    let log = std::fs::read_dir(d.run_dir("fail").join("logs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("shard-2-"))
        .unwrap();
    assert!(std::fs::read_to_string(log).unwrap().contains("shard 2 failed on purpose"));

    // Status names the missing shard and the exact commands; running them completes the run.
    let st = d.ok(&["slurm", "status", "fail"]);
    assert!(st.contains("complete 3, partial 0, missing 1; merged 0/4") && st.contains("shard    2: missing"), "{st}");
    let cmds: Vec<&str> =
        st.lines().skip_while(|l| !l.starts_with("resubmit")).skip(1).take_while(|l| l.starts_with("  ")).collect();
    assert_eq!(cmds.len(), 2, "{st}");
    assert!(cmds[0].contains("--array=2%2 "), "{st}");
    let script = cmds.iter().map(|l| l.trim()).collect::<Vec<_>>().join("\n");
    let o = std::process::Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_remove(dams::slurm::shard::FAIL_HOOK_ENV)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}\n{}", String::from_utf8_lossy(&o.stderr));
    let merge_job = text.trim().rsplit(' ').next().unwrap().to_string();
    wait_gone(&merge_job);
    let store = d.store();
    let run = latest_run(&store);
    assert_eq!(run_state(&store, run), "done");
    assert_eq!(scores(&store, run), want);
    drop(store);
    let st = d.ok(&["slurm", "status", "fail"]);
    assert!(st.contains("merged 4/4") && st.contains("(complete)"), "{st}");
    // Merging again by hand changes nothing.
    let before = snapshot(&d.store());
    let out = d.ok(&["merge", "fail"]);
    assert!(out.contains("4 already in"), "{out}");
    assert_eq!(snapshot(&d.store()), before);
}

/// The merge writes only when all is well, so a locked database only delays it (the TUI's label writer or any
/// job holds the write lock for a moment; here a test holds it on purpose).
#[test]
fn a_merge_that_finds_the_workspace_locked_says_so_and_loses_nothing() {
    let d = demo();
    d.ok(&["slurm", "submit", "--shards", "1", "--split", "dev", "--dry-run", "--name", "one"]);
    d.ok(&["score", "--plan", d.run_dir("one").join("plan.json").to_str().unwrap(), "--shard", "0"]);
    let holder = d.store();
    holder.conn().execute_batch("BEGIN IMMEDIATE").unwrap();
    let o = d.dams(&["merge", "one", "--busy-wait", "1"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("stayed locked for 1 s") && err.contains("run `dams merge"), "{err}");
    holder.conn().execute_batch("ROLLBACK").unwrap();
    drop(holder);
    let out = d.ok(&["merge", "one"]);
    assert!(out.contains("1 part(s) imported now (46 rows") && out.contains("complete (now)"), "{out}");
}

/// Embedding extraction shards the same way: the tiny AST's pooled vectors land in the workspace's embedding cache
/// under the key a local `dams train --kind ast-head` looks them up by, bit for bit what the model gives in-process.
#[cfg(feature = "burn")]
#[test]
fn sharded_embedding_extraction_fills_the_embedding_cache() {
    let d = demo();
    let tiny = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/ast/tiny");
    d.ok(&["teachers", "add", "ast", "--from", tiny.to_str().unwrap()]);
    let runs_before = d.store().runs().unwrap().len();
    let out = d.ok(&[
        "slurm",
        "submit",
        "--embed",
        "--teacher",
        "ast",
        "--device",
        "cpu",
        "--shards",
        "2",
        "--split",
        "dev",
        "--dry-run",
        "--name",
        "emb",
    ]);
    assert!(out.contains("46 segments in 2 shards") && out.contains("embeddings of ast"), "{out}");
    let plan = d.run_dir("emb").join("plan.json");
    for i in ["0", "1"] {
        let o = d.ok(&["score", "--plan", plan.to_str().unwrap(), "--shard", i]);
        assert!(o.contains("23 embedded"), "{o}");
    }
    let out = d.ok(&["merge", "emb"]);
    assert!(
        out.contains("2 part(s) imported now (46 rows") && out.contains("embedding cache holds every segment"),
        "{out}"
    );
    let checksum = dams::slurm::sha256_file(&tiny.join("model.safetensors")).unwrap();
    let store = d.store();
    let dev = store.segments(Some(&[dams::labels::Split::Dev])).unwrap();
    let cached = store.embeddings(&checksum, dams::student::ast_head::EMBEDDING_KIND, 32).unwrap();
    assert_eq!(cached.len(), 46);
    assert_eq!(store.runs().unwrap().len(), runs_before, "embeddings make no teacher run");
    // The first batch (4 segments) of each shard, embedded in-process in the same batches.
    let src = dams::student::ast_head::locate_ast(Some(&tiny)).unwrap();
    assert_eq!(src.checksum, checksum);
    let (mut ast, _) = dams::student::ast_head::open_ast(&src, dams::engine::Engine::cpu(), None).unwrap();
    let ws = dams::workspace::Workspace::open(&d.ws).unwrap();
    for batch in [&dev[0..4], &dev[23..27]] {
        let waves: Vec<Vec<f32>> =
            batch.iter().map(|s| dams::audio::load_mono_16k(&ws.abs_data_path(&s.segment_path)).unwrap()).collect();
        let refs: Vec<&[f32]> = waves.iter().map(Vec::as_slice).collect();
        let want = dams::student::ast_head::embed_waves(&mut ast, &refs).unwrap();
        for (s, w) in batch.iter().zip(want) {
            assert_eq!(cached[&s.id], w, "segment {}", s.segment_path);
        }
    }
    drop(store);
    // Merging again changes nothing; planning again finds nothing left to embed.
    let before = snapshot(&d.store());
    d.ok(&["merge", "emb"]);
    assert_eq!(snapshot(&d.store()), before);
    let o = d.dams(&[
        "slurm",
        "submit",
        "--embed",
        "--teacher",
        "ast",
        "--device",
        "cpu",
        "--shards",
        "2",
        "--split",
        "dev",
        "--dry-run",
    ]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("segments already in the embedding cache are left out"));
}

/// Segmentation shards by recording: the same windows (byte for byte), segment rows and raw_files rows as one
/// `dams segment` of the same files.
#[test]
fn sharded_segmentation_gives_what_dams_segment_gives() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("home");
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo");
    let files: Vec<String> = ["a_show01.flac", "train_show01.flac", "a002.mp3", "a003.flac", "a005.flac"]
        .iter()
        .map(|f| data.join(f).to_str().unwrap().to_string())
        .collect();
    let run = |ws: &std::path::Path, args: &[&str]| {
        let o = common::dams(&home).arg("--workspace").arg(ws).args(args).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(o.status.success(), "{args:?}: {out}\n{}", String::from_utf8_lossy(&o.stderr));
        out
    };
    let local = tmp.path().join("local");
    let sharded = tmp.path().join("sharded");
    for ws in [&local, &sharded] {
        common::dams(&home).arg("init").arg(ws).output().unwrap();
    }
    let mut args = vec!["segment", "--split", "train"];
    args.extend(files.iter().map(String::as_str));
    run(&local, &args);

    let mut args =
        vec!["slurm", "submit", "--shards", "2", "--split", "train", "--dry-run", "--name", "cut", "--segment"];
    args.extend(files.iter().map(String::as_str));
    let out = run(&sharded, &args);
    assert!(out.contains("5 recordings in 2 shards"), "{out}");
    let plan = sharded.join("data/metadata/experiments/slurm/cut/plan.json");
    let o0 = run(&sharded, &["score", "--plan", plan.to_str().unwrap(), "--shard", "0"]);
    assert!(o0.contains("2 recordings cut"), "{o0}");
    run(&sharded, &["score", "--plan", plan.to_str().unwrap(), "--shard", "1"]);
    let out = run(&sharded, &["merge", "cut"]);
    assert!(out.contains("every recording of the plan is segmented (now)"), "{out}");

    let rows = |ws: &std::path::Path| {
        let s = Store::open(ws.join("data/metadata/dams.sqlite")).unwrap();
        let mut out = Vec::new();
        for sql in [
            "SELECT segment_path, raw_file, start_time, end_time, split, label_source FROM segments ORDER BY segment_path",
            "SELECT path, duration, sample_rate, channels FROM raw_files ORDER BY path",
        ] {
            let mut stmt = s.conn().prepare(sql).unwrap();
            let n = stmt.column_count();
            let r = stmt
                .query_map([], |r| {
                    Ok((0..n).map(|i| format!("{:?}", r.get_ref(i).unwrap())).collect::<Vec<_>>().join("|"))
                })
                .unwrap();
            out.extend(r.map(|x| x.unwrap()));
        }
        out
    };
    let want = rows(&local);
    assert!(want.len() > 100, "{}", want.len());
    assert_eq!(rows(&sharded), want);
    let files_of = |ws: &std::path::Path| {
        let mut v: Vec<(String, String)> = Vec::new();
        for sub in ["data/segments", "data/raw"] {
            for e in std::fs::read_dir(ws.join(sub)).unwrap() {
                let p = e.unwrap().path();
                v.push((p.file_name().unwrap().to_string_lossy().into_owned(), dams::slurm::sha256_file(&p).unwrap()));
            }
        }
        v.sort();
        v
    };
    assert_eq!(files_of(&sharded), files_of(&local));
    // A second merge changes nothing.
    let before = rows(&sharded);
    let out = run(&sharded, &["merge", "cut"]);
    assert!(out.contains("2 already in"), "{out}");
    assert_eq!(rows(&sharded), before);
    // Two recordings with one stem would write the same window names from two shards: refused at planning.
    let other = tmp.path().join("a003.wav");
    std::fs::write(&other, b"RIFF").unwrap();
    let o = common::dams(&home)
        .arg("--workspace")
        .arg(&sharded)
        .args(["slurm", "submit", "--shards", "1", "--dry-run", "--segment", other.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("would name its windows like those of a003.flac"), "{o:?}");
}

/// Without sbatch on the PATH, submitting says so and where the plan is; nothing reaches the workspace.
#[test]
fn submitting_without_slurm_says_what_is_missing_and_where_the_plan_is() {
    let d = demo();
    let o = common::dams(&d.home)
        .arg("--workspace")
        .arg(&d.ws)
        .args(["slurm", "submit", "--shards", "2", "--split", "dev", "--name", "nosl"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("cannot run sbatch") && err.contains("dams slurm status"), "{err}");
    assert!(d.run_dir("nosl").join("plan.json").is_file());
    let st = d.ok(&["slurm", "status", "nosl"]);
    assert!(st.contains("missing 2") && st.contains("--array=0-1 "), "{st}");
}
