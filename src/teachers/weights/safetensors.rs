//! A checked reader for `model.safetensors`: the header is parsed and validated against the file's real size before
//! any tensor is read, so a truncated, lying or hostile file gives a clear error naming the tensor, never a panic or
//! a giant allocation. Tensors are then read one at a time, on request, with the shape the model expects.
//!
//! Format: 8 bytes little-endian header length N, N bytes of JSON
//! `{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`, then the data.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::WeightsError;

/// The largest JSON header we accept (the AST header is about 25 kB).
const MAX_HEADER: u64 = 64 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dtype {
    F32,
    F16,
    Bf16,
    /// Integer buffers PyTorch saves next to the weights (`relative_position_index`, `position_ids`,
    /// `num_batches_tracked`...): read with [`Checkpoint::take_i64`] or acknowledged with [`Checkpoint::skip`].
    I64,
    I32,
}

impl Dtype {
    fn size(self) -> u64 {
        match self {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::Bf16 => 2,
            Dtype::I64 => 8,
            Dtype::I32 => 4,
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    dtype: Dtype,
    shape: Vec<usize>,
    begin: u64,
    end: u64,
}

/// Where the bytes are: a file read tensor by tensor, or an image in memory (weights compiled into dams).
#[derive(Debug)]
enum Source {
    File(File),
    Bytes(Vec<u8>),
}

/// An opened, validated safetensors file.
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    source: Source,
    data_start: u64,
    entries: BTreeMap<String, Entry>,
    metadata: BTreeMap<String, String>,
    taken: BTreeSet<String>,
}

fn herr(path: &Path, m: impl std::fmt::Display) -> WeightsError {
    WeightsError(format!("{}: {m}", path.display()))
}

impl Checkpoint {
    /// Open and validate the header (names, dtypes, shapes, offsets inside the file, sizes matching shapes).
    pub fn open(path: &Path) -> Result<Checkpoint, WeightsError> {
        let mut file = File::open(path).map_err(|e| herr(path, format!("cannot open: {e}")))?;
        let total = file.metadata().map_err(|e| herr(path, e))?.len();
        let header = read_header(path, &mut file, total)?;
        Self::build(path, Source::File(file), total, &header)
    }

    /// Validate a safetensors image held in memory, as [`open`](Self::open) validates a file (`name` is how
    /// errors call it).
    pub fn from_bytes(bytes: Vec<u8>, name: &str) -> Result<Checkpoint, WeightsError> {
        let path = PathBuf::from(name);
        let total = bytes.len() as u64;
        let header = read_header(&path, &mut std::io::Cursor::new(&bytes[..]), total)?;
        Self::build(&path, Source::Bytes(bytes), total, &header)
    }

    fn build(path: &Path, source: Source, total: u64, header: &[u8]) -> Result<Checkpoint, WeightsError> {
        let json: serde_json::Value = serde_json::from_slice(header)
            .map_err(|e| herr(path, format!("the header is not valid JSON: {e} (not a safetensors file?)")))?;
        let obj = json.as_object().ok_or_else(|| herr(path, "the header is not a JSON object"))?;
        let data_start = 8 + header.len() as u64;
        let data_len = total - data_start;
        let mut entries = BTreeMap::new();
        let mut metadata = BTreeMap::new();
        for (name, v) in obj {
            if name == "__metadata__" {
                for (k, v) in v.as_object().into_iter().flatten() {
                    metadata.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
                continue;
            }
            let e = parse_entry(v).map_err(|m| herr(path, format!("tensor '{name}': {m}")))?;
            if e.end > data_len {
                return Err(herr(
                    path,
                    format!(
                        "tensor '{name}' ends at byte {} of the data but the file holds {data_len} (truncated)",
                        e.end
                    ),
                ));
            }
            entries.insert(name.clone(), e);
        }
        Ok(Checkpoint { path: path.to_path_buf(), source, data_start, entries, metadata, taken: BTreeSet::new() })
    }

    /// The file's `__metadata__` (string values).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of every tensor in the file.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// The shape of tensor `name`, if the file has it.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// Whether the file has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Read tensor `name`, which must have exactly `shape`, as f32 (F16/BF16 are widened); values must be finite.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        match self.entries.get(name) {
            None => {
                return Err(herr(&self.path, format!("missing tensor '{name}' (expected shape {shape:?})")));
            }
            Some(e) if e.shape != shape => {
                return Err(herr(
                    &self.path,
                    format!("tensor '{name}' has shape {:?}, but config.json implies {shape:?}", e.shape),
                ));
            }
            Some(_) => {}
        }
        let out = self.take_raw(name)?;
        if let Some(i) = out.iter().position(|v| !v.is_finite()) {
            return Err(herr(&self.path, format!("tensor '{name}' holds a non-finite value at index {i}")));
        }
        Ok(out)
    }

