//! The weights toolkit every teacher shares: checked safetensors reading ([`safetensors`]), loaders for the common
//! layers onto a burn device ([`layers`]), installing checkpoints into dams' model cache ([`install`]) and the
//! Hugging Face hub cache layout that `dams teachers pull` fills and reads ([`super::hub`]).
//!
//! Every failure is a [`WeightsError`] naming the file and, where there is one, the tensor.

pub mod install;
#[cfg(feature = "burn")]
pub mod layers;
pub mod safetensors;

/// A checkpoint that cannot be used, with the file (and tensor) it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WeightsError(pub String);

impl From<WeightsError> for super::ast::AstError {
    fn from(e: WeightsError) -> Self {
        super::ast::AstError::Weights(e.0)
    }
}
