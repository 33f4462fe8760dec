//! inaSpeechSegmenter's speech/music/noise CNN (`keras_speech_music_noise_cnn.hdf5`) as a burn module.
//!
//! Input `[B, 68, 21]` (normalised log-mel patches, frames × bands) → `[B, 1, 68, 21]`:
//! * Conv 7×4 → 64, BN, ReLU, MaxPool 4×2 stride 4×2 `same` (TF pads 1 row above and below) → `[B, 64, 16, 9]`
//! * Conv 3×3 → 128, BN, ReLU; Conv 3×3 → 128, BN, ReLU; MaxPool 2×2 `same` (1 column on the right) → `[B, 128, 6, 3]`
//! * Conv 3×3 → 256, BN, ReLU; MaxPool 4×1 `valid` → `[B, 256, 1, 1]` → flatten `[B, 256]`
//! * 4 × (Dense 256, BN, ReLU, Dropout (inference: identity)), Dense 3, softmax → `[speech, music, noise]`.
//!
//! Keras BatchNormalization (ε = 1e-3, moving statistics) is folded into the preceding convolution or dense layer
//! at load time (in f64): `w' = w·γ/√(σ²+ε)`, `b' = (b − μ)·γ/√(σ²+ε) + β`.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{relu, softmax};
use burn::tensor::module::{conv2d, max_pool2d};
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::InaError;
use super::features::{N_MELS, N_MELS_USED, PATCH_FRAMES};
use super::weights::Weights;

/// Keras' BatchNormalization epsilon in this model.
pub const BN_EPS: f64 = 1e-3;
/// Output classes, in the network's order.
pub const CLASSES: [&str; 3] = ["speech", "music", "noise"];

/// A convolution with its BatchNorm folded in.
#[derive(Module, Debug)]
pub struct ConvBn {
    weight: Param<Tensor<4>>,
    bias: Param<Tensor<1>>,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        relu(conv2d(x, self.weight.val(), Some(self.bias.val()), ConvOptions::new([1, 1], [0, 0], [1, 1], 1)))
    }
}

/// The whole network.
#[derive(Module, Debug)]
pub struct InaCnn {
    conv1: ConvBn,
    conv2: ConvBn,
    conv3: ConvBn,
    conv4: ConvBn,
    dense: Vec<Linear>,
    out: Linear,
}

/// BatchNorm scale and shift `(γ/√(σ²+ε), β − μ·γ/√(σ²+ε))` per channel, in f64.
fn bn_affine(w: &mut Weights<'_>, prefix: &str, n: usize) -> Result<(Vec<f64>, Vec<f64>), InaError> {
    let gamma = w.take(&format!("{prefix}.bn.gamma"), &[n])?;
    let beta = w.take(&format!("{prefix}.bn.beta"), &[n])?;
    let mean = w.take(&format!("{prefix}.bn.mean"), &[n])?;
    let var = w.take(&format!("{prefix}.bn.var"), &[n])?;
    let mut scale = Vec::with_capacity(n);
    let mut shift = Vec::with_capacity(n);
    for c in 0..n {
        if var[c] < 0.0 {
            return Err(InaError::Weights(format!("{prefix}.bn.var[{c}] is negative ({})", var[c])));
        }
        let s = gamma[c] as f64 / (var[c] as f64 + BN_EPS).sqrt();
        scale.push(s);
        shift.push(beta[c] as f64 - mean[c] as f64 * s);
    }
    Ok((scale, shift))
}

fn conv_bn(w: &mut Weights<'_>, name: &str, shape: [usize; 4], device: &Device) -> Result<ConvBn, InaError> {
    let [o, i, kh, kw] = shape;
    let weight = w.take(&format!("{name}.weight"), &shape)?;
    let bias = w.take(&format!("{name}.bias"), &[o])?;
    let (scale, shift) = bn_affine(w, name, o)?;
    let per = i * kh * kw;
    let wf: Vec<f32> = weight.iter().enumerate().map(|(k, &v)| (v as f64 * scale[k / per]) as f32).collect();
    let bf: Vec<f32> = (0..o).map(|c| (bias[c] as f64 * scale[c] + shift[c]) as f32).collect();
    Ok(ConvBn {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(wf, shape), device)),
        bias: Param::from_tensor(Tensor::from_data(TensorData::new(bf, [o]), device)),
    })
}

