//! The audio pipeline: decoding (WAV, FLAC, Ogg/Vorbis, MP3 with symphonia), downmixing to mono,
//! resampling to 16 kHz (rubato's sinc resampler), writing 16-bit PCM WAV, cutting long recordings
//! into windows ([`segment`]) and the acoustic statistics of a segment ([`stats`]).
//!
//! Nothing here knows about the terminal. Every failure is an [`AudioError`] naming the file.

pub mod decode;
pub mod resample;

use std::path::{Path, PathBuf};

pub use decode::{DecodeStream, Decoded, decode, load_mono_16k, write_wav_16k};
pub use resample::{StreamResampler, resample, resampled_len};

/// The sample rate every segment is stored and analysed at.
pub const TARGET_RATE: u32 = 16_000;

/// Why an audio file could not be read, resampled or written. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum AudioError {
    #[error("{}: file not found", .path.display())]
    NotFound { path: PathBuf },
    #[error("{}: the file is empty (0 bytes)", .path.display())]
    Empty { path: PathBuf },
    #[error("{}: cannot read: {source}", .path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{}: not an audio file, or a format dams cannot decode (WAV, FLAC, Ogg/Vorbis, MP3): {detail}", .path.display())]
    Unsupported { path: PathBuf, detail: String },
    #[error("{}: truncated or corrupt audio stream at {at_sec:.3} s (sample frame {at_frame}): {detail}", .path.display())]
    Corrupt { path: PathBuf, at_sec: f64, at_frame: u64, detail: String },
    #[error("{}: the audio stream declares zero channels", .path.display())]
    ZeroChannels { path: PathBuf },
    #[error("{}: the audio stream declares a sample rate of 0 Hz (or none)", .path.display())]
    ZeroSampleRate { path: PathBuf },
    #[error("{}: the audio stream holds no samples", .path.display())]
    NoSamples { path: PathBuf },
    #[error("resampling {from} Hz -> {to} Hz failed: {detail}")]
    Resample { from: u32, to: u32, detail: String },
    #[error("{}: cannot write: {detail}", .path.display())]
    Write { path: PathBuf, detail: String },
}

impl AudioError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            AudioError::NotFound { path }
            | AudioError::Empty { path }
            | AudioError::Io { path, .. }
            | AudioError::Unsupported { path, .. }
            | AudioError::Corrupt { path, .. }
            | AudioError::ZeroChannels { path }
            | AudioError::ZeroSampleRate { path }
            | AudioError::NoSamples { path }
            | AudioError::Write { path, .. } => Some(path),
            AudioError::Resample { .. } => None,
        }
    }
}
