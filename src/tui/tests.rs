//! Headless tests of the TUI state and drawing (ratatui `TestBackend`).
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{App, Mode};
use super::bench::{app_on, scratch_workspace};
use super::view::{self, SpecCells};
use super::worker;
use crate::dsp::spectrogram::MelSpectrogrammer;
use crate::labels::{LabelSet, Split};
use crate::tui::keymap::{Action, Key, KeyCode};

fn screen(app: &mut App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    let mut cache = SpecCells::default();
    term.draw(|f| view::draw(f, app, &mut cache)).unwrap();
    let buf = term.backend().buffer().clone();
    let mut s = String::new();
    for y in 0..h {
        for x in 0..w {
            s.push_str(buf[(x, y)].symbol());
        }
        s.push('\n');
    }
    s
}

fn with_analysis(app: &mut App) {
    let id = app.current_id().unwrap();
    let path = app.ws.abs_data_path(&app.current.as_ref().unwrap().segment.segment_path);
    let a = worker::analyse(&mut MelSpectrogrammer::default(), id, &path).unwrap();
    app.current.as_mut().unwrap().analysis = Some(a);
}

#[test]
fn draws_at_every_size_down_to_tiny_without_panicking() {
    let s = scratch_workspace(3).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    with_analysis(&mut app);
    app.playback.seek_to(3.0);
    for (w, h) in [(200, 60), (120, 40), (80, 24), (60, 15), (20, 6), (1, 1), (0, 0)] {
        for mode in [Mode::Normal, Mode::Help { scroll: 3 }, Mode::Note { buf: "x".into() }, Mode::Diagnostics] {
            app.mode = mode;
            screen(&mut app, w, h);
        }
        app.mode = Mode::Normal;
        app.expanded = !app.expanded;
        screen(&mut app, w, h);
    }
    app.expanded = false;
    let s80 = screen(&mut app, 80, 24);
    assert!(s80.contains("bench_0000.wav"), "{s80}");
    assert!(s80.contains("teacher scores"), "{s80}");
    assert!(s80.contains('▀'), "spectrogram cells: {s80}");
    assert!(s80.contains("no audio output: bench"), "{s80}");
}

#[test]
fn spectrogram_cells_use_the_colour_map_and_put_high_frequencies_on_top() {
    let s = scratch_workspace(1).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    with_analysis(&mut app);
    let a = app.current.as_ref().unwrap().analysis.clone().unwrap();
    // bench_0000 is a 200 Hz tone over noise: the pixel row holding its mel band is the
    // brightest, and it sits where the frequency axis says (high frequencies on top).
    let cells = view::spectrogram_cells(&a, 40, 10, super::colormap::ColorMap::Viridis);
    assert_eq!(cells.len(), 400);
    let lum = |c: (u8, u8, u8)| c.0 as u32 + c.1 as u32 + c.2 as u32;
    let pixel_row = |py: usize| {
        (0..40)
            .map(|x| lum(if py.is_multiple_of(2) { cells[(py / 2) * 40 + x].0 } else { cells[(py / 2) * 40 + x].1 }))
            .sum::<u32>()
    };
    let bands = &a.spec.band_hz;
    let band = (0..bands.len()).min_by(|&i, &j| (bands[i] - 200.0).abs().total_cmp(&(bands[j] - 200.0).abs())).unwrap();
    let ph = 20;
    let want = ph - 1 - band * ph / a.spec.n_mels;
    let brightest = (0..ph).max_by_key(|&py| pixel_row(py)).unwrap();
    assert_eq!(brightest, want);
    assert!(want > ph / 2, "a low tone is drawn in the lower half");
}

