//! Drawing of the research screens: the live threshold view, the disagreement browser and the
//! jobs pane. Everything drawn is read from core state; nothing here scans the scores (the
//! explorer answers each frame with binary searches, lists draw only their visible rows).

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Clear, Dataset, Gauge, GraphType, Paragraph, Row, Sparkline, Table, Wrap,
};

use crate::eval::disagreement::Order;
use crate::eval::explorer::FlipKind;
use crate::jobs::{JobState, fmt_duration};
use crate::tui::form::Value;

use super::app::{App, scroll_to};
use super::research::{JobRow, Screen, trained_student};
use super::view::centered;

const ACCENT: Color = Color::Rgb(0x5c, 0xc8, 0x63);
const DIM: Color = Color::DarkGray;
const POINT: Color = Color::Rgb(0xff, 0x5f, 0x5f);

/// Draw the research screen on show into `area` (between the title and the status bar).
pub fn draw(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    if let Some(e) = &app.research.error {
        let p = Paragraph::new(vec![
            Line::styled("cannot open this screen:", Style::new().fg(Color::Red)),
            Line::raw(e.clone()),
        ])
        .wrap(Wrap { trim: false });
        f.render_widget(p, area);
        return;
    }
    match app.research.screen {
        Screen::Thresholds => draw_thresholds(f, area, app),
        Screen::Disagreements => draw_disagreements(f, area, app),
        Screen::Jobs => draw_jobs(f, area, app),
        Screen::Prompts => draw_prompts(f, area, app),
        Screen::Rounds => draw_rounds(f, area, app),
        Screen::Segments => {}
    }
}

/// The keys of an action on the screen on show.
fn keys(app: &App, a: crate::tui::keymap::Action) -> String {
    app.keymap.keys_in(app.research.screen.context().unwrap_or("app"), a)
}

fn slider(t: f64, range: (f64, f64), saved: Option<f64>, width: usize) -> Vec<Span<'static>> {
    let w = width.max(3);
    let pos = |v: f64| {
        (((v - range.0) / (range.1 - range.0).max(1e-12)) * (w - 1) as f64).round().clamp(0.0, (w - 1) as f64) as usize
    };
    let p = pos(t);
    let sp = saved.filter(|v| v.is_finite()).map(pos);
    let mut spans = Vec::with_capacity(w);
    for i in 0..w {
        let (ch, style) = if i == p {
            ("●", Style::new().fg(POINT).bold())
        } else if Some(i) == sp {
            ("│", Style::new().fg(Color::Yellow))
        } else if i < p {
            ("━", Style::new().fg(ACCENT))
        } else {
            ("─", Style::new().fg(DIM))
        };
        spans.push(Span::styled(ch, style));
    }
    spans
}

