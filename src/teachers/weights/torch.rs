//! PyTorch checkpoints (`torch.save`, `.pt`/`.pth`, the zip container of PyTorch ≥ 1.6) read without Python and
//! without running pickled code.
//!
//! A checkpoint is a zip archive (entries stored, not compressed) holding `<root>/data.pkl`, the pickled object,
//! and one `<root>/data/<key>` entry per tensor storage. This module reads the zip directories itself (zip64
//! included), then interprets the pickle with a small stack machine that knows the opcodes `torch.save` writes
//! (protocol 2–5) and a fixed set of globals: `collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `torch._utils._rebuild_parameter` and the `torch.*Storage` types. Every other global is refused at open with its
//! name — nothing is imported or called, a pickle can only describe dicts, lists, numbers, strings and tensors — unless
//! the caller lists it as *opaque* (kept as a named placeholder that can be neither called nor read).
//!
//! Tensors are described at open (dtype, shape, strides, storage range, all checked against the archive) and read
//! only when asked for ([`TorchCheckpoint::take`]), so the parts of a checkpoint a teacher does not use (Whisper's
//! decoder) never reach memory. Every failure is a [`WeightsError`] naming the file and what is wrong with it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::WeightsError;

/// Largest `data.pkl` accepted (the pickle holds metadata only; tensors live in their own entries).
pub const MAX_PICKLE: u64 = 256 << 20;
/// Largest central directory accepted.
const MAX_DIRECTORY: u64 = 64 << 20;
/// Deepest nesting of containers in a pickle.
const MAX_DEPTH: u32 = 64;
/// Most values a pickle may build (memo copies included): bounds memory whatever the file says.
const MAX_NODES: u64 = 2_000_000;
/// Largest tensor accepted, in elements.
const MAX_ELEMENTS: u64 = 4 << 30;

fn err(path: &Path, m: impl std::fmt::Display) -> WeightsError {
    WeightsError(format!("{}: {m}", path.display()))
}

/// Element type of a storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DType {
    F16,
    Bf16,
    F32,
    F64,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
}

impl DType {
    fn from_storage(name: &str) -> Option<DType> {
        Some(match name {
            "HalfStorage" => DType::F16,
            "BFloat16Storage" => DType::Bf16,
            "FloatStorage" => DType::F32,
            "DoubleStorage" => DType::F64,
            "LongStorage" => DType::I64,
            "IntStorage" => DType::I32,
            "ShortStorage" => DType::I16,
            "CharStorage" => DType::I8,
            "ByteStorage" => DType::U8,
            "BoolStorage" => DType::Bool,
            _ => return None,
        })
    }

    pub fn size(self) -> usize {
        match self {
            DType::F64 | DType::I64 => 8,
            DType::F32 | DType::I32 => 4,
            DType::F16 | DType::Bf16 | DType::I16 => 2,
            DType::I8 | DType::U8 | DType::Bool => 1,
        }
    }
}

/// A tensor described by the pickle: a view into one storage.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    pub storage: String,
    pub dtype: DType,
    /// Offset into the storage, in elements.
    pub offset: u64,
    pub shape: Vec<usize>,
    pub stride: Vec<u64>,
}

impl TensorRef {
    pub fn numel(&self) -> u64 {
        self.shape.iter().map(|&s| s as u64).product()
    }
}

/// What a pickle can describe here.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    None,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// A list or a tuple.
    Seq(Vec<Value>, u32),
    /// A dict or an OrderedDict, in insertion order.
    Dict(Vec<(Value, Value)>, u32),
    Tensor(TensorRef),
    /// A global the caller allowed as opaque (or an object made from one): its `module.name`.
    Opaque(String),
    /// Internal: a known global before it is called.
    Global(String),
    /// Internal: a storage from a persistent id.
    Storage {
        key: String,
        dtype: DType,
        numel: u64,
    },
}

impl Value {
    fn depth(&self) -> u32 {
        match self {
            Value::Seq(_, d) | Value::Dict(_, d) => *d,
            _ => 0,
        }
    }

    /// The value under string key `key` of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items, _) => {
                items.iter().rev().find(|(k, _)| matches!(k, Value::Str(s) if s == key)).map(|x| &x.1)
            }
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// What kind of value this is, for messages.
    pub fn kind(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a bool".into(),
            Value::Int(_) => "an int".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Seq(..) => "a list/tuple".into(),
            Value::Dict(..) => "a dict".into(),
            Value::Tensor(_) => "a tensor".into(),
            Value::Opaque(n) => format!("an opaque '{n}' object"),
            Value::Global(n) => format!("the global '{n}'"),
            Value::Storage { .. } => "a storage".into(),
        }
    }

    fn nodes(&self) -> u64 {
        match self {
            Value::Seq(v, _) => 1 + v.iter().map(Value::nodes).sum::<u64>(),
            Value::Dict(v, _) => 1 + v.iter().map(|(a, b)| a.nodes() + b.nodes()).sum::<u64>(),
            Value::Str(s) => 1 + s.len() as u64 / 64,
            Value::Bytes(b) => 1 + b.len() as u64 / 64,
            _ => 1,
        }
    }
}