#[test]
fn labels_toggle_commit_refuse_and_undo_through_the_store() {
    let s = scratch_workspace(3).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    let id = app.current_id().unwrap();
    app.on_key(Key::ch('s'));
    app.on_key(Key::ch('3'));
    assert_eq!(app.store.gold(id, app.annotator_id).unwrap(), (Some(LabelSet::new(true, false, true)), false));
    app.on_key(Key::ch('r'));
    assert_eq!(app.store.gold(id, app.annotator_id).unwrap(), (Some(LabelSet::new(true, false, true)), true));
    assert!(app.index.by_id(id).unwrap().needs_review());
    app.on_key(Key::ch('u'));
    assert!(!app.store.gold(id, app.annotator_id).unwrap().1);
    app.on_key(Key::ctrl('r'));
    assert!(app.store.gold(id, app.annotator_id).unwrap().1);
    // Enter commits "none" on an unlabeled segment and moves on.
    app.on_key(Key::plain(KeyCode::Enter));
    let second = app.current_id().unwrap();
    assert_ne!(second, id);
    app.on_key(Key::plain(KeyCode::Enter));
    assert_eq!(app.store.gold(second, app.annotator_id).unwrap().0, Some(LabelSet::default()));
    // A train segment refuses gold (status message, no panic, nothing written).
    app.store.set_split(3, Split::Train).unwrap();
    app.current = None;
    app.select(2);
    app.on_key(Key::ch('1'));
    assert!(app.message.contains("only allowed on dev/test"), "{}", app.message);
    assert_eq!(app.store.gold(3, app.annotator_id).unwrap().0, None);
    // Notes.
    app.select(0);
    app.on_key(Key::ch('c'));
    for c in "hum at 3 s".chars() {
        app.on_key(Key::ch(c));
    }
    app.on_key(Key::plain(KeyCode::Enter));
    assert_eq!(app.store.note(id, app.annotator_id).unwrap().as_deref(), Some("hum at 3 s"));
    assert!(app.index.by_id(id).unwrap().has_note());
}

#[test]
fn search_filters_sort_and_mouse() {
    let s = scratch_workspace(5).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    screen(&mut app, 100, 30);
    app.on_key(Key::ch('/'));
    for c in "0003".chars() {
        app.on_key(Key::ch(c));
    }
    assert_eq!(app.index.view_len(), 1);
    app.on_key(Key::plain(KeyCode::Enter));
    assert_eq!(app.mode, Mode::Normal);
    assert_eq!(app.current.as_ref().unwrap().segment.file_name(), "bench_0003.wav");
    app.run(Action::ClearFilters);
    assert_eq!(app.index.view_len(), 5);
    // The selection survives the filter change.
    assert_eq!(app.current.as_ref().unwrap().segment.file_name(), "bench_0003.wav");
    app.run(Action::SortReverse);
    assert_eq!(app.index.view_row(0).unwrap().1.id, 5);
    app.run(Action::CycleLabeledFilter);
    assert_eq!(app.index.view_len(), 5);
    app.on_key(Key::ch('1'));
    app.run(Action::CycleLabeledFilter);
    assert_eq!(app.index.view_len(), 1);
    app.run(Action::ClearFilters);
    // Click on the third list row; then in the spectrogram to seek.
    screen(&mut app, 100, 30);
    let (ly, lx, _, _) = app.areas.list;
    app.on_click(lx + 2, ly + 2);
    assert_eq!(app.cursor, 2);
    with_analysis(&mut app);
    app.playback.load(app.current.as_ref().unwrap().analysis.as_ref().unwrap().samples.clone());
    screen(&mut app, 100, 30);
    let (sx, sy, sw, _) = app.areas.spec;
    assert!(sw > 0);
    app.on_click(sx + sw / 2, sy + 1);
    assert!((app.playback.position() - 5.0).abs() < 0.2, "{}", app.playback.position());
    // Help popup lists live bindings.
    app.on_key(Key::ch('?'));
    let sc = screen(&mut app, 120, 70);
    assert!(sc.contains("toggle speech") && sc.contains("play / pause"), "{sc}");
    app.on_key(Key::plain(KeyCode::Esc));
    assert_eq!(app.mode, Mode::Normal);
    app.on_key(Key::ch('q'));
    assert!(app.quit);
}

