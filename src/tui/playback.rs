//! Segment playback: one endless [`PlayheadSource`] feeds the audio device; the UI controls it
//! through atomics (play/pause, seek, loop span, speed, volume) and reads the playhead back.
//! Nothing here blocks: the device is opened on its own thread, and when there is no device
//! (servers, CI, SSH, or `DAMS_AUDIO=none`) [`Playback::output`] says why and every control still
//! works on the shared state. Speed is a plain rate change (pitch shifts with it).
//!
//! Without the `playback` cargo feature the same API exists and always reports no output.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

/// Sample rate of every segment (and of the source fed to the device).
pub const RATE: u32 = 16_000;
pub const MIN_SPEED: f32 = 0.5;
pub const MAX_SPEED: f32 = 2.0;

/// Whether sound reaches a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// The device is being opened (on the audio thread).
    Opening,
    Device(String),
    /// No audio output, with the reason.
    None(String),
}

#[derive(Default)]
struct Shared {
    samples: Mutex<Arc<Vec<f32>>>,
    generation: AtomicU64,
    /// Playhead in samples, as f64 bits.
    pos: AtomicU64,
    playing: AtomicBool,
    /// f32 bits.
    speed: AtomicU32,
    volume: AtomicU32,
    looping: AtomicBool,
    /// Loop span in samples; `loop_end == 0` means the whole segment.
    loop_start: AtomicU64,
    loop_end: AtomicU64,
}

impl Shared {
    fn pos(&self) -> f64 {
        f64::from_bits(self.pos.load(Ordering::Acquire))
    }
    fn set_pos(&self, p: f64) {
        self.pos.store(p.to_bits(), Ordering::Release);
    }
    fn speed(&self) -> f32 {
        f32::from_bits(self.speed.load(Ordering::Relaxed))
    }
    fn volume(&self) -> f32 {
        f32::from_bits(self.volume.load(Ordering::Relaxed))
    }
}

/// The source handed to the audio device: mono at [`RATE`], never ends (silence while paused).
pub struct PlayheadSource {
    shared: Arc<Shared>,
    buf: Arc<Vec<f32>>,
    generation: u64,
}

impl PlayheadSource {
    fn refresh(&mut self) {
        let g = self.shared.generation.load(Ordering::Acquire);
        if g != self.generation {
            if let Ok(s) = self.shared.samples.lock() {
                self.buf = s.clone();
            }
            self.generation = g;
        }
    }

    /// The next output sample (what the device would play).
    pub fn next_sample(&mut self) -> f32 {
        self.refresh();
        let sh = &self.shared;
        if !sh.playing.load(Ordering::Acquire) || self.buf.is_empty() {
            return 0.0;
        }
        let n = self.buf.len();
        let old_bits = sh.pos.load(Ordering::Acquire);
        let pos = f64::from_bits(old_bits).clamp(0.0, n as f64);
        let (ls, le) = (sh.loop_start.load(Ordering::Relaxed) as f64, sh.loop_end.load(Ordering::Relaxed) as f64);
        let looping = sh.looping.load(Ordering::Relaxed);
        let (span_start, span_end) = if looping && le > ls { (ls, le.min(n as f64)) } else { (0.0, n as f64) };
        let i = pos.floor() as usize;
        let frac = (pos - i as f64) as f32;
        let a = self.buf.get(i).copied().unwrap_or(0.0);
        let b = self.buf.get(i + 1).copied().unwrap_or(a);
        let out = (a + (b - a) * frac) * sh.volume();
        let mut next = pos + sh.speed() as f64;
        if next >= span_end {
            if looping {
                next = span_start + (next - span_end).min(span_end - span_start - 1.0).max(0.0);
            } else {
                next = n as f64;
                sh.playing.store(false, Ordering::Release);
            }
        }
        // A seek from the UI between our load and store wins over our advance.
        let _ = sh.pos.compare_exchange(old_bits, next.to_bits(), Ordering::AcqRel, Ordering::Acquire);
        out
    }
}

impl Iterator for PlayheadSource {
    type Item = f32;
    fn next(&mut self) -> Option<f32> {
        Some(self.next_sample())
    }
}

