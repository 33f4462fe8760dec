//! Drawing: renders an [`App`] into a ratatui frame. Only the visible rows of the segment list
//! are materialised; the spectrogram is a grid of half-block cells cached per segment and size.

use ratatui::Frame;
use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Row, Table, Wrap};

use crate::labels::{CLASSES, LabelSet};
use crate::tui::browse::{Column, Labeled, SegmentIndex, score_cell};
use crate::tui::keymap::CONTEXTS;
use crate::tui::playback::Output;

use super::app::{App, Mode, scroll_to};
use super::colormap::ColorMap;
use super::worker::Analysis;

const ACCENT: Color = Color::Rgb(0x5c, 0xc8, 0x63);
const DIM: Color = Color::DarkGray;
const CLASS_COLORS: [Color; 3] =
    [Color::Rgb(0x4e, 0xa8, 0xde), Color::Rgb(0xe6, 0x91, 0x3c), Color::Rgb(0xb0, 0x7c, 0xd8)];

/// An RGB colour.
pub type Rgb = (u8, u8, u8);

/// The rendered spectrogram cells of one segment at one size: `(top, bottom)` colours per cell.
#[derive(Debug, Clone, Default)]
pub struct SpecCells {
    key: (i64, u16, u16, Option<ColorMap>),
    cells: Vec<(Rgb, Rgb)>,
}

/// Draw the whole screen.
pub fn draw(f: &mut Frame<'_>, app: &mut App, cache: &mut SpecCells) {
    let area = f.area();
    let [title, body, status] =
        Layout::vertical([Constraint::Length(1), Constraint::Min(0), Constraint::Length(2)]).areas(area);
    draw_title(f.buffer_mut(), title, app);
    if app.research.screen != super::research::Screen::Segments {
        super::research_view::draw(f, body, app);
        draw_status(f.buffer_mut(), status, app);
        match &app.mode {
            Mode::Help { scroll } => draw_help(f, area, app, *scroll),
            Mode::Diagnostics => draw_diagnostics(f, area, app),
            _ => {}
        }
        return;
    }
    let view_area = if app.expanded {
        app.areas.list = (0, 0, 0, 0);
        body
    } else {
        let list_h = (body.height * 2 / 5).max(5).min(body.height.saturating_sub(12).max(3));
        let [list, view] = Layout::vertical([Constraint::Length(list_h), Constraint::Min(0)]).areas(body);
        draw_list(f.buffer_mut(), list, app);
        view
    };
    draw_segment(f.buffer_mut(), view_area, app, cache);
    draw_status(f.buffer_mut(), status, app);
    match &app.mode {
        Mode::Help { scroll } => draw_help(f, area, app, *scroll),
        Mode::Diagnostics => draw_diagnostics(f, area, app),
        Mode::Note { buf } => draw_input(f, area, "note (Enter saves, Esc cancels)", buf),
        _ => {}
    }
}

fn filter_summary(app: &App) -> String {
    let f = app.index.filter();
    let mut parts = Vec::new();
    if let Some(s) = f.split {
        parts.push(format!("split={s}"));
    }
    if let Some(s) = f.source {
        parts.push(format!("source={}", app.index.sources().get(s as usize).map(String::as_str).unwrap_or("?")));
    }
    match f.labeled {
        Labeled::Any => {}
        Labeled::Labeled => parts.push("labeled".into()),
        Labeled::Unlabeled => parts.push("unlabeled".into()),
    }
    if f.review_only {
        parts.push("needs-review".into());
    }
    if !f.text.is_empty() {
        parts.push(format!("/{}", f.text));
    }
    parts.join(" ")
}

fn draw_title(buf: &mut Buffer, area: Rect, app: &App) {
    let root = app.ws.root().file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let filters = filter_summary(app);
    let line = Line::from(vec![
        Span::styled(" dams ", Style::new().bg(ACCENT).fg(Color::Black).bold()),
        Span::raw(format!(" {root} · {} · ", app.annotator)),
        Span::styled(
            format!("{}/{} segments", app.index.view_len(), app.index.len()),
            Style::new().add_modifier(Modifier::BOLD),
        ),
        Span::styled(
            if filters.is_empty() { String::new() } else { format!(" · filter {filters}") },
            Style::new().fg(Color::Yellow),
        ),
        Span::styled(
            format!("  ? help · {} quit", app.keymap.keys_for(crate::tui::keymap::Action::Quit)),
            Style::new().fg(DIM),
        ),
    ]);
    Paragraph::new(line).render_ref(area, buf);
}