/// One stored entry of the archive.
#[derive(Debug, Clone)]
struct Entry {
    /// Offset of the local file header.
    header: u64,
    size: u64,
}

/// The parts of a zip archive this reader needs: entry name → (local header offset, size).
fn read_zip_directory(path: &Path, f: &mut File, len: u64) -> Result<HashMap<String, Entry>, WeightsError> {
    let io = |e: std::io::Error| err(path, format!("{e} (truncated?)"));
    let not_zip = || {
        err(
            path,
            "not a PyTorch zip checkpoint (no zip end-of-directory record: truncated, or a legacy/non-torch file; \
             re-save it with a current torch.save)",
        )
    };
    if len < 22 {
        return Err(not_zip());
    }
    let tail_len = len.min(22 + 65_535);
    let mut tail = vec![0u8; tail_len as usize];
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    let eocd = (0..=tail.len() - 22).rev().find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06]).ok_or_else(not_zip)?;
    let le16 = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as u64;
    let le32 = |b: &[u8], o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as u64;
    let le64 = |b: &[u8], o: usize| u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]));
    let e = &tail[eocd..];
    let mut count = le16(e, 10);
    let mut cd_size = le32(e, 12);
    let mut cd_offset = le32(e, 16);
    if count == 0xffff || cd_size == 0xffff_ffff || cd_offset == 0xffff_ffff {
        // zip64: the locator sits just before the end-of-directory record.
        let loc = eocd.checked_sub(20).ok_or_else(|| err(path, "zip64 locator missing"))?;
        let l = &tail[loc..loc + 20];
        if l[..4] != [0x50, 0x4b, 0x06, 0x07] {
            return Err(err(path, "zip64 locator missing or damaged"));
        }
        let off = le64(l, 8);
        if off.checked_add(56).is_none_or(|end| end > len) {
            return Err(err(path, "zip64 end-of-directory record beyond the end of the file (truncated?)"));
        }
        let mut r = [0u8; 56];
        f.seek(SeekFrom::Start(off)).map_err(io)?;
        f.read_exact(&mut r).map_err(io)?;
        if r[..4] != [0x50, 0x4b, 0x06, 0x06] {
            return Err(err(path, "zip64 end-of-directory record damaged"));
        }
        count = le64(&r, 32);
        cd_size = le64(&r, 40);
        cd_offset = le64(&r, 48);
    }
    if cd_size > MAX_DIRECTORY || cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
        return Err(err(
            path,
            format!(
                "zip directory ({cd_size} bytes at {cd_offset}) does not fit in the file's {len} bytes (truncated?)"
            ),
        ));
    }
    let mut cd = vec![0u8; cd_size as usize];
    f.seek(SeekFrom::Start(cd_offset)).map_err(io)?;
    f.read_exact(&mut cd).map_err(io)?;
    let mut entries = HashMap::new();
    let mut p = 0usize;
    for _ in 0..count {
        if p + 46 > cd.len() || cd[p..p + 4] != [0x50, 0x4b, 0x01, 0x02] {
            return Err(err(path, "zip directory damaged (entry count does not match its entries)"));
        }
        let flags = le16(&cd, p + 8);
        let method = le16(&cd, p + 10);
        let csize = le32(&cd, p + 20);
        let mut usize_ = le32(&cd, p + 24);
        let n = le16(&cd, p + 28) as usize;
        let m = le16(&cd, p + 30) as usize;
        let k = le16(&cd, p + 32) as usize;
        let mut header = le32(&cd, p + 42);
        let end = p + 46 + n + m + k;
        if end > cd.len() {
            return Err(err(path, "zip directory damaged (an entry runs past its end)"));
        }
        let name = String::from_utf8_lossy(&cd[p + 46..p + 46 + n]).into_owned();
        // zip64 extra field: the 64-bit values of the fields that are 0xffffffff, in order.
        let mut x = p + 46 + n;
        let xend = x + m;
        while x + 4 <= xend {
            let id = le16(&cd, x);
            let sz = le16(&cd, x + 2) as usize;
            if x + 4 + sz > xend {
                break;
            }
            if id == 1 {
                let mut q = x + 4;
                let mut next = |v: &mut u64| {
                    if *v == 0xffff_ffff && q + 8 <= x + 4 + sz {
                        *v = le64(&cd, q);
                        q += 8;
                    }
                };
                next(&mut usize_);
                let mut c = csize;
                next(&mut c);
                next(&mut header);
            }
            x += 4 + sz;
        }
        if flags & 1 != 0 {
            return Err(err(path, format!("zip entry '{name}' is encrypted")));
        }
        if method != 0 {
            return Err(err(
                path,
                format!("zip entry '{name}' is compressed (method {method}); torch.save stores entries uncompressed"),
            ));
        }
        entries.insert(name, Entry { header, size: usize_ });
        p = end;
    }
    Ok(entries)
}