#[test]
fn missing_and_corrupt_audio_show_an_error_and_the_app_goes_on() {
    let s = scratch_workspace(3).unwrap();
    std::fs::remove_file(s.ws.segments_dir().join("bench_0000.wav")).unwrap();
    std::fs::write(s.ws.segments_dir().join("bench_0001.wav"), b"RIFF\x10\x00\x00\x00WAVEjunkjunk").unwrap();
    let mut app = app_on(&s.ws, Some(worker::Worker::start().unwrap())).unwrap();
    let wait_error = |app: &mut App| {
        let t0 = std::time::Instant::now();
        while app.current.as_ref().unwrap().analysis_error.is_none() {
            assert!(t0.elapsed().as_secs() < 30, "no error reported");
            app.poll_worker();
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        app.current.as_ref().unwrap().analysis_error.clone().unwrap()
    };
    let e = wait_error(&mut app);
    assert!(e.contains("bench_0000.wav") && e.contains("not found"), "{e}");
    let sc = screen(&mut app, 100, 30);
    assert!(sc.contains("cannot show this segment"), "{sc}");
    app.run(Action::MoveDown);
    let e = wait_error(&mut app);
    assert!(e.contains("bench_0001.wav"), "{e}");
    // Labeling still works without audio.
    app.on_key(Key::ch('2'));
    assert!(app.message.starts_with("saved bench_0001.wav = music"), "{}", app.message);
    // The third segment decodes normally.
    app.run(Action::MoveDown);
    let t0 = std::time::Instant::now();
    while app.current.as_ref().unwrap().analysis.is_none() {
        assert!(t0.elapsed().as_secs() < 30);
        app.poll_worker();
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!((app.playback.duration() - 10.0).abs() < 1e-6);
}

/// Two teachers over `n` dev segments with thresholds 0.5 for every class: `ast` (from the
/// scratch workspace, speech 0.7 everywhere) and `beats` with speech alternating 0.2 / 0.9.
fn second_teacher(app: &mut App, n: i64) {
    use crate::labels::CLASSES;
    use crate::store::{NewRun, NewThreshold, ScoreRow};
    let run = app
        .store
        .create_run(&NewRun { teacher: "beats", checksum: "c", settings: "{}", imported: true, zero_shot: false })
        .unwrap();
    let rows: Vec<ScoreRow> = (1..=n)
        .map(|id| ScoreRow { segment_id: id, scores: [if id % 2 == 0 { 0.9 } else { 0.2 }, 0.2, 0.1], raw: None })
        .collect();
    app.store.put_scores(run, &rows).unwrap();
    for t in ["ast", "beats"] {
        for c in CLASSES {
            app.store
                .save_threshold(&NewThreshold {
                    teacher: t.into(),
                    class: Some(c),
                    value: Some(0.5),
                    method: "manual".into(),
                    created_by: "test".into(),
                    ..Default::default()
                })
                .unwrap();
        }
    }
}

#[test]
fn disagreement_browser_opens_a_segment_in_the_segment_view() {
    use super::research::Screen;
    let s = scratch_workspace(4).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    second_teacher(&mut app, 4);
    app.run(Action::ShowDisagreements);
    assert_eq!(app.research.screen, Screen::Disagreements);
    let scr = screen(&mut app, 80, 24);
    // ast votes speech on all four, beats on 2 and 4: segments 1 and 3 disagree (entropy 1).
    assert!(scr.contains("2 of 4 segments"), "{scr}");
    assert!(scr.contains("segments/bench_0000.wav"), "{scr}");
    assert!(scr.contains("Cohen's κ"), "{scr}");
    app.on_key(Key::ch('j'));
    let id = app.research.disagreements.as_ref().unwrap().selected().unwrap().segment_id;
    assert_eq!(id, 3);
    app.on_key(Key::plain(KeyCode::Enter));
    assert_eq!(app.research.screen, Screen::Segments);
    assert_eq!(app.current_id(), Some(3));
    // The annotator labels it there, as any segment.
    app.on_key(Key::ch('1'));
    assert_eq!(app.store.gold(3, app.annotator_id).unwrap().0, Some(LabelSet::new(true, false, false)));
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("bench_0002.wav"), "{scr}");
    // D goes back to the browser, which now knows the gold label.
    app.on_key(Key::ch('D'));
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("disagreements"), "{scr}");
    assert_eq!(app.research.disagreements.as_ref().unwrap().selected().unwrap().segment_id, 3);
}

#[test]
fn threshold_view_draws_at_80x24_and_saves_with_provenance() {
    let s = scratch_workspace(4).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    second_teacher(&mut app, 4);
    app.run(Action::ShowThresholds);
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("threshold 0.500"), "{scr}");
    assert!(scr.contains("PR curve"), "{scr}");
    assert!(scr.contains("flips of the last move: 0"), "{scr}");
    app.on_key(Key::ch('e')); // quantile 0.9 of the unlabeled scores (all 0.7: no gold yet)
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("threshold 0.700"), "{scr}");
    app.on_key(Key::ch('s'));
    let t = app.store.thresholds("ast").unwrap()[0].clone().unwrap();
    assert_eq!(
        (t.value, t.method.as_str(), t.target, t.created_by.as_str()),
        (Some(0.7f32 as f64), "quantile", Some(0.9), "bench")
    );
    for (w, h) in [(80, 24), (40, 10), (1, 1)] {
        screen(&mut app, w, h);
    }
    app.on_key(Key::plain(KeyCode::Esc));
    assert_eq!(app.research.screen, super::research::Screen::Segments);
}