trait RenderRef {
    fn render_ref(self, area: Rect, buf: &mut Buffer);
}
impl<W: ratatui::widgets::Widget> RenderRef for W {
    fn render_ref(self, area: Rect, buf: &mut Buffer) {
        self.render(area, buf)
    }
}

fn gold_cell(g: Option<LabelSet>) -> Span<'static> {
    match g {
        None => Span::styled("·", Style::new().fg(DIM)),
        Some(l) if l.is_empty() => Span::styled("∅", Style::new().fg(Color::Gray)),
        Some(l) => Span::styled(l.compact(), Style::new().fg(ACCENT).bold()),
    }
}

/// The segment list: only the visible slice of the view becomes table rows.
pub fn draw_list(buf: &mut Buffer, area: Rect, app: &mut App) {
    let block = Block::new().borders(Borders::BOTTOM).border_style(Style::new().fg(DIM));
    let inner = block.inner(area);
    block.render_ref(area, buf);
    let body_h = inner.height.saturating_sub(1) as usize;
    app.offset = scroll_to(app.offset, app.cursor, body_h);
    app.areas.list = (inner.y + 1, inner.x, inner.width, body_h as u16);
    let idx: &SegmentIndex = &app.index;
    let width_of = |c: &Column| match c {
        Column::Id => 7,
        Column::Path => 16,
        Column::Split => 9,
        Column::Time => 11,
        Column::Gold => 5,
        Column::Source => 10,
        Column::Teacher(_) => 6,
        Column::Flags => 6,
    };
    // On narrow terminals drop the least useful columns first (they stay sortable).
    let mut columns = idx.columns();
    for drop in [Column::Id, Column::Source, Column::Split] {
        let need: u16 = columns.iter().map(|c| width_of(c) + 1).sum();
        if need > inner.width {
            columns.retain(|&c| c != drop);
        }
    }
    let sort = idx.sort();
    let header = Row::new(columns.iter().map(|&c| {
        let mut t = c.title(idx);
        if c == sort.column && sort != Default::default() {
            t.push(if sort.descending { '↓' } else { '↑' });
        }
        t
    }))
    .style(Style::new().fg(Color::Gray).add_modifier(Modifier::BOLD));
    let mut rows = Vec::with_capacity(body_h);
    for pos in app.offset..(app.offset + body_h).min(idx.view_len()) {
        let Some((ri, r)) = idx.view_row(pos) else { break };
        let path = idx.path(r);
        let name = path.rsplit('/').next().unwrap_or(path).to_string();
        let mut cells: Vec<Span<'static>> = Vec::with_capacity(columns.len());
        for &c in &columns {
            cells.push(match c {
                Column::Id => Span::styled(r.id.to_string(), Style::new().fg(DIM)),
                Column::Path => Span::raw(name.clone()),
                Column::Split => Span::raw(r.split.as_str()),
                Column::Time => Span::raw(format!("{:.0}–{:.0}", r.start, r.end)),
                Column::Gold => gold_cell(r.gold()),
                Column::Source => Span::raw(idx.source(r).to_string()),
                Column::Teacher(t) => Span::styled(score_cell(idx.scores_at(t, ri)), Style::new().fg(Color::Cyan)),
                Column::Flags => Span::styled(
                    format!("{}{}", if r.needs_review() { "R" } else { " " }, if r.has_note() { "✎" } else { "" }),
                    Style::new().fg(Color::Yellow),
                ),
            });
        }
        let style = if pos == app.cursor { Style::new().bg(Color::Rgb(0x30, 0x36, 0x50)).bold() } else { Style::new() };
        rows.push(Row::new(cells).style(style));
    }
    let widths: Vec<Constraint> = columns
        .iter()
        .map(|c| if *c == Column::Path { Constraint::Min(width_of(c)) } else { Constraint::Length(width_of(c)) })
        .collect();
    Table::new(rows, widths).header(header).column_spacing(1).render_ref(inner, buf);
    if idx.view_len() == 0 && inner.height > 1 {
        let msg = if idx.is_empty() {
            "no segments in this workspace: import a manifest (dams import) or cut recordings (dams segment)"
        } else {
            "no segment matches the filter (X clears it)"
        };
        Paragraph::new(msg).fg(Color::Yellow).render_ref(Rect { y: inner.y + 1, height: 1, ..inner }, buf);
    }
}