/// A Keras Dense (`kernel [in, out]`), with the following BatchNorm folded in when `bn`.
fn dense(
    w: &mut Weights<'_>,
    name: &str,
    d_in: usize,
    d_out: usize,
    bn: bool,
    device: &Device,
) -> Result<Linear, InaError> {
    let kernel = w.take(&format!("{name}.weight"), &[d_in, d_out])?;
    let bias = w.take(&format!("{name}.bias"), &[d_out])?;
    let (scale, shift) = if bn { bn_affine(w, name, d_out)? } else { (vec![1.0; d_out], vec![0.0; d_out]) };
    let wf: Vec<f32> = kernel.iter().enumerate().map(|(k, &v)| (v as f64 * scale[k % d_out]) as f32).collect();
    let bf: Vec<f32> = (0..d_out).map(|c| (bias[c] as f64 * scale[c] + shift[c]) as f32).collect();
    Ok(Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(wf, [d_in, d_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(bf, [d_out]), device))),
    })
}

impl InaCnn {
    /// Build the network from the converted weights (every tensor must be there with its shape, and no other).
    pub fn load(w: &mut Weights<'_>, device: &Device) -> Result<InaCnn, InaError> {
        let conv1 = conv_bn(w, "conv1", [64, 1, 7, 4], device)?;
        let conv2 = conv_bn(w, "conv2", [128, 64, 3, 3], device)?;
        let conv3 = conv_bn(w, "conv3", [128, 128, 3, 3], device)?;
        let conv4 = conv_bn(w, "conv4", [256, 128, 3, 3], device)?;
        let dense = (1..=4)
            .map(|i| self::dense(w, &format!("dense{i}"), 256, 256, true, device))
            .collect::<Result<Vec<_>, _>>()?;
        let out = self::dense(w, "out", 256, 3, false, device)?;
        let unused = w.unused();
        if !unused.is_empty() {
            return Err(InaError::Weights(format!("{} unexpected tensor(s), e.g. '{}'", unused.len(), unused[0])));
        }
        Ok(InaCnn { conv1, conv2, conv3, conv4, dense, out })
    }

    /// `[B, 68, 21]` patches → `[B, 3]` softmax posteriors (speech, music, noise).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<2> {
        let [b, t, f] = x.dims();
        debug_assert_eq!([t, f], [PATCH_FRAMES, N_MELS_USED]);
        let x = x.reshape([b, 1, t, f]);
        let x = self.conv1.forward(x);
        // TF `same` pooling: 62 rows → 16 windows of 4 from row −1 (one padded row above and below).
        let x = max_pool2d(x, MaxPoolOptions::new([4, 2]).with_stride([4, 2]).with_padding_pairs([(1, 1), (0, 0)]));
        self.tail(x)
    }

    /// Layers after the first pooling: `[B, 64, 16, 9]` → `[B, 3]` posteriors.
    fn tail(&self, x: Tensor<4>) -> Tensor<2> {
        softmax(self.out.forward(self.hidden(x)), 1)
    }

    /// Width of [`hidden`](Self::hidden): the last dense layer's activations.
    pub const HIDDEN: usize = 256;

    /// Layers after the first pooling up to the last dense layer (after its ReLU): `[B, 64, 16, 9]` → `[B, 256]`,
    /// the representation the output layer classifies — what a student head on the frozen INA network reads.
    fn hidden(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.conv2.forward(x);
        let x = self.conv3.forward(x);
        // 5 columns → 3 windows of 2, the last one padded on the right.
        let x = max_pool2d(x, MaxPoolOptions::new([2, 2]).with_stride([2, 2]).with_padding_pairs([(0, 0), (0, 1)]));
        let x = self.conv4.forward(x);
        let x = max_pool2d(x, MaxPoolOptions::new([4, 1]).with_stride([4, 1]));
        let [b, c, h, w] = x.dims();
        let mut h = x.reshape([b, c * h * w]);
        for d in &self.dense {
            h = relu(d.forward(h));
        }
        h
    }
}

/// One window of the shared path: its first frame and its normalisation (`None`: not finite, any output will do).
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub start: usize,
    pub stats: Option<(f32, f32)>,
}

impl InaCnn {
    /// The posteriors of many overlapping 68-frame windows of one feature sequence, computing the first
    /// convolution once per frame instead of once per window (≈ 31× less work for that layer; INA's windows overlap
    /// by 66 frames).
    ///
    /// Exact rewriting, not an approximation: a window is normalised by one scalar mean `m` and standard deviation
    /// `s`, the first convolution is linear and `valid`, so on window rows it equals `(conv(x) − m·Σw)/s + b` with
    /// `conv` computed once over the raw frames. Then `relu` of that affine map is increasing in `conv(x)` (s > 0),
    /// so the 4×2 max-pooling may be taken *before* it, on shared row maxima (4-row windows inside a window, the
    /// 3-row ones at its edges where TF's `same` pooling pads). The rest of the network runs per window as in
    /// [`forward`](Self::forward). `rows` are the source frames (see `features::patch_source`); every window must
    /// lie inside them.
    pub fn forward_windows(&self, rows: &[[f32; N_MELS]], windows: &[Window]) -> Tensor<2> {
        self.tail(self.first_block(rows, windows))
    }

