//! The weights toolkit every teacher shares: checked safetensors reading ([`safetensors`]), PyTorch `.pt/.pth`
//! checkpoints read without running pickled code ([`torch`]), loaders for the common
//! layers onto a burn device ([`layers`]), installing checkpoints into dams' model cache ([`install`]) and the
//! Hugging Face hub cache layout that `dams teachers pull` fills and reads ([`super::hub`]).
//!
//! Every failure is a [`WeightsError`] naming the file and, where there is one, the tensor.

pub mod install;
#[cfg(feature = "burn")]
pub mod layers;
pub mod safetensors;
pub mod torch;

/// Where a model's tensors come from: a safetensors file ([`safetensors::Checkpoint`]) or a PyTorch checkpoint's
/// state dict ([`torch::TorchCheckpoint`]). The layer loaders ([`layers::Loader`]) read through it.
pub trait TensorSource {
    /// Tensor `name`, which must have exactly `shape`, as f32 with every value finite.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError>;
}

impl TensorSource for safetensors::Checkpoint {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        safetensors::Checkpoint::take(self, name, shape)
    }
}

impl TensorSource for torch::TorchCheckpoint {
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        torch::TorchCheckpoint::take(self, name, shape)
    }
}

/// A checkpoint that cannot be used, with the file (and tensor) it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeightsError(pub String);

impl From<WeightsError> for super::ast::AstError {
    fn from(e: WeightsError) -> Self {
        super::ast::AstError::Weights(e.0)
    }
}