fn draw_thresholds(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    use crate::tui::keymap::Action as A;
    let Some(s) = app.research.thresholds.as_ref() else { return };
    let Some((run, e)) = s.run().zip(s.explorer()) else {
        let p = Paragraph::new(vec![
            Line::styled(" live threshold view", Style::new().fg(ACCENT).bold()),
            Line::raw(" no teacher run with scores yet: run `dams score` or `dams import-scores`,"),
            Line::raw(format!(" or start a job in the jobs pane ({}).", keys(app, A::ShowJobs))),
        ]);
        f.render_widget(p, area);
        return;
    };
    let m = *e.metrics();
    let [head, body] = Layout::vertical([Constraint::Length(6), Constraint::Min(0)]).areas(area);
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let saved = s.saved[s.class.index()];
    let mut slider_line = vec![Span::styled(format!(" threshold {:.3} ", m.threshold), bold)];
    let sw = (head.width as usize).saturating_sub(36).clamp(3, 60);
    slider_line.extend(slider(m.threshold, e.range(), saved, sw));
    slider_line.push(Span::styled(
        match saved {
            Some(v) => format!(" saved {v:.3}"),
            None => " not saved".into(),
        },
        Style::new().fg(Color::Yellow),
    ));
    let provenance = match &s.calibration {
        Some(c) => match c.target {
            Some(t) => format!("{} {t:.2}", c.method.as_str()),
            None => c.method.as_str().to_string(),
        },
        None => "manual".into(),
    };
    let lines = vec![
        Line::from(vec![
            Span::styled(" thresholds ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
            Span::styled(format!(" {} ", run.teacher), bold),
            Span::raw(format!("run #{} ({}/{}) · ", run.id, s.teacher + 1, s.teachers.len())),
            Span::styled(s.class.name().to_string(), bold.fg(Color::Cyan)),
            Span::styled(
                format!(" · gold dev {} ({} pos) · unlabeled {}", m.gold_n, m.tp + m.fn_, m.unlabeled_n),
                Style::new().fg(DIM),
            ),
        ]),
        Line::from(slider_line),
        Line::from(vec![
            Span::styled(format!(" P {:.3}  R {:.3}  F1 {:.3}", m.precision, m.recall, m.f1), bold),
            Span::raw(format!("   TP {}  FP {}  FN {}  TN {}", m.tp, m.fp, m.fn_, m.tn)),
        ]),
        Line::raw(format!(
            " predicted positive: gold {}/{} · unlabeled {}/{}   ({})",
            m.gold_predicted, m.gold_n, m.unlabeled_predicted, m.unlabeled_n, provenance
        )),
        Line::from(vec![Span::styled(
            format!(
                " {} precision ≥ {:.2} ({} {}) · {} quantile {:.2} ({} {}) · {} F1-opt · {} save",
                keys(app, A::CalibratePrecision),
                s.target_precision,
                keys(app, A::TargetDown),
                keys(app, A::TargetUp),
                keys(app, A::CalibrateQuantile),
                s.quantile,
                keys(app, A::QuantileDown),
                keys(app, A::QuantileUp),
                keys(app, A::CalibrateF1),
                keys(app, A::SaveThreshold),
            ),
            Style::new().fg(Color::Gray),
        )]),
        Line::styled(
            format!(
                " {} fine · {} coarse · {} teacher · {} class · {} back",
                keys(app, A::ThresholdUp),
                keys(app, A::ThresholdUpCoarse),
                keys(app, A::NextTeacher),
                keys(app, A::NextClass),
                keys(app, A::Back)
            ),
            Style::new().fg(DIM),
        ),
    ];
    f.render_widget(Paragraph::new(lines), head);

    let flips_w = (body.width / 2).clamp(20, 40);
    let [chart_area, flips_area] = Layout::horizontal([Constraint::Min(0), Constraint::Length(flips_w)]).areas(body);

    // PR curve (recall on x, precision on y), at most a few points per braille column.
    let curve = e.curve();
    let stride = (curve.len() / (chart_area.width as usize * 2).max(1)).max(1);
    let mut pts: Vec<(f64, f64)> = curve.iter().step_by(stride).map(|p| (p.recall, p.precision)).collect();
    if let Some(last) = curve.last() {
        pts.push((last.recall, last.precision));
    }
    let here = [(m.recall, m.precision)];
    let datasets = vec![
        Dataset::default()
            .name("PR (gold)")
            .marker(Marker::Braille)
            .graph_type(GraphType::Line)
            .style(Style::new().fg(Color::Cyan))
            .data(&pts),
        Dataset::default()
            .name("now")
            .marker(Marker::Block)
            .graph_type(GraphType::Scatter)
            .style(Style::new().fg(POINT))
            .data(&here),
    ];
    let chart = Chart::new(datasets)
        .block(Block::new().borders(Borders::TOP).title(" PR curve ").border_style(Style::new().fg(DIM)))
        .x_axis(
            Axis::default().title("recall").bounds([0.0, 1.0]).labels(["0", "0.5", "1"]).style(Style::new().fg(DIM)),
        )
        .y_axis(Axis::default().title("prec").bounds([0.0, 1.0]).labels(["0", "0.5", "1"]).style(Style::new().fg(DIM)))
        .legend_position(None);
    f.render_widget(chart, chart_area);

    // The flips of the last move: only the visible rows are produced.
    let block = Block::new()
        .borders(Borders::TOP | Borders::LEFT)
        .title(format!(" flips of the last move: {} ", e.flip_count()))
        .border_style(Style::new().fg(DIM));
    let inner = block.inner(flips_area);
    f.render_widget(block, flips_area);
    let h = inner.height as usize;
    let first = scroll_to(0, s.flip_cursor, h);
    let mut lines = Vec::new();
    for (i, fl) in e.flips().enumerate().skip(first).take(h) {
        let (tag, color) = match fl.kind {
            FlipKind::BecameFp => ("→FP", Color::Red),
            FlipKind::BecameFn => ("→FN", Color::Red),
            FlipKind::NoLongerFp => ("FP→TN", ACCENT),
            FlipKind::NoLongerFn => ("FN→TP", ACCENT),
        };
        let name = app.index.by_id(fl.segment_id).map(|r| app.index.path(r)).unwrap_or("?");
        let name = name.rsplit('/').next().unwrap_or(name);
        let sel = i == s.flip_cursor;
        let style = if sel { Style::new().add_modifier(Modifier::REVERSED) } else { Style::new() };
        lines.push(Line::from(vec![
            Span::styled(format!("{tag:<6}"), style.fg(color)),
            Span::styled(format!("{:.3} {name}", fl.score), style),
        ]));
    }
    if lines.is_empty() {
        lines.push(Line::styled("(none: move the slider)", Style::new().fg(DIM)));
    } else if h > 0 && lines.len() < h {
        lines.push(Line::styled(format!("{} plays", keys(app, A::OpenItem)), Style::new().fg(DIM)));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

fn order_name(o: Order) -> &'static str {
    match o {
        Order::VoteEntropy => "vote entropy",
        Order::Spread => "score spread",
        Order::Gold => "disagreement with gold",
        Order::Uncertainty => "label-model uncertainty",
    }
}

fn draw_disagreements(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    use crate::tui::keymap::Action as A;
    let Some(d) = app.research.disagreements.as_ref() else { return };
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let nt = d.teachers.len();
    let matrix_h = if nt >= 2 { (nt as u16 + 2).min(area.height / 3) } else { 0 };
    let [head, list, matrix] =
        Layout::vertical([Constraint::Length(3), Constraint::Min(0), Constraint::Length(matrix_h)]).areas(area);
    let splits = if d.filter.splits.is_empty() {
        "all".to_string()
    } else {
        d.filter.splits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
    };
    let mut head_lines = vec![
        Line::from(vec![
            Span::styled(" disagreements ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
            Span::raw(format!(
                " {} teachers: {} · {} of {} segments",
                nt,
                d.teachers.iter().map(|t| t.teacher.as_str()).collect::<Vec<_>>().join(", "),
                d.queue.len(),
                d.rows.len()
            )),
        ]),
        Line::from(vec![
            Span::raw(" order "),
            Span::styled(order_name(d.order), bold),
            Span::raw(" · class "),
            Span::styled(d.filter.class.map(|c| c.name()).unwrap_or("all"), bold),
            Span::raw(" · split "),
            Span::styled(splits, bold),
        ]),
        Line::styled(
            format!(
                " {} order · {} class · {} split · {} open to label · {} back",
                keys(app, A::CycleOrder),
                keys(app, A::CycleClassFilter),
                keys(app, A::CycleSplitFilterQueue),
                keys(app, A::OpenItem),
                keys(app, A::Back)
            ),
            Style::new().fg(DIM),
        ),
    ];
    if nt < 2 {
        head_lines.push(Line::styled(
            " needs two teachers with scores and thresholds for all three classes",
            Style::new().fg(Color::Yellow),
        ));
        for (t, why) in &d.skipped {
            head_lines.push(Line::styled(format!("  {t}: {why}"), Style::new().fg(DIM)));
        }
        f.render_widget(Paragraph::new(head_lines).wrap(Wrap { trim: false }), area);
        return;
    }
    f.render_widget(Paragraph::new(head_lines), head);

    let body_h = list.height.saturating_sub(1) as usize;
    let first = scroll_to(0, d.cursor, body_h);
    let cls = d.filter.class;
    let rows: Vec<Row> = d
        .queue
        .iter()
        .enumerate()
        .skip(first)
        .take(body_h)
        .map(|(i, &ri)| {
            let r = &d.rows[ri];
            let path = d.paths.get(&r.segment_id).map(String::as_str).unwrap_or("?");
            let cells = vec![
                path.to_string(),
                r.split.as_str().to_string(),
                format!("{:.3}", r.key(Order::VoteEntropy, cls).unwrap_or(0.0)),
                format!("{:.3}", r.key(Order::Spread, cls).unwrap_or(0.0)),
                r.key(Order::Gold, cls).map(|g| format!("{g:.2}")).unwrap_or_else(|| "-".into()),
                format!("{}/{}/{} of {}", r.votes[0], r.votes[1], r.votes[2], r.n_teachers),
                r.gold.map(|g| g.compact()).unwrap_or_else(|| "·".into()),
            ];
            let row = Row::new(cells);
            if i == d.cursor { row.style(Style::new().add_modifier(Modifier::REVERSED)) } else { row }
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Min(16),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(7),
            Constraint::Length(5),
            Constraint::Length(11),
            Constraint::Length(4),
        ],
    )
    .header(Row::new(["segment", "split", "entropy", "spread", "gold≠", "votes S/M/N", "gold"]).style(bold.fg(DIM)));
    f.render_widget(table, list);

    // Teacher-vs-teacher kappa for the class in focus.
    let c = d.kappa_class();
    let k = &d.kappa[c.index()];
    let name_w = 10usize;
    let mut lines = vec![Line::styled(
        format!(" Cohen's κ between teachers, {} (votes at their thresholds)", c.name()),
        Style::new().fg(DIM),
    )];
    let mut hdr = format!(" {:<name_w$}", "");
    for t in &d.teachers {
        hdr.push_str(&format!("{:>name_w$}", trunc(&t.teacher, name_w - 1)));
    }
    lines.push(Line::styled(hdr, bold));
    for (i, t) in d.teachers.iter().enumerate() {
        let mut l = format!(" {:<name_w$}", trunc(&t.teacher, name_w - 1));
        for v in &k[i] {
            l.push_str(&match v {
                Some(x) => format!("{x:>name_w$.3}"),
                None => format!("{:>name_w$}", "–"),
            });
        }
        lines.push(Line::raw(l));
    }
    f.render_widget(Paragraph::new(lines), matrix);
}

fn trunc(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn draw_jobs(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    use crate::tui::keymap::Action as A;
    let rows = app.research.jobs.rows();
    let pane = &app.research.jobs;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let [head, sharded, list, detail] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(pane.sharded.len() as u16),
        Constraint::Percentage(40),
        Constraint::Min(0),
    ])
    .areas(area);
    // Sharded runs (Slurm arrays, Kubernetes, GNU parallel): progress read from their part files.
    let sharded_lines: Vec<Line> = pane
        .sharded
        .iter()
        .map(|r| {
            let x = if r.total > 0 { (r.done as f64 / r.total as f64).clamp(0.0, 1.0) } else { 0.0 };
            let n = (x * 10.0).round() as usize;
            let state = if r.merged == r.shards {
                "merged"
            } else if r.complete == r.shards {
                "to merge"
            } else if r.partial > 0 {
                "running"
            } else {
                "waiting"
            };
            Line::from(vec![
                Span::raw(format!(" sharded {} ({}) ", r.name, r.teacher)),
                Span::styled(
                    format!("{state} "),
                    Style::new().fg(if state == "merged" { ACCENT } else { Color::Cyan }),
                ),
                Span::raw(format!(
                    "{}{} {:>3.0}% · shards {}/{} done, {} running, {} missing · merged {}/{}",
                    "█".repeat(n),
                    "░".repeat(10 - n),
                    x * 100.0,
                    r.complete,
                    r.shards,
                    r.partial,
                    r.missing,
                    r.merged,
                    r.shards
                )),
            ])
        })
        .collect();
    f.render_widget(Paragraph::new(sharded_lines), sharded);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(" jobs ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
                Span::raw(format!(
                    " {} running · {} in history",
                    rows.iter().filter(|r| matches!(r, JobRow::Live(v) if v.state == JobState::Running)).count(),
                    pane.history.len()
                )),
            ]),
            Line::styled(
                format!(
                    " {} pseudo-label · {} score · {} train · {} cancel · {} inspect · {} results · {} back",
                    keys(app, A::NewPseudoJob),
                    keys(app, A::NewScoreJob),
                    keys(app, A::NewTrainJob),
                    keys(app, A::CancelJob),
                    keys(app, A::OpenItem),
                    keys(app, A::OpenResults),
                    keys(app, A::Back)
                ),
                Style::new().fg(DIM),
            ),
        ]),
        head,
    );
    let cursor = pane.cursor.min(rows.len().saturating_sub(1));
    let body_h = list.height.saturating_sub(1) as usize;
    let first = scroll_to(0, cursor, body_h);
    let table_rows: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(first)
        .take(body_h)
        .map(|(i, r)| {
            let (id, kind, state, done, total, eta) = match r {
                JobRow::Live(v) => (
                    v.id,
                    v.kind.clone(),
                    v.state.as_str().to_string(),
                    v.done as i64,
                    v.total.map(|t| t as i64),
                    v.eta.map(fmt_duration).unwrap_or_default(),
                ),
                JobRow::Past(j) => (j.id, j.kind.clone(), j.state.clone(), j.done, j.total, String::new()),
            };
            let frac = total.filter(|&t| t > 0).map(|t| (done as f64 / t as f64).clamp(0.0, 1.0));
            let bar = match frac {
                Some(x) => {
                    let n = (x * 10.0).round() as usize;
                    format!("{}{} {:>3.0}%", "█".repeat(n), "░".repeat(10 - n), x * 100.0)
                }
                None => format!("{done}"),
            };
            let color = match state.as_str() {
                "running" => Color::Cyan,
                "done" => ACCENT,
                "failed" => Color::Red,
                _ => Color::Yellow,
            };
            let row = Row::new(vec![
                Span::raw(format!("#{id}")),
                Span::raw(kind),
                Span::styled(state, Style::new().fg(color)),
                Span::raw(bar),
                Span::raw(eta),
            ]);
            if i == cursor { row.style(Style::new().add_modifier(Modifier::REVERSED)) } else { row }
        })
        .collect();
    let table = Table::new(
        table_rows,
        [
            Constraint::Length(5),
            Constraint::Length(14),
            Constraint::Length(11),
            Constraint::Length(16),
            Constraint::Min(6),
        ],
    )
    .header(Row::new(["id", "kind", "state", "progress", "ETA"]).style(bold.fg(DIM)));
    f.render_widget(table, list);

    let block = Block::new().borders(Borders::TOP).border_style(Style::new().fg(DIM));
    let inner = block.inner(detail);
    f.render_widget(block, detail);
    match rows.get(cursor) {
        None => f.render_widget(
            Paragraph::new(Line::styled(
                format!(" no jobs yet: {} starts a pseudo-labeling job", keys(app, A::NewPseudoJob)),
                Style::new().fg(DIM),
            )),
            inner,
        ),
        Some(JobRow::Live(v)) => {
            let student = trained_student(&v.kind, &v.params);
            let series = v.metrics.first();
            // Training: loss and dev macro F1 per epoch as charts; other jobs: a sparkline of
            // their first metric.
            let chart_h = if student.is_some() && series.is_some() && !pane.inspect {
                (inner.height / 2).clamp(5, 10)
            } else if student.is_none() && series.is_some_and(|(_, s)| s.len() > 1) {
                3
            } else {
                0
            };
            let [info, gauge, spark, log] = Layout::vertical([
                Constraint::Length(2),
                Constraint::Length(1),
                Constraint::Length(chart_h),
                Constraint::Min(0),
            ])
            .areas(inner);
            let rate = if v.rate > 0.0 { format!("{:.1}/s", v.rate) } else { "–".into() };
            let mut l1 = format!(
                " #{} {} · {} · phase {} · {} · elapsed {}",
                v.id,
                v.kind,
                v.state.as_str(),
                v.phase,
                rate,
                fmt_duration(v.elapsed)
            );
            if let Some(eta) = v.eta {
                l1.push_str(&format!(" · ETA {}", fmt_duration(eta)));
            }
            let l2 = match (&v.error, &v.result) {
                (Some(e), _) => Line::styled(format!(" error: {e}"), Style::new().fg(Color::Red)),
                _ => Line::styled(format!(" {}", v.params), Style::new().fg(DIM)),
            };
            f.render_widget(Paragraph::new(vec![Line::raw(l1), l2]), info);
            let ratio = v.fraction().unwrap_or(if v.state == JobState::Done { 1.0 } else { 0.0 });
            let label = match v.total {
                Some(t) => format!("{}/{t}", v.done),
                None => format!("{}", v.done),
            };
            f.render_widget(Gauge::default().ratio(ratio).label(label).gauge_style(Style::new().fg(ACCENT)), gauge);
            if chart_h > 0 && student.is_some() {
                let [left, right] =
                    Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(spark);
                let epochs = v.params["train"]["epochs"].as_u64().unwrap_or(0) as usize;
                if let Some(loss) = v.metric("loss") {
                    let pts = epoch_points(loss);
                    f.render_widget(epoch_chart("loss", loss, &pts, epochs, None, Color::Cyan), left);
                }
                match v.metric("dev_macro_f1") {
                    Some(f1) => {
                        let pts = epoch_points(f1);
                        let chart = epoch_chart("dev macro F1", f1, &pts, epochs, Some((0.0, 1.0)), ACCENT);
                        f.render_widget(chart, right)
                    }
                    None => f.render_widget(
                        Paragraph::new(Line::styled(
                            " dev macro F1: after the first epoch (needs gold dev)",
                            Style::new().fg(DIM),
                        )),
                        right,
                    ),
                }
            } else if let Some((name, s)) = series.filter(|_| chart_h > 0) {
                let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
                let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let scaled: Vec<u64> =
                    s.iter().map(|x| (((x - lo) / (hi - lo).max(1e-12)) * 100.0).round() as u64 + 1).collect();
                let last = s.last().copied().unwrap_or(0.0);
                let [lab, sp] = Layout::horizontal([Constraint::Length(18), Constraint::Min(0)]).areas(spark);
                f.render_widget(Paragraph::new(format!(" {name} {last:.4}")), lab);
                let tail = &scaled[scaled.len().saturating_sub(sp.width as usize)..];
                f.render_widget(Sparkline::default().data(tail).style(Style::new().fg(Color::Cyan)), sp);
            }
            let n = log.height as usize;
            let lines: Vec<Line> = if pane.inspect {
                let mut all: Vec<Line> = Vec::new();
                if let Some(r) = &v.result {
                    all.push(Line::styled(format!(" result: {r}"), Style::new().fg(ACCENT)));
                }
                if let Some(name) = &student {
                    all.extend(student_lines(app, v.id, name, v.state == JobState::Done));
                }
                all.extend(v.log.iter().map(|l| Line::raw(format!(" {l}"))));
                all
            } else {
                v.log.iter().skip(v.log.len().saturating_sub(n)).map(|l| Line::raw(format!(" {l}"))).collect()
            };
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), log);
        }
        Some(JobRow::Past(j)) => {
            let mut lines = vec![
                Line::raw(format!(
                    " #{} {} · {} · {}{} · started {} · finished {}",
                    j.id,
                    j.kind,
                    j.state,
                    j.done,
                    j.total.map(|t| format!("/{t}")).unwrap_or_default(),
                    j.started_at.as_deref().unwrap_or("-"),
                    j.finished_at.as_deref().unwrap_or("-"),
                )),
                Line::styled(format!(" {}", j.params), Style::new().fg(DIM)),
            ];
            if let Some(e) = &j.error {
                lines.push(Line::styled(format!(" error: {e}"), Style::new().fg(Color::Red)));
            }
            if let Some(r) = &j.result {
                lines.push(Line::styled(format!(" result: {r}"), Style::new().fg(ACCENT)));
            }
            if j.state == "interrupted" {
                lines.push(Line::styled(
                    " interrupted: its process ended while it ran; start it again to resume",
                    Style::new().fg(Color::Yellow),
                ));
            }
            let params: serde_json::Value = serde_json::from_str(&j.params).unwrap_or_default();
            if let Some(name) = trained_student(&j.kind, &params) {
                if pane.inspect {
                    lines.extend(student_lines(app, j.id, &name, j.state == "done"));
                } else {
                    lines.push(Line::styled(
                        format!(
                            " {} per-epoch table · {} score and open the student",
                            keys(app, A::OpenItem),
                            keys(app, A::OpenResults)
                        ),
                        Style::new().fg(DIM),
                    ));
                }
            }
            f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
        }
    }

    if let Some(form) = &app.research.jobs.form {
        draw_form(f, area, form);
    }
}

