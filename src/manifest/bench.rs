//! A generated DAMS manifest for `dams bench import`: long-form shows cut into 10 s windows with
//! a 5 s hop, whole shows assigned to splits, gold labels on dev/test, AST-style pseudo-labels
//! on train, float32-precision teacher scores everywhere.

use std::io::Write;

use super::{Spelling, fmt_float};

/// Windows per generated show (one hour at a 5 s hop).
const WINDOWS_PER_SHOW: usize = 720;

/// Benchmark data from the crate's deterministic generator.
struct Rng(crate::rng::SplitMix64);
impl Rng {
    /// Uniform in [0, 1), rounded to f32 like a model's sigmoid output.
    fn score(&mut self) -> f64 {
        self.0.f64() as f32 as f64
    }
}

/// Write a canonical manifest of `rows` rows to `w`.
pub fn generate_manifest<W: Write>(w: &mut W, rows: usize, seed: u64) -> std::io::Result<()> {
    let mut rng = Rng(crate::rng::SplitMix64::new(seed));
    writeln!(w, "{}", Spelling::Dams.header().join(","))?;
    for i in 0..rows {
        let show = i / WINDOWS_PER_SHOW;
        let k = i % WINDOWS_PER_SHOW;
        let start = 5.0 * k as f64;
        let split = match show % 10 {
            0 => "dev",
            1 => "test",
            9 => "unlabeled",
            _ => "train",
        };
        let scores = [rng.score(), rng.score(), rng.score()];
        let (source, labels) = match split {
            "dev" | "test" => ("gold", Some([scores[0] > 0.4, scores[1] > 0.5, scores[2] > 0.7])),
            "train" => ("ast_pseudo", Some([scores[0] >= 0.5, scores[1] >= 0.5, scores[0] < 0.5 && scores[1] < 0.5])),
            _ => ("none", None),
        };
        let l = |b: Option<bool>| match b {
            Some(true) => "1",
            Some(false) => "0",
            None => "",
        };
        writeln!(
            w,
            "radio_{show:05}.wav,radio_{show:05}_s{:04}.wav,{},{},{split},{source},{},{},{},{},{},{}",
            k + 1,
            fmt_float(start),
            fmt_float(start + 10.0),
            l(labels.map(|x| x[0])),
            l(labels.map(|x| x[1])),
            l(labels.map(|x| x[2])),
            fmt_float(scores[0]),
            fmt_float(scores[1]),
            fmt_float(scores[2]),
        )?;
    }
    Ok(())
}
