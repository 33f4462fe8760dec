//! `dams bench tui-switch | tui-label | tui-render`: the TUI's speed goals, each measured next to
//! a reference taken in the same run (reported as a ratio).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::layout::Constraint;
use ratatui::widgets::{Row, Table, TableState};

use crate::dsp::spectrogram::MelSpectrogrammer;
use crate::labels::{LabelSet, LabelSource, Split};
use crate::store::{BrowseRow, NewRun, NewSegment, ScoreRow};
use crate::tui::browse::SegmentIndex;
use crate::tui::keymap::{Action, Keymap, PRESETS};
use crate::tui::playback::Playback;
use crate::workspace::Workspace;

use super::app::App;
use super::view::{self, SpecCells};
use super::worker::{self, Worker};

/// `p`-th percentile (0–100) of durations, in ms.
pub fn percentile(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1e3).collect();
    s.sort_by(f64::total_cmp);
    let i = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[i.min(s.len() - 1)]
}

/// A scratch workspace under the temp dir, removed on drop.
pub struct Scratch {
    pub dir: PathBuf,
    pub ws: Workspace,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A workspace with `n` dev segments of 10 s (tone + noise, 16-bit 16 kHz WAV) and one teacher run.
pub fn scratch_workspace(n: usize) -> Result<Scratch> {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("dams-bench-{}-{k}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let ws = Workspace::init(&dir)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut rows = Vec::new();
    let mut seed = 0x2545_f491u32;
    for i in 0..n {
        let name = format!("bench_{i:04}.wav");
        let path = ws.segments_dir().join(&name);
        let mut w = hound::WavWriter::create(&path, spec).with_context(|| path.display().to_string())?;
        let hz = 200.0 + 37.0 * i as f32;
        for k in 0..160_000 {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let noise = (seed >> 16) as f32 / 65_536.0 - 0.5;
            let v = 0.3 * (2.0 * std::f32::consts::PI * hz * k as f32 / 16_000.0).sin() + 0.1 * noise;
            w.write_sample((v * 32_000.0) as i16)?;
        }
        w.finalize()?;
        rows.push(NewSegment {
            segment_path: format!("segments/{name}"),
            raw_file: "bench.wav".into(),
            start_time: 5.0 * i as f64,
            end_time: 5.0 * i as f64 + 10.0,
            split: Split::Dev,
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        });
    }
    let mut store = ws.open_store()?;
    store.upsert_segments(&rows)?;
    let run = store.create_run(&NewRun {
        teacher: "ast",
        checksum: "b",
        settings: "{}",
        imported: true,
        zero_shot: false,
    })?;
    let scores: Vec<ScoreRow> =
        (1..=n as i64).map(|id| ScoreRow { segment_id: id, scores: [0.7, 0.2, 0.1], raw: None }).collect();
    store.put_scores(run, &scores)?;
    Ok(Scratch { dir, ws })
}

pub(crate) fn app_on(ws: &Workspace, worker: Option<Worker>) -> Result<App> {
    let (keymap, _) = Keymap::from_layers(&[("keymaps/default.toml", PRESETS[0].1)]);
    let config = crate::config::Config { annotator: "bench".into(), ..Default::default() };
    App::new(ws.clone(), &config, keymap, Vec::new(), Playback::headless("bench").0, worker)
}

fn frame(term: &mut Terminal<TestBackend>, app: &mut App, cache: &mut SpecCells) -> Result<()> {
    term.draw(|f| view::draw(f, app, cache)).map_err(|e| anyhow::anyhow!("draw: {e}"))?;
    Ok(())
}

/// Segment switch: decode + spectrogram + first frame (cold, no prefetch), and the switch the
/// user sees in the app (selection → spectrogram on screen, with the worker prefetching).
pub fn switch(n: usize) -> Result<()> {
    let scratch = scratch_workspace(n.max(4))?;
    let ws = &scratch.ws;
    let paths: Vec<PathBuf> = (0..n.max(4)).map(|i| ws.segments_dir().join(format!("bench_{i:04}.wav"))).collect();
    let mut term = Terminal::new(TestBackend::new(200, 60))?;

    // Reference: reading the file's bytes.
    let mut read = Vec::new();
    for p in &paths {
        let t = Instant::now();
        let b = std::fs::read(p)?;
        read.push(t.elapsed());
        std::hint::black_box(b);
    }

    // Cold: decode + spectrogram + first frame, on this thread.
    let mut app = app_on(ws, None)?;
    let mut cache = SpecCells::default();
    let mut sg = MelSpectrogrammer::default();
    let mut cold = Vec::new();
    let (mut dec, mut spec_t) = (Vec::new(), Vec::new());
    for (i, p) in paths.iter().enumerate() {
        let t = Instant::now();
        let samples = worker::load_samples(p).map_err(anyhow::Error::msg)?;
        dec.push(t.elapsed());
        let t1 = Instant::now();
        let a = worker::analyse_samples(&mut sg, (i + 1) as i64, samples);
        spec_t.push(t1.elapsed());
        app.select(i);
        if let Some(c) = &mut app.current {
            c.analysis = Some(a);
        }
        frame(&mut term, &mut app, &mut cache)?;
        cold.push(t.elapsed());
    }

    // In the app: j, then poll the worker until the spectrogram is installed, then draw.
    let mut app = app_on(ws, Some(Worker::start()?))?;
    let mut cache = SpecCells::default();
    // Let the first segment and its prefetched neighbours arrive.
    let t0 = Instant::now();
    while app.current.as_ref().is_some_and(|c| c.analysis.is_none()) && t0.elapsed() < Duration::from_secs(10) {
        app.poll_worker();
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut live = Vec::new();
    for _ in 1..paths.len() {
        // A person spends at least a moment per segment; prefetch uses it.
        std::thread::sleep(Duration::from_millis(150));
        app.poll_worker();
        let t = Instant::now();
        app.run(Action::MoveDown);
        while app.current.as_ref().is_some_and(|c| c.analysis.is_none()) {
            if t.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("the worker did not deliver within 10 s");
            }
            app.poll_worker();
            std::thread::yield_now();
        }
        frame(&mut term, &mut app, &mut cache)?;
        live.push(t.elapsed());
    }

    println!("tui-switch: {} segments of 10 s, 200x60 frame ({} build{})", paths.len(), build_kind(), load_note());
    println!(
        "  decode                      p50 {:7.2} ms  p99 {:7.2} ms",
        percentile(&dec, 50.0),
        percentile(&dec, 99.0)
    );
    println!(
        "  log-mel spectrogram         p50 {:7.2} ms  p99 {:7.2} ms",
        percentile(&spec_t, 50.0),
        percentile(&spec_t, 99.0)
    );
    println!(
        "  cold switch (dec+spec+frame) p50 {:7.2} ms  p99 {:7.2} ms",
        percentile(&cold, 50.0),
        percentile(&cold, 99.0)
    );
    println!(
        "  switch in the app (prefetch) p50 {:7.2} ms  p99 {:7.2} ms   goal p99 < 30 ms",
        percentile(&live, 50.0),
        percentile(&live, 99.0)
    );
    let r = percentile(&read, 50.0);
    println!("  reference: read the file    p50 {r:7.3} ms");
    println!(
        "  ratios: cold switch = {:.1}x reading the file; prefetched switch = {:.2}x the cold one",
        percentile(&cold, 50.0) / r,
        percentile(&live, 50.0) / percentile(&cold, 50.0)
    );
    Ok(())
}

/// Keypress to durable label: `1` handled by the app (SQLite commit, synchronous=FULL) against a
/// bare INSERT + commit with the same pragmas on the same disk.
pub fn label(n: usize) -> Result<()> {
    let scratch = scratch_workspace(8)?;
    let mut app = app_on(&scratch.ws, None)?;
    let key = crate::tui::keymap::Key::ch('1');
    let mut t_key = Vec::with_capacity(n);
    for i in 0..n {
        if i % 10 == 0 {
            app.run(Action::MoveDown);
            if app.cursor + 1 >= app.index.view_len() {
                app.run(Action::First);
            }
        }
        let t = Instant::now();
        app.on_key(key);
        t_key.push(t.elapsed());
        if !app.message.starts_with("saved") {
            anyhow::bail!("label not saved: {}", app.message);
        }
    }
    // Reference: a bare INSERT + commit.
    let path = scratch.dir.join("bare.sqlite");
    let conn = rusqlite::Connection::open(&path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, seg INTEGER, bits INTEGER)")?;
    let mut t_bare = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        conn.execute_batch("BEGIN")?;
        conn.execute("INSERT INTO t (seg, bits) VALUES (?1, ?2)", [i as i64, 1])?;
        conn.execute_batch("COMMIT")?;
        t_bare.push(t.elapsed());
    }
    println!(
        "tui-label: {n} keypresses, each one committed transaction with history ({} build{})",
        build_kind(),
        load_note()
    );
    println!(
        "  keypress -> durable label p50 {:7.3} ms  p99 {:7.3} ms   goal p99 < 5 ms",
        percentile(&t_key, 50.0),
        percentile(&t_key, 99.0)
    );
    println!(
        "  reference: bare INSERT+commit p50 {:7.3} ms  p99 {:7.3} ms",
        percentile(&t_bare, 50.0),
        percentile(&t_bare, 99.0)
    );
    println!(
        "  ratio: label / bare insert = {:.2}x (p50), {:.2}x (p99)",
        percentile(&t_key, 50.0) / percentile(&t_bare, 50.0),
        percentile(&t_key, 99.0) / percentile(&t_bare, 99.0)
    );
    Ok(())
}

/// A synthetic index of `n` rows with two teachers.
pub fn synthetic_index(n: usize) -> SegmentIndex {
    let mut idx = SegmentIndex::new();
    let splits = [Split::Train, Split::Dev, Split::Test, Split::Unlabeled];
    let mut path = String::new();
    for i in 0..n {
        path.clear();
        use std::fmt::Write;
        let _ = write!(path, "segments/station{:02}_2024{:04}_s{:05}.wav", i % 37, i / 1000 % 10_000, i % 100_000);
        idx.push(BrowseRow {
            id: i as i64 + 1,
            segment_path: &path,
            start_time: (i % 720) as f64 * 5.0,
            end_time: (i % 720) as f64 * 5.0 + 10.0,
            split: splits[i % 4],
            label_source: if i % 3 == 0 { "gold" } else { "none" },
            gold: (i % 3 == 0).then(|| LabelSet::from_bits((i % 8) as u8)),
            needs_review: i % 17 == 0,
            has_note: i % 29 == 0,
        });
    }
    for t in ["ast", "whisper-at"] {
        let k = idx.add_teacher(t);
        for i in 0..n {
            let x = ((i * 7919 + k * 31) % 1000) as f32 / 1000.0;
            idx.set_score(k, i as i64 + 1, [x, 1.0 - x, (x * 3.0).fract()]);
        }
    }
    idx
}

/// Frame time on a 200×60 terminal with `n` rows loaded, scrolling through the list, against a
/// plain ratatui Table given every row (no virtualisation).
pub fn render(n: usize, frames: usize) -> Result<()> {
    let scratch = scratch_workspace(2)?;
    let mut app = app_on(&scratch.ws, None)?;
    // Show a real spectrogram in the segment view.
    let p = scratch.ws.segments_dir().join("bench_0000.wav");
    let mut sg = MelSpectrogrammer::default();
    let a = worker::analyse_samples(&mut sg, 1, worker::load_samples(&p).map_err(anyhow::Error::msg)?);
    if let Some(c) = &mut app.current {
        c.analysis = Some(a);
    }
    let t = Instant::now();
    app.index = synthetic_index(n);
    let load = t.elapsed();
    let mut term = Terminal::new(TestBackend::new(200, 60))?;
    let mut cache = SpecCells::default();
    frame(&mut term, &mut app, &mut cache)?;
    let mut times = Vec::with_capacity(frames);
    let step = (n / frames.max(1)).max(1);
    for i in 0..frames {
        // Jump through the whole list, as PageDown/End would (the current segment stays).
        app.cursor = (i * step + i) % n.max(1);
        app.playback.seek_to(i as f64 * 0.05);
        let t = Instant::now();
        frame(&mut term, &mut app, &mut cache)?;
        times.push(t.elapsed());
    }
    // Filter and sort cost (done once per change, not per frame).
    let t = Instant::now();
    app.index.set_filter(crate::tui::browse::Filter { text: "station07".into(), ..Default::default() });
    let filter_t = t.elapsed();
    let t = Instant::now();
    app.index.set_sort(crate::tui::browse::Sort { column: crate::tui::browse::Column::Teacher(0), descending: true });
    let sort_t = t.elapsed();

    // Reference: a plain Table over all rows, rebuilt every frame (how a naive list renders).
    let idx = &app.index;
    let mut plain = Vec::new();
    let plain_frames = 3;
    for i in 0..plain_frames {
        let t = Instant::now();
        term.draw(|f| {
            let rows: Vec<Row> = (0..idx.len())
                .filter_map(|p| idx.by_id(p as i64 + 1))
                .map(|r| {
                    Row::new(vec![
                        r.id.to_string(),
                        idx.path(r).to_string(),
                        r.split.as_str().to_string(),
                        format!("{:.0}–{:.0}", r.start, r.end),
                        r.gold().map(|g| g.compact()).unwrap_or_default(),
                        idx.source(r).to_string(),
                    ])
                })
                .collect();
            let mut state = TableState::default().with_selected(Some(i * 1000));
            let table = Table::new(
                rows,
                [
                    Constraint::Length(8),
                    Constraint::Min(20),
                    Constraint::Length(8),
                    Constraint::Length(10),
                    Constraint::Length(5),
                    Constraint::Length(8),
                ],
            );
            f.render_stateful_widget(table, f.area(), &mut state);
        })?;
        plain.push(t.elapsed());
    }
    let thresholds = threshold_view(&mut app, &mut cache, frames)?;
    let p50 = percentile(&times, 50.0);
    println!("tui-render: 200x60 terminal, {n} rows loaded, {frames} frames ({} build{})", build_kind(), load_note());
    println!(
        "  full frame (list + spectrogram + bars) p50 {p50:7.3} ms  p90 {:7.3} ms  p99 {:7.3} ms  max {:7.3} ms   goal < 5 ms",
        percentile(&times, 90.0),
        percentile(&times, 99.0),
        percentile(&times, 100.0)
    );
    println!(
        "  reference: plain Table over all rows   p50 {:9.1} ms ({plain_frames} frames)",
        percentile(&plain, 50.0)
    );
    println!(
        "  ratio: virtualised frame / plain table = {:.5} ({:.0}x faster)",
        p50 / percentile(&plain, 50.0),
        percentile(&plain, 50.0) / p50
    );
    let (tv, scan) = thresholds;
    println!(
        "  threshold view, 100,000 scored segments (20,000 gold), slider step + frame: p50 {:7.3} ms  p99 {:7.3} ms   goal < 16 ms",
        percentile(&tv, 50.0),
        percentile(&tv, 99.0)
    );
    println!(
        "  reference: the same frame after a full rescan of the scores p50 {:7.3} ms; ratio {:.3}",
        percentile(&scan, 50.0),
        percentile(&tv, 50.0) / percentile(&scan, 50.0)
    );
    println!(
        "  once per change, not per frame: load index {:.0} ms, text filter {:.0} ms, sort {:.0} ms",
        load.as_secs_f64() * 1e3,
        filter_t.as_secs_f64() * 1e3,
        sort_t.as_secs_f64() * 1e3
    );
    Ok(())
}

/// The live threshold view with 100,000 scored segments (20,000 of them gold): each frame moves
/// the slider one fine step and draws (80x24, as a user at the minimum size would see it); the
/// reference rescans every score at the new threshold before the same draw.
fn threshold_view(app: &mut App, cache: &mut SpecCells, frames: usize) -> Result<(Vec<Duration>, Vec<Duration>)> {
    use crate::eval::explorer::ClassExplorer;
    use crate::labels::CLASSES;
    let n = 100_000usize;
    let mut seed = 0x9e37_79b9u32;
    let mut rnd = move || {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (seed >> 8) as f64 / (1u32 << 24) as f64
    };
    let mut explorers = Vec::new();
    for c in CLASSES {
        let mut gold = Vec::new();
        let mut unl = Vec::new();
        for id in 0..n as i64 {
            let pos = rnd() < 0.4;
            // positives score higher on average
            let s = ((if pos { 0.35 } else { 0.0 }) + rnd() * 0.65).min(1.0);
            if id % 5 == 0 { gold.push((id + 1, s, pos)) } else { unl.push(s) }
        }
        explorers.push(ClassExplorer::new(c, &gold, &unl, 0.5));
    }
    let run = crate::store::TeacherRun {
        id: 1,
        teacher: "bench".into(),
        checksum: String::new(),
        settings: "{}".into(),
        kind: "imported".into(),
        zero_shot: false,
        state: "done".into(),
        created_at: String::new(),
        finished_at: None,
        n_scores: n as i64,
    };
    app.research.thresholds = Some(crate::eval::workbench::ThresholdSession::with_explorers(run, explorers));
    app.research.screen = super::research::Screen::Thresholds;
    let mut term = Terminal::new(TestBackend::new(80, 24))?;
    frame(&mut term, app, cache)?;
    let mut tv = Vec::with_capacity(frames);
    let mut scan = Vec::with_capacity(frames);
    for i in 0..frames {
        let up = (i / 40) % 2 == 0;
        let t = Instant::now();
        app.run(if up { crate::tui::keymap::Action::ThresholdUp } else { crate::tui::keymap::Action::ThresholdDown });
        frame(&mut term, app, cache)?;
        tv.push(t.elapsed());
        let t = Instant::now();
        if let Some(e) = app.research.thresholds.as_ref().and_then(|s| s.explorer()) {
            std::hint::black_box(e.metrics_by_scan(e.threshold()));
        }
        frame(&mut term, app, cache)?;
        scan.push(t.elapsed());
    }
    app.research.screen = super::research::Screen::Segments;
    Ok((tv, scan))
}

/// The machine's load average (shared build machines make tail latencies noisy).
pub(crate) fn load_note() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(|l| format!(", load average {l} on {} cores", cores())))
        .unwrap_or_default()
}

fn cores() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

pub(crate) fn build_kind() -> &'static str {
    if cfg!(debug_assertions) { "debug" } else { "release" }
}
