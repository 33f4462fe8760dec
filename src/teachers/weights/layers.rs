//! Loaders for the layers most teachers are made of: PyTorch tensors of the expected shapes from a checked
//! [`TensorSource`] onto a burn device (`nn.Linear` transposed into burn's `[in, out]`, LayerNorm, plain parameters).

use burn::module::Param;
use burn::nn::{LayerNorm, LayerNormConfig, Linear};
use burn::tensor::{Device, Tensor, TensorData};

use super::TensorSource;
use super::WeightsError;

/// Reads tensors of the expected shapes from a checkpoint onto a device.
pub struct Loader<'a> {
    pub ckpt: &'a mut dyn TensorSource,
    pub device: &'a Device,
}

impl Loader<'_> {
    /// A tensor of exactly `shape`.
    pub fn raw<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Tensor<D>, WeightsError> {
        let v = self.ckpt.take(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(v, shape), self.device))
    }

    pub fn param<const D: usize>(&mut self, name: &str, shape: [usize; D]) -> Result<Param<Tensor<D>>, WeightsError> {
        Ok(Param::from_tensor(self.raw(name, shape)?))
    }

    /// A PyTorch `nn.Linear` (`weight [out, in]`, `bias [out]`) as a burn `Linear` (`weight [in, out]`).
    pub fn linear(&mut self, name: &str, d_in: usize, d_out: usize) -> Result<Linear, WeightsError> {
        self.linear_opt_bias(name, d_in, d_out, true)
    }

    /// [`linear`](Self::linear), with or without a bias (Whisper's key projection has none).
    pub fn linear_opt_bias(
        &mut self,
        name: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, WeightsError> {
        let w = self.ckpt.take(&format!("{name}.weight"), &[d_out, d_in])?;
        let mut t = vec![0f32; w.len()];
        for o in 0..d_out {
            for i in 0..d_in {
                t[i * d_out + o] = w[o * d_in + i];
            }
        }
        let weight = Param::from_tensor(Tensor::from_data(TensorData::new(t, [d_in, d_out]), self.device));
        let bias = if bias { Some(self.param(&format!("{name}.bias"), [d_out])?) } else { None };
        Ok(Linear { weight, bias })
    }

    /// A PyTorch `nn.LayerNorm` (`weight`, `bias`) with epsilon `eps`.
    pub fn layer_norm(&mut self, name: &str, d: usize, eps: f64) -> Result<LayerNorm, WeightsError> {
        let mut ln = LayerNormConfig::new(d).with_epsilon(eps).init(self.device);
        ln.gamma = self.param(&format!("{name}.weight"), [d])?;
        ln.beta = Some(self.param(&format!("{name}.bias"), [d])?);
        Ok(ln)
    }
}