/// A PyTorch checkpoint: its pickled object and lazy access to its tensors.
pub struct TorchCheckpoint {
    path: PathBuf,
    file: File,
    len: u64,
    root: Value,
    entries: HashMap<String, Entry>,
    prefix: String,
    /// The state dict chosen with [`TorchCheckpoint::select`]: name → tensor.
    tensors: BTreeMap<String, TensorRef>,
    taken: BTreeSet<String>,
}

impl std::fmt::Debug for TorchCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorchCheckpoint").field("path", &self.path).field("tensors", &self.tensors.len()).finish()
    }
}

impl TorchCheckpoint {
    /// Open a checkpoint and parse its pickle; no global outside the fixed set is accepted.
    pub fn open(path: &Path) -> Result<TorchCheckpoint, WeightsError> {
        Self::open_with(path, &[])
    }

    /// [`open`](Self::open), accepting the globals in `opaque` (`module.name`) as named placeholders.
    pub fn open_with(path: &Path, opaque: &[&str]) -> Result<TorchCheckpoint, WeightsError> {
        let mut file = File::open(path).map_err(|e| err(path, e))?;
        let len = file.metadata().map_err(|e| err(path, e))?.len();
        let entries = read_zip_directory(path, &mut file, len)?;
        let pkl: Vec<&String> =
            entries.keys().filter(|k| k.ends_with("/data.pkl") && k.matches('/').count() == 1).collect();
        let [pkl] = pkl.as_slice() else {
            return Err(err(
                path,
                format!("{} '<root>/data.pkl' entries (expected one): not a torch.save archive", pkl.len()),
            ));
        };
        let prefix = pkl[..pkl.len() - "data.pkl".len()].to_string();
        if let Some(e) = entries.get(&format!("{prefix}byteorder")) {
            let b = read_entry(path, &mut file, len, e, 16)?;
            if b != b"little" {
                return Err(err(
                    path,
                    format!("byte order '{}': only little-endian checkpoints are read", String::from_utf8_lossy(&b)),
                ));
            }
        }
        let e = entries[*pkl].clone();
        if e.size > MAX_PICKLE {
            return Err(err(path, format!("data.pkl is {} bytes (more than {MAX_PICKLE})", e.size)));
        }
        let bytes = read_entry(path, &mut file, len, &e, MAX_PICKLE)?;
        let root = Unpickler { path, data: &bytes, pos: 0, opaque, nodes: 0 }.run()?;
        let ck = TorchCheckpoint {
            path: path.to_path_buf(),
            file,
            len,
            root,
            entries,
            prefix,
            tensors: BTreeMap::new(),
            taken: BTreeSet::new(),
        };
        // Every tensor anywhere in the object must lie inside its storage entry (a truncated file fails here).
        let mut all = Vec::new();
        collect_tensors(&ck.root, &mut all);
        for t in all {
            ck.check_tensor(&t)?;
        }
        Ok(ck)
    }

    /// Open a state dict: the root dict (`key` = `None`) or the dict under `key` (`"model_state_dict"`, `"model"`),
    /// whose values must all be tensors.
    pub fn open_state_dict(path: &Path, key: Option<&str>) -> Result<TorchCheckpoint, WeightsError> {
        let mut c = Self::open(path)?;
        c.select(key)?;
        Ok(c)
    }

    /// Choose the state dict [`take`](Self::take) reads from (see [`open_state_dict`](Self::open_state_dict)).
    pub fn select(&mut self, key: Option<&str>) -> Result<(), WeightsError> {
        let sd = match key {
            None => &self.root,
            Some(k) => self.root.get(k).ok_or_else(|| {
                err(&self.path, format!("no '{k}' in the checkpoint (its root is {})", self.root.kind()))
            })?,
        };
        let Value::Dict(items, _) = sd else {
            return Err(err(&self.path, format!("the state dict is {}, not a dict", sd.kind())));
        };
        let mut tensors = BTreeMap::new();
        for (k, v) in items {
            let Value::Str(name) = k else {
                return Err(err(&self.path, format!("a state dict key is {}, not a string", k.kind())));
            };
            match v {
                Value::Tensor(t) => {
                    tensors.insert(name.clone(), t.clone());
                }
                other => {
                    return Err(err(
                        &self.path,
                        format!("state dict entry '{name}' is {}, not a tensor", other.kind()),
                    ));
                }
            }
        }
        self.tensors = tensors;
        self.taken.clear();
        Ok(())
    }

    /// The pickled object.
    pub fn root(&self) -> &Value {
        &self.root
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Names of the selected state dict's tensors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.tensors.keys().map(String::as_str)
    }

    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.tensors.get(name).map(|t| t.shape.as_slice())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    pub fn dtype(&self, name: &str) -> Option<DType> {
        self.tensors.get(name).map(|t| t.dtype)
    }