fn label_chips(gold: Option<LabelSet>) -> Vec<Span<'static>> {
    let mut v = Vec::new();
    for c in CLASSES {
        let on = gold.is_some_and(|g| g.get(c));
        let name = c.name();
        let style =
            if on { Style::new().bg(CLASS_COLORS[c.index()]).fg(Color::Black).bold() } else { Style::new().fg(DIM) };
        v.push(Span::styled(format!(" {name} "), style));
        v.push(Span::raw(" "));
    }
    v
}

/// The segment view: header, spectrogram with axes and playhead, energy strip, scores, stats.
pub fn draw_segment(buf: &mut Buffer, area: Rect, app: &mut App, cache: &mut SpecCells) {
    app.areas.spec = (0, 0, 0, 0);
    let Some(cur) = &app.current else {
        Paragraph::new("no segment selected").fg(DIM).render_ref(area, buf);
        return;
    };
    let info_h = (cur.scores.len() as u16 + 1).max(4).min(area.height / 3).max(3);
    let [head, spec_area, ticks, energy, info] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(3),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(info_h),
    ])
    .areas(area);

    // Header: path, split, time, raw file; then gold chips, review, note.
    let s = &cur.segment;
    let mut l1 = vec![
        Span::styled(s.segment_path.clone(), Style::new().bold()),
        Span::raw(format!("  {}  {:.1}–{:.1} s", s.split, s.start_time, s.end_time)),
    ];
    if !s.raw_file.is_empty() {
        l1.push(Span::styled(format!("  of {}", s.raw_file), Style::new().fg(DIM)));
    }
    let mut l2 = vec![Span::raw("gold: ")];
    l2.extend(label_chips(cur.gold));
    if cur.gold.is_some_and(|g| g.is_empty()) {
        l2.push(Span::styled("(none of the three) ", Style::new().fg(Color::Gray)));
    }
    if cur.gold.is_none() {
        l2.push(Span::styled("unlabeled ", Style::new().fg(DIM)));
    }
    if cur.review {
        l2.push(Span::styled(" NEEDS REVIEW ", Style::new().bg(Color::Yellow).fg(Color::Black)));
    }
    if let Some(n) = &cur.note {
        l2.push(Span::styled(format!(" ✎ {n}"), Style::new().fg(Color::Yellow)));
    }
    Paragraph::new(vec![Line::from(l1), Line::from(l2)]).render_ref(head, buf);

    // Spectrogram with a frequency axis on the left.
    let axis_w = 6u16.min(spec_area.width);
    let plot = Rect { x: spec_area.x + axis_w, width: spec_area.width - axis_w, ..spec_area };
    let duration = cur.analysis.as_ref().map(|a| a.samples.len() as f64 / 16_000.0).unwrap_or(s.duration().max(0.0));
    match (&cur.analysis, &cur.analysis_error) {
        (Some(a), _) => {
            draw_spectrogram(buf, plot, a, app.colormap, cache);
            draw_freq_axis(buf, Rect { width: axis_w, ..spec_area }, a);
            draw_energy(buf, Rect { x: plot.x, width: plot.width, ..energy }, a);
            app.areas.spec = (plot.x, plot.y, plot.width, plot.height);
        }
        (None, Some(e)) => {
            Paragraph::new(format!("cannot show this segment: {e}"))
                .fg(Color::Red)
                .wrap(Wrap { trim: true })
                .render_ref(plot, buf);
        }
        (None, None) => Paragraph::new("decoding…").fg(DIM).render_ref(plot, buf),
    }
    Paragraph::new("energy").fg(DIM).render_ref(Rect { width: axis_w, ..energy }, buf);
    draw_ticks(buf, Rect { x: plot.x, width: plot.width, ..ticks }, duration, app);
    // Playhead and loop span over the plot.
    if cur.analysis.is_some() && duration > 0.0 && plot.width > 0 {
        let col = |t: f64| plot.x + ((t / duration) * plot.width as f64).clamp(0.0, plot.width as f64 - 1.0) as u16;
        if let Some((a, b)) = app.playback.loop_span() {
            for x in col(a)..=col(b) {
                if let Some(c) = buf.cell_mut((x, ticks.y)) {
                    c.set_bg(Color::Rgb(0x55, 0x44, 0x00));
                }
            }
        }
        let pos = app.playback.position();
        if pos > 0.0 || app.playback.is_playing() {
            let x = col(pos);
            for y in plot.y..plot.y + plot.height {
                if let Some(c) = buf.cell_mut((x, y)) {
                    c.set_char('▀').set_fg(Color::White).set_bg(Color::White);
                }
            }
        }
    }

    // Info: teacher scores with thresholds | stats | neighbours.
    let [scores, stats, neigh] =
        Layout::horizontal([Constraint::Percentage(46), Constraint::Percentage(28), Constraint::Percentage(26)])
            .areas(info);
    draw_scores(buf, scores, cur);
    draw_stats(buf, stats, cur.stats.as_ref());
    draw_neighbours(buf, neigh, &cur.neighbours);
}

