//! The analysis worker: decodes segments and computes their spectrograms off the UI thread.
//! The UI sends the ids it wants (current first, then the neighbours to prefetch); a newer
//! request replaces whatever was still queued, so the worker never lags behind fast scrolling.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::time::{Duration, Instant};

use crate::dsp::spectrogram::{MelSpectrogrammer, Spectrogram};

/// A decoded, analysed segment.
#[derive(Debug)]
pub struct Analysis {
    pub id: i64,
    pub samples: Arc<Vec<f32>>,
    pub spec: Spectrogram,
    /// Display range of the spectrogram in dB (robust percentiles).
    pub range: (f32, f32),
    pub took: Duration,
}

/// What the worker sends back.
pub type Reply = (i64, Result<Arc<Analysis>, String>);

pub struct Worker {
    tx: Sender<Vec<(i64, PathBuf)>>,
    rx: Receiver<Reply>,
}

/// Decode a segment to 16 kHz mono samples (any format the audio module reads).
pub fn load_samples(path: &std::path::Path) -> Result<Vec<f32>, String> {
    crate::audio::load_mono_16k(path).map_err(|e| e.to_string())
}

/// Decode and analyse one file.
pub fn analyse(sg: &mut MelSpectrogrammer, id: i64, path: &std::path::Path) -> Result<Arc<Analysis>, String> {
    let t0 = Instant::now();
    let samples = load_samples(path)?;
    let mut a = analyse_samples(sg, id, samples);
    if let Some(a) = Arc::get_mut(&mut a) {
        a.took = t0.elapsed();
    }
    Ok(a)
}

/// Analyse decoded samples.
pub fn analyse_samples(sg: &mut MelSpectrogrammer, id: i64, samples: Vec<f32>) -> Arc<Analysis> {
    let t0 = Instant::now();
    let spec = sg.compute(&samples);
    let range = spec.db_range();
    Arc::new(Analysis { id, samples: Arc::new(samples), spec, range, took: t0.elapsed() })
}

impl Worker {
    pub fn start() -> std::io::Result<Worker> {
        let (tx, req_rx) = mpsc::channel::<Vec<(i64, PathBuf)>>();
        let (reply_tx, rx) = mpsc::channel::<Reply>();
        std::thread::Builder::new().name("dams-analysis".into()).spawn(move || {
            let mut sg = MelSpectrogrammer::default();
            let mut queue: Vec<(i64, PathBuf)> = Vec::new();
            loop {
                if queue.is_empty() {
                    match req_rx.recv() {
                        Ok(q) => queue = q,
                        Err(_) => return,
                    }
                }
                // Only the newest request matters.
                loop {
                    match req_rx.try_recv() {
                        Ok(q) => queue = q,
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => return,
                    }
                }
                if queue.is_empty() {
                    continue;
                }
                let (id, path) = queue.remove(0);
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| analyse(&mut sg, id, &path)))
                    .unwrap_or_else(|_| Err("internal error while analysing".into()));
                if reply_tx.send((id, result)).is_err() {
                    return;
                }
            }
        })?;
        Ok(Worker { tx, rx })
    }

    /// Replace the worker's queue.
    pub fn request(&self, ids: Vec<(i64, PathBuf)>) {
        let _ = self.tx.send(ids);
    }

    /// A finished analysis, if any (non-blocking).
    pub fn try_recv(&self) -> Option<Reply> {
        self.rx.try_recv().ok()
    }

    /// Wait up to `timeout` for a finished analysis (benchmarks).
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Reply> {
        self.rx.recv_timeout(timeout).ok()
    }
}
