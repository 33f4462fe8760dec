//! Sample-rate conversion with rubato 5's asynchronous sinc resampler (fixed ratio), streaming, with
//! the resampler's startup delay trimmed so the output lines up with the input sample for sample
//! and has exactly `round(n * to / from)` samples.
//!
//! Filter: 256-tap windowed sinc (Blackman-Harris²), automatic cutoff, 128× oversampled table with
//! cubic interpolation — rubato's "best quality" settings. Measured quality is in the tests of
//! `tests/audio.rs` (`resampler_quality_*`).
use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{
    Async, FixedAsync, Indexing, Resampler, SincInterpolationParameters, SincInterpolationType, WindowFunction,
};

use super::AudioError;

/// Input frames handed to rubato per call.
const CHUNK: usize = 2048;

/// The number of output samples for `n` input samples: `round(n * to / from)` (half rounds up).
pub fn resampled_len(n: u64, from: u32, to: u32) -> u64 {
    if from == 0 {
        return 0;
    }
    let num = n as u128 * to as u128;
    ((num + from as u128 / 2) / from as u128) as u64
}

/// Resample a whole mono signal from `from` Hz to `to` Hz. The result has exactly
/// [`resampled_len`]`(samples.len(), from, to)` samples; equal rates return a copy.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>, AudioError> {
    let mut r = StreamResampler::new(from, to)?;
    let mut out = Vec::with_capacity(resampled_len(samples.len() as u64, from, to) as usize + 1);
    r.push(samples, &mut out)?;
    r.finish(&mut out)?;
    Ok(out)
}

/// A streaming mono resampler: feed any number of [`push`](Self::push) calls, then
/// [`finish`](Self::finish). The concatenated output equals [`resample`] of the concatenated input.
pub struct StreamResampler {
    from: u32,
    to: u32,
    inner: Option<Async<f32>>,
    /// Input not yet handed to rubato (fewer than `CHUNK` samples between calls).
    pending: Vec<f32>,
    out_buf: Vec<f32>,
    /// Output samples still to drop (rubato's startup delay).
    delay_left: usize,
    n_in: u64,
    n_out: u64,
}

impl StreamResampler {
    pub fn new(from: u32, to: u32) -> Result<Self, AudioError> {
        if from == 0 || to == 0 {
            return Err(AudioError::Resample { from, to, detail: "a sample rate of 0 Hz".into() });
        }
        let (inner, out_buf, delay_left) = if from == to {
            (None, Vec::new(), 0)
        } else {
            let params = SincInterpolationParameters {
                sinc_len: 256,
                f_cutoff: None,
                oversampling_factor: 128,
                interpolation: SincInterpolationType::Cubic,
                window: WindowFunction::BlackmanHarris2,
            };
            let r = Async::<f32>::new_sinc(to as f64 / from as f64, 1.0, &params, CHUNK, 1, FixedAsync::Input)
                .map_err(|e| AudioError::Resample { from, to, detail: e.to_string() })?;
            let out_buf = vec![0.0; r.output_frames_max()];
            let delay = r.output_delay();
            (Some(r), out_buf, delay)
        };
        Ok(Self { from, to, inner, pending: Vec::with_capacity(2 * CHUNK), out_buf, delay_left, n_in: 0, n_out: 0 })
    }

    /// Input samples pushed so far.
    pub fn samples_in(&self) -> u64 {
        self.n_in
    }

