//! The embedded weights: a safetensors file (written by `tools/ina/convert_weights.py`) compiled into the binary,
//! checked against its SHA-256 before anything is read, then parsed by the shared checked reader (offsets inside the
//! data, sizes matching shapes, finite values), so corrupt bytes give a clear error, never a panic.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use sha2::{Digest, Sha256};

use super::InaError;
use crate::teachers::weights::WeightsError;
use crate::teachers::weights::safetensors::Checkpoint;

/// The converted weights (3.2 MB).
pub static EMBEDDED: &[u8] = include_bytes!("../../../assets/ina/speech_music_noise_cnn.safetensors");
/// Their SHA-256 (hex), as written by the converter.
pub const EMBEDDED_SHA256: &str = include_str!("../../../assets/ina/speech_music_noise_cnn.safetensors.sha256");
/// The `format` the file's metadata must declare.
pub const FORMAT: &str = "dams-ina-smn/1";

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The expected SHA-256 of the embedded file (the sidecar's first token).
pub fn expected_sha256() -> &'static str {
    EMBEDDED_SHA256.split_whitespace().next().unwrap_or("")
}

/// A validated safetensors image in memory: the shared checked reader ([`Checkpoint::from_bytes`]) behind INA's
/// checksum.
#[derive(Debug)]
pub struct Weights<'a> {
    ck: Checkpoint,
    _bytes: PhantomData<&'a [u8]>,
}

fn werr(e: WeightsError) -> InaError {
    InaError::Weights(e.0)
}

impl<'a> Weights<'a> {
    /// Verify `bytes` against `sha256` (hex), then parse and validate the header.
    pub fn parse_checked(bytes: &'a [u8], sha256: &str) -> Result<Weights<'a>, InaError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(sha256.trim()) {
            return Err(InaError::Weights(format!(
                "checksum mismatch: the weights hash to sha256:{actual}, expected sha256:{} (corrupt or replaced \
                 file; regenerate with tools/ina/convert_weights.py)",
                sha256.trim()
            )));
        }
        Weights::parse(bytes)
    }

    /// Parse and validate a safetensors image (no checksum; the caller checks `metadata()["format"]`).
    pub fn parse(bytes: &'a [u8]) -> Result<Weights<'a>, InaError> {
        let ck = Checkpoint::from_bytes(bytes.to_vec(), "INA weights").map_err(werr)?;
        Ok(Weights { ck, _bytes: PhantomData })
    }

    /// The file's `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        self.ck.metadata()
    }

    /// Read tensor `name`, which must have exactly `shape` and finite values.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, InaError> {
        self.ck.take(name, shape).map_err(werr)
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.ck.shape(name)
    }

    /// Names of all tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.ck.names()
    }

    /// Read tensor `name` whatever its shape and values (goldens may hold −∞).
    pub fn take_raw(&mut self, name: &str) -> Result<Vec<f32>, InaError> {
        self.ck.take_raw(name).map_err(werr)
    }

    /// Tensors never read.
    pub fn unused(&self) -> Vec<String> {
        self.ck.unused()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_file_matches_its_checksum() {
        let w = Weights::parse_checked(EMBEDDED, expected_sha256()).unwrap();
        assert_eq!(w.metadata().get("classes").map(String::as_str), Some("speech,music,noise"));
    }

    #[test]
    fn corrupt_bytes_are_refused() {
        let mut bad = EMBEDDED.to_vec();
        let n = bad.len();
        bad[n - 5] ^= 0x40;
        let e = Weights::parse_checked(&bad, expected_sha256()).unwrap_err().to_string();
        assert!(e.contains("checksum mismatch"), "{e}");
        // Without the checksum, structural checks still catch truncation and junk.
        let e = Weights::parse(&EMBEDDED[..EMBEDDED.len() - 100]).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        assert!(Weights::parse(b"1234").unwrap_err().to_string().contains("too short"));
        let mut junk = 16u64.to_le_bytes().to_vec();
        junk.extend_from_slice(b"not json at all!");
        assert!(Weights::parse(&junk).unwrap_err().to_string().contains("JSON"));
    }
}