    /// Tensors of the selected state dict never read.
    pub fn unused(&self) -> Vec<String> {
        self.tensors.keys().filter(|k| !self.taken.contains(*k)).cloned().collect()
    }

    fn check_tensor(&self, t: &TensorRef) -> Result<(), WeightsError> {
        let e = self
            .entries
            .get(&format!("{}data/{}", self.prefix, t.storage))
            .ok_or_else(|| err(&self.path, format!("storage '{}' has no entry in the archive", t.storage)))?;
        let numel = t.numel();
        if numel > MAX_ELEMENTS {
            return Err(err(&self.path, format!("a tensor of shape {:?} is larger than dams accepts", t.shape)));
        }
        if numel == 0 {
            return Ok(());
        }
        let span = t
            .shape
            .iter()
            .zip(&t.stride)
            .try_fold(t.offset, |acc, (&s, &st)| acc.checked_add((s as u64 - 1).checked_mul(st)?))
            .and_then(|last| last.checked_add(1))
            .and_then(|n| n.checked_mul(t.dtype.size() as u64));
        match span {
            Some(bytes) if bytes <= e.size => Ok(()),
            _ => Err(err(
                &self.path,
                format!(
                    "a tensor of shape {:?} (offset {}, strides {:?}) reaches past its storage '{}' ({} bytes)",
                    t.shape, t.offset, t.stride, t.storage, e.size
                ),
            )),
        }
    }

    /// Read tensor `name` of the selected state dict, which must have exactly `shape`, as f32 (f16, bf16 and f64
    /// converted); every value must be finite.
    pub fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, WeightsError> {
        match self.tensors.get(name) {
            None => return Err(err(&self.path, format!("missing tensor '{name}' (expected shape {shape:?})"))),
            Some(t) if t.shape != shape => {
                return Err(err(
                    &self.path,
                    format!("tensor '{name}' has shape {:?}, but the model's dimensions imply {shape:?}", t.shape),
                ));
            }
            Some(_) => {}
        }
        let v = self.take_raw(name)?;
        if let Some(i) = v.iter().position(|x| !x.is_finite()) {
            return Err(err(&self.path, format!("tensor '{name}' holds a non-finite value at index {i}")));
        }
        Ok(v)
    }

    /// Read tensor `name` as f32, whatever its shape and values (row-major, strides applied).
    pub fn take_raw(&mut self, name: &str) -> Result<Vec<f32>, WeightsError> {
        let t = self.tensors.get(name).cloned().ok_or_else(|| err(&self.path, format!("missing tensor '{name}'")))?;
        let v = self.read_tensor(&t).map_err(|e| WeightsError(format!("{} (tensor '{name}')", e.0)))?;
        self.taken.insert(name.to_string());
        Ok(v)
    }

    /// Read any tensor of the object (e.g. one found under [`root`](Self::root)) as f32.
    pub fn read_tensor(&mut self, t: &TensorRef) -> Result<Vec<f32>, WeightsError> {
        self.check_tensor(t)?;
        let conv: fn(&[u8]) -> f32 = match t.dtype {
            DType::F32 => |b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            DType::F16 => |b| super::safetensors::f16_to_f32(u16::from_le_bytes([b[0], b[1]])),
            DType::Bf16 => |b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16),
            DType::F64 => |b| f64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])) as f32,
            other => return Err(err(&self.path, format!("a {other:?} tensor where floats are expected"))),
        };
        let n = t.numel() as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let es = t.dtype.size();
        let last = t.shape.iter().zip(&t.stride).map(|(&s, &st)| (s as u64 - 1) * st).sum::<u64>();
        let e = self.entries[&format!("{}data/{}", self.prefix, t.storage)].clone();
        let start = data_start(&self.path, &mut self.file, self.len, &e)?;
        let mut bytes = vec![0u8; ((last + 1) as usize) * es];
        self.file
            .seek(SeekFrom::Start(start + t.offset * es as u64))
            .and_then(|_| self.file.read_exact(&mut bytes))
            .map_err(|e| err(&self.path, format!("cannot read a tensor: {e} (truncated?)")))?;
        // Row-major order whatever the strides.
        let contiguous = {
            let mut want = 1u64;
            let mut ok = true;
            for (&s, &st) in t.shape.iter().zip(&t.stride).rev() {
                if s > 1 && st != want {
                    ok = false;
                }
                want *= s as u64;
            }
            ok
        };
        if contiguous {
            return Ok(bytes.chunks_exact(es).take(n).map(conv).collect());
        }
        let mut out = Vec::with_capacity(n);
        let mut idx = vec![0usize; t.shape.len()];
        for _ in 0..n {
            let off: u64 = idx.iter().zip(&t.stride).map(|(&i, &st)| i as u64 * st).sum();
            let o = off as usize * es;
            out.push(conv(&bytes[o..o + es]));
            for d in (0..idx.len()).rev() {
                idx[d] += 1;
                if idx[d] < t.shape[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        Ok(out)
    }
}

fn collect_tensors(v: &Value, out: &mut Vec<TensorRef>) {
    match v {
        Value::Tensor(t) => out.push(t.clone()),
        Value::Seq(items, _) => items.iter().for_each(|x| collect_tensors(x, out)),
        Value::Dict(items, _) => items.iter().for_each(|(a, b)| {
            collect_tensors(a, out);
            collect_tensors(b, out)
        }),
        _ => {}
    }
}

/// Where an entry's data starts (after its local header), checked against the file's length.
fn data_start(path: &Path, f: &mut File, len: u64, e: &Entry) -> Result<u64, WeightsError> {
    let mut h = [0u8; 30];
    f.seek(SeekFrom::Start(e.header))
        .and_then(|_| f.read_exact(&mut h))
        .map_err(|x| err(path, format!("cannot read a zip entry header: {x} (truncated?)")))?;
    if h[..4] != [0x50, 0x4b, 0x03, 0x04] {
        return Err(err(path, "zip entry header damaged"));
    }
    let n = u16::from_le_bytes([h[26], h[27]]) as u64;
    let m = u16::from_le_bytes([h[28], h[29]]) as u64;
    let start = e.header + 30 + n + m;
    if start.checked_add(e.size).is_none_or(|end| end > len) {
        return Err(err(
            path,
            format!("a zip entry ({} bytes at {start}) runs past the end of the file (truncated?)", e.size),
        ));
    }
    Ok(start)
}

fn read_entry(path: &Path, f: &mut File, len: u64, e: &Entry, max: u64) -> Result<Vec<u8>, WeightsError> {
    if e.size > max {
        return Err(err(path, format!("a {}-byte entry where at most {max} are expected", e.size)));
    }
    let start = data_start(path, f, len, e)?;
    let mut b = vec![0u8; e.size as usize];
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_exact(&mut b))
        .map_err(|x| err(path, format!("{x} (truncated?)")))?;
    Ok(b)
}

