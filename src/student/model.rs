//! The CNN student: a compact convolutional network on log-mel spectrograms.
//!
//! Input `[batch, 1, n_mels, frames]` (normalised log-mel), three conv blocks (3×3 conv →
//! batch-norm → ReLU → 2×2 max-pool; the first conv has stride 2 so a 10-s segment of ~1000
//! frames is cheap on the CPU), then global average + max pooling over frequency and time,
//! and a linear layer to 3 logits (speech, music, noise).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Architecture settings (saved with every checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CnnConfig {
    pub n_mels: usize,
    /// Frames per example (inputs are tiled or cropped to this length).
    pub frames: usize,
    /// Channels of the first block; the next blocks double it.
    pub width: usize,
}

impl Default for CnnConfig {
    fn default() -> Self {
        // 10 s at a 10 ms hop with 25 ms windows.
        CnnConfig { n_mels: 64, frames: 998, width: 16 }
    }
}

#[derive(Module, Debug)]
pub struct Block {
    conv: Conv2d,
    norm: BatchNorm,
    pool: MaxPool2d,
}

impl Block {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Block {
        Block {
            conv: Conv2dConfig::new([c_in, c_out], [3, 3])
                .with_stride([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .with_bias(false)
                .init(device),
            norm: BatchNormConfig::new(c_out).init(device),
            pool: MaxPool2dConfig::new([2, 2]).init(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.pool.forward(relu(self.norm.forward(self.conv.forward(x))))
    }
}

/// The student network.
#[derive(Module, Debug)]
pub struct CnnStudent {
    b1: Block,
    b2: Block,
    b3: Block,
    head: Linear,
}

impl CnnStudent {
    /// A freshly initialised network (weights from the device's seeded generator).
    pub fn new(c: &CnnConfig, device: &Device) -> CnnStudent {
        let w = c.width.max(1);
        CnnStudent {
            b1: Block::new(1, w, 2, device),
            b2: Block::new(w, 2 * w, 1, device),
            b3: Block::new(2 * w, 4 * w, 1, device),
            head: LinearConfig::new(8 * w, 3).init(device),
        }
    }

    /// `x`: `[batch, 1, n_mels, frames]` → logits `[batch, 3]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let h = self.b3.forward(self.b2.forward(self.b1.forward(x)));
        let [b, c, f, t] = h.dims();
        let flat: Tensor<3> = h.reshape([b, c, f * t]);
        let avg: Tensor<2> = flat.clone().mean_dim(2).reshape([b, c]);
        let max: Tensor<2> = flat.max_dim(2).reshape([b, c]);
        self.head.forward(Tensor::cat(vec![avg, max], 1))
    }
}

/// Smallest input the three pooling stages accept (frequency and time).
pub const MIN_INPUT: usize = 16;