    /// Read tensor `name` as f32 whatever its shape and values (goldens may hold −∞).
    pub fn take_raw(&mut self, name: &str) -> Result<Vec<f32>, WeightsError> {
        let path = self.path.clone();
        let e = self.entries.get(name).cloned().ok_or_else(|| herr(&path, format!("missing tensor '{name}'")))?;
        let bytes = match &mut self.source {
            Source::File(file) => {
                let mut bytes = vec![0u8; (e.end - e.begin) as usize];
                file.seek(SeekFrom::Start(self.data_start + e.begin))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|err| herr(&path, format!("cannot read tensor '{name}': {err} (truncated?)")))?;
                bytes
            }
            // Offsets were checked against the image's length when it was opened.
            Source::Bytes(b) => b[(self.data_start + e.begin) as usize..(self.data_start + e.end) as usize].to_vec(),
        };
        let out: Vec<f32> = match e.dtype {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect(),
            Dtype::Bf16 => {
                bytes.chunks_exact(2).map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)).collect()
            }
            Dtype::I64 | Dtype::I32 => {
                return Err(herr(&path, format!("tensor '{name}' is an integer tensor where weights were expected")));
            }
        };
        self.taken.insert(name.to_string());
        Ok(out)
    }

    /// Read integer tensor `name` (I64 or I32), which must have exactly `shape`.
    pub fn take_i64(&mut self, name: &str, shape: &[usize]) -> Result<Vec<i64>, WeightsError> {
        let path = self.path.clone();
        let e = self.entries.get(name).cloned().ok_or_else(|| herr(&path, format!("missing tensor '{name}'")))?;
        if e.shape != shape {
            return Err(herr(&path, format!("tensor '{name}' has shape {:?}, expected {shape:?}", e.shape)));
        }
        let bytes = self.bytes(name, &e)?;
        let out = match e.dtype {
            Dtype::I64 => bytes.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8]))).collect(),
            Dtype::I32 => {
                bytes.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap_or([0; 4])) as i64).collect()
            }
            _ => return Err(herr(&path, format!("tensor '{name}' is not an integer tensor"))),
        };
        self.taken.insert(name.to_string());
        Ok(out)
    }

    /// Mark tensor `name` as deliberately unused (a buffer the model recomputes), if the file has it.
    pub fn skip(&mut self, name: &str) {
        if self.entries.contains_key(name) {
            self.taken.insert(name.to_string());
        }
    }

    fn bytes(&mut self, name: &str, e: &Entry) -> Result<Vec<u8>, WeightsError> {
        let path = self.path.clone();
        Ok(match &mut self.source {
            Source::File(file) => {
                let mut bytes = vec![0u8; (e.end - e.begin) as usize];
                file.seek(SeekFrom::Start(self.data_start + e.begin))
                    .and_then(|_| file.read_exact(&mut bytes))
                    .map_err(|err| herr(&path, format!("cannot read tensor '{name}': {err} (truncated?)")))?;
                bytes
            }
            Source::Bytes(b) => b[(self.data_start + e.begin) as usize..(self.data_start + e.end) as usize].to_vec(),
        })
    }

    /// Tensors that were never read (unexpected keys).
    pub fn unused(&self) -> Vec<String> {
        self.entries.keys().filter(|k| !self.taken.contains(*k)).cloned().collect()
    }
}

/// The JSON header after the 8-byte length, the length checked against `total` bytes before anything is allocated.
fn read_header(path: &Path, r: &mut dyn Read, total: u64) -> Result<Vec<u8>, WeightsError> {
    if total < 8 {
        return Err(herr(path, format!("{total} bytes: too short for a safetensors file (truncated?)")));
    }
    let mut len8 = [0u8; 8];
    r.read_exact(&mut len8).map_err(|e| herr(path, e))?;
    let header_len = u64::from_le_bytes(len8);
    if header_len > MAX_HEADER || header_len > total - 8 {
        return Err(herr(
            path,
            format!(
                "declares a {header_len}-byte header but the file has {total} bytes (truncated or not safetensors)"
            ),
        ));
    }
    let mut header = vec![0u8; header_len as usize];
    r.read_exact(&mut header).map_err(|e| herr(path, e))?;
    Ok(header)
}

fn parse_entry(v: &serde_json::Value) -> Result<Entry, String> {
    let dtype = match v.get("dtype").and_then(|d| d.as_str()) {
        Some("F32") => Dtype::F32,
        Some("F16") => Dtype::F16,
        Some("BF16") => Dtype::Bf16,
        Some("I64") => Dtype::I64,
        Some("I32") => Dtype::I32,
        Some(other) => return Err(format!("dtype {other} is not supported (F32, F16, BF16, I64 or I32)")),
        None => return Err("no dtype".into()),
    };
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
    let bytes = count.checked_mul(dtype.size()).ok_or("shape overflows")?;
    if bytes != end - begin {
        return Err(format!("shape {shape:?} needs {bytes} bytes but data_offsets span {}", end - begin));
    }
    Ok(Entry { dtype, shape, begin, end })
}