#[cfg(feature = "playback")]
impl rodio::Source for PlayheadSource {
    fn current_span_len(&self) -> Option<usize> {
        None
    }
    fn channels(&self) -> rodio::ChannelCount {
        rodio::ChannelCount::MIN
    }
    fn sample_rate(&self) -> rodio::SampleRate {
        rodio::SampleRate::new(RATE).unwrap_or(rodio::SampleRate::MIN)
    }
    fn total_duration(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The player the UI drives.
pub struct Playback {
    shared: Arc<Shared>,
    output: Output,
    status_rx: Option<mpsc::Receiver<Output>>,
    /// Errors the audio stream reports while running (never printed: the UI shows them).
    error_rx: Option<mpsc::Receiver<String>>,
    /// Dropping this ends the audio thread (and closes the device).
    _stop: Option<mpsc::Sender<()>>,
}

impl Playback {
    fn new_shared() -> Arc<Shared> {
        let sh = Shared::default();
        sh.speed.store(1.0f32.to_bits(), Ordering::Relaxed);
        sh.volume.store(1.0f32.to_bits(), Ordering::Relaxed);
        Arc::new(sh)
    }

    /// A player with no device, plus the source it would feed (tests drain it).
    pub fn headless(reason: &str) -> (Playback, PlayheadSource) {
        let shared = Self::new_shared();
        let src = PlayheadSource { shared: shared.clone(), buf: Arc::new(Vec::new()), generation: 0 };
        (
            Playback { shared, output: Output::None(reason.to_string()), status_rx: None, error_rx: None, _stop: None },
            src,
        )
    }

    /// Start playback: opens the default device on an audio thread and returns at once.
    /// `DAMS_AUDIO=none` forces the no-output path.
    pub fn start() -> Playback {
        if std::env::var("DAMS_AUDIO").is_ok_and(|v| v.eq_ignore_ascii_case("none")) {
            return Self::headless("DAMS_AUDIO=none").0;
        }
        Self::start_device()
    }

    #[cfg(not(feature = "playback"))]
    fn start_device() -> Playback {
        Self::headless("dams was built without the playback feature").0
    }

    #[cfg(feature = "playback")]
    fn start_device() -> Playback {
        let (pb, src) = Self::headless("");
        let (status_tx, status_rx) = mpsc::channel();
        let (error_tx, error_rx) = mpsc::channel::<String>();
        let (stop_tx, stop_rx) = mpsc::channel::<()>();
        let spawned = std::thread::Builder::new().name("dams-audio".into()).spawn(move || {
            // alsa-lib prints to stderr while probing a missing card; keep that off the screen.
            #[cfg(target_os = "linux")]
            let _quiet = alsa::Output::local_error_handler().ok();
            // rodio's default error callback prints to stderr, which would tear the TUI: forward.
            let open = move || {
                rodio::DeviceSinkBuilder::from_default_device()?
                    .with_error_callback(move |e| {
                        let _ = error_tx.send(e.to_string());
                    })
                    .open_sink_or_fallback()
            };
            let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(open));
            let mut sink = match opened {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    let _ = status_tx.send(Output::None(e.to_string()));
                    return;
                }
                Err(_) => {
                    let _ = status_tx.send(Output::None("the audio backend crashed while opening".into()));
                    return;
                }
            };
            sink.log_on_drop(false);
            sink.mixer().add(src);
            let cfg = sink.config();
            let _ = status_tx.send(Output::Device(format!("{} Hz, {} ch", cfg.sample_rate(), cfg.channel_count())));
            // Keep the device open until the player is dropped.
            let _ = stop_rx.recv();
            drop(sink);
        });
        match spawned {
            Ok(_) => Playback {
                output: Output::Opening,
                status_rx: Some(status_rx),
                error_rx: Some(error_rx),
                _stop: Some(stop_tx),
                ..pb
            },
            Err(e) => Playback { output: Output::None(format!("cannot start the audio thread: {e}")), ..pb },
        }
    }

    /// Pick up the audio thread's news (non-blocking); returns true when the output changed.
    pub fn poll(&mut self) -> bool {
        let Some(rx) = &self.status_rx else { return false };
        match rx.try_recv() {
            Ok(o) => {
                self.output = o;
                true
            }
            Err(mpsc::TryRecvError::Empty) => false,
            Err(mpsc::TryRecvError::Disconnected) => {
                self.status_rx = None;
                if self.output == Output::Opening {
                    self.output = Output::None("the audio thread ended".into());
                    return true;
                }
                false
            }
        }
    }

