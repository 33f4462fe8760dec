//! Raw teacher outputs and their vocabularies.
//!
//! A run keeps each segment's raw model output (in `teacher_scores.logits`, an f32 vector) tagged, on the run, with
//! the vocabulary it is in (`teacher_runs.raw_vocab`): the 527 AudioSet logits of a tagger, the per-prompt
//! similarities of a zero-shot teacher, per-frame class posteriors... Speech / music / noise scores are derived from
//! it by the settings named in [`remappable`], so changing them re-derives the scores without running the model
//! ([`crate::teachers::remap`]), and `dams export-scores --raw` writes one column per output, named by
//! [`names`].

use serde_json::{Map, Value};

use super::audioset::{self, N_AUDIOSET, Pooling};

/// The 527 AudioSet logits, in the standard (`class_labels_indices.csv`) order.
pub const AUDIOSET_527: &str = "audioset-527";

/// INA's CNN posteriors per 20 ms patch, `[speech, music, noise]` × patches, flattened (zeros for patches below
/// the energy threshold, see [`crate::teachers::ina`]).
pub const INA_PATCH_POSTERIORS: &str = "ina-patch-posteriors";

/// A zero-shot teacher's cosine similarity per prompt group (CLAP: the three classes, then their negatives), the
/// groups named by the run's `groups` setting (see [`crate::teachers::clap::scoring`]).
pub const CLAP_PROMPT_SIMS: &str = "clap-prompt-sims";

/// The run settings a re-derivation of vocabulary `vocab` reads (the options `dams remap --option` may change).
pub fn remappable(vocab: &str) -> &'static [&'static str] {
    match vocab {
        AUDIOSET_527 => &["pooling"],
        CLAP_PROMPT_SIMS => &["scoring"],
        _ => &[],
    }
}

/// The name of each output of `vocab` (`len` outputs), for column headers: AudioSet display names; `out_<i>` for
/// vocabularies without names.
pub fn names(vocab: &str, len: usize) -> Vec<String> {
    match vocab {
        AUDIOSET_527 if len == N_AUDIOSET => audioset::classes().iter().map(|c| c.name.clone()).collect(),
        // The run's `groups` setting names them exactly; from the length alone: 3 classes, or 3 + 3 negatives.
        CLAP_PROMPT_SIMS if len == 3 || len == 6 => crate::teachers::clap::scoring::group_names([len == 6; 3]),
        INA_PATCH_POSTERIORS if len % 3 == 0 => {
            (0..len / 3).flat_map(|p| ["speech", "music", "noise"].map(|c| format!("patch{p}_{c}"))).collect()
        }
        _ => (0..len).map(|i| format!("out_{i}")).collect(),
    }
}

/// A raw output of `vocab` of the length a run with `settings` stores (zeros): [`rescore`] on it checks new settings
/// before anything is written.
pub fn probe(vocab: &str, settings: &Map<String, Value>) -> Vec<f32> {
    let n = match vocab {
        AUDIOSET_527 => N_AUDIOSET,
        CLAP_PROMPT_SIMS => settings.get("groups").and_then(Value::as_array).map_or(3, Vec::len),
        _ => 0,
    };
    vec![0.0; n]
}

/// `[speech, music, noise]` from one raw output of `vocab`, with the run settings `settings`.
pub fn rescore(vocab: &str, raw: &[f32], settings: &Map<String, Value>) -> Result<[f32; 3], String> {
    match vocab {
        AUDIOSET_527 => {
            let pooling: Pooling = match settings.get("pooling").and_then(Value::as_str) {
                Some(p) => p.parse()?,
                None => Pooling::default(),
            };
            audioset::collapse_logits(raw, pooling)
        }
        CLAP_PROMPT_SIMS => {
            use crate::teachers::clap::scoring;
            let s: scoring::Scoring = settings.get("scoring").and_then(Value::as_str).unwrap_or("softmax").parse()?;
            let groups: Vec<String> = match settings.get("groups").and_then(Value::as_array) {
                Some(g) => g.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
                None => scoring::group_names([false; 3]),
            };
            let scale =
                settings.get("logit_scale").and_then(Value::as_f64).ok_or("the run's settings have no logit_scale")?
                    as f32;
            scoring::score(raw, &groups, s, scale)
        }
        INA_PATCH_POSTERIORS => {
            // The teacher's score: the mean posterior over the energetic patches (all-zero patches are not).
            if raw.len() % 3 != 0 {
                return Err(format!("{} values are not [speech, music, noise] triples", raw.len()));
            }
            let (mut sum, mut n) = ([0f64; 3], 0usize);
            for p in raw.chunks_exact(3).filter(|p| p.iter().any(|v| *v != 0.0)) {
                for c in 0..3 {
                    sum[c] += p[c] as f64;
                }
                n += 1;
            }
            Ok(if n == 0 { [0.0; 3] } else { sum.map(|v| (v / n as f64) as f32) })
        }
        other => Err(format!("dams cannot derive speech/music/noise scores from raw outputs of kind '{other}'")),
    }
}