/// Points `(epoch, value)` of a per-epoch series (epochs from 1).
fn epoch_points(s: &[f64]) -> Vec<(f64, f64)> {
    s.iter().enumerate().map(|(i, &v)| ((i + 1) as f64, v)).collect()
}

/// A per-epoch chart of one training metric (x: epochs 1 to `epochs`, the planned number; y: the
/// series' range, or `fixed`).
fn epoch_chart<'a>(
    name: &str,
    s: &[f64],
    pts: &'a [(f64, f64)],
    epochs: usize,
    fixed: Option<(f64, f64)>,
    color: Color,
) -> Chart<'a> {
    let (lo, hi) = fixed.unwrap_or_else(|| {
        let lo = s.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.1).max(1e-3);
        ((lo - pad).max(0.0), hi + pad)
    });
    let n = s.len().max(epochs).max(1);
    // The x labels sit at the axis ends: epochs 1 and n (one centred label for a single epoch).
    let (bounds, labels) = if n == 1 {
        ([0.5, 1.5], vec![String::new(), "1".into(), String::new()])
    } else {
        ([1.0, n as f64], vec!["1".to_string(), format!("{n}")])
    };
    let last = s.last().copied().unwrap_or(0.0);
    let line = Dataset::default().marker(Marker::Braille).graph_type(GraphType::Line).style(Style::new().fg(color));
    let dots = Dataset::default().marker(Marker::Dot).graph_type(GraphType::Scatter).style(Style::new().fg(color));
    Chart::new(vec![line.data(pts), dots.data(pts)])
        .block(Block::new().title(format!(" {name} {last:.4} (epoch {}) ", s.len())))
        .x_axis(Axis::default().bounds(bounds).labels(labels).style(Style::new().fg(DIM)))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([format!("{lo:.2}"), format!("{hi:.2}")])
                .style(Style::new().fg(DIM)),
        )
        .legend_position(None)
}

