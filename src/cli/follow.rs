//! The one follower the CLI uses for every job: a progress bar (phase, done/total, rate, ETA, the latest loss and
//! dev F1 when the job reports them) and every log line, in order, to the end — lines the in-memory ring (200) has
//! already dropped are read back from the job's row in the store.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

use crate::jobs::{JobRunner, JobView};
use crate::store::Store;

/// Follow job `id` on `runner` until it ends, printing its log lines to `out` (stdout for the CLI); returns its
/// final view.
pub fn follow(runner: &mut JobRunner, id: i64, out: &mut dyn Write) -> Result<JobView> {
    let bar = if out_is_terminal() { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let mut shown = 0u64;
    let view = loop {
        let Some(v) = runner.view(id) else { anyhow::bail!("job #{id} vanished") };
        bar.set_prefix(v.phase.chars().take(40).collect::<String>());
        if let Some(t) = v.total {
            bar.set_length(t);
        }
        bar.set_position(v.done);
        let loss = v.metric("loss").and_then(|l| l.last().copied());
        let f1 = v.metric("dev_macro_f1").and_then(|l| l.last().copied());
        let eta = v.eta.map(|e| format!(", eta {}", crate::jobs::fmt_duration(e))).unwrap_or_default();
        bar.set_message(match (loss, f1) {
            (Some(l), Some(f)) => format!("loss {l:.4}  dev macro F1 {f:.3}"),
            (Some(l), None) => format!("loss {l:.4}"),
            _ if v.rate > 0.0 => format!("{:.1}/s{eta}", v.rate),
            _ => String::new(),
        });
        let finished = v.state.is_finished();
        bar.suspend(|| print_new(&v, runner, &mut shown, out));
        if finished {
            break runner.wait(id).unwrap_or(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    bar.finish_and_clear();
    print_new(&view, runner, &mut shown, out);
    Ok(view)
}

fn out_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Print the lines of `v` after the first `shown`; those no longer in memory come from the store.
fn print_new(v: &JobView, runner: &JobRunner, shown: &mut u64, out: &mut dyn Write) {
    if v.log_total <= *shown {
        return;
    }
    let in_memory_from = v.log_total - v.log.len() as u64;
    if *shown < in_memory_from {
        // Fell behind the ring: the store keeps every line.
        let stored = runner.db_path().and_then(|p| Store::open(p).ok()).and_then(|s| s.job_log(v.id).ok());
        if let Some(all) = stored {
            for line in all.lines().skip(*shown as usize).take((in_memory_from - *shown) as usize) {
                let _ = writeln!(out, "{line}");
            }
        } else {
            let _ = writeln!(out, "... {} log lines not shown (see the jobs pane)", in_memory_from - *shown);
        }
        *shown = in_memory_from;
    }
    for line in v.log.iter().skip((*shown - in_memory_from) as usize) {
        let _ = writeln!(out, "{line}");
    }
    *shown = v.log_total;
    let _ = out.flush();
}
