//! The teacher catalog and the job catalog, end to end: a teacher added with one registration is listed, has its
//! options in the TUI's score form, and is scored through the CLI (`dams score`, in process) and the TUI's form;
//! both write identical job parameters and resume each other's run; the CLI's follower prints every line of a
//! 1,000-line job log.
//!
//! One test function: it sets the process's user dirs (environment) once, before any other thread runs.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

use clap::Parser;
use dams::catalog;
use dams::jobs::{JobRunner, JobState};
use dams::labels::{LabelSource, Split};
use dams::store::NewSegment;
use dams::teachers::{InstallState, OpenContext, OptionSpec, Teacher, TeacherDescriptor, TeacherError, TeacherOutput};
use dams::tui::form::JobForm;
use dams::workspace::Workspace;

/// Scores speech = min(1, RMS × gain); gain is its one option.
struct GainTeacher {
    gain: f32,
}

/// Batches scored so far; the gate holds the second batch when `HOLD` is set.
static BATCHES: AtomicUsize = AtomicUsize::new(0);
static HOLD: AtomicBool = AtomicBool::new(false);
static GATE: (Mutex<(bool, bool)>, Condvar) = (Mutex::new((false, false)), Condvar::new()); // (reached, released)

impl Teacher for GainTeacher {
    fn id(&self) -> &str {
        "fake"
    }
    fn version(&self) -> String {
        "1".into()
    }
    fn checksum(&self) -> &str {
        "sha256:fake"
    }
    fn settings_json(&self) -> String {
        serde_json::json!({ "gain": self.gain }).to_string()
    }
    fn batch_size(&self) -> usize {
        2
    }
    fn score_batch(&mut self, segs: &[&[f32]]) -> Result<Vec<TeacherOutput>, TeacherError> {
        if BATCHES.fetch_add(1, Ordering::SeqCst) == 1 && HOLD.load(Ordering::SeqCst) {
            let (m, cv) = &GATE;
            let mut g = m.lock().unwrap();
            g.0 = true;
            cv.notify_all();
            while !g.1 {
                g = cv.wait(g).unwrap();
            }
        }
        Ok(segs
            .iter()
            .map(|s| {
                let rms = (s.iter().map(|v| v * v).sum::<f32>() / s.len().max(1) as f32).sqrt();
                TeacherOutput { scores: [(rms * self.gain).min(1.0), 0.0, 0.0], raw: None }
            })
            .collect())
    }
}

/// The one registration.
static FAKE: TeacherDescriptor = TeacherDescriptor {
    id: "fake",
    family: false,
    description: "a test teacher: speech = RMS × gain",
    label_source: Some("fake_pseudo"),
    zero_shot: false,
    raw_vocab: None,
    devices: &["cpu"],
    options: &[OptionSpec { name: "gain", default: "1", help: "multiplies the RMS", choices: &[] }],
    install: None,
    state: |_| InstallState::Embedded,
    open: |id, ctx: &OpenContext| {
        let gain: f32 = ctx
            .options
            .get("gain")
            .parse()
            .map_err(|_| TeacherError::Input { id: id.into(), detail: "gain must be a number".into() })?;
        Ok(Box::new(GainTeacher { gain }))
    },
    instances: None,
};

fn workspace(n: usize) -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path().join("ws")).unwrap();
    let mut store = ws.open_store().unwrap();
    let mut rows = Vec::new();
    for i in 0..n {
        let rel = format!("segments/s{i}.wav");
        let path = ws.abs_data_path(&rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let amp = 0.05 * (i + 1) as f32;
        let x: Vec<f32> = (0..1600).map(|k| if k % 2 == 0 { amp } else { -amp }).collect();
        dams::audio::write_wav_16k(&path, &x).unwrap();
        rows.push(NewSegment {
            segment_path: rel,
            raw_file: "raw.wav".into(),
            start_time: i as f64 * 5.0,
            end_time: i as f64 * 5.0 + 10.0,
            split: Split::Dev,
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        });
    }
    store.upsert_segments(&rows).unwrap();
    (dir, ws)
}