/// The inspected training's per-epoch table (from the student's checkpoint) and how to use the
/// student.
fn student_lines(app: &App, job: i64, name: &str, done: bool) -> Vec<Line<'static>> {
    use crate::tui::keymap::Action as A;
    let dim = Style::new().fg(DIM);
    let mut out = Vec::new();
    match &app.research.jobs.epochs {
        Some((id, n, Ok(e))) if *id == job && n == name => {
            out.push(Line::styled(
                format!(" {:>5} {:>8} {:>7} {:>7} {:>7} {:>7}", "epoch", "loss", "speech", "music", "noise", "macro"),
                Style::new().bold(),
            ));
            let f = |x: Option<f64>| x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            for &(ep, loss, per, m) in &e.rows {
                let per = per.map(|p| p.map(Some)).unwrap_or([None; 3]);
                let text = format!(
                    " {:>5} {:>8.4} {:>7} {:>7} {:>7} {:>7}{}",
                    ep,
                    loss,
                    f(per[0]),
                    f(per[1]),
                    f(per[2]),
                    f(m),
                    if ep == e.best_epoch { "  ← best" } else { "" }
                );
                out.push(if ep == e.best_epoch {
                    Line::styled(text, Style::new().fg(ACCENT))
                } else {
                    Line::raw(text)
                });
            }
        }
        Some((id, n, Err(why))) if *id == job && n == name => out.push(Line::styled(format!(" {why}"), dim)),
        _ => {}
    }
    if done {
        out.push(Line::styled(
            format!(
                " {} scores it and opens it in the threshold view · CLI: dams score --teacher student:{name}",
                keys(app, A::OpenResults)
            ),
            dim,
        ));
    }
    out
}

