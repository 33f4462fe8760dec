//! `dams export`: the store as a DAMS manifest (CSV, optionally Parquet).
//!
//! Each segment's *effective* labels are written: its resolved gold label (the most recently
//! updated annotator wins) with `label_source = gold` if it has one, else the manifest's own
//! labels, source and scores. Rows are streamed in segment-id order (the import order).

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{ManifestError, Spelling, extra_from_json, fmt_float};
use crate::labels::{LabelSet, Split};
use crate::store::Store;
use crate::store::manifest::{SEGMENT_COLUMNS, segment_from_row};

/// Which rows to write.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowFilter {
    /// Only rows whose effective label source is not `none` (`blocs_smad_labels.csv`).
    pub labeled_only: bool,
    /// Only rows whose effective label source is this one (e.g. `gold`).
    pub source: Option<String>,
    /// Only these splits.
    pub splits: Option<Vec<Split>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOptions {
    pub spelling: Spelling,
    pub filter: RowFilter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExportSummary {
    pub path: String,
    pub rows: usize,
    pub extra_columns: Vec<String>,
}

/// One exported row.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportRow {
    pub raw_file: String,
    /// As written: a bare file name for segments directly in `segments/`, else data-relative.
    pub segment_path: String,
    pub start_time: f64,
    pub end_time: f64,
    pub split: Split,
    pub label_source: String,
    pub labels: Option<LabelSet>,
    pub scores: [Option<f64>; 3],
    /// Values of the extra columns, in the order of [`extra_columns`] (`None`: not set for this row).
    pub extra: Vec<Option<String>>,
}

/// The manifest form of a data-relative segment path: `segments/x.wav` → `x.wav` (what the DAMS
/// manifest stores); anything else stays data-relative.
pub fn manifest_path(segment_path: &str) -> &str {
    match segment_path.strip_prefix("segments/") {
        Some(rest) if !rest.contains('/') && !rest.is_empty() => rest,
        _ => segment_path,
    }
}

/// File name of a dated label snapshot: `<source>_<split-split>_<YYYYMMDD>.csv`, e.g.
/// `gold_dev-test_20260105.csv` (`all` when no split is named).
pub fn snapshot_file_name(source: &str, splits: &[Split], date: chrono::NaiveDate) -> String {
    let source: String =
        source.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect();
    let splits = if splits.is_empty() {
        "all".to_string()
    } else {
        splits.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("-")
    };
    format!("{source}_{splits}_{}.csv", date.format("%Y%m%d"))
}

/// The extra (non-DAMS) columns stored with any segment, in order of first appearance.
pub fn extra_columns(store: &Store) -> Result<Vec<String>, ManifestError> {
    let mut stmt =
        store.conn().prepare("SELECT segment_path, extra FROM segments WHERE extra IS NOT NULL ORDER BY id")?;
    let mut rows = stmt.query([])?;
    let mut cols: Vec<String> = Vec::new();
    let mut last = String::new();
    while let Some(r) = rows.next()? {
        let json: String = r.get(1)?;
        if json == last {
            continue;
        }
        let pairs = extra_from_json(&json).map_err(|e| ManifestError::BadExtra {
            segment_path: r.get(0).unwrap_or_default(),
            message: e.to_string(),
        })?;
        for (k, _) in pairs {
            if !cols.contains(&k) {
                cols.push(k);
            }
        }
        last = json;
    }
    Ok(cols)
}

