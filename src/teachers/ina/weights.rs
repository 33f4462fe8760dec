//! The embedded weights: a safetensors file (written by `tools/ina/convert_weights.py`) compiled into the binary,
//! checked against its SHA-256 before anything is read, then parsed with every header field validated (offsets
//! inside the data, sizes matching shapes, F32 only, finite values), so corrupt bytes give a clear error, never a
//! panic.

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

use super::InaError;

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

#[derive(Debug, Clone)]
struct Entry {
    shape: Vec<usize>,
    begin: usize,
    end: usize,
}

/// A validated safetensors image in memory.
#[derive(Debug)]
pub struct Weights<'a> {
    data: &'a [u8],
    entries: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
    taken: BTreeSet<String>,
}

fn werr(m: impl std::fmt::Display) -> InaError {
    InaError::Weights(m.to_string())
}

impl<'a> Weights<'a> {
    /// Verify `bytes` against `sha256` (hex), then parse and validate the header.
    pub fn parse_checked(bytes: &'a [u8], sha256: &str) -> Result<Weights<'a>, InaError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(sha256.trim()) {
            return Err(werr(format!(
                "checksum mismatch: the weights hash to sha256:{actual}, expected sha256:{} (corrupt or replaced \
                 file; regenerate with tools/ina/convert_weights.py)",
                sha256.trim()
            )));
        }
        Weights::parse(bytes)
    }

    /// Parse and validate a safetensors image (no checksum; the caller checks `metadata()["format"]`).
    pub fn parse(bytes: &'a [u8]) -> Result<Weights<'a>, InaError> {
        if bytes.len() < 8 {
            return Err(werr(format!("{} bytes: too short for a safetensors file", bytes.len())));
        }
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
        let rest = (bytes.len() - 8) as u64;
        if header_len > rest || header_len > (16 << 20) {
            return Err(werr(format!(
                "declares a {header_len}-byte header but holds {} bytes (truncated or not safetensors)",
                bytes.len()
            )));
        }
        let header_end = 8 + header_len as usize;
        let json: serde_json::Value = serde_json::from_slice(&bytes[8..header_end])
            .map_err(|e| werr(format!("the header is not valid JSON: {e}")))?;
        let obj = json.as_object().ok_or_else(|| werr("the header is not a JSON object"))?;
        let data = &bytes[header_end..];
        let mut entries = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in obj {
            if name == "__metadata__" {
                if let Some(m) = v.as_object() {
                    for (k, v) in m {
                        metadata.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                    }
                }
                continue;
            }
            let e = parse_entry(v).map_err(|m| werr(format!("tensor '{name}': {m}")))?;
            if e.end > data.len() {
                return Err(werr(format!(
                    "tensor '{name}' ends at byte {} of the data but only {} are there (truncated)",
                    e.end,
                    data.len()
                )));
            }
            entries.insert(name.clone(), e);
        }
        Ok(Weights { data, entries, metadata, taken: BTreeSet::new() })
    }

    /// The file's `__metadata__`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Read tensor `name`, which must have exactly `shape` and finite values.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, InaError> {
        let out = self.take_raw(name)?;
        let e = &self.entries[name];
        if e.shape != shape {
            return Err(werr(format!("tensor '{name}' has shape {:?}, the model needs {shape:?}", e.shape)));
        }
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(werr(format!("tensor '{name}' holds a non-finite value at index {i}")));
        }
        Ok(out)
    }

    /// The shape of tensor `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Names of all tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// Read tensor `name` whatever its shape and values (goldens may hold −∞).
    pub fn take_raw(&mut self, name: &str) -> Result<Vec<f32>, InaError> {
        let e = self.entries.get(name).ok_or_else(|| werr(format!("missing tensor '{name}'")))?;
        let out: Vec<f32> =
            self.data[e.begin..e.end].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        self.taken.insert(name.to_string());
        Ok(out)
    }

    /// Tensors never read.
    pub fn unused(&self) -> Vec<String> {
        self.entries.keys().filter(|k| !self.taken.contains(*k)).cloned().collect()
    }
}

fn parse_entry(v: &serde_json::Value) -> Result<Entry, String> {
    match v.get("dtype").and_then(|d| d.as_str()) {
        Some("F32") => {}
        Some(other) => return Err(format!("dtype {other}, expected F32")),
        None => return Err("no dtype".into()),
    }
    let shape: Vec<usize> = v
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or("no shape")?
        .iter()
        .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or("a dimension is not a non-negative integer"))
        .collect::<Result<_, _>>()?;
    let offs = v.get("data_offsets").and_then(|s| s.as_array()).ok_or("no data_offsets")?;
    let [b, e] = offs.as_slice() else { return Err("data_offsets is not [begin, end]".into()) };
    let (begin, end) = match (b.as_u64(), e.as_u64()) {
        (Some(b), Some(e)) if b <= e => (b, e),
        _ => return Err("data_offsets is not an ordered pair of byte offsets".into()),
    };
    let count = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d as u64)).ok_or("shape overflows")?;
    let bytes = count.checked_mul(4).ok_or("shape overflows")?;
    if bytes != end - begin {
        return Err(format!("shape {shape:?} needs {bytes} bytes but data_offsets span {}", end - begin));
    }
    let begin = usize::try_from(begin).map_err(|_| "offset too large")?;
    let end = usize::try_from(end).map_err(|_| "offset too large")?;
    Ok(Entry { shape, begin, end })
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