fn draw_form(f: &mut Frame<'_>, area: Rect, form: &crate::tui::form::JobForm) {
    // One line per field; the selected field's help and the form's hint below them.
    let hint = form.hint();
    let extra = 1 + hint.is_some() as usize;
    let h = (form.fields.len() + extra + 2).min(area.height as usize) as u16;
    let r = centered(area, area.width.saturating_sub(4).min(90), h);
    f.render_widget(Clear, r);
    let fields_h = (h as usize).saturating_sub(2 + extra).max(1);
    let first = scroll_to(0, form.cursor, fields_h);
    let mut lines = Vec::new();
    for (i, fld) in form.fields.iter().enumerate().skip(first).take(fields_h) {
        let sel = i == form.cursor;
        let name_style = if sel { Style::new().fg(Color::Black).bg(Color::Yellow) } else { Style::new().bold() };
        let mut spans = vec![Span::styled(format!(" {:<15}", trunc(&fld.name, 15)), name_style), Span::raw(" ")];
        match &fld.value {
            Value::Choice { options, on, cursor, .. } => {
                for (j, (o, x)) in options.iter().zip(on).enumerate() {
                    let mark = if *x { "[x]" } else { "[ ]" };
                    let st =
                        if sel && j == *cursor { Style::new().add_modifier(Modifier::REVERSED) } else { Style::new() };
                    spans.push(Span::styled(format!("{mark} {o}"), st));
                    spans.push(Span::raw("  "));
                }
            }
            Value::Number { value, min, max } => {
                let bad = !(*min..=*max).contains(value);
                let st = if bad { Style::new().fg(Color::Red) } else { Style::new() };
                spans.push(Span::styled(format!("◀ {value} ▶"), st));
                spans.push(Span::styled(format!("  ({min}–{max})"), Style::new().fg(DIM)));
            }
            Value::Flag(b) => spans.push(Span::raw(if *b { "[x] on" } else { "[ ] off" })),
            Value::Text(t) => {
                let st = if sel { Style::new().add_modifier(Modifier::UNDERLINED) } else { Style::new() };
                spans.push(Span::styled(format!("{t}{}", if sel { "▏" } else { "" }), st));
            }
            Value::Weighted { on, tenths } => {
                spans.push(Span::raw(if *on { "[x] " } else { "[ ] " }));
                let st = if *on { Style::new() } else { Style::new().fg(DIM) };
                spans.push(Span::styled(format!("weight ◀ {}.{} ▶", tenths / 10, tenths % 10), st));
            }
        }
        lines.push(Line::from(spans));
    }
    if let Some(fld) = form.fields.get(form.cursor) {
        lines.push(Line::styled(format!(" {}", fld.help), Style::new().fg(DIM)));
    }
    if let Some(hint) = hint {
        lines.push(Line::styled(format!(" {hint}"), Style::new().fg(Color::Yellow)));
    }
    let keys = if form.editing_text() {
        " ↑↓ field · type the name · Backspace · Enter start · Esc cancel "
    } else {
        " ↑↓ ←→ change · 0-9 type · Space toggle · Enter start · Esc cancel "
    };
    let block = Block::bordered()
        .title(format!(" start a {} job ", form.kind.title()))
        .title_bottom(Line::from(keys).right_aligned())
        .border_style(Style::new().fg(Color::Yellow));
    f.render_widget(Paragraph::new(lines).block(block), r);
}