/// The stack machine. It builds values; it never imports or calls anything.
struct Unpickler<'a> {
    path: &'a Path,
    data: &'a [u8],
    pos: usize,
    opaque: &'a [&'a str],
    nodes: u64,
}

const STORAGE_TYPES: &str = "torch.*Storage";

impl Unpickler<'_> {
    fn fail(&self, m: impl std::fmt::Display) -> WeightsError {
        err(self.path, format!("data.pkl at byte {}: {m}", self.pos))
    }

    fn bytes(&mut self, n: usize) -> Result<&[u8], WeightsError> {
        if n > self.data.len() - self.pos {
            return Err(self.fail("the pickle ends early (truncated?)"));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> Result<u64, WeightsError> {
        let b = self.bytes(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> Result<String, WeightsError> {
        let rest = &self.data[self.pos..];
        let n = rest.iter().position(|&c| c == b'\n').ok_or_else(|| self.fail("unterminated line"))?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn seq(&self, items: Vec<Value>) -> Result<Value, WeightsError> {
        let d = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
        if d > MAX_DEPTH {
            return Err(self.fail("containers nested too deeply"));
        }
        Ok(Value::Seq(items, d))
    }

    fn global(&self, module: &str, name: &str) -> Result<Value, WeightsError> {
        let full = format!("{module}.{name}");
        let known = matches!(
            full.as_str(),
            "collections.OrderedDict" | "torch._utils._rebuild_tensor_v2" | "torch._utils._rebuild_parameter"
        ) || (module == "torch" && DType::from_storage(name).is_some());
        if known {
            Ok(Value::Global(full))
        } else if self.opaque.contains(&full.as_str()) {
            Ok(Value::Opaque(full))
        } else {
            Err(self.fail(format!(
                "the pickle refers to '{full}', which dams does not accept (it reads dicts, lists, numbers, strings and \
                 tensors — collections.OrderedDict, torch._utils._rebuild_tensor_v2/_rebuild_parameter, \
                 {STORAGE_TYPES} — and never imports or runs pickled code)"
            )))
        }
    }

    fn pop(&self, stack: &mut Vec<Value>) -> Result<Value, WeightsError> {
        stack.pop().ok_or_else(|| self.fail("stack underflow"))
    }

    fn pop_mark(&self, stack: &mut Vec<Value>, marks: &mut Vec<usize>) -> Result<Vec<Value>, WeightsError> {
        let m = marks.pop().ok_or_else(|| self.fail("no MARK"))?;
        if m > stack.len() {
            return Err(self.fail("MARK beyond the stack"));
        }
        Ok(stack.split_off(m))
    }

    fn set_items(&self, target: &mut Value, kv: Vec<Value>) -> Result<(), WeightsError> {
        let Value::Dict(items, d) = target else {
            return Err(self.fail(format!("SETITEM(S) on {}", target.kind())));
        };
        if kv.len() % 2 != 0 {
            return Err(self.fail("SETITEMS with an odd number of values"));
        }
        let mut it = kv.into_iter();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let nd = 1 + k.depth().max(v.depth());
            if nd > MAX_DEPTH {
                return Err(self.fail("containers nested too deeply"));
            }
            *d = (*d).max(nd);
            items.push((k, v));
        }
        Ok(())
    }

    fn call(&self, f: Value, args: Value) -> Result<Value, WeightsError> {
        let name = match f {
            Value::Global(n) => n,
            Value::Opaque(n) => return Ok(Value::Opaque(n)),
            other => return Err(self.fail(format!("REDUCE on {}", other.kind()))),
        };
        let Value::Seq(args, _) = args else { return Err(self.fail(format!("{name}: arguments are not a tuple"))) };
        match name.as_str() {
            "collections.OrderedDict" if args.is_empty() => Ok(Value::Dict(Vec::new(), 1)),
            "torch._utils._rebuild_parameter" => match args.into_iter().next() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => Err(self.fail("_rebuild_parameter without a tensor")),
            },
            "torch._utils._rebuild_tensor_v2" => {
                if !(6..=7).contains(&args.len()) {
                    return Err(self.fail(format!("_rebuild_tensor_v2 with {} arguments", args.len())));
                }
                let Value::Storage { key, dtype, numel: _ } = &args[0] else {
                    return Err(self.fail("_rebuild_tensor_v2 without a storage"));
                };
                let ints = |v: &Value, what: &str| -> Result<Vec<u64>, WeightsError> {
                    match v {
                        Value::Seq(x, _) => x
                            .iter()
                            .map(|i| match i {
                                Value::Int(i) if *i >= 0 => Ok(*i as u64),
                                _ => Err(self.fail(format!("tensor {what}: not a non-negative int"))),
                            })
                            .collect(),
                        _ => Err(self.fail(format!("tensor {what}: not a tuple"))),
                    }
                };
                let offset = match args[1] {
                    Value::Int(i) if i >= 0 => i as u64,
                    _ => return Err(self.fail("tensor offset: not a non-negative int")),
                };
                let shape = ints(&args[2], "size")?;
                let stride = ints(&args[3], "stride")?;
                if shape.len() != stride.len() || shape.len() > 8 {
                    return Err(self.fail(format!("tensor with {} sizes and {} strides", shape.len(), stride.len())));
                }
                if shape.iter().try_fold(1u64, |a, &s| a.checked_mul(s)).is_none_or(|n| n > MAX_ELEMENTS) {
                    return Err(self.fail(format!("a tensor of shape {shape:?} is larger than dams accepts")));
                }
                Ok(Value::Tensor(TensorRef {
                    storage: key.clone(),
                    dtype: *dtype,
                    offset,
                    shape: shape.into_iter().map(|s| s as usize).collect(),
                    stride,
                }))
            }
            other => Err(self.fail(format!("'{other}' called with unexpected arguments"))),
        }
    }

    fn persistent(&self, pid: Value) -> Result<Value, WeightsError> {
        let Value::Seq(p, _) = pid else { return Err(self.fail("persistent id is not a tuple")) };
        match p.as_slice() {
            [Value::Str(tag), Value::Global(ty), Value::Str(key), Value::Str(_location), Value::Int(numel)]
                if tag == "storage" =>
            {
                let dtype = ty
                    .strip_prefix("torch.")
                    .and_then(DType::from_storage)
                    .ok_or_else(|| self.fail(format!("storage type '{ty}'")))?;
                if key.is_empty() || key.contains('/') || key.contains("..") || *numel < 0 {
                    return Err(self.fail(format!("storage key '{key}'")));
                }
                Ok(Value::Storage { key: key.clone(), dtype, numel: *numel as u64 })
            }
            _ => Err(self.fail("persistent id is not ('storage', type, key, location, numel)")),
        }
    }

    fn run(mut self) -> Result<Value, WeightsError> {
        let mut stack: Vec<Value> = Vec::new();
        let mut marks: Vec<usize> = Vec::new();
        let mut memo: HashMap<u64, Value> = HashMap::new();
        loop {
            let op = self.bytes(1)?[0];
            match op {
                0x80 => {
                    let v = self.uint(1)?;
                    if v > 5 {
                        return Err(self.fail(format!("pickle protocol {v}")));
                    }
                }
                0x95 => {
                    self.uint(8)?;
                }
                b'.' => {
                    let v = self.pop(&mut stack)?;
                    return match v {
                        Value::Global(_) | Value::Storage { .. } => Err(self.fail("the pickle's object is not data")),
                        v => Ok(v),
                    };
                }
                b'(' => {
                    if marks.len() >= 1024 {
                        return Err(self.fail("too many MARKs"));
                    }
                    marks.push(stack.len())
                }
                b'}' => stack.push(Value::Dict(Vec::new(), 1)),
                b']' | b')' => stack.push(Value::Seq(Vec::new(), 1)),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.uint(1)? as i64;
                    stack.push(Value::Int(v))
                }
                b'M' => {
                    let v = self.uint(2)? as i64;
                    stack.push(Value::Int(v))
                }
                b'J' => {
                    let v = self.uint(4)? as u32 as i32 as i64;
                    stack.push(Value::Int(v))
                }
                0x8a => {
                    let n = self.uint(1)? as usize;
                    if n > 8 {
                        return Err(self.fail("an integer wider than 64 bits"));
                    }
                    let b = self.bytes(n)?;
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n);
                    }
                    stack.push(Value::Int(v))
                }
                b'G' => {
                    let b = self.bytes(8)?;
                    stack.push(Value::Float(f64::from_be_bytes(b.try_into().unwrap_or([0; 8]))))
                }
                b'X' | 0x8c | 0x8d | b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    let n = match op {
                        0x8c | b'U' | b'C' => self.uint(1)?,
                        0x8d | 0x8e => self.uint(8)?,
                        _ => self.uint(4)?,
                    };
                    if n > self.data.len() as u64 {
                        return Err(self.fail("a string longer than the pickle (truncated?)"));
                    }
                    let b = self.bytes(n as usize)?.to_vec();
                    let v = match op {
                        b'X' | 0x8c | 0x8d => Value::Str(String::from_utf8(b).map_err(|_| self.fail("invalid UTF-8"))?),
                        b'T' | b'U' => Value::Str(b.iter().map(|&c| c as char).collect()),
                        _ => Value::Bytes(b),
                    };
                    stack.push(v)
                }
                b'q' | b'r' | 0x94 => {
                    let idx = match op {
                        b'q' => self.uint(1)?,
                        b'r' => self.uint(4)?,
                        _ => memo.len() as u64,
                    };
                    let v = stack.last().ok_or_else(|| self.fail("memo of an empty stack"))?;
                    self.nodes += v.nodes();
                    if self.nodes > MAX_NODES {
                        return Err(self.fail("the pickle builds too many values (a hostile or broken file?)"));
                    }
                    let v = v.clone();
                    memo.insert(idx, v);
                }
                b'h' | b'j' => {
                    let idx = if op == b'h' { self.uint(1)? } else { self.uint(4)? };
                    let v = memo.get(&idx).ok_or_else(|| self.fail(format!("memo {idx} is empty")))?;
                    self.nodes += v.nodes();
                    if self.nodes > MAX_NODES {
                        return Err(self.fail("the pickle builds too many values (a hostile or broken file?)"));
                    }
                    stack.push(v.clone())
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    let g = self.global(&module, &name)?;
                    stack.push(g)
                }
                0x93 => {
                    let name = self.pop(&mut stack)?;
                    let module = self.pop(&mut stack)?;
                    let (Value::Str(module), Value::Str(name)) = (module, name) else {
                        return Err(self.fail("STACK_GLOBAL without two strings"));
                    };
                    let g = self.global(&module, &name)?;
                    stack.push(g)
                }
                b't' => {
                    let items = self.pop_mark(&mut stack, &mut marks)?;
                    let v = self.seq(items)?;
                    stack.push(v)
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        return Err(self.fail("stack underflow"));
                    }
                    let items = stack.split_off(stack.len() - n);
                    let v = self.seq(items)?;
                    stack.push(v)
                }
                b'a' | b'e' => {
                    let items =
                        if op == b'a' { vec![self.pop(&mut stack)?] } else { self.pop_mark(&mut stack, &mut marks)? };
                    let d_new = 1 + items.iter().map(Value::depth).max().unwrap_or(0);
                    match stack.last_mut() {
                        Some(Value::Seq(v, d)) => {
                            if d_new > MAX_DEPTH {
                                return Err(self.fail("containers nested too deeply"));
                            }
                            *d = (*d).max(d_new);
                            v.extend(items)
                        }
                        _ => return Err(self.fail("APPEND to something that is not a list")),
                    }
                }
                b's' => {
                    let v = self.pop(&mut stack)?;
                    let k = self.pop(&mut stack)?;
                    let target = stack.last_mut().ok_or_else(|| err(self.path, "SETITEM on an empty stack"))?;
                    let mut t = std::mem::replace(target, Value::None);
                    self.set_items(&mut t, vec![k, v])?;
                    *stack.last_mut().unwrap_or(&mut Value::None) = t;
                }
                b'u' => {
                    let kv = self.pop_mark(&mut stack, &mut marks)?;
                    let target = stack.last_mut().ok_or_else(|| err(self.path, "SETITEMS on an empty stack"))?;
                    let mut t = std::mem::replace(target, Value::None);
                    self.set_items(&mut t, kv)?;
                    *stack.last_mut().unwrap_or(&mut Value::None) = t;
                }
                b'R' => {
                    let args = self.pop(&mut stack)?;
                    let f = self.pop(&mut stack)?;
                    let v = self.call(f, args)?;
                    stack.push(v)
                }
                0x81 => {
                    let _args = self.pop(&mut stack)?;
                    match self.pop(&mut stack)? {
                        Value::Opaque(n) => stack.push(Value::Opaque(n)),
                        other => return Err(self.fail(format!("NEWOBJ of {}", other.kind()))),
                    }
                }
                b'b' => {
                    let state = self.pop(&mut stack)?;
                    match (stack.last(), &state) {
                        // An OrderedDict's attributes (a state dict's `_metadata`): not needed.
                        (Some(Value::Dict(..)), Value::Dict(..) | Value::None) => {}
                        (Some(Value::Opaque(_)), _) => {}
                        (Some(Value::Tensor(_)), Value::None | Value::Dict(..) | Value::Seq(..)) => {}
                        (Some(o), _) => return Err(self.fail(format!("BUILD on {}", o.kind()))),
                        (None, _) => return Err(self.fail("BUILD on an empty stack")),
                    }
                }
                b'Q' => {
                    let pid = self.pop(&mut stack)?;
                    let v = self.persistent(pid)?;
                    stack.push(v)
                }
                b'0' => {
                    self.pop(&mut stack)?;
                }
                b'1' => {
                    self.pop_mark(&mut stack, &mut marks)?;
                }
                b'2' => {
                    let v = stack.last().ok_or_else(|| self.fail("DUP of an empty stack"))?;
                    self.nodes += v.nodes();
                    if self.nodes > MAX_NODES {
                        return Err(self.fail("the pickle builds too many values (a hostile or broken file?)"));
                    }
                    stack.push(v.clone())
                }
                other => {
                    self.pos -= 1;
                    return Err(self.fail(format!("unsupported pickle opcode 0x{other:02x}")));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unpickle(data: &[u8], opaque: &[&str]) -> Result<Value, WeightsError> {
        Unpickler { path: Path::new("t.pkl"), data, pos: 0, opaque, nodes: 0 }.run()
    }

    #[test]
    fn plain_values_and_refused_globals() {
        // {'a': 1, 'b': [2.5, 'x'], 'c': (True, None)} at protocol 2.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00X\x01\x00\x00\x00xq\x04eX\x01\x00\x00\x00cq\x05\x88N\x86q\x06u.";
        let v = unpickle(p, &[]).unwrap();
        assert_eq!(v.get("a"), Some(&Value::Int(1)));
        assert!(
            matches!(v.get("b"), Some(Value::Seq(x, _)) if x[0] == Value::Float(2.5) && x[1] == Value::Str("x".into()))
        );
        assert!(matches!(v.get("c"), Some(Value::Seq(x, _)) if x == &vec![Value::Bool(true), Value::None]));
        // os.system('echo') — refused by name, never called.
        let evil = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echoq\x01\x85q\x02Rq\x03.";
        let e = unpickle(evil, &[]).unwrap_err().0;
        assert!(e.contains("'os.system'") && e.contains("never imports or runs"), "{e}");
        // An allowed opaque global stays a placeholder.
        let ns = b"\x80\x02cargparse\nNamespace\n)\x81}b.";
        assert_eq!(unpickle(ns, &["argparse.Namespace"]).unwrap(), Value::Opaque("argparse.Namespace".into()));
        assert!(unpickle(ns, &[]).is_err());
        // Negative LONG1, BININT.
        assert_eq!(unpickle(b"\x80\x02\x8a\x01\xff.", &[]).unwrap(), Value::Int(-1));
        assert_eq!(unpickle(b"\x80\x02J\xfe\xff\xff\xff.", &[]).unwrap(), Value::Int(-2));
    }

    #[test]
    fn hostile_pickles_are_errors_not_panics() {
        // Deep nesting, runaway memo copies, truncation, unknown opcodes.
        let mut deep = b"\x80\x02)".to_vec();
        deep.extend(std::iter::repeat_n(0x85u8, 100));
        deep.push(b'.');
        assert!(unpickle(&deep, &[]).unwrap_err().0.contains("nested too deeply"));
        let mut bomb = b"\x80\x02]q\x00".to_vec();
        for _ in 0..40 {
            bomb.extend(b"(h\x00h\x00h\x00h\x00tq\x00");
        }
        bomb.push(b'.');
        assert!(unpickle(&bomb, &[]).is_err());
        assert!(unpickle(b"\x80\x02X\xff\xff\xff\x7fab", &[]).unwrap_err().0.contains("truncated"));
        assert!(unpickle(b"\x80\x02\xf0.", &[]).unwrap_err().0.contains("opcode 0xf0"));
        assert!(unpickle(b"", &[]).is_err());
        assert!(unpickle(b"\x80\x02u.", &[]).is_err());
        // Every prefix of a valid pickle fails cleanly.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01X\x01\x00\x00\x00bq\x02]q\x03(G@\x04\x00\x00\x00\x00\x00\x00eu.";
        for n in 0..p.len() {
            assert!(unpickle(&p[..n], &[]).is_err());
        }
    }
}