#[test]
fn a_job_started_from_the_jobs_pane_runs_to_the_end_while_labeling_goes_on() {
    let s = scratch_workspace(4).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    second_teacher(&mut app, 4);
    // Two of the segments become unlabeled: they get pseudo-labels.
    app.store.conn().execute("UPDATE segments SET split = 'unlabeled' WHERE id IN (3, 4)", []).unwrap();
    app.run(Action::ShowJobs);
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("no jobs yet"), "{scr}");
    app.on_key(Key::ch('n'));
    assert!(app.research.jobs.form.is_some());
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("start a pseudo-labeling job"), "{scr}");
    app.on_key(Key::plain(KeyCode::Enter));
    assert!(app.research.jobs.form.is_none(), "{}", app.message);
    assert!(app.message.starts_with("started job #"), "{}", app.message);
    // Labeling goes on while the job writes.
    app.on_key(Key::plain(KeyCode::Esc));
    app.select(0);
    app.on_key(Key::ch('2'));
    assert!(app.message.starts_with("saved"), "{}", app.message);
    app.on_key(Key::ch('J'));
    let t0 = std::time::Instant::now();
    while app.research.jobs.runner.any_running() {
        assert!(t0.elapsed().as_secs() < 60, "job did not finish");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    app.refresh_jobs(false);
    assert!(app.message.contains("done"), "{}", app.message);
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("pseudo_label"), "{scr}");
    assert!(scr.contains("done"), "{scr}");
    assert!(scr.contains("segments labelled"), "{scr}");
    // One job row in the store, finished, with the outcome.
    let jobs = app.store.jobs(10).unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!((jobs[0].kind.as_str(), jobs[0].state.as_str()), ("pseudo_label", "done"));
    // k = 2 of ast (speech everywhere) and beats (speech on even ids): segment 4 gets speech,
    // segment 3 has one vote only and is left out.
    let r = jobs[0].result.as_deref().unwrap_or("");
    assert!(r.contains("\"labeled\":1") && r.contains("\"excluded_empty\":1"), "{r}");
    assert!(s.ws.metadata_dir().join("blocs_smad_labels.csv").exists());
}