fn draw_spectrogram(buf: &mut Buffer, area: Rect, a: &Analysis, cmap: ColorMap, cache: &mut SpecCells) {
    let (w, h) = (area.width, area.height);
    if w == 0 || h == 0 {
        return;
    }
    let key = (a.id, w, h, Some(cmap));
    if cache.key != key {
        cache.key = key;
        cache.cells = spectrogram_cells(a, w, h, cmap);
    }
    for y in 0..h {
        for x in 0..w {
            let (top, bot) = cache.cells[(y as usize) * w as usize + x as usize];
            if let Some(c) = buf.cell_mut((area.x + x, area.y + y)) {
                c.set_char('▀').set_fg(Color::Rgb(top.0, top.1, top.2)).set_bg(Color::Rgb(bot.0, bot.1, bot.2));
            }
        }
    }
}

/// Downsample a spectrogram to `w × 2h` pixels (max over the frames and bands of each pixel).
pub fn spectrogram_cells(a: &Analysis, w: u16, h: u16, cmap: ColorMap) -> Vec<(Rgb, Rgb)> {
    let s = &a.spec;
    let (w, ph) = (w as usize, 2 * h as usize);
    let (lo, hi) = a.range;
    let scale = 1.0 / (hi - lo).max(1e-3);
    let mut px = vec![(0u8, 0u8, 0u8); w * ph];
    if s.n_frames > 0 {
        for x in 0..w {
            let f0 = x * s.n_frames / w;
            let f1 = ((x + 1) * s.n_frames / w).max(f0 + 1).min(s.n_frames);
            for py in 0..ph {
                // Row 0 is the top: the highest band.
                let r = ph - 1 - py;
                let b0 = r * s.n_mels / ph;
                let b1 = ((r + 1) * s.n_mels / ph).max(b0 + 1).min(s.n_mels);
                let mut m = f32::MIN;
                for f in f0..f1 {
                    let row = &s.data[f * s.n_mels..(f + 1) * s.n_mels];
                    for &v in &row[b0..b1] {
                        m = m.max(v);
                    }
                }
                px[py * w + x] = cmap.rgb((m - lo) * scale);
            }
        }
    }
    let mut cells = Vec::with_capacity(w * h as usize);
    for y in 0..h as usize {
        for x in 0..w {
            cells.push((px[(2 * y) * w + x], px[(2 * y + 1) * w + x]));
        }
    }
    cells
}

