//! `ina`: inaSpeechSegmenter's speech/music/noise segmenter (Ina, MIT licence), ported to dams and embedded (no
//! download): SIDEKIT's log-mel front end ([`features`]), the energy activity detection and INA's Viterbi
//! smoothing ([`viterbi`]), and its 3.2 MB Keras CNN on burn ([`model`]), loaded from the converted weights compiled
//! into the binary and checked against their SHA-256 ([`weights`]).
//!
//! The pipeline, per recording (or per segment when used as a teacher), as `Segmenter(vad_engine='smn',
//! detect_gender=False)` runs it:
//! 1. 24-band log-mel and log-energy per 10 ms frame;
//! 2. energy activity: frames above `mean(loge) + ln 0.03`, smoothed by a 2-state Viterbi, every other frame kept →
//!    one decision per 20 ms (`noEnergy` or energetic);
//! 3. one 68-frame patch per 20 ms (first 21 bands, normalised per patch, edge-padded), classified by the CNN into
//!    softmax posteriors (speech, music, noise), only where energetic;
//! 4. per energetic stretch, a 3-state Viterbi with a 10⁻⁸⁰ switching penalty → one label per 20 ms;
//! 5. runs of labels → time-stamped segments (`speech` / `music` / `noise` / `noEnergy`).
//!
//! Classes are exclusive per 20 ms: speech over music is normally labelled `speech` only.
//!
//! Public API for the registry: [`ID`], [`open_embedded`], [`InaTeacher`] (implements
//! [`Teacher`](crate::teachers::Teacher)), [`InaTeacher::analyze`] (per-patch posteriors and labels),
//! [`segment_file`] / [`InaTeacher::segment`] (long recordings) and the writers [`write_segments_csv`],
//! [`write_audacity_labels`].

pub mod export;
pub mod features;
#[cfg(feature = "burn")]
pub mod model;
#[cfg(feature = "burn")]
mod teacher;
pub mod viterbi;
pub mod weights;

pub use export::{write_audacity_labels, write_segments_csv};
#[cfg(feature = "burn")]
pub use teacher::{EMBEDDING_KIND, InaTeacher, open_embedded, segment_file};

/// The teacher id (label source `ina_pseudo`).
pub const ID: &str = "ina";

/// INA's registration (see [`crate::catalog`]): embedded, no download.
pub const DESCRIPTOR: crate::teachers::TeacherDescriptor = crate::teachers::TeacherDescriptor {
    id: ID,
    family: false,
    description: "INA's speech/music/noise CNN (inaSpeechSegmenter, MIT), embedded (no download); per segment the \
                  mean CNN posterior over its energetic 20 ms patches",
    label_source: None,
    zero_shot: false,
    raw_vocab: Some(crate::teachers::raw::INA_PATCH_POSTERIORS),
    devices: &["cpu", "gpu", "gpu:software"],
    options: &[],
    install: None,
    state: |_| crate::teachers::InstallState::Embedded,
    open: |_, ctx| {
        #[cfg(feature = "burn")]
        {
            Ok(Box::new(open_embedded(&ctx.device)?))
        }
        #[cfg(not(feature = "burn"))]
        {
            let _ = ctx;
            Err(crate::teachers::TeacherError::Input {
                id: ID.into(),
                detail: "this build of dams has no model engine (rebuild with the `burn` feature)".into(),
            })
        }
    },
    instances: None,
};
/// Human-readable version of the embedded weights.
pub const VERSION: &str = "inaSpeechSegmenter 0.8 smn CNN (keras_speech_music_noise_cnn.hdf5, MIT)";

/// Why the INA model cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum InaError {
    #[error("INA weights: {0}")]
    Weights(String),
    #[error("INA input: {0}")]
    Input(String),
    #[error("INA: {0}")]
    Run(String),
}

/// A label per 20 ms, as INA names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    Speech,
    Music,
    Noise,
    /// Below the energy threshold (not classified).
    NoEnergy,
}

impl Label {
    /// The class of the CNN's output index (0 speech, 1 music, 2 noise).
    pub fn from_class(i: usize) -> Label {
        match i {
            0 => Label::Speech,
            1 => Label::Music,
            _ => Label::Noise,
        }
    }

