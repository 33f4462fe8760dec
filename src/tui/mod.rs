//! The annotation TUI (ratatui + crossterm): browse, play, see and label segments by keyboard.
//!
//! Architecture (like gitui/bottom): the UI thread only handles events and draws; decoding and
//! spectrograms run on the analysis worker ([`worker`]), audio on the playback thread
//! ([`crate::tui::playback`]); label writes go to the label writer ([`writer`]): shown at once as
//! pending, committed on the writer's own connection (retried while another process holds the
//! lock), and quitting waits for them.

pub mod app;
pub mod bench;
pub mod bench_writes;
pub mod browse;
pub mod colormap;
mod durable;
pub mod form;
pub mod keymap;
pub mod playback;
pub mod research;
pub mod research_view;
pub mod view;
pub mod worker;
pub mod writer;

#[cfg(test)]
mod tests;

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use crossterm::event::{self, Event, KeyEventKind, KeyModifiers, MouseButton, MouseEventKind};

use crate::config::{Config, Dirs};
use crate::tui::keymap::{Key, KeyCode, Keymap};
use crate::tui::playback::Playback;
use crate::workspace::Workspace;

pub use app::App;

/// Convert a crossterm key event (Shift is folded into printable characters).
pub fn convert_key(k: &event::KeyEvent) -> Option<Key> {
    use event::KeyCode as C;
    let code = match k.code {
        C::Char(c) => KeyCode::Char(c),
        C::Enter => KeyCode::Enter,
        C::Esc => KeyCode::Esc,
        C::Tab => KeyCode::Tab,
        C::BackTab => KeyCode::BackTab,
        C::Backspace => KeyCode::Backspace,
        C::Delete => KeyCode::Delete,
        C::Insert => KeyCode::Insert,
        C::Up => KeyCode::Up,
        C::Down => KeyCode::Down,
        C::Left => KeyCode::Left,
        C::Right => KeyCode::Right,
        C::PageUp => KeyCode::PageUp,
        C::PageDown => KeyCode::PageDown,
        C::Home => KeyCode::Home,
        C::End => KeyCode::End,
        C::F(n) => KeyCode::F(n),
        _ => return None,
    };
    let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
    let code = match code {
        KeyCode::Char(c) if ctrl => KeyCode::Char(c.to_ascii_lowercase()),
        c => c,
    };
    Some(Key { code, ctrl, alt: k.modifiers.contains(KeyModifiers::ALT) })
}

/// Open the TUI on a workspace and run it until the user quits.
pub fn run(ws: Workspace, dirs: &Dirs, config: &Config) -> Result<()> {
    let (keymap, diagnostics) = Keymap::load(&config.keymap, &dirs.user_keymap());
    let playback = Playback::start();
    let worker = worker::Worker::start().context("cannot start the analysis thread")?;
    let mut app = App::new(ws, config, keymap, diagnostics, playback, Some(worker))?;
    app.teachers = crate::teachers::OpenContext::for_workspace(dirs, Some(&app.ws));
    app.start_writer().context("cannot start the label writer")?;
    let mut terminal = ratatui::try_init().context("cannot set up the terminal")?;
    let _ = crossterm::execute!(std::io::stdout(), event::EnableMouseCapture);
    let result = event_loop(&mut terminal, &mut app);
    let _ = crossterm::execute!(std::io::stdout(), event::DisableMouseCapture);
    let _ = ratatui::try_restore();
    let _ = std::io::stdout().flush();
    if app.writes_pending() > 0 {
        // The user quit twice without waiting: say exactly what is not written.
        let lost = app.abandon_writes();
        eprintln!("dams: quit before {} label change(s) reached the database; NOT written:", lost.len());
        for l in &lost {
            eprintln!("  {l}");
        }
    }
    result
}

fn event_loop(terminal: &mut ratatui::DefaultTerminal, app: &mut App) -> Result<()> {
    let mut cache = view::SpecCells::default();
    loop {
        app.poll_playback();
        app.poll_worker();
        app.poll_writes();
        app.refresh_jobs(false);
        if app.quit && app.writes_pending() > 0 && !app.force_quit {
            app.message = format!(
                "quitting: waiting for {} label change(s) to be written… (press quit again to leave without them)",
                app.writes_pending()
            );
        }
        terminal.draw(|f| view::draw(f, app, &mut cache))?;
        if app.quit && (app.writes_pending() == 0 || app.force_quit) {
            return Ok(());
        }
        let waiting = app.playback.is_playing()
            || app.current.as_ref().is_some_and(|c| c.analysis.is_none() && c.analysis_error.is_none());
        let waiting = waiting || app.research.jobs.runner.any_running() || app.writes_pending() > 0;
        let timeout = Duration::from_millis(if waiting { 30 } else { 250 });
        if !event::poll(timeout)? {
            continue;
        }
        // Handle every pending event before drawing again.
        loop {
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    if let Some(key) = convert_key(&k) {
                        app.on_key(key);
                    }
                }
                Event::Mouse(m) if app.research.screen != research::Screen::Segments => match m.kind {
                    MouseEventKind::ScrollDown => app.run(crate::tui::keymap::Action::ItemDown),
                    MouseEventKind::ScrollUp => app.run(crate::tui::keymap::Action::ItemUp),
                    _ => {}
                },
                Event::Mouse(m) => {
                    if let MouseEventKind::Down(MouseButton::Left) = m.kind {
                        app.on_click(m.column, m.row);
                    } else if let MouseEventKind::ScrollDown = m.kind {
                        app.run(crate::tui::keymap::Action::MoveDown);
                    } else if let MouseEventKind::ScrollUp = m.kind {
                        app.run(crate::tui::keymap::Action::MoveUp);
                    }
                }
                _ => {}
            }
            if app.quit || !event::poll(Duration::ZERO)? {
                break;
            }
        }
    }
}