#[test]
fn one_registration_scores_through_cli_and_tui_and_jobs_are_followed_to_the_end() {
    let home = tempfile::tempdir().unwrap();
    // SAFETY: set before this test binary starts any other thread (it has this one test).
    unsafe {
        for (k, d) in [("DAMS_CONFIG_DIR", "config"), ("DAMS_DATA_DIR", "data"), ("DAMS_CACHE_DIR", "cache")] {
            std::env::set_var(k, home.path().join(d));
        }
        std::env::set_var("HF_HUB_CACHE", home.path().join("hf"));
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    catalog::register(&FAKE);
    let (_d, ws) = workspace(6);
    let ctx = OpenContext::for_workspace(&dams::config::Dirs::get(), Some(&ws));

    // Listed, with its label source and options, wherever teachers are listed.
    assert!(catalog::usable(&ctx).contains(&"fake".to_string()));
    assert_eq!(catalog::label_source("fake").as_str(), "fake_pseudo");
    let e = catalog::open_with("fake", &ctx, &[("gain".into(), "x".into())]).err().unwrap().to_string();
    assert!(e.contains("gain must be a number"), "{e}");

    // TUI path: the score form lists it and generates its option field from the descriptor.
    let mut form = JobForm::score(&catalog::usable(&ctx));
    while form.score_job().unwrap().teacher != "fake" {
        form.right();
    }
    let names: Vec<&str> = form.fields.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["teacher", "splits", "device", "option gain", "fresh run"]);
    form.cursor = 3;
    form.backspace();
    assert!(form.type_char('4'));
    // Start it, hold its second batch, cancel: 4 of 6 segments scored.
    HOLD.store(true, Ordering::SeqCst);
    let mut runner = JobRunner::new(ws.db_path());
    let tui_job = form.start(&mut runner, &ws, &ctx, "tester").unwrap();
    {
        let (m, cv) = &GATE;
        let mut g = m.lock().unwrap();
        while !g.0 {
            g = cv.wait(g).unwrap();
        }
        runner.cancel(tui_job);
        g.1 = true;
        cv.notify_all();
    }
    let v = runner.wait(tui_job).unwrap();
    assert_eq!(v.state, JobState::Cancelled, "{:?}", v.error);
    HOLD.store(false, Ordering::SeqCst);
    let store = ws.open_store().unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(
        (runs.len(), runs[0].teacher.as_str(), runs[0].n_scores, runs[0].state.as_str()),
        (1, "fake", 4, "cancelled")
    );

    // CLI path: the same request resumes the TUI's run and scores the rest.
    let ws_arg = ws.root().to_str().unwrap().to_string();
    let cli = dams::cli::Cli::parse_from(["dams", "-w", &ws_arg, "score", "--teacher", "fake", "--option", "gain=4"]);
    dams::cli::run(cli).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!((runs.len(), runs[0].n_scores, runs[0].state.as_str()), (1, 6, "done"), "{runs:?}");
    for (id, s) in store.run_scores(runs[0].id).unwrap() {
        let want = (0.05 * id as f32 * 4.0).min(1.0);
        assert!((s[0] - want).abs() < 1e-3, "segment {id}: {s:?}, want {want}");
    }
    // Both jobs wrote the same parameters (every option, defaults filled in, the same device and splits).
    let jobs = store.jobs(10).unwrap();
    let score_jobs: Vec<_> = jobs.iter().filter(|j| j.kind == "score").collect();
    assert_eq!(score_jobs.len(), 2);
    let p0: serde_json::Value = serde_json::from_str(&score_jobs[0].params).unwrap();
    let p1: serde_json::Value = serde_json::from_str(&score_jobs[1].params).unwrap();
    assert_eq!(p0, p1);
    assert_eq!(p0["options"]["gain"], "4");
    // Another option value is another run, not a resume.
    let cli = dams::cli::Cli::parse_from(["dams", "-w", &ws_arg, "score", "--teacher", "fake"]);
    dams::cli::run(cli).unwrap();
    assert_eq!(store.runs().unwrap().len(), 2);

    // The CLI's follower prints every line of a long log, also those the in-memory ring dropped.
    let id = runner
        .spawn("test_log", serde_json::json!({}), Some(1000), |job| {
            for i in 0..1000 {
                job.log(format!("line {i}"));
            }
            Ok(serde_json::json!({"ok": true}))
        })
        .unwrap();
    let mut out: Vec<u8> = Vec::new();
    let v = dams::cli::follow::follow(&mut runner, id, &mut out).unwrap();
    assert_eq!(v.state, JobState::Done);
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1000, "{}", &text[..200.min(text.len())]);
    assert!(lines.iter().enumerate().all(|(i, l)| *l == format!("line {i}")));
}