/// Call `f` with every exported row (effective labels, filtered), in segment-id order.
pub fn for_each_row(
    store: &Store,
    filter: &RowFilter,
    extra_cols: &[String],
    mut f: impl FnMut(&ExportRow) -> Result<(), ManifestError>,
) -> Result<usize, ManifestError> {
    let gold: HashMap<i64, LabelSet> = store.resolved_gold()?.into_iter().collect();
    let mut stmt = store.conn().prepare(&format!("SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY id"))?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let s = segment_from_row(r)?;
        let (label_source, labels) = match gold.get(&s.id) {
            Some(&g) => ("gold".to_string(), Some(g)),
            None => (s.label_source.as_str().to_string(), s.labels),
        };
        if filter.labeled_only && label_source == "none" {
            continue;
        }
        if filter.source.as_deref().is_some_and(|src| src != label_source) {
            continue;
        }
        if filter.splits.as_ref().is_some_and(|sp| !sp.contains(&s.split)) {
            continue;
        }
        let mut extra = vec![None; extra_cols.len()];
        if let Some(json) = &s.extra {
            let pairs = extra_from_json(json).map_err(|e| ManifestError::BadExtra {
                segment_path: s.segment_path.clone(),
                message: e.to_string(),
            })?;
            for (k, v) in pairs {
                if let Some(i) = extra_cols.iter().position(|c| *c == k) {
                    extra[i] = Some(v);
                }
            }
        }
        let row = ExportRow {
            raw_file: s.raw_file.clone(),
            segment_path: manifest_path(&s.segment_path).to_string(),
            start_time: s.start_time,
            end_time: s.end_time,
            split: s.split,
            label_source,
            labels,
            scores: s.scores,
            extra,
        };
        f(&row)?;
        n += 1;
    }
    Ok(n)
}

/// Write the manifest as CSV to `w`. Returns the number of rows and the extra columns.
pub fn write_csv<W: Write>(
    store: &Store,
    w: W,
    opts: &ExportOptions,
    shown: &str,
) -> Result<ExportSummary, ManifestError> {
    let extra_cols = extra_columns(store)?;
    let werr = |e: csv::Error| ManifestError::Write { path: shown.to_string(), err: e.into() };
    let mut wtr = csv::WriterBuilder::new().terminator(csv::Terminator::Any(b'\n')).from_writer(w);
    let mut header: Vec<&str> = opts.spelling.header().to_vec();
    header.extend(extra_cols.iter().map(String::as_str));
    wtr.write_record(&header).map_err(werr)?;
    let label = |l: Option<LabelSet>, i: usize| match l {
        Some(l) => if l.to_array()[i] { "1" } else { "0" }.to_string(),
        None => String::new(),
    };
    let score = |x: Option<f64>| x.map(fmt_float).unwrap_or_default();
    let rows = for_each_row(store, &opts.filter, &extra_cols, |r| {
        let mut rec: Vec<String> = vec![
            r.raw_file.clone(),
            r.segment_path.clone(),
            fmt_float(r.start_time),
            fmt_float(r.end_time),
            r.split.as_str().to_string(),
            r.label_source.clone(),
            label(r.labels, 0),
            label(r.labels, 1),
            label(r.labels, 2),
            score(r.scores[0]),
            score(r.scores[1]),
            score(r.scores[2]),
        ];
        rec.extend(r.extra.iter().map(|v| v.clone().unwrap_or_default()));
        wtr.write_record(&rec).map_err(werr)
    })?;
    wtr.flush().map_err(|err| ManifestError::Write { path: shown.to_string(), err })?;
    Ok(ExportSummary { path: shown.to_string(), rows, extra_columns: extra_cols })
}