#[cfg(not(feature = "burn"))]
fn draw_prompts(_f: &mut Frame<'_>, _area: Rect, _app: &mut App) {}

/// The prompt workbench: per class the prompt (and the previous one), P/R/F1 now and before, the PR curves, the
/// segments whose prediction flipped, the τ slider.
#[cfg(feature = "burn")]
fn draw_prompts(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    use crate::teachers::clap::scoring::CLASSES;
    use crate::tui::keymap::Action as A;
    let Some(p) = app.research.prompts.as_ref() else { return };
    let s = &p.session;
    let bold = Style::new().add_modifier(Modifier::BOLD);
    let [head, table, body, edit] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Min(0),
        Constraint::Length(if p.editing.is_some() { 3 } else { 0 }),
    ])
    .areas(area);
    let st = &s.settings;
    let mut tau = vec![Span::raw(format!(" τ {:.2} ", st.tau))];
    tau.extend(slider(st.tau as f64, (0.0, 2.0), Some(0.5), 24));
    let head_lines = vec![
        Line::from(vec![
            Span::styled(" prompt workbench ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
            Span::raw(format!(
                " set {} · {} embedded segments, {} with gold · scoring {} · adapt {} · macro F1 ",
                s.set_name,
                s.pool.len(),
                s.current.n_gold,
                st.scoring.as_str(),
                st.adapt.as_str()
            )),
            Span::styled(format!("{:.3}", s.current.macro_f1), bold),
            Span::raw(match &s.previous {
                Some((_, e)) => format!(" (was {:.3})", e.macro_f1),
                None => String::new(),
            }),
            Span::raw(p.last_ms.map(|ms| format!(" · updated in {ms:.1} ms")).unwrap_or_default()),
        ]),
        Line::from(tau),
        Line::styled(
            format!(
                " {} edit · {} class · {} τ · {} adapt · {} scoring · {} background · {} save · {} play · {} back",
                keys(app, A::EditPrompt),
                keys(app, A::NextClass),
                keys(app, A::TauUp),
                keys(app, A::CycleAdapt),
                keys(app, A::CycleScoring),
                keys(app, A::ToggleBackground),
                keys(app, A::SavePrompts),
                keys(app, A::OpenItem),
                keys(app, A::Back)
            ),
            Style::new().fg(DIM),
        ),
    ];
    f.render_widget(Paragraph::new(head_lines), head);

    let prev = s.previous.as_ref();
    let rows: Vec<Row> = (0..3)
        .map(|c| {
            let m = s.current.per_class[c];
            let was = prev.map(|(_, e)| format!("{:.3}", e.per_class[c].f1)).unwrap_or_else(|| "-".into());
            let prompt = s.set.class(c).join(" | ");
            let old = prev.map(|(set, _)| set.class(c).join(" | ")).filter(|o| *o != prompt).unwrap_or_default();
            let style = if c == p.class { Style::new().fg(Color::Black).bg(ACCENT) } else { Style::new() };
            Row::new(vec![
                CLASSES[c].to_string(),
                format!("{:.3}", m.precision),
                format!("{:.3}", m.recall),
                format!("{:.3}", m.f1),
                was,
                prompt,
                old,
            ])
            .style(style)
        })
        .collect();
    let t = Table::new(
        rows,
        [
            Constraint::Length(7),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Percentage(50),
            Constraint::Percentage(50),
        ],
    )
    .header(Row::new(vec!["class", "P", "R", "F1", "F1 was", "prompt", "previous prompt"]).style(bold))
    .block(Block::default().borders(Borders::TOP).title(" per class against gold "));
    f.render_widget(t, table);

    let [curves, flips] = Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body);
    let colors = [Color::Cyan, Color::Magenta, Color::Yellow];
    let data: Vec<Vec<(f64, f64)>> =
        s.current.pr_curves.iter().map(|c| c.iter().map(|&(r, p)| (r as f64, p as f64)).collect()).collect();
    let sets: Vec<Dataset> = data
        .iter()
        .enumerate()
        .map(|(c, d)| {
            Dataset::default()
                .name(CLASSES[c])
                .marker(Marker::Braille)
                .graph_type(GraphType::Line)
                .style(Style::new().fg(colors[c]))
                .data(d)
        })
        .collect();
    let chart = Chart::new(sets)
        .block(Block::default().borders(Borders::ALL).title(" PR curves (x recall, y precision) "))
        .x_axis(Axis::default().bounds([0.0, 1.0]).labels(vec![Line::raw("0"), Line::raw("1")]))
        .y_axis(Axis::default().bounds([0.0, 1.0]).labels(vec![Line::raw("0"), Line::raw("1")]));
    f.render_widget(chart, curves);

    let flipped = s.flipped();
    let h = flips.height.saturating_sub(3) as usize;
    let first = scroll_to(0, p.flip_cursor, h.max(1));
    let fmt =
        |b: [bool; 3]| b.iter().zip(['S', 'M', 'N']).map(|(on, ch)| if *on { ch } else { '·' }).collect::<String>();
    let rows: Vec<Row> = flipped
        .iter()
        .enumerate()
        .skip(first)
        .take(h)
        .map(|(k, &i)| {
            let before = prev.map(|(_, e)| fmt(e.preds[i])).unwrap_or_default();
            let gold = s.pool.gold[i].map(fmt).unwrap_or_else(|| "-".into());
            let sc = s.current.scores[i];
            let style = if k == p.flip_cursor { Style::new().fg(Color::Black).bg(ACCENT) } else { Style::new() };
            Row::new(vec![
                format!("#{}", s.pool.ids[i]),
                before,
                fmt(s.current.preds[i]),
                gold,
                format!("{:.2} {:.2} {:.2}", sc[0], sc[1], sc[2]),
                if s.pool.background[i] { "bg".into() } else { String::new() },
            ])
            .style(style)
        })
        .collect();
    let t = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(6),
            Constraint::Length(6),
            Constraint::Length(5),
            Constraint::Length(15),
            Constraint::Length(3),
        ],
    )
    .header(Row::new(vec!["segment", "was", "now", "gold", "scores S M N", ""]).style(bold))
    .block(Block::default().borders(Borders::ALL).title(format!(" {} flipped segments ", flipped.len())));
    f.render_widget(t, flips);

    if let Some(buf) = &p.editing {
        let para = Paragraph::new(Line::from(vec![
            Span::styled(format!(" {} prompt: ", CLASSES[p.class]), bold),
            Span::raw(buf.clone()),
            Span::styled("▏", Style::new().fg(ACCENT)),
        ]))
        .block(Block::default().borders(Borders::ALL).title(" Enter re-scores every embedded segment · Esc cancels "));
        f.render_widget(para, edit);
    }
}

