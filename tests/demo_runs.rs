//! The teacher runs shipped with the demo (`data/demo/teacher_runs.json`, see `src/demo/runs.rs`): a freshly built
//! demo holds a finished `builtin` and `ina` run over every segment, with their default thresholds, and counts
//! neither as the user's work; the live teachers reproduce the shipped scores (every segment for `builtin`, every
//! eighth for `ina`, which is slower in a debug build).
//!
//! Regenerate the file after a change to the demo, the built-in teacher or INA (scores the whole demo, ~2 min):
//! `DAMS_BLESS_DEMO_RUNS=1 cargo test --test demo_runs -- --nocapture`.
#![cfg(feature = "burn")]

use std::sync::atomic::AtomicBool;

use dams::demo::runs;
use dams::engine::Engine;
use dams::teachers::Teacher;
use dams::teachers::builtin::BuiltinTeacher;
use dams::teachers::ina::InaTeacher;
use dams::teachers::score::{ScoreOptions, score_segments};

const TOL: f32 = 1e-5;

#[test]
fn the_demo_ships_builtin_and_ina_runs_the_teachers_reproduce() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("demo");
    let demo = dams::demo::ensure_at(&root, false).unwrap();
    let ws = demo.workspace;
    let mut store = ws.open_store().unwrap();
    let mut builtin = BuiltinTeacher::embedded().unwrap();
    let mut ina = InaTeacher::open(Engine::cpu()).unwrap();

    if std::env::var_os("DAMS_BLESS_DEMO_RUNS").is_some() {
        let opts = ScoreOptions { splits: None, batch_size: None, fresh: true };
        let stop = AtomicBool::new(false);
        for t in [&mut builtin as &mut dyn Teacher, &mut ina] {
            let r = score_segments(&ws, &mut store, t, &opts, &stop, |_| {}).unwrap();
            assert!(r.failed.is_empty(), "{}: {:?}", t.id(), r.failed);
        }
        let file = runs::collect(&store).unwrap();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("data/demo/teacher_runs.json");
        std::fs::write(&path, serde_json::to_string_pretty(&file).unwrap() + "\n").unwrap();
        eprintln!("wrote {} ({} runs)", path.display(), file.runs.len());
        return;
    }

    assert!(demo.notice.is_none(), "{:?}", demo.notice);
    let segments = store.segments(None).unwrap();
    let all_runs = store.runs().unwrap();
    let shipped = runs::shipped().unwrap();
    assert_eq!(shipped.runs.iter().map(|r| r.teacher.as_str()).collect::<Vec<_>>(), runs::TEACHERS);
    for (t, every) in [(&mut builtin as &mut dyn Teacher, 1usize), (&mut ina, 8)] {
        let run = all_runs.iter().find(|r| r.teacher == t.id()).unwrap_or_else(|| panic!("no {} run", t.id()));
        assert!(runs::is_shipped(&run.settings), "{}", run.settings);
        assert_eq!((run.state.as_str(), run.n_scores as usize), ("done", segments.len()), "{}", t.id());
        assert_eq!(run.checksum, t.checksum());
        assert!(store.thresholds(t.id()).unwrap().iter().all(|v| v.is_some()), "{}: default thresholds", t.id());
        let stored: std::collections::HashMap<i64, [f32; 3]> = store.run_scores(run.id).unwrap().into_iter().collect();
        let mut worst = 0f32;
        let sample: Vec<_> = segments.iter().step_by(every).collect();
        for chunk in sample.chunks(8) {
            let audio: Vec<Vec<f32>> = chunk
                .iter()
                .map(|s| dams::audio::load_mono_16k(&ws.resolve_data_path(&s.segment_path).unwrap()).unwrap())
                .collect();
            let refs: Vec<&[f32]> = audio.iter().map(|a| a.as_slice()).collect();
            let out = t.score_batch(&refs).unwrap();
            for (s, o) in chunk.iter().zip(out) {
                for c in 0..3 {
                    worst = worst.max((o.scores[c].clamp(0.0, 1.0) - stored[&s.id][c]).abs());
                }
            }
        }
        eprintln!("{}: {} segments re-scored, max |live − shipped| = {worst:.2e}", t.id(), sample.len());
        assert!(
            worst <= TOL,
            "{}: the live teacher gives other scores than the shipped ones ({worst}); \
            regenerate with DAMS_BLESS_DEMO_RUNS=1 (see this file)",
            t.id()
        );
    }
    // Building wrote them: not the user's work (an older demo without anything else is replaced, not kept).
    for (what, n) in store.work_beyond(dams::demo::DEMO_ANNOTATOR).unwrap() {
        assert_eq!(n, 0, "{what}");
    }
}