/// IEEE half → single.
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalise.
            let mut e = 127 - 15 + 1;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | ((e as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 127 - 15) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Write a safetensors file of F32 tensors (tests, and hostile-file fixtures built from good ones).
pub fn write_f32(path: &Path, tensors: &[(&str, Vec<usize>, &[f32])]) -> std::io::Result<()> {
    let mut header = serde_json::Map::new();
    let mut off = 0u64;
    for (name, shape, data) in tensors {
        let n = data.len() as u64 * 4;
        header.insert(
            (*name).to_string(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [off, off + n]}),
        );
        off += n;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header))?;
    while h.len() % 8 != 0 {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + off as usize);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (_, _, data) in tensors {
        for v in *data {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(path: &Path) -> String {
        Checkpoint::open(path).unwrap_err().to_string()
    }

    #[test]
    fn round_trip_and_checks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.safetensors");
        write_f32(&p, &[("a", vec![2, 3], &[1., 2., 3., 4., 5., 6.]), ("b", vec![1], &[7.])]).unwrap();
        let mut c = Checkpoint::open(&p).unwrap();
        assert_eq!(c.take("a", &[2, 3]).unwrap(), vec![1., 2., 3., 4., 5., 6.]);
        assert_eq!(c.unused(), vec!["b".to_string()]);
        let e = c.take("a", &[3, 2]).unwrap_err().to_string();
        assert!(e.contains("'a'") && e.contains("[2, 3]"), "{e}");
        let e = c.take("zzz", &[1]).unwrap_err().to_string();
        assert!(e.contains("missing tensor 'zzz'"), "{e}");
    }

    #[test]
    fn hostile_files_give_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.safetensors");
        write_f32(&good, &[("w", vec![4], &[1., 2., 3., 4.])]).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let p = dir.path().join("bad.safetensors");

        // Truncated data.
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        assert!(err(&p).contains("'w'") && err(&p).contains("truncated"), "{}", err(&p));
        // Truncated header / tiny file.
        std::fs::write(&p, &bytes[..5]).unwrap();
        assert!(err(&p).contains("too short"));
        std::fs::write(&p, &bytes[..20]).unwrap();
        assert!(err(&p).contains("header"), "{}", err(&p));
        // A huge declared header length.
        let mut huge = bytes.clone();
        huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&p, &huge).unwrap();
        assert!(err(&p).contains("header"));
        // A huge declared tensor: shape product overflows or exceeds the file.
        for hdr in [
            r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,16]}}"#,
            r#"{"w":{"dtype":"F32","shape":[1000000000],"data_offsets":[0,4000000000]}}"#,
            r#"{"w":{"dtype":"F32","shape":[4],"data_offsets":[8,0]}}"#,
            r#"{"w":{"dtype":"I16","shape":[8],"data_offsets":[0,16]}}"#,
            r#"{"w":{"dtype":"I64","shape":[3],"data_offsets":[0,16]}}"#,
            r#"{"w":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}}"#,
            r#"[1,2]"#,
        ] {
            let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
            f.extend_from_slice(hdr.as_bytes());
            f.extend_from_slice(&[0u8; 16]);
            std::fs::write(&p, &f).unwrap();
            let e = err(&p);
            assert!(e.contains("'w'") || e.contains("JSON object"), "{hdr}: {e}");
        }
        // Integer buffers (PyTorch's `relative_position_index`, `position_ids`...) open, read as integers only.
        let hdr = r#"{"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}}"#;
        let mut f = (hdr.len() as u64).to_le_bytes().to_vec();
        f.extend_from_slice(hdr.as_bytes());
        f.extend_from_slice(&7i64.to_le_bytes());
        f.extend_from_slice(&(-3i64).to_le_bytes());
        std::fs::write(&p, &f).unwrap();
        let mut c = Checkpoint::open(&p).unwrap();
        assert!(c.take("w", &[2]).unwrap_err().to_string().contains("integer tensor"));
        assert!(c.take_i64("w", &[3]).unwrap_err().to_string().contains("expected [3]"));
        assert_eq!(c.unused(), vec!["w".to_string()]);
        assert_eq!(c.take_i64("w", &[2]).unwrap(), vec![7, -3]);
        assert!(c.unused().is_empty());
        // Non-finite values are refused when read.
        write_f32(&p, &[("w", vec![2], &[1.0, f32::NAN])]).unwrap();
        let e = Checkpoint::open(&p).unwrap().take("w", &[2]).unwrap_err().to_string();
        assert!(e.contains("non-finite"), "{e}");
    }

    #[test]
    fn half_precision_widens() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert!(f16_to_f32(0x7c00).is_infinite());
    }
}