fn draw_freq_axis(buf: &mut Buffer, area: Rect, a: &Analysis) {
    let s = &a.spec;
    if area.height == 0 || s.n_mels == 0 {
        return;
    }
    let ph = 2 * area.height as usize;
    let step = (area.height as usize / 4).max(1);
    for y in (0..area.height as usize).step_by(step) {
        let r = ph - 1 - 2 * y;
        let band = (r * s.n_mels / ph).min(s.n_mels - 1);
        let hz = s.band_hz[band];
        let label = if hz >= 1000.0 { format!("{:.1}k", hz / 1000.0) } else { format!("{:.0}", hz) };
        Paragraph::new(format!("{label:>5}")).fg(DIM).render_ref(Rect { y: area.y + y as u16, height: 1, ..area }, buf);
    }
}

fn draw_ticks(buf: &mut Buffer, area: Rect, duration: f64, app: &App) {
    if area.width == 0 || duration <= 0.0 {
        return;
    }
    let w = area.width as usize;
    let mut line: Vec<char> = vec!['─'; w];
    let step = if w as f64 / duration >= 4.0 { 1.0 } else { 2.0 };
    let mut t = 0.0;
    while t <= duration + 1e-9 {
        let x = ((t / duration) * w as f64).min(w as f64 - 1.0) as usize;
        line[x] = '┬';
        let label = format!("{t:.0}");
        if x + 1 + label.len() <= w && line[x + 1..x + 1 + label.len()].iter().all(|&c| c == '─') {
            for (i, ch) in label.chars().enumerate() {
                line[x + 1 + i] = ch;
            }
        }
        t += step;
    }
    let s: String = line.into_iter().collect();
    Paragraph::new(s).fg(DIM).render_ref(area, buf);
    let _ = app;
}

fn draw_energy(buf: &mut Buffer, area: Rect, a: &Analysis) {
    const BLOCKS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let e = &a.spec.frame_db;
    if area.width == 0 || e.is_empty() {
        return;
    }
    let w = area.width as usize;
    for x in 0..w {
        let f0 = x * e.len() / w;
        let f1 = ((x + 1) * e.len() / w).max(f0 + 1).min(e.len());
        let db = e[f0..f1].iter().copied().fold(f32::MIN, f32::max);
        let t = ((db + 60.0) / 60.0).clamp(0.0, 1.0);
        let ch = if db < -59.0 { ' ' } else { BLOCKS[((t * 7.0).round() as usize).min(7)] };
        if let Some(c) = buf.cell_mut((area.x + x as u16, area.y)) {
            c.set_char(ch).set_fg(ACCENT);
        }
    }
}

fn bar(v: f32, th: Option<f64>, width: usize, color: Color) -> Vec<Span<'static>> {
    let filled = ((v.clamp(0.0, 1.0) * width as f32).round() as usize).min(width);
    let tpos = th.map(|t| ((t.clamp(0.0, 1.0) * width as f64).round() as usize).min(width.saturating_sub(1)));
    let mut spans = Vec::new();
    for i in 0..width {
        if Some(i) == tpos {
            spans.push(Span::styled("│", Style::new().fg(Color::Red).bold()));
        } else if i < filled {
            spans.push(Span::styled("█", Style::new().fg(color)));
        } else {
            spans.push(Span::styled("·", Style::new().fg(DIM)));
        }
    }
    spans
}

fn draw_scores(buf: &mut Buffer, area: Rect, cur: &super::app::Current) {
    let mut lines = vec![Line::styled("teacher scores (│ threshold)", Style::new().fg(Color::Gray).bold())];
    if cur.scores.is_empty() {
        lines.push(Line::styled("no teacher scores for this segment", Style::new().fg(DIM)));
    }
    let name_w = 8usize;
    let per = (area.width as usize).saturating_sub(name_w + 1) / 3;
    let bw = per.saturating_sub(6).max(1);
    for ts in &cur.scores {
        let (teacher, s, th) = (&ts.teacher, &ts.scores, &ts.thresholds);
        let mut spans = vec![Span::raw(format!("{:<name_w$.name_w$} ", teacher))];
        for c in CLASSES {
            let i = c.index();
            spans.push(Span::styled(c.letter().to_string(), Style::new().fg(CLASS_COLORS[i])));
            spans.extend(bar(s[i], th[i], bw, CLASS_COLORS[i]));
            spans.push(Span::raw(format!("{:.2} ", s[i]).trim_start_matches('0').to_string()));
        }
        lines.push(Line::from(spans));
    }
    Paragraph::new(lines).render_ref(area, buf);
}