#[test]
fn jobs_pane_shows_a_metric_sparkline_and_cancels_a_running_job() {
    let s = scratch_workspace(1).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    let id = app
        .research
        .jobs
        .runner
        .spawn("demo_train", serde_json::json!({"epochs": 100}), Some(100), |ctx| {
            for epoch in 0..5u64 {
                ctx.metric("loss", 1.0 / (epoch + 1) as f64);
                ctx.log(format!("epoch {epoch}"));
                ctx.progress(epoch + 1, None);
            }
            loop {
                ctx.check_cancel()?;
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
        .unwrap();
    app.on_key(Key::ch('J'));
    let t0 = std::time::Instant::now();
    while app.research.jobs.runner.view(id).is_none_or(|v| v.done < 5) {
        assert!(t0.elapsed().as_secs() < 30);
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("demo_train") && scr.contains("running"), "{scr}");
    assert!(scr.contains("loss 0.2000"), "{scr}");
    assert!(scr.contains('█') && scr.contains("5/100"), "{scr}");
    assert!(scr.contains("epoch 4"), "{scr}");
    app.on_key(Key::ch('x'));
    assert!(app.message.starts_with(&format!("cancelling job #{id}")), "{}", app.message);
    let v = app.research.jobs.runner.wait(id).unwrap();
    assert_eq!(v.state, crate::jobs::JobState::Cancelled);
    app.refresh_jobs(false);
    assert!(app.message.contains("cancelled"), "{}", app.message);
    let jobs = app.store.jobs(10).unwrap();
    assert_eq!(jobs[0].state, "cancelled");
}

/// A job writing to the database as fast as it can while the annotator labels: every label is
/// saved, none reports a locked or busy database.
#[test]
fn labeling_while_a_job_writes_never_reports_a_locked_database() {
    let s = scratch_workspace(2).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    let id = app
        .research
        .jobs
        .runner
        .spawn("writer", serde_json::json!({}), None, |ctx| {
            let mut i = 0u64;
            loop {
                ctx.check_cancel()?;
                ctx.log(format!("line {i}"));
                i += 1;
            }
        })
        .unwrap();
    for i in 0..200 {
        app.on_key(Key::ch(['1', '2', '3'][i % 3]));
        assert!(app.message.starts_with("saved"), "label {i}: {}", app.message);
    }
    app.research.jobs.runner.cancel(id);
    app.research.jobs.runner.wait(id);
}

#[test]
fn a_scoring_job_from_the_form_scores_with_the_builtin_teacher_and_the_list_shows_it() {
    let s = scratch_workspace(3).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    app.on_key(Key::ch('J'));
    app.on_key(Key::ch('S'));
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("start a scoring job") && scr.contains("builtin"), "{scr}");
    app.on_key(Key::plain(KeyCode::Enter));
    assert!(app.message.starts_with("started job #"), "{}", app.message);
    let t0 = std::time::Instant::now();
    while app.research.jobs.runner.any_running() {
        assert!(t0.elapsed().as_secs() < 120, "scoring did not finish");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    app.refresh_jobs(false);
    assert!(app.message.contains("(score) done"), "{}", app.message);
    let jobs = app.store.jobs(5).unwrap();
    assert_eq!((jobs[0].kind.as_str(), jobs[0].state.as_str()), ("score", "done"));
    assert!(jobs[0].result.as_deref().unwrap_or("").contains("\"scored\":3"), "{:?}", jobs[0].result);
    // The segment view now shows the built-in teacher's scores.
    let cur = app.current.as_ref().unwrap();
    assert!(cur.scores.iter().any(|t| t.teacher == "builtin"), "{:?}", cur.scores);
    app.on_key(Key::ch('T'));
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("thresholds") && scr.contains("run #"), "{scr}");
}

#[test]
fn jobs_of_a_dead_process_show_as_interrupted_at_startup() {
    let s = scratch_workspace(1).unwrap();
    {
        let mut store = s.ws.open_store().unwrap();
        let id = store.create_job("score", "{\"teacher\":\"builtin\"}", Some(10)).unwrap();
        // A pid no process has (above Linux's pid_max).
        store.conn().execute("UPDATE jobs SET pid = 2147483000, done = 4 WHERE id = ?1", [id]).unwrap();
    }
    let mut app = app_on(&s.ws, None).unwrap();
    assert!(app.message.contains("1 job(s) of an earlier session were interrupted"), "{}", app.message);
    app.on_key(Key::ch('J'));
    let scr = screen(&mut app, 80, 24);
    assert!(scr.contains("interrupted"), "{scr}");
    assert!(scr.contains("start it again to resume"), "{scr}");
}

/// Issue 7: a student trained from the jobs pane's form on a fresh demo copy — the form is
/// filled with keys (typed name, typed numbers, toggles), the job runs to the end, the pane
/// charts its epochs and tables them on inspection, and "open results" scores the student and
/// opens it in the threshold view.
#[cfg(feature = "burn")]
#[test]
fn a_student_trained_from_the_train_form_is_charted_tabled_scored_and_opened() {
    let wait = |app: &mut App, what: &str| {
        let t0 = std::time::Instant::now();
        while app.research.jobs.runner.any_running() {
            assert!(t0.elapsed().as_secs() < 600, "{what} did not finish");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        app.refresh_jobs(false);
    };
    let dir = tempfile::tempdir().unwrap();
    let ws = crate::demo::ensure_at(&dir.path().join("demo"), false).unwrap().workspace;
    // The demo's gold is on dev and test; a third of its dev windows become training data.
    ws.open_store()
        .unwrap()
        .conn()
        .execute("UPDATE segments SET split = 'train' WHERE split = 'dev' AND id % 3 = 0", [])
        .unwrap();
    let mut app = app_on(&ws, None).unwrap();
    app.on_key(Key::ch('J'));
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("t train"), "the pane names the key: {scr}");
    app.on_key(Key::ch('t'));
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("start a student training job"), "{scr}");
    assert!(scr.contains("s1") && scr.contains("gold") && scr.contains("a new student s1"), "{scr}");
    // The name: letters the form otherwise reads as moves (j, k, l) are typed.
    app.on_key(Key::plain(KeyCode::Backspace));
    app.on_key(Key::plain(KeyCode::Backspace));
    for c in "jk-tiny".chars() {
        app.on_key(Key::ch(c));
    }
    let down = |app: &mut App| app.on_key(Key::plain(KeyCode::Down));
    let retype = |app: &mut App, s: &str| {
        for _ in 0..4 {
            app.on_key(Key::plain(KeyCode::Backspace));
        }
        for c in s.chars() {
            app.on_key(Key::ch(c));
        }
    };
    down(&mut app); // gold: on, weight 1.0
    down(&mut app);
    retype(&mut app, "1"); // epochs
    down(&mut app);
    retype(&mut app, "8"); // batch size
    down(&mut app);
    retype(&mut app, "4"); // width
    down(&mut app);
    app.on_key(Key::ch(' ')); // augmentation off
    down(&mut app);
    retype(&mut app, "3"); // seed
    down(&mut app);
    app.on_key(Key::plain(KeyCode::Right)); // device: cpu
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("jk-tiny") && scr.contains("[x] cpu"), "{scr}");
    app.on_key(Key::plain(KeyCode::Enter));
    assert!(app.message.starts_with("started job #"), "{}", app.message);
    assert!(app.research.jobs.form.is_none());
    wait(&mut app, "training");
    assert!(app.message.contains("(train) done"), "{}", app.message);
    let job = &app.store.jobs(5).unwrap()[0];
    assert_eq!((job.kind.as_str(), job.state.as_str()), ("train", "done"), "{job:?}");
    for want in ["\"width\":4", "\"epochs\":1", "\"batch_size\":8", "\"seed\":3", "\"device\":\"cpu\"", "\"gold\""] {
        assert!(job.params.contains(want), "{want} in {}", job.params);
    }
    assert!(ws.data_dir().join("models/jk-tiny/best/model.bpk").exists());
    // The finished job: its loss and dev F1 charts, then the per-epoch table on inspection.
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("loss") && scr.contains("(epoch 1)") && scr.contains("dev macro F1"), "{scr}");
    app.on_key(Key::plain(KeyCode::Enter));
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("epoch") && scr.contains("macro") && scr.contains("← best"), "{scr}");
    assert!(scr.contains("dams score --teacher student:jk-tiny"), "{scr}");
    // Open results: not scored yet, so a scoring job of the student starts; once done, open
    // results on it shows the student in the threshold view.
    app.on_key(Key::ch('o'));
    assert!(app.message.contains("scoring every segment with student:jk-tiny"), "{}", app.message);
    wait(&mut app, "scoring");
    assert!(app.message.contains("(score) done"), "{}", app.message);
    app.on_key(Key::ch('o'));
    assert_eq!(app.research.screen, super::research::Screen::Thresholds, "{}", app.message);
    let t = app.research.thresholds.as_ref().unwrap();
    assert_eq!(t.run().unwrap().teacher, "student:jk-tiny");
    let scr = screen(&mut app, 100, 30);
    assert!(scr.contains("student:jk-tiny"), "{scr}");
    // A second form proposes the next free name and knows the trained one.
    app.on_key(Key::ch('J'));
    app.on_key(Key::ch('t'));
    let f = app.research.jobs.form.as_ref().unwrap();
    assert_eq!(f.students, vec!["jk-tiny".to_string()]);
    app.on_key(Key::plain(KeyCode::Esc));
    assert!(app.research.jobs.form.is_none());
}

