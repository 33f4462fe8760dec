//! Headless tests of the TUI state and drawing (ratatui `TestBackend`).
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::app::{App, Mode};
use super::bench::{app_on, scratch_workspace};
use super::view::{self, SpecCells};
use super::worker;
use crate::dsp::spectrogram::MelSpectrogrammer;
use crate::keymap::{Action, Key, KeyCode};
use crate::labels::{LabelSet, Split};

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