fn draw_stats(buf: &mut Buffer, area: Rect, st: Option<&crate::store::AcousticStats>) {
    let mut lines = vec![Line::styled("acoustics", Style::new().fg(Color::Gray).bold())];
    match st {
        None => lines.push(Line::styled("not computed yet", Style::new().fg(DIM))),
        Some(s) if s.had_error => lines.push(Line::styled("decode error", Style::new().fg(Color::Red))),
        Some(s) => {
            lines.push(Line::raw(format!("rms {:.1} dB  snr {:.0} dB", s.rms_db, s.snr_db)));
            lines.push(Line::raw(format!(
                "silence {:.0}%  clip {:.2}%",
                s.silence_ratio * 100.0,
                s.clipping_ratio * 100.0
            )));
            lines.push(Line::raw(format!("zcr {:.3}  var {:.2e}", s.zero_crossing_rate, s.energy_variance)));
            let mut flags = Vec::new();
            for (on, name) in [
                (s.is_too_short, "short"),
                (s.is_too_quiet, "quiet"),
                (s.is_mostly_silence, "silent"),
                (s.is_heavily_clipped, "clipped"),
                (s.is_high_zcr, "high-zcr"),
            ] {
                if on {
                    flags.push(name);
                }
            }
            if !flags.is_empty() {
                lines.push(Line::styled(flags.join(" "), Style::new().fg(Color::Yellow)));
            }
        }
    }
    Paragraph::new(lines).render_ref(area, buf);
}

fn draw_neighbours(buf: &mut Buffer, area: Rect, n: &(Option<crate::store::Segment>, Option<crate::store::Segment>)) {
    let mut lines = vec![Line::styled("neighbours in raw file", Style::new().fg(Color::Gray).bold())];
    for (arrow, s) in [("◀", &n.0), ("▶", &n.1)] {
        lines.push(match s {
            Some(s) => Line::raw(format!("{arrow} {:.0}–{:.0} s {}", s.start_time, s.end_time, s.file_name())),
            None => Line::styled(format!("{arrow} none"), Style::new().fg(DIM)),
        });
    }
    Paragraph::new(lines).render_ref(area, buf);
}

pub(super) fn draw_status(buf: &mut Buffer, area: Rect, app: &App) {
    let pb = &app.playback;
    let state = if pb.is_playing() { "▶" } else { "⏸" };
    let mut l1 = vec![Span::styled(
        format!(
            " {state} {:.1}/{:.1}s {:.2}× vol {:.0}% loop {} auto {} ",
            pb.position(),
            pb.duration(),
            pb.speed(),
            pb.volume() * 100.0,
            match (pb.looping(), pb.loop_span()) {
                (false, _) => "off".to_string(),
                (true, None) => "seg".to_string(),
                (true, Some((a, b))) => format!("{a:.1}–{b:.1}"),
            },
            if app.autoplay { "on" } else { "off" },
        ),
        Style::new().bg(Color::Rgb(0x26, 0x2a, 0x36)),
    )];
    match pb.output() {
        Output::None(reason) => {
            l1.push(Span::styled(format!(" no audio output: {reason}"), Style::new().fg(Color::Yellow)))
        }
        Output::Opening => l1.push(Span::styled(" opening audio…", Style::new().fg(DIM))),
        Output::Device(d) => l1.push(Span::styled(format!(" audio {d}"), Style::new().fg(DIM))),
    }
    if let Some(ms) = app.last_switch_ms {
        l1.push(Span::styled(format!("  switch {ms:.0} ms"), Style::new().fg(DIM)));
    }
    if let Some(w) = app.write_status() {
        l1.insert(1, Span::styled(w, Style::new().fg(Color::Yellow)));
    }
    let l2 = match &app.mode {
        Mode::Search { buf } => Line::from(vec![
            Span::styled(" search: ", Style::new().fg(Color::Yellow)),
            Span::raw(buf.clone()),
            Span::styled("▏ (Enter keeps, Esc clears)", Style::new().fg(DIM)),
        ]),
        _ => Line::from(Span::styled(
            format!(" {}", app.message),
            if app.message.starts_with("error") { Style::new().fg(Color::Red) } else { Style::new() },
        )),
    };
    Paragraph::new(vec![Line::from(l1), l2]).render_ref(area, buf);
}