#[test]
fn the_train_form_fits_small_terminals_and_scrolls_to_the_selected_field() {
    let s = scratch_workspace(1).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    app.on_key(Key::ch('J'));
    app.on_key(Key::ch('t'));
    for _ in 0..20 {
        app.on_key(Key::plain(KeyCode::Down));
    }
    let scr = screen(&mut app, 80, 14);
    assert!(scr.contains("confidence weig") && scr.contains("weigh pseudo-labelled examples"), "{scr}");
    for (w, h) in [(120, 40), (80, 24), (40, 10), (10, 4), (0, 0)] {
        screen(&mut app, w, h);
    }
}

#[test]
fn the_jobs_pane_shows_a_sharded_runs_progress_from_its_part_files() {
    let s = scratch_workspace(4).unwrap();
    let dirs = crate::config::Dirs {
        config: s.ws.root().join("home/config"),
        data: s.ws.root().join("home/data"),
        cache: s.ws.root().join("home/cache"),
    };
    let loaded = crate::slurm::create_score_plan(
        &s.ws,
        crate::slurm::NewScorePlan {
            job: crate::jobs::catalog::ScoreJob::new("builtin", &[], Some("cpu"), None, false, None).unwrap(),
            shards: 2,
            slurm: Default::default(),
            name: Some("tui-run".into()),
            dams_bin: "/usr/bin/dams".into(),
            dirs: &dirs,
        },
    )
    .unwrap();
    let plan = loaded.dir.join("plan.json");
    crate::slurm::shard::run_shard(&plan, crate::slurm::shard::ShardArg::Index(0), &dirs, |_, _| {}).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    app.run(Action::ShowJobs);
    let scr = screen(&mut app, 120, 30);
    assert!(scr.contains("sharded tui-run (builtin) waiting"), "{scr}");
    assert!(scr.contains("50% · shards 1/2 done, 0 running, 1 missing · merged 0/2"), "{scr}");
    crate::slurm::shard::run_shard(&plan, crate::slurm::shard::ShardArg::Index(1), &dirs, |_, _| {}).unwrap();
    crate::slurm::merge::merge(&s.ws, &loaded.dir, std::time::Duration::from_secs(5)).unwrap();
    app.refresh_jobs(true);
    let scr = screen(&mut app, 120, 30);
    assert!(scr.contains("sharded tui-run (builtin) merged"), "{scr}");
    assert!(scr.contains("100% · shards 2/2 done, 0 running, 0 missing · merged 2/2"), "{scr}");
}