    /// INA's spelling: `speech`, `music`, `noise`, `noEnergy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Speech => "speech",
            Label::Music => "music",
            Label::Noise => "noise",
            Label::NoEnergy => "noEnergy",
        }
    }

    /// Index into `[speech, music, noise, noEnergy]`.
    pub fn index(self) -> usize {
        match self {
            Label::Speech => 0,
            Label::Music => 1,
            Label::Noise => 2,
            Label::NoEnergy => 3,
        }
    }
}

/// A time-stamped segment: patches `start..stop` (20 ms each) with one label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub label: Label,
    pub start: usize,
    pub stop: usize,
}

impl Segment {
    pub fn start_sec(&self) -> f64 {
        self.start as f64 * features::PATCH_SEC
    }
    pub fn end_sec(&self) -> f64 {
        self.stop as f64 * features::PATCH_SEC
    }
}

/// Everything INA computes for one recording, per 20 ms patch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Analysis {
    /// 10 ms frames of the front end.
    pub frames: usize,
    /// Energy activity per patch (`false` = `noEnergy`).
    pub energy: Vec<bool>,
    /// Whether the normalised patch is finite (INA gives non-finite patches the posterior 0.5).
    pub finite: Vec<bool>,
    /// The CNN's softmax `[speech, music, noise]` per patch, before Viterbi: the model's raw output. Patches without
    /// energy are not classified (as in INA) and hold `[0, 0, 0]`; non-finite patches hold `[0.5; 3]`.
    pub posteriors: Vec<[f32; 3]>,
    /// The final label per patch (after both Viterbi passes).
    pub labels: Vec<Label>,
}

impl Analysis {
    /// Number of 20 ms patches.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// INA's segmentation: runs of equal labels.
    pub fn segments(&self) -> Vec<Segment> {
        viterbi::runs(&self.labels).into_iter().map(|(label, start, stop)| Segment { label, start, stop }).collect()
    }

    /// Fraction of patches labelled `[speech, music, noise, noEnergy]` (sums to 1; zeros when empty).
    pub fn fractions(&self) -> [f32; 4] {
        let mut c = [0usize; 4];
        for l in &self.labels {
            c[l.index()] += 1;
        }
        let n = self.labels.len().max(1) as f32;
        c.map(|v| v as f32 / n)
    }

    /// Mean posterior per class over the energetic, finite patches (zeros when there are none).
    pub fn mean_posteriors(&self) -> [f32; 3] {
        let mut s = [0f64; 3];
        let mut n = 0usize;
        for ((p, &e), &f) in self.posteriors.iter().zip(&self.energy).zip(&self.finite) {
            if e && f {
                n += 1;
                for c in 0..3 {
                    s[c] += p[c] as f64;
                }
            }
        }
        if n == 0 { [0.0; 3] } else { s.map(|v| (v / n as f64) as f32) }
    }

    /// The teacher's multi-label score per class `[speech, music, noise]`: the CNN's mean posterior over the
    /// energetic patches ([`mean_posteriors`](Self::mean_posteriors)). Chosen over the fraction of frames INA
    /// labels with the class ([`fractions`](Self::fractions)) because INA's labels are exclusive per 20 ms: music
    /// or noise under speech keeps a posterior of 0.1–0.4 but almost never wins a frame (measured in `docs/ina.md`:
    /// macro F1 0.91 vs 0.80 on the 40 dev clips at the thresholds given there).
    pub fn scores(&self) -> [f32; 3] {
        self.mean_posteriors()
    }

    /// Labels and segments from energy activity and posteriors (steps 4–5 of the pipeline).
    pub fn from_parts(frames: usize, energy: Vec<bool>, finite: Vec<bool>, posteriors: Vec<[f32; 3]>) -> Analysis {
        let mut labels = vec![Label::NoEnergy; energy.len()];
        for (active, start, stop) in viterbi::runs(&energy) {
            if !active {
                continue;
            }
            for (k, c) in viterbi::smooth_classes(&posteriors[start..stop]).into_iter().enumerate() {
                labels[start + k] = Label::from_class(c);
            }
        }
        Analysis { frames, energy, finite, posteriors, labels }
    }
}