pub(super) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect { x: area.x + (area.width - w) / 2, y: area.y + (area.height - h) / 2, width: w, height: h }
}

/// The help popup, generated from the live key bindings.
fn draw_help(f: &mut Frame<'_>, area: Rect, app: &App, scroll: u16) {
    let r = centered(area, area.width.saturating_sub(4).min(110), area.height.saturating_sub(2));
    f.render_widget(Clear, r);
    let mut lines: Vec<Line> = Vec::new();
    // The contexts live on this screen: the annotation contexts, or a research screen's own.
    let live: Vec<&str> = match app.research.screen.context() {
        None => CONTEXTS.iter().copied().filter(|c| !crate::tui::keymap::SCREEN_SCOPES.contains(c)).collect(),
        Some(screen) => vec!["app", screen, "help"],
    };
    for ctx in live {
        let bs: Vec<_> = app.keymap.bindings().iter().filter(|b| b.context == ctx).collect();
        if bs.is_empty() {
            continue;
        }
        lines.push(Line::styled(format!("[{ctx}]"), Style::new().fg(ACCENT).bold()));
        // One line per action and description: all its keys together.
        let mut seen: Vec<(crate::tui::keymap::Action, &str)> = Vec::new();
        for b in &bs {
            if seen.contains(&(b.action, b.desc.as_str())) {
                continue;
            }
            seen.push((b.action, b.desc.as_str()));
            let keys: Vec<String> =
                bs.iter().filter(|x| x.action == b.action && x.desc == b.desc).map(|x| x.key.to_string()).collect();
            lines.push(Line::from(vec![
                Span::styled(format!("  {:<16}", keys.join(" ")), Style::new().fg(Color::Cyan)),
                Span::raw(format!("{:<22}", b.action.name())),
                Span::styled(b.desc.clone(), Style::new().fg(Color::Gray)),
            ]));
        }
    }
    lines.push(Line::raw(""));
    if app.research.screen.context().is_none() {
        lines.push(Line::styled(
            "mouse: click a row to select it, click the spectrogram to seek",
            Style::new().fg(Color::Gray),
        ));
        lines.push(Line::styled(
            "speed changes are a plain rate change (pitch shifts with speed)",
            Style::new().fg(Color::Gray),
        ));
    } else {
        lines.push(Line::styled(
            "keys this screen leaves unbound fall back to [app]; Esc on the screen goes back",
            Style::new().fg(Color::Gray),
        ));
    }
    let block = Block::bordered()
        .title(" key bindings (from the keymap files) ")
        .title_bottom(
            Line::from(format!(
                " {}/{} scroll · {} closes ",
                app.keymap.keys_in("help", crate::tui::keymap::Action::ScrollDown),
                app.keymap.keys_in("help", crate::tui::keymap::Action::ScrollUp),
                app.keymap.keys_in("help", crate::tui::keymap::Action::CloseHelp)
            ))
            .right_aligned(),
        )
        .border_style(Style::new().fg(ACCENT));
    f.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), r);
}

fn draw_diagnostics(f: &mut Frame<'_>, area: Rect, app: &App) {
    let r = centered(area, area.width.saturating_sub(4).min(160), (app.diagnostics.len() as u16 + 4).min(area.height));
    f.render_widget(Clear, r);
    let lines: Vec<Line> = app.diagnostics.iter().map(|d| Line::raw(d.to_string())).collect();
    let block = Block::bordered()
        .title(" keymap problems (the entries were skipped) ")
        .title_bottom(Line::from(" any key continues ").right_aligned())
        .border_style(Style::new().fg(Color::Yellow));
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }).block(block), r);
}

fn draw_input(f: &mut Frame<'_>, area: Rect, title: &str, text: &str) {
    let r = centered(area, 70, 3);
    f.render_widget(Clear, r);
    let block = Block::bordered().title(format!(" {title} ")).border_style(Style::new().fg(Color::Yellow));
    f.render_widget(Paragraph::new(format!("{text}▏")).block(block), r);
}
