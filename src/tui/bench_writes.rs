//! `dams bench tui-label --during-import ROWS`: keypress → durable label through the label writer,
//! idle and while `dams import` of a generated manifest of ROWS rows runs on the same store
//! (another thread, its own connection, as a second process would).

use std::time::{Duration, Instant};

use anyhow::Result;

use super::bench::{app_on, build_kind, load_note, percentile, scratch_workspace};
use crate::tui::keymap::{Action, Key};

/// Press `1` and wait until the writer reports the label committed; returns (key handling time,
/// keypress → durable time).
fn press_and_wait(app: &mut super::App, deadline: Duration) -> Result<(Duration, Duration)> {
    let t0 = Instant::now();
    app.on_key(Key::ch('1'));
    let handled = t0.elapsed();
    if app.writes_pending() == 0 && !app.message.starts_with("saved") {
        anyhow::bail!("the key did not hand over a label: {}", app.message);
    }
    loop {
        app.poll_writes();
        if app.writes_pending() == 0 {
            break;
        }
        if t0.elapsed() > deadline {
            anyhow::bail!("a label was not durable after {deadline:?}");
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    if !app.message.starts_with("saved") {
        anyhow::bail!("label not saved: {}", app.message);
    }
    Ok((handled, t0.elapsed()))
}

fn line(what: &str, v: &[Duration], goal: &str) -> String {
    let max = v.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3;
    format!(
        "  {what:<34} n {:5}  p50 {:8.3} ms  p99 {:8.3} ms  max {:8.3} ms   {goal}",
        v.len(),
        percentile(v, 50.0),
        percentile(v, 99.0),
        max
    )
}

pub fn label_during_import(keys: usize, rows: usize) -> Result<()> {
    let scratch = scratch_workspace(8)?;
    let mut app = app_on(&scratch.ws, None)?;
    app.start_writer()?;
    let deadline = Duration::from_secs(120);
    let step = |app: &mut super::App, i: usize| {
        if i % 10 == 0 {
            app.run(Action::MoveDown);
            if app.cursor + 1 >= app.index.view_len() {
                app.run(Action::First);
            }
        }
    };
    // Idle.
    let (mut idle_key, mut idle) = (Vec::new(), Vec::new());
    for i in 0..keys {
        step(&mut app, i);
        let (k, d) = press_and_wait(&mut app, deadline)?;
        idle_key.push(k);
        idle.push(d);
    }
    // The manifest, written before the clock starts.
    let manifest = scratch.ws.metadata_dir().join("bench_import.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&manifest)?);
        crate::manifest::bench::generate_manifest(&mut w, rows, 7)?;
        std::io::Write::flush(&mut w)?;
    }
    let ws = scratch.ws.clone();
    let m = manifest.clone();
    let t_import = Instant::now();
    let import = std::thread::spawn(move || -> Result<(crate::manifest::ImportSummary, Duration)> {
        let mut store = crate::store::Store::open(ws.db_path())?;
        let s = crate::manifest::import_path(&mut store, &ws.data_dir(), &m, &Default::default())?;
        Ok((s, t_import.elapsed()))
    });
    let (mut busy_key, mut busy) = (Vec::new(), Vec::new());
    let mut i = 0;
    while !import.is_finished() {
        step(&mut app, i);
        let (k, d) = press_and_wait(&mut app, deadline)?;
        busy_key.push(k);
        busy.push(d);
        i += 1;
        std::thread::sleep(Duration::from_millis(10));
    }
    let (summary, took) = import.join().map_err(|_| anyhow::anyhow!("the import thread panicked"))??;
    println!(
        "tui-label --during-import: label writer vs `dams import` of {rows} rows ({} build{})",
        build_kind(),
        load_note()
    );
    println!(
        "  import: {} rows inserted in {:.1} s while {} labels were written",
        summary.counts.inserted,
        took.as_secs_f64(),
        busy.len()
    );
    if let Some((n, longest)) = summary.chunks {
        println!("  import: {n} chunks, longest write lock {:.1} ms", longest.as_secs_f64() * 1e3);
    }
    println!("{}", line("idle: keypress -> durable", &idle, "goal p99 < 5 ms"));
    println!("{}", line("idle: key handled (UI thread)", &idle_key, ""));
    println!("{}", line("import: keypress -> durable", &busy, "goal p99 < 50 ms"));
    println!("{}", line("import: key handled (UI thread)", &busy_key, ""));
    if busy.is_empty() {
        println!("  (the import finished before a label was pressed; use more rows)");
    }
    Ok(())
}