#[test]
fn the_rounds_screen_compares_each_loop_rounds_teachers_and_student() {
    use crate::eval::rounds::fixtures::{f, record};
    let s = scratch_workspace(2).unwrap();
    let rec = |seed: u64, student: &str, dev: f64| {
        let results = vec![
            f("builtin", "dev", 0.968),
            f("ina", "dev", 0.887),
            f(&format!("student:{student}"), "dev", dev),
            f("builtin", "test", 0.861),
            f("ina", "test", 0.922),
        ];
        record(seed, &["builtin", "ina"], student, 725, results)
    };
    let dir = s.ws.experiments_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (r0, r1) = (rec(0, "loop0_r1", 0.923), rec(1, "loop1_r1", 0.930));
    std::fs::write(dir.join("loop_0_20261207T100000.json"), serde_json::to_string(&r0).unwrap()).unwrap();
    std::fs::write(dir.join("loop_1_20261207T110000.json"), serde_json::to_string(&r1).unwrap()).unwrap();
    let mut app = app_on(&s.ws, None).unwrap();
    app.run(Action::ShowRounds);
    let scr = screen(&mut app, 140, 30);
    assert!(scr.contains("2 loop run(s)"), "{scr}");
    assert!(scr.contains("2026-12-07 11:00"), "{scr}");
    // Newest first and selected: seed 1; its student 0.038 below the best teacher on dev.
    assert!(scr.contains("seed 1 · ina-head · vote k=1 · 1 round(s) · teachers builtin, ina"), "{scr}");
    assert!(scr.contains("-0.038"), "{scr}");
    assert!(scr.contains("round 1: 725 pseudo-labelled (run #3), student loop1_r1"), "{scr}");
    assert!(scr.contains("0.968 (0.97/0.97/0.97)*"), "the best dev teacher is marked: {scr}");
    assert!(scr.contains("0.922 (0.92/0.92/0.92)*"), "the best test teacher is marked: {scr}");
    // The next run down is the older one.
    app.research_key(Key { code: KeyCode::Char('j'), ctrl: false, alt: false });
    let scr = screen(&mut app, 140, 30);
    assert!(scr.contains("seed 0 · ina-head · vote k=1 · 1 round(s) · teachers"), "{scr}");
    assert!(scr.contains("-0.045"), "{scr}");
    // Help lists the screen's keys from the live bindings; Esc goes back.
    assert!(app.keymap.keys_in("app", Action::ShowRounds).contains('E'));
    app.research_key(Key { code: KeyCode::Esc, ctrl: false, alt: false });
    assert_eq!(app.research.screen, super::research::Screen::Segments);
    // Nothing recorded: a hint, not an empty screen.
    let s2 = scratch_workspace(1).unwrap();
    let mut app = app_on(&s2.ws, None).unwrap();
    app.run(Action::ShowRounds);
    let scr = screen(&mut app, 100, 20);
    assert!(scr.contains("no self-training rounds yet"), "{scr}");
}