/// The part of a run's settings that decides what its scores mean: the settings without those that only say how
/// or on what it ran (device, splits, the run a remap read). Runs with the same key are comparable and share
/// thresholds; a key is canonical JSON (sorted keys).
pub fn scoring_key(settings: &str) -> String {
    const VOLATILE: [&str; 5] = ["device", "splits", "remapped_from", "batch_size", "via"];
    let mut m = match serde_json::from_str::<Value>(settings) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    for k in VOLATILE {
        m.remove(k);
    }
    // serde_json's Map is ordered by key: the serialisation is canonical.
    Value::Object(m).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scoring_keys_ignore_how_a_run_ran() {
        let a = scoring_key(r#"{"splits":"all","pooling":"max","device":"cpu"}"#);
        let b = scoring_key(r#"{"device":"gpu (x)","pooling":"max","remapped_from":3}"#);
        assert_eq!(a, b);
        assert_eq!(a, r#"{"pooling":"max"}"#);
        assert_ne!(a, scoring_key(r#"{"pooling":"noisy_or"}"#));
        assert_eq!(scoring_key("not json"), "{}");
    }

    #[test]
    fn audioset_raw_outputs_rescore_by_pooling() {
        let mut l = vec![-9.0f32; N_AUDIOSET];
        l[0] = 3.0;
        let mut s = Map::new();
        let noisy = rescore(AUDIOSET_527, &l, &s).unwrap();
        s.insert("pooling".into(), Value::from("max"));
        let max = rescore(AUDIOSET_527, &l, &s).unwrap();
        assert_ne!(noisy, max);
        assert_eq!(max, audioset::collapse_logits(&l, Pooling::Max).unwrap());
        assert!(rescore("nope", &l, &s).is_err());
        assert_eq!(names(AUDIOSET_527, N_AUDIOSET)[0], "Speech");
        assert_eq!(names("x", 2), ["out_0", "out_1"]);
    }

    #[test]
    fn clap_similarities_rescore_by_scoring_and_probe_checks_settings() {
        let groups = ["speech", "music", "noise", "speech_negative", "music_negative", "noise_negative"];
        let mut s = Map::new();
        s.insert("groups".into(), Value::from(groups.to_vec()));
        s.insert("logit_scale".into(), Value::from(10.0));
        s.insert("scoring".into(), Value::from("cosine"));
        // Cosine: (s + 1) / 2 per class.
        let raw = [0.2f32, -0.4, 0.0, 0.1, 0.3, -0.2];
        let c = rescore(CLAP_PROMPT_SIMS, &raw, &s).unwrap();
        assert!((c[0] - 0.6).abs() < 1e-6 && (c[1] - 0.3).abs() < 1e-6 && (c[2] - 0.5).abs() < 1e-6, "{c:?}");
        // Pairwise: σ(10 · (0.2 − 0.1)) = σ(1) = 0.731059 for speech.
        s.insert("scoring".into(), Value::from("pairwise"));
        let p = rescore(CLAP_PROMPT_SIMS, &raw, &s).unwrap();
        assert!((p[0] - 0.731_059).abs() < 1e-5, "{p:?}");
        assert_eq!(probe(CLAP_PROMPT_SIMS, &s).len(), 6);
        assert!(rescore(CLAP_PROMPT_SIMS, &probe(CLAP_PROMPT_SIMS, &s), &s).is_ok());
        // A run without negative prompts cannot be re-scored pairwise; an unknown scoring is refused.
        s.insert("groups".into(), Value::from(groups[..3].to_vec()));
        let e = rescore(CLAP_PROMPT_SIMS, &probe(CLAP_PROMPT_SIMS, &s), &s).unwrap_err();
        assert!(e.contains("needs negative prompts"), "{e}");
        s.insert("scoring".into(), Value::from("magic"));
        assert!(rescore(CLAP_PROMPT_SIMS, &probe(CLAP_PROMPT_SIMS, &s), &s).unwrap_err().contains("unknown scoring"));
        s.remove("logit_scale");
        s.insert("scoring".into(), Value::from("softmax"));
        assert!(rescore(CLAP_PROMPT_SIMS, &[0.0; 3], &s).unwrap_err().contains("logit_scale"));
    }
}