    /// As [`forward_windows`](Self::forward_windows), the last dense layer's activations and the posteriors side by
    /// side: `[n, 256 + 3]`.
    pub fn forward_windows_hidden(&self, rows: &[[f32; N_MELS]], windows: &[Window]) -> Tensor<2> {
        let h = self.hidden(self.first_block(rows, windows));
        let p = softmax(self.out.forward(h.clone()), 1);
        Tensor::cat(vec![h, p], 1)
    }

    /// The first convolution, its ReLU and pooling of many windows, shared per frame (see
    /// [`forward_windows`](Self::forward_windows)): `[n, 64, 16, 9]`.
    fn first_block(&self, rows: &[[f32; N_MELS]], windows: &[Window]) -> Tensor<4> {
        let device = self.conv1.weight.val().device();
        let n = windows.len();
        assert!(n > 0, "forward_windows needs at least one window");
        let lo = windows.iter().map(|w| w.start).min().unwrap_or(0);
        let hi = windows.iter().map(|w| w.start).max().unwrap_or(0) + PATCH_FRAMES;
        assert!(hi <= rows.len(), "window past the end of the features");
        let span = &rows[lo..hi];
        // Centre on the finite values' mean so that `conv(x) − (m − g)·Σw` does not cancel large numbers; values
        // that are not finite only reach windows that are not finite themselves (replaced by the caller).
        let (mut sum, mut count) = (0f64, 0usize);
        for r in span {
            for &v in &r[..N_MELS_USED] {
                if v.is_finite() {
                    sum += v as f64;
                    count += 1;
                }
            }
        }
        let g = if count > 0 { (sum / count as f64) as f32 } else { 0.0 };
        let mut x = Vec::with_capacity(span.len() * N_MELS_USED);
        for r in span {
            x.extend(r[..N_MELS_USED].iter().map(|&v| if v.is_finite() { v - g } else { 0.0 }));
        }
        let t = span.len();
        let x = Tensor::<4>::from_data(TensorData::new(x, [1, 1, t, N_MELS_USED]), &device);
        let w1 = self.conv1.weight.val();
        let a = conv2d(x, w1.clone(), None, ConvOptions::new([1, 1], [0, 0], [1, 1], 1));
        // Row maxima: 4 rows (windows 1..=14 of each window) and 3 rows (windows 0 and 15), 2 columns, stride 2.
        let p4 = max_pool2d(a.clone(), MaxPoolOptions::new([4, 2]).with_stride([1, 2]));
        let p3 = max_pool2d(a, MaxPoolOptions::new([3, 2]).with_stride([1, 2]));
        let mut mid = Vec::with_capacity(n * 14);
        let mut edge = Vec::with_capacity(n * 2);
        let mut off = Vec::with_capacity(n);
        let mut inv = Vec::with_capacity(n);
        for w in windows {
            let s = (w.start - lo) as i64;
            mid.extend((1..15).map(|j| s + 4 * j - 1));
            edge.extend([s, s + 59]);
            let (m, sd) = w.stats.unwrap_or((g, 1.0));
            off.push(m - g);
            inv.push(1.0 / sd);
        }
        let mid = Tensor::<1, Int>::from_data(TensorData::new(mid, [n * 14]), &device);
        let edge = Tensor::<1, Int>::from_data(TensorData::new(edge, [n * 2]), &device);
        let [_, c, _, w] = p4.dims();
        let mid = p4.select(2, mid).reshape([c, n, 14, w]).swap_dims(0, 1);
        let edge = p3.select(2, edge).reshape([c, n, 2, w]).swap_dims(0, 1);
        let first = edge.clone().slice([0..n, 0..c, 0..1, 0..w]);
        let last = edge.slice([0..n, 0..c, 1..2, 0..w]);
        let pooled = Tensor::cat(vec![first, mid, last], 2);
        let ksum = w1.sum_dim(3).sum_dim(2).reshape([1, c, 1, 1]);
        let off = Tensor::<4>::from_data(TensorData::new(off, [n, 1, 1, 1]), &device);
        let inv = Tensor::<4>::from_data(TensorData::new(inv, [n, 1, 1, 1]), &device);
        let bias = self.conv1.bias.val().reshape([1, c, 1, 1]);
        relu((pooled - off * ksum) * inv + bias)
    }
}