    /// An error the running audio stream reported, if any (non-blocking).
    pub fn take_error(&mut self) -> Option<String> {
        self.error_rx.as_ref().and_then(|rx| rx.try_recv().ok())
    }

    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Load a segment's samples (stops playback, playhead to 0, loop span cleared).
    pub fn load(&self, samples: Arc<Vec<f32>>) {
        self.shared.playing.store(false, Ordering::Release);
        if let Ok(mut s) = self.shared.samples.lock() {
            *s = samples;
        }
        self.shared.loop_start.store(0, Ordering::Relaxed);
        self.shared.loop_end.store(0, Ordering::Relaxed);
        self.shared.set_pos(0.0);
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    fn len(&self) -> usize {
        self.shared.samples.lock().map(|s| s.len()).unwrap_or(0)
    }

    pub fn duration(&self) -> f64 {
        self.len() as f64 / RATE as f64
    }

    pub fn is_playing(&self) -> bool {
        self.shared.playing.load(Ordering::Acquire)
    }

    pub fn play(&self) {
        let n = self.len() as f64;
        // At the end: start over.
        if self.shared.pos() >= n - 1.0 {
            self.shared.set_pos(0.0);
        }
        self.shared.playing.store(true, Ordering::Release);
    }

    pub fn pause(&self) {
        self.shared.playing.store(false, Ordering::Release);
    }

    pub fn toggle(&self) {
        if self.is_playing() { self.pause() } else { self.play() }
    }

    /// Playhead in seconds.
    pub fn position(&self) -> f64 {
        self.shared.pos() / RATE as f64
    }

    /// Move the playhead to `secs` (clamped to the segment).
    pub fn seek_to(&self, secs: f64) {
        let n = self.len() as f64;
        let p = (secs * RATE as f64).clamp(0.0, (n - 1.0).max(0.0));
        self.shared.set_pos(if p.is_finite() { p } else { 0.0 });
    }

    pub fn seek_by(&self, delta: f64) {
        self.seek_to(self.position() + delta);
    }

    pub fn speed(&self) -> f32 {
        self.shared.speed()
    }

    /// Set the rate (clamped to 0.5–2×; plain rate change).
    pub fn set_speed(&self, s: f32) {
        let s = if s.is_finite() { s.clamp(MIN_SPEED, MAX_SPEED) } else { 1.0 };
        self.shared.speed.store(s.to_bits(), Ordering::Relaxed);
    }

    pub fn volume(&self) -> f32 {
        self.shared.volume()
    }

    /// Set the volume (0–2).
    pub fn set_volume(&self, v: f32) {
        let v = if v.is_finite() { v.clamp(0.0, 2.0) } else { 1.0 };
        self.shared.volume.store(v.to_bits(), Ordering::Relaxed);
    }

    pub fn looping(&self) -> bool {
        self.shared.looping.load(Ordering::Relaxed)
    }

    pub fn set_looping(&self, on: bool) {
        self.shared.looping.store(on, Ordering::Relaxed);
    }

    /// Loop only `start..end` seconds (`None`: the whole segment).
    pub fn set_loop_span(&self, span: Option<(f64, f64)>) {
        let (a, b) = match span {
            Some((a, b)) if b > a => ((a * RATE as f64).max(0.0) as u64, (b * RATE as f64).max(0.0) as u64),
            _ => (0, 0),
        };
        self.shared.loop_start.store(a, Ordering::Relaxed);
        self.shared.loop_end.store(b, Ordering::Relaxed);
    }

    pub fn loop_span(&self) -> Option<(f64, f64)> {
        let (a, b) = (self.shared.loop_start.load(Ordering::Relaxed), self.shared.loop_end.load(Ordering::Relaxed));
        (b > a).then(|| (a as f64 / RATE as f64, b as f64 / RATE as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Arc<Vec<f32>> {
        Arc::new((0..n).map(|i| i as f32 / n as f32).collect())
    }

    #[test]
    fn plays_seeks_and_stops_at_the_end() {
        let (pb, mut src) = Playback::headless("test");
        assert_eq!(pb.output(), &Output::None("test".into()));
        pb.load(ramp(16_000));
        assert_eq!(src.next_sample(), 0.0);
        pb.play();
        let first: Vec<f32> = (0..4).map(|_| src.next_sample()).collect();
        assert_eq!(first, vec![0.0, 1.0 / 16_000.0, 2.0 / 16_000.0, 3.0 / 16_000.0]);
        pb.seek_to(0.5);
        assert!((src.next_sample() - 0.5).abs() < 1e-6);
        pb.seek_by(-10.0);
        assert_eq!(pb.position(), 0.0);
        for _ in 0..20_000 {
            src.next_sample();
        }
        assert!(!pb.is_playing());
        assert!((pb.duration() - 1.0).abs() < 1e-9);
        // Paused: silence, playhead still.
        let p = pb.position();
        assert_eq!(src.next_sample(), 0.0);
        assert_eq!(pb.position(), p);
    }

    #[test]
    fn speed_volume_and_loop_span() {
        let (pb, mut src) = Playback::headless("test");
        pb.load(ramp(16_000));
        pb.set_speed(5.0);
        assert_eq!(pb.speed(), MAX_SPEED);
        pb.set_speed(0.5);
        pb.set_volume(0.5);
        pb.play();
        let v: Vec<f32> = (0..3).map(|_| src.next_sample()).collect();
        let step = 1.0 / 16_000.0;
        assert!((v[1] - 0.25 * step).abs() < 1e-9 && (v[2] - 0.5 * step).abs() < 1e-9, "{v:?}");
        pb.set_speed(1.0);
        pb.set_volume(1.0);
        pb.set_loop_span(Some((0.25, 0.5)));
        pb.set_looping(true);
        pb.seek_to(0.25);
        for _ in 0..40_000 {
            let s = src.next_sample();
            assert!((0.25 - 1e-4..0.5).contains(&s), "{s}");
        }
        assert!(pb.is_playing());
        assert_eq!(pb.loop_span(), Some((0.25, 0.5)));
        // Loading another segment stops and clears the span.
        pb.load(ramp(8_000));
        assert!(!pb.is_playing() && pb.loop_span().is_none() && pb.position() == 0.0);
    }
}