/// The rounds screen: the `dams loop` runs of the workspace (newest first) and, for the selected one, each round's
/// teachers and student with macro F1 (and per class) on gold dev and test; the best teacher of each split is marked
/// and the student's margin over it shown.
fn draw_rounds(f: &mut Frame<'_>, area: Rect, app: &mut App) {
    use crate::tui::keymap::Action as A;
    let pane = &app.research.rounds;
    let [head, list, detail] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(pane.records.len().clamp(1, 8) as u16 + 1),
        Constraint::Min(0),
    ])
    .areas(area);
    f.render_widget(
        Paragraph::new(vec![
            Line::from(vec![
                Span::styled(" rounds ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
                Span::raw(format!(
                    " {} loop run(s) in experiments/{}",
                    pane.records.len(),
                    if pane.errors.is_empty() {
                        String::new()
                    } else {
                        format!(" · {} unreadable", pane.errors.len())
                    }
                )),
            ]),
            Line::styled(
                format!(
                    " {}/{} select · {} back · start one with `dams loop --rounds R --seed S`",
                    keys(app, A::ItemDown),
                    keys(app, A::ItemUp),
                    keys(app, A::Back)
                ),
                Style::new().fg(DIM),
            ),
        ]),
        head,
    );
    if pane.records.is_empty() {
        let mut lines = vec![Line::raw(" no self-training rounds yet: `dams loop` records each round here")];
        lines.extend(pane.errors.iter().map(|e| Line::styled(format!(" {e}"), Style::new().fg(Color::Red))));
        f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), list.union(detail));
        return;
    }
    let cursor = pane.cursor.min(pane.records.len() - 1);
    let body_h = list.height.saturating_sub(1) as usize;
    let first = scroll_to(0, cursor, body_h);
    let margin = |r: &crate::eval::rounds::LoopRecord, split: &str| {
        r.margins(split).last().map(|(_, m)| format!("{m:+.3}")).unwrap_or_else(|| "-".into())
    };
    let rows: Vec<Row> = pane
        .records
        .iter()
        .enumerate()
        .skip(first)
        .take(body_h)
        .map(|(i, r)| {
            let style = if i == cursor { Style::new().bg(Color::Rgb(0x30, 0x30, 0x30)).bold() } else { Style::new() };
            Row::new(vec![
                r.started().unwrap_or_else(|| r.file.clone()),
                r.summary(),
                r.rounds.last().map(|x| x.student.clone()).unwrap_or_default(),
                margin(r, "dev"),
                margin(r, "test"),
            ])
            .style(style)
        })
        .collect();
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Min(30),
            Constraint::Length(20),
            Constraint::Length(8),
            Constraint::Length(8),
        ],
    )
    .header(Row::new(vec!["run", "recipe", "last student", "Δdev", "Δtest"]).style(Style::new().fg(DIM)));
    f.render_widget(table, list);

    let r = &pane.records[cursor];
    let mut lines: Vec<Line> = vec![Line::styled(
        format!(" {} · teachers {} · {} epochs", r.summary(), r.teachers.join(", "), r.epochs),
        Style::new().bold(),
    )];
    for round in &r.rounds {
        lines.push(Line::styled(
            format!(
                " round {}: {} pseudo-labelled (run #{}), student {}",
                round.round, round.pseudo_labelled, round.pseudo_run, round.student
            ),
            Style::new().fg(ACCENT),
        ));
        lines.push(Line::styled(
            format!("   {:<30} {:>22}   {:>22}", "", "dev: macro (S / M / N)", "test: macro (S / M / N)"),
            Style::new().fg(DIM),
        ));
        let student = round.student_id();
        let mut names: Vec<&String> = round.teachers.iter().collect();
        names.push(&student);
        for t in names {
            let cell = |split: &str| match round.f1(t, split) {
                Some(x) => format!("{:.3} ({:.2}/{:.2}/{:.2})", x.macro_f1, x.f1[0], x.f1[1], x.f1[2]),
                None => "-".into(),
            };
            let best = |split: &str| round.best_teacher(split).is_some_and(|b| &b.teacher == t);
            let mark = |split: &str| if best(split) { "*" } else { " " };
            let is_student = t == &student;
            let style = if is_student { Style::new().fg(Color::Cyan).bold() } else { Style::new() };
            lines.push(Line::styled(
                format!("   {:<30} {:>22}{} {:>22}{}", t, cell("dev"), mark("dev"), cell("test"), mark("test")),
                style,
            ));
        }
    }
    lines.push(Line::styled(" * best teacher of the round on that split", Style::new().fg(DIM)));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), detail);
}