/// Write `path` through a temporary file in the same folder and rename it into place, so a
/// failed export never leaves a half-written file where the previous one was. Anything that is
/// not a regular file (a device such as `/dev/null`, a pipe, a symbolic link) is written in place.
pub fn write_atomic<T>(
    path: &Path,
    f: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, ManifestError>,
) -> Result<T, ManifestError> {
    let shown = path.display().to_string();
    let werr = |err| ManifestError::Write { path: shown.clone(), err };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(werr)?;
    }
    // Devices, pipes and symbolic links (`/dev/null`, `/dev/stdout`, a link to a shared file)
    // are written in place: renaming over them would replace them.
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.file_type().is_file()) {
        let file = std::fs::OpenOptions::new().write(true).truncate(true).open(path).map_err(werr)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        let out = f(&mut w)?;
        w.flush().map_err(werr)?;
        return Ok(out);
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "export".into());
    let tmp: PathBuf = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let file = std::fs::File::create(&tmp).map_err(werr)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 16, file);
        let out = f(&mut w)?;
        let file = w.into_inner().map_err(|e| werr(e.into_error()))?;
        file.sync_all().map_err(werr)?;
        Ok(out)
    })();
    match result {
        Ok(out) => {
            std::fs::rename(&tmp, path).map_err(werr)?;
            Ok(out)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// Write the manifest CSV to a file (atomically).
pub fn export_csv(store: &Store, path: &Path, opts: &ExportOptions) -> Result<ExportSummary, ManifestError> {
    let shown = path.display().to_string();
    write_atomic(path, |w| write_csv(store, w, opts, &shown))
}

#[cfg(feature = "parquet")]
pub use self::parquet_out::{export_parquet, write_parquet};

#[cfg(feature = "parquet")]
mod parquet_out {
    use std::sync::Arc;

    use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int32Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::*;

    /// Rows per row group (bounds the memory of an export).
    const ROW_GROUP: usize = 64 * 1024;

    fn col(
        name: &str,
        physical: PhysicalType,
        logical: Option<LogicalType>,
        optional: bool,
    ) -> parquet::errors::Result<Arc<Type>> {
        Ok(Arc::new(
            Type::primitive_type_builder(name, physical)
                .with_repetition(if optional { Repetition::OPTIONAL } else { Repetition::REQUIRED })
                .with_logical_type(logical)
                .build()?,
        ))
    }

    /// Column buffers of one row group.
    #[derive(Default)]
    struct Buffers {
        strings: [Vec<ByteArray>; 4], // raw_file, segment_path, split, label_source
        times: [Vec<f64>; 2],
        labels: [Vec<i32>; 3],
        label_defs: Vec<i16>,
        scores: [Vec<f64>; 3],
        score_defs: [Vec<i16>; 3],
        extras: Vec<(Vec<ByteArray>, Vec<i16>)>,
        rows: usize,
    }

    impl Buffers {
        fn push(&mut self, r: &ExportRow) {
            self.strings[0].push(ByteArray::from(r.raw_file.as_str()));
            self.strings[1].push(ByteArray::from(r.segment_path.as_str()));
            self.strings[2].push(ByteArray::from(r.split.as_str()));
            self.strings[3].push(ByteArray::from(r.label_source.as_str()));
            self.times[0].push(r.start_time);
            self.times[1].push(r.end_time);
            match r.labels {
                Some(l) => {
                    for (i, b) in l.to_array().into_iter().enumerate() {
                        self.labels[i].push(b as i32);
                    }
                    self.label_defs.push(1);
                }
                None => self.label_defs.push(0),
            }
            for i in 0..3 {
                match r.scores[i] {
                    Some(x) => {
                        self.scores[i].push(x);
                        self.score_defs[i].push(1);
                    }
                    None => self.score_defs[i].push(0),
                }
            }
            if self.extras.len() < r.extra.len() {
                self.extras.resize_with(r.extra.len(), Default::default);
            }
            for (i, v) in r.extra.iter().enumerate() {
                match v {
                    Some(v) => {
                        self.extras[i].0.push(ByteArray::from(v.as_str()));
                        self.extras[i].1.push(1);
                    }
                    None => self.extras[i].1.push(0),
                }
            }
            self.rows += 1;
        }

        fn flush<W: Write + Send>(
            &mut self,
            w: &mut SerializedFileWriter<W>,
            n_extra: usize,
        ) -> parquet::errors::Result<()> {
            if self.rows == 0 {
                return Ok(());
            }
            self.extras.resize_with(n_extra, Default::default);
            let mut rg = w.next_row_group()?;
            macro_rules! column {
                ($ty:ty, $vals:expr, $defs:expr) => {{
                    let mut c = rg.next_column()?.ok_or_else(|| {
                        parquet::errors::ParquetError::General("schema has fewer columns than written".into())
                    })?;
                    c.typed::<$ty>().write_batch($vals, $defs, None)?;
                    c.close()?;
                }};
            }
            column!(ByteArrayType, &self.strings[0], None);
            column!(ByteArrayType, &self.strings[1], None);
            column!(DoubleType, &self.times[0], None);
            column!(DoubleType, &self.times[1], None);
            column!(ByteArrayType, &self.strings[2], None);
            column!(ByteArrayType, &self.strings[3], None);
            for i in 0..3 {
                column!(Int32Type, &self.labels[i], Some(&self.label_defs[..]));
            }
            for i in 0..3 {
                column!(DoubleType, &self.scores[i], Some(&self.score_defs[i][..]));
            }
            for (vals, defs) in &self.extras {
                column!(ByteArrayType, vals, Some(&defs[..]));
            }
            rg.close()?;
            *self = Buffers::default();
            Ok(())
        }
    }

    /// Write the manifest as Parquet: strings, doubles, nullable int8 labels, nullable double
    /// scores, nullable string extra columns. Hugging Face `datasets` and pandas load it.
    pub fn write_parquet<W: Write + Send>(
        store: &Store,
        w: W,
        opts: &ExportOptions,
        shown: &str,
    ) -> Result<ExportSummary, ManifestError> {
        let perr = |e: parquet::errors::ParquetError| ManifestError::Parquet {
            path: shown.to_string(),
            message: e.to_string(),
        };
        let extra_cols = super::extra_columns(store)?;
        let build = || -> parquet::errors::Result<Type> {
            let s = Some(LogicalType::String);
            let i8 = Some(LogicalType::integer(8, true));
            let h = opts.spelling.header();
            let mut fields = vec![
                col(h[0], PhysicalType::BYTE_ARRAY, s.clone(), false)?,
                col(h[1], PhysicalType::BYTE_ARRAY, s.clone(), false)?,
                col(h[2], PhysicalType::DOUBLE, None, false)?,
                col(h[3], PhysicalType::DOUBLE, None, false)?,
                col(h[4], PhysicalType::BYTE_ARRAY, s.clone(), false)?,
                col(h[5], PhysicalType::BYTE_ARRAY, s.clone(), false)?,
            ];
            for name in &h[6..9] {
                fields.push(col(name, PhysicalType::INT32, i8.clone(), true)?);
            }
            for name in &h[9..12] {
                fields.push(col(name, PhysicalType::DOUBLE, None, true)?);
            }
            for name in &extra_cols {
                fields.push(col(name, PhysicalType::BYTE_ARRAY, s.clone(), true)?);
            }
            Type::group_type_builder("schema").with_fields(fields).build()
        };
        let schema = Arc::new(build().map_err(perr)?);
        let props =
            Arc::new(WriterProperties::builder().set_created_by(format!("dams {}", env!("CARGO_PKG_VERSION"))).build());
        let mut writer = SerializedFileWriter::new(w, schema, props).map_err(perr)?;
        let mut buf = Buffers::default();
        let n_extra = extra_cols.len();
        let rows = super::for_each_row(store, &opts.filter, &extra_cols, |r| {
            buf.push(r);
            if buf.rows >= ROW_GROUP {
                buf.flush(&mut writer, n_extra).map_err(perr)?;
            }
            Ok(())
        })?;
        buf.flush(&mut writer, n_extra).map_err(perr)?;
        writer.close().map_err(perr)?;
        Ok(ExportSummary { path: shown.to_string(), rows, extra_columns: extra_cols })
    }

    /// Write the manifest as a Parquet file (atomically).
    pub fn export_parquet(store: &Store, path: &Path, opts: &ExportOptions) -> Result<ExportSummary, ManifestError> {
        let shown = path.display().to_string();
        write_atomic(path, |w| write_parquet(store, w, opts, &shown))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths() {
        assert_eq!(manifest_path("segments/a_s0001.wav"), "a_s0001.wav");
        assert_eq!(manifest_path("segments/sub/a.wav"), "segments/sub/a.wav");
        assert_eq!(manifest_path("raw/show.flac"), "raw/show.flac");
    }

    #[test]
    fn snapshot_names() {
        let d = chrono::NaiveDate::from_ymd_opt(2026, 1, 5).unwrap();
        assert_eq!(snapshot_file_name("gold", &[Split::Dev, Split::Test], d), "gold_dev-test_20260105.csv");
        assert_eq!(snapshot_file_name("ast_pseudo", &[], d), "ast_pseudo_all_20260105.csv");
        assert_eq!(snapshot_file_name("student:cnn", &[Split::Train], d), "student_cnn_train_20260105.csv");
    }
}