    /// Resample `input`, appending whatever output is ready to `out`.
    pub fn push(&mut self, input: &[f32], out: &mut Vec<f32>) -> Result<(), AudioError> {
        self.n_in += input.len() as u64;
        if self.inner.is_none() {
            out.extend_from_slice(input);
            self.n_out += input.len() as u64;
            return Ok(());
        }
        let mut rest = input;
        // Top up a partial chunk first, then run whole chunks straight from `input`.
        if !self.pending.is_empty() {
            let take = (CHUNK - self.pending.len()).min(rest.len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.pending.len() == CHUNK {
                let chunk = std::mem::take(&mut self.pending);
                self.run(&chunk, None, out)?;
                self.pending = chunk;
                self.pending.clear();
            }
        }
        while rest.len() >= CHUNK {
            self.run(&rest[..CHUNK], None, out)?;
            rest = &rest[CHUNK..];
        }
        self.pending.extend_from_slice(rest);
        Ok(())
    }

    /// Flush the tail: pad with silence until the output reaches exactly
    /// `round(n_in * to / from)` samples, then stop.
    pub fn finish(&mut self, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let target = resampled_len(self.n_in, self.from, self.to);
        if self.inner.is_some() {
            let start = out.len();
            let pending = std::mem::take(&mut self.pending);
            if !pending.is_empty() {
                self.run(&pending, Some(pending.len()), out)?;
            }
            let mut guard = 0;
            while self.n_out < target {
                self.run(&[], Some(0), out)?;
                guard += 1;
                if guard > 10_000 {
                    return Err(AudioError::Resample {
                        from: self.from,
                        to: self.to,
                        detail: "the resampler stopped producing output".into(),
                    });
                }
            }
            // Drop what the last padded chunk produced beyond the exact length.
            let excess = (self.n_out - target) as usize;
            let keep = out.len().saturating_sub(excess).max(start.min(out.len()));
            out.truncate(keep);
            self.n_out = target;
        }
        Ok(())
    }

    fn run(&mut self, input: &[f32], partial: Option<usize>, out: &mut Vec<f32>) -> Result<(), AudioError> {
        let (from, to) = (self.from, self.to);
        let err = |d: String| AudioError::Resample { from, to, detail: d };
        let Some(r) = self.inner.as_mut() else { return Ok(()) };
        // rubato wants a buffer of `input_frames_next()` frames; with a partial length it reads only
        // that many and pads with silence.
        let padded;
        let buf: &[f32] = if input.len() < CHUNK {
            let mut p = vec![0.0f32; CHUNK];
            p[..input.len()].copy_from_slice(input);
            padded = p;
            &padded
        } else {
            input
        };
        let inp = InterleavedSlice::new(buf, 1, CHUNK).map_err(|e| err(e.to_string()))?;
        let cap = self.out_buf.len();
        let mut outp = InterleavedSlice::new_mut(&mut self.out_buf, 1, cap).map_err(|e| err(e.to_string()))?;
        let indexing = Indexing { input_offset: 0, output_offset: 0, partial_len: partial, active_channels_mask: None };
        let (_, produced) = r.process_into_buffer(&inp, &mut outp, Some(&indexing)).map_err(|e| err(e.to_string()))?;
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        out.extend_from_slice(&self.out_buf[skip..produced]);
        self.n_out += (produced - skip) as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_lengths() {
        for &(n, from, to) in &[
            (44_100usize, 44_100, 16_000),
            (12_345, 48_000, 16_000),
            (7, 22_050, 16_000),
            (0, 44_100, 16_000),
            (1000, 8000, 16000),
            (999, 16000, 16000),
        ] {
            let x = vec![0.1f32; n];
            let y = resample(&x, from, to).unwrap();
            assert_eq!(y.len() as u64, resampled_len(n as u64, from, to), "{n} {from}->{to}");
        }
        assert_eq!(resampled_len(44_101, 44_100, 16_000), 16_000);
        assert_eq!(resampled_len(3, 2, 1), 2); // 1.5 rounds up
    }

    #[test]
    fn streaming_equals_whole() {
        let x: Vec<f32> = (0..50_000).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        let whole = resample(&x, 44_100, 16_000).unwrap();
        let mut r = StreamResampler::new(44_100, 16_000).unwrap();
        let mut out = Vec::new();
        for piece in x.chunks(1152) {
            r.push(piece, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        assert_eq!(out.len(), whole.len());
        let maxdiff = out.iter().zip(&whole).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(maxdiff < 1e-6, "streamed output differs by {maxdiff}");
    }

    #[test]
    fn zero_rate_is_an_error() {
        assert!(resample(&[0.0; 10], 0, 16_000).is_err());
    }
}
