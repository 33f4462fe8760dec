//! Decoding with symphonia 0.6 into mono f32, and writing 16 kHz 16-bit PCM WAV with hound.
use std::fs::File;
use std::path::{Path, PathBuf};

use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::{AudioError, TARGET_RATE, resample};

/// A decoded file: mono samples (mean of the channels) at the file's own rate.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub samples: Vec<f32>,
    pub sample_rate: u32,
    /// Channels in the file (before the downmix).
    pub channels: u16,
}

impl Decoded {
    pub fn duration_sec(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

/// Decode a whole file to mono at its own sample rate.
pub fn decode(path: &Path) -> Result<Decoded, AudioError> {
    let mut s = DecodeStream::open(path)?;
    let mut samples = Vec::new();
    if let Some(n) = s.frames_hint() {
        samples.reserve(n.min(1 << 30) as usize);
    }
    while let Some(chunk) = s.next_chunk()? {
        samples.extend_from_slice(chunk);
    }
    if samples.is_empty() {
        return Err(AudioError::NoSamples { path: path.to_path_buf() });
    }
    Ok(Decoded { samples, sample_rate: s.sample_rate(), channels: s.channels() })
}

/// Decode, downmix to mono, resample to 16 kHz; samples clamped to [-1, 1]. The length is exactly
/// `round(frames * 16000 / rate)`.
pub fn load_mono_16k(path: &Path) -> Result<Vec<f32>, AudioError> {
    let d = decode(path)?;
    let mut out = resample(&d.samples, d.sample_rate, TARGET_RATE)?;
    for x in &mut out {
        *x = x.clamp(-1.0, 1.0);
    }
    Ok(out)
}

/// Write `samples` (16 kHz mono, [-1, 1]) as 16-bit PCM WAV (see [`f32_to_i16`]). The data goes to a
/// temporary file in the same folder which is then renamed over `path`, so an interrupted write
/// never leaves a half file under the final name.
pub fn write_wav_16k(path: &Path, samples: &[f32]) -> Result<(), AudioError> {
    let werr = |d: String| AudioError::Write { path: path.to_path_buf(), detail: d };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().ok_or_else(|| werr("no file name".into()))?;
    let tmp = dir.join(format!(".{}.{}.part", name.to_string_lossy(), std::process::id()));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: TARGET_RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let result = (|| -> Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        {
            let mut sw = w.get_i16_writer(samples.len() as u32);
            for &x in samples {
                sw.write_sample(f32_to_i16(x));
            }
            sw.flush()?;
        }
        w.finalize()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(werr(e.to_string()));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        werr(e.to_string())
    })
}

/// Float sample to 16-bit PCM: scale by 32768 (the inverse of the decoders' `k / 32768`, so
/// 16-bit sources go through decode → write bit-exactly), round, clamp to [-32768, 32767].
#[inline]
pub fn f32_to_i16(x: f32) -> i16 {
    if x.is_nan() {
        return 0;
    }
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// A file being decoded packet by packet into mono f32 chunks, so long recordings need not be
/// held in memory.
pub struct DecodeStream {
    path: PathBuf,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    sample_rate: u32,
    channels: u16,
    frames_hint: Option<u64>,
    /// Frames the stream may fall short of `frames_hint` without being called truncated (MP3
    /// VBRI headers count the encoder delay too).
    hint_slack: u64,
    /// Packet timestamps count sample frames (time base 1/rate): gaps between packets can be seen.
    pts_in_frames: bool,
    /// End timestamp of the previous packet, to spot packets the demuxer skipped.
    next_pts: Option<i64>,
    /// Frames delivered so far (after gapless trimming).
    frames: u64,
    interleaved: Vec<f32>,
    mono: Vec<f32>,
}

impl DecodeStream {
    /// Open and probe `path`; fails with a clear error if it is missing, empty or not audio.
    pub fn open(path: &Path) -> Result<Self, AudioError> {
        let p = || path.to_path_buf();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => AudioError::NotFound { path: p() },
            _ => AudioError::Io { path: p(), source: e },
        })?;
        if meta.is_dir() {
            return Err(AudioError::Unsupported { path: p(), detail: "this is a folder".into() });
        }
        if meta.len() == 0 {
            return Err(AudioError::Empty { path: p() });
        }
        let file = File::open(path).map_err(|e| AudioError::Io { path: p(), source: e })?;
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
        let mut hint = Hint::new();
        if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
            hint.with_extension(&ext.to_ascii_lowercase());
        }
        let format = symphonia::default::get_probe()
            .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
            .map_err(|e| match e {
                // A recognised container whose header is cut short or malformed.
                SymError::IoError(_) | SymError::DecodeError(_) => AudioError::Corrupt {
                    path: p(),
                    at_sec: 0.0,
                    at_frame: 0,
                    detail: format!("unreadable header: {}", describe(&e)),
                },
                _ => AudioError::Unsupported { path: p(), detail: describe(&e) },
            })?;
        let track = format
            .default_track(TrackType::Audio)
            .ok_or_else(|| AudioError::Unsupported { path: p(), detail: "no audio track".into() })?;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|c| c.audio())
            .ok_or_else(|| AudioError::Unsupported { path: p(), detail: "the track is not audio".into() })?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        if sample_rate == 0 {
            return Err(AudioError::ZeroSampleRate { path: p() });
        }
        let channels = params.channels.as_ref().map(|c| c.count()).unwrap_or(0);
        if channels == 0 {
            return Err(AudioError::ZeroChannels { path: p() });
        }
        let channels = u16::try_from(channels)
            .map_err(|_| AudioError::Unsupported { path: p(), detail: format!("{channels} channels") })?;
        let frames_hint = track.num_frames;
        let pts_in_frames = track.time_base.is_some_and(|tb| tb.numer.get() == 1 && tb.denom.get() == sample_rate);
        let hint_slack =
            if params.codec == symphonia::core::codecs::audio::well_known::CODEC_ID_MP3 { 4608 } else { 0 };
        let track_id = track.id;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| AudioError::Unsupported { path: p(), detail: describe(&e) })?;
        Ok(Self {
            path: p(),
            format,
            decoder,
            track_id,
            sample_rate,
            channels,
            frames_hint,
            hint_slack,
            pts_in_frames,
            next_pts: None,
            frames: 0,
            interleaved: Vec::new(),
            mono: Vec::new(),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn channels(&self) -> u16 {
        self.channels
    }

    /// Frames in the file, if the container says.
    pub fn frames_hint(&self) -> Option<u64> {
        self.frames_hint
    }

    /// Frames delivered so far.
    pub fn frames_done(&self) -> u64 {
        self.frames
    }

    /// Frames left in the stream, from packet durations, without decoding (consumes the stream).
    pub fn count_remaining_frames(&mut self) -> Result<u64, AudioError> {
        let mut n = 0u64;
        loop {
            match self.format.next_packet() {
                Ok(Some(p)) if p.track_id == self.track_id => n += p.dur.get(),
                Ok(Some(_)) => {}
                Ok(None) => return Ok(n),
                Err(e) => return Err(self.corrupt(describe(&e))),
            }
        }
    }

    fn corrupt(&self, detail: String) -> AudioError {
        AudioError::Corrupt {
            path: self.path.clone(),
            at_sec: self.frames as f64 / self.sample_rate as f64,
            at_frame: self.frames,
            detail,
        }
    }

    /// The next decoded chunk of mono samples, or `None` at the end of the stream.
    pub fn next_chunk(&mut self) -> Result<Option<&[f32]>, AudioError> {
        loop {
            let packet = match self.format.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => {
                    // The container states its length (FLAC STREAMINFO, WAV data size, MP3 Xing
                    // header...): fewer frames means frames were lost (truncation, or a corrupt
                    // frame the demuxer skipped), which would shift every later window.
                    if let Some(h) = self.frames_hint
                        && self.frames + self.hint_slack < h
                    {
                        let msg = format!(
                            "the stream ends after {} of the {} frames its header announces ({:.3} s missing): truncated or corrupt",
                            self.frames,
                            h,
                            (h - self.frames) as f64 / self.sample_rate as f64
                        );
                        return Err(self.corrupt(msg));
                    }
                    return Ok(None);
                }
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Err(self.corrupt("the file ends in the middle of a packet (truncated)".into()));
                }
                Err(e) => return Err(self.corrupt(describe(&e))),
            };
            if packet.track_id != self.track_id {
                continue;
            }
            // A demuxer that meets a corrupt frame resynchronises on the next one: the audio in
            // between is lost and everything after it would be shifted in time.
            if self.pts_in_frames {
                let pts = packet.pts.get();
                if let Some(expect) = self.next_pts
                    && pts > expect
                {
                    let msg = format!(
                        "{} frames ({:.3} s) are missing before this point (corrupt data skipped)",
                        pts - expect,
                        (pts - expect) as f64 / self.sample_rate as f64
                    );
                    return Err(self.corrupt(msg));
                }
                let block = packet.dur.get() + packet.trim_start.get() + packet.trim_end.get();
                self.next_pts = Some(pts.saturating_add(i64::try_from(block).unwrap_or(i64::MAX)));
            }
            let (trim_start, trim_end, dur) =
                (packet.trim_start.get() as usize, packet.trim_end.get() as usize, packet.dur.get() as usize);
            let buf = match self.decoder.decode(&packet) {
                Ok(b) => b,
                Err(e) => {
                    let msg = describe(&e);
                    return Err(self.corrupt(msg));
                }
            };
            let nch = buf.spec().channels().count();
            if nch == 0 {
                return Err(AudioError::ZeroChannels { path: self.path.clone() });
            }
            let frames = buf.frames();
            if buf.spec().rate() != self.sample_rate {
                let msg =
                    format!("the sample rate changes mid-stream ({} -> {} Hz)", self.sample_rate, buf.spec().rate());
                return Err(self.corrupt(msg));
            }
            buf.copy_to_vec_interleaved::<f32>(&mut self.interleaved);
            // Gapless playback: drop encoder delay / padding when the decoder has not done so
            // (decoded = valid + trims).
            let (lo, hi) = if frames == dur + trim_start + trim_end && (trim_start > 0 || trim_end > 0) {
                (trim_start, frames - trim_end)
            } else {
                (0, frames)
            };
            self.mono.clear();
            if nch == 1 {
                self.mono.extend_from_slice(&self.interleaved[lo..hi]);
            } else {
                let inv = 1.0 / nch as f32;
                self.mono.extend(
                    self.interleaved[lo * nch..hi * nch].chunks_exact(nch).map(|f| f.iter().sum::<f32>() * inv),
                );
            }
            if self.mono.is_empty() {
                continue;
            }
            // A float stream can hold NaN or infinity (found by tests/fuzz_inputs.rs): not audio.
            if let Some(i) = self.mono.iter().position(|x| !x.is_finite()) {
                let (at, v) = (self.frames + i as u64, self.mono[i]);
                return Err(AudioError::Corrupt {
                    path: self.path.clone(),
                    at_sec: at as f64 / self.sample_rate as f64,
                    at_frame: at,
                    detail: format!("a sample is {v} (a float stream must hold finite values)"),
                });
            }
            self.frames += self.mono.len() as u64;
            return Ok(Some(&self.mono));
        }
    }
}

fn describe(e: &SymError) -> String {
    match e {
        SymError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => "unexpected end of file".into(),
        SymError::Unsupported(what) => format!("unsupported: {what}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i16_conversion_round_trips_16_bit_values() {
        for k in [-32768i32, -32767, -16385, -1, 0, 1, 16384, 32767] {
            assert_eq!(f32_to_i16(k as f32 / 32768.0) as i32, k);
        }
        assert_eq!(f32_to_i16(1.0), 32767);
        assert_eq!(f32_to_i16(-1.5), -32768);
        assert_eq!(f32_to_i16(f32::NAN), 0);
    }
}
