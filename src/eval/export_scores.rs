//! `dams export-scores`: one teacher run's scores per segment, as the Python project's per-teacher CSVs hold them
//! (segment_path, start/end, split, speech/music/noise scores), and with `--raw` its raw outputs, one column per
//! output named by the run's raw vocabulary (AudioSet display names for taggers...). CSV or Parquet (by extension),
//! written atomically (rows are read from the store in pages, then written; a raw export of a very large run holds
//! its raw outputs in memory: 2 KB per segment for AudioSet).

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::manifest::export::write_atomic;
use crate::store::Store;
use crate::teachers::raw;

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Exported {
    pub run_id: i64,
    pub rows: usize,
    pub columns: usize,
}

const PAGE: i64 = 2048;
const FIXED: [&str; 7] = ["segment_path", "start_time", "end_time", "split", "speech", "music", "noise"];

/// The run `--teacher`/`--run` name: the run itself, or the teacher's latest run with scores.
fn pick_run(store: &Store, teacher: Option<&str>, run: Option<i64>) -> Result<i64> {
    match (teacher, run) {
        (_, Some(id)) => {
            let Some(h) = store.run_head(id)? else { bail!("there is no teacher run #{id} (`dams info` lists them)") };
            if let Some(t) = teacher
                && t != h.teacher
            {
                bail!("run #{id} is a run of {}, not of {t}", h.teacher);
            }
            Ok(id)
        }
        (Some(t), None) => store.latest_run_of(t)?.ok_or_else(|| {
            anyhow::anyhow!("{t} has no run with scores in this workspace (score with `dams score --teacher {t}`)")
        }),
        (None, None) => bail!("say which run: --teacher T (its latest run) or --run ID"),
    }
}

/// Export run (`teacher`'s latest, or `run`) to `out` (`.csv` or `.parquet`).
pub fn export(store: &Store, teacher: Option<&str>, run: Option<i64>, with_raw: bool, out: &Path) -> Result<Exported> {
    let run_id = pick_run(store, teacher, run)?;
    let head = store.run_head(run_id)?.context("run vanished")?;
    // A remapped run's raw outputs are those of the run it came from.
    let raw_run = serde_json::from_str::<serde_json::Value>(&head.settings)
        .ok()
        .and_then(|v| v.get("remapped_from").and_then(|x| x.as_i64()))
        .unwrap_or(run_id);
    let vocab = store.raw_vocab_of(raw_run)?;
    if with_raw && vocab.is_none() {
        bail!("run #{run_id} ({}) kept no raw outputs: export without --raw", head.teacher);
    }
    let segs: HashMap<i64, crate::store::Segment> = store.segments(None)?.into_iter().map(|s| (s.id, s)).collect();
    // Raw outputs by segment come from `raw_run` (read page by page alongside).
    let mut raw_names: Vec<String> = Vec::new();
    if let (true, Some(v)) = (with_raw, &vocab) {
        let first = store.run_rows_page(raw_run, i64::MIN, 1, true)?;
        let len = first.first().and_then(|r| r.2.as_ref()).map(|x| x.len()).unwrap_or(0);
        raw_names = raw::names(v, len);
    }
    let mut header: Vec<String> = FIXED.iter().map(|s| s.to_string()).collect();
    header.extend(raw_names.iter().cloned());
    let ext = out.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mut rows: Vec<Row> = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = store.run_rows_page(run_id, after, PAGE, false)?;
        let Some(last) = page.last() else { break };
        after = last.0;
        let raws: HashMap<i64, Vec<f32>> = if with_raw {
            let first = page[0].0;
            store
                .run_rows_page(raw_run, first - 1, PAGE * 2, true)?
                .into_iter()
                .filter(|r| r.0 <= after)
                .filter_map(|(id, _, r)| r.map(|r| (id, r)))
                .collect()
        } else {
            HashMap::new()
        };
        for (id, scores, _) in page {
            let Some(seg) = segs.get(&id) else { continue };
            let raw = if with_raw {
                match raws.get(&id) {
                    Some(r) if r.len() == raw_names.len() => r.clone(),
                    _ => bail!(
                        "segment {} of run #{raw_run} has no raw output of {} values",
                        seg.segment_path,
                        raw_names.len()
                    ),
                }
            } else {
                Vec::new()
            };
            rows.push(Row {
                path: seg.segment_path.clone(),
                start: seg.start_time,
                end: seg.end_time,
                split: seg.split.as_str(),
                scores,
                raw,
            });
        }
    }
    let n = rows.len();
    match ext.as_str() {
        "csv" => write_atomic(out, |w| {
            let mut c = csv::Writer::from_writer(w);
            let e = |e: csv::Error| crate::manifest::ManifestError::Write {
                path: out.display().to_string(),
                err: std::io::Error::other(e.to_string()),
            };
            c.write_record(&header).map_err(e)?;
            for r in &rows {
                let mut rec: Vec<String> =
                    vec![r.path.clone(), format!("{}", r.start), format!("{}", r.end), r.split.to_string()];
                rec.extend(r.scores.iter().map(|v| format!("{v}")));
                rec.extend(r.raw.iter().map(|v| format!("{v}")));
                c.write_record(&rec).map_err(e)?;
            }
            c.flush().map_err(|err| crate::manifest::ManifestError::Write { path: out.display().to_string(), err })?;
            Ok(())
        })?,
        #[cfg(feature = "parquet")]
        "parquet" => write_atomic(out, |w| parquet_out::write(w, &header, &rows, out))?,
        other => bail!(
            "{}: unknown format '{other}' (use a .csv{} file)",
            out.display(),
            if cfg!(feature = "parquet") { " or .parquet" } else { "" }
        ),
    }
    Ok(Exported { run_id, rows: n, columns: header.len() })
}

struct Row {
    path: String,
    start: f64,
    end: f64,
    split: &'static str,
    scores: [f32; 3],
    raw: Vec<f32>,
}

#[cfg(feature = "parquet")]
mod parquet_out {
    use std::io::Write;
    use std::sync::Arc;

    use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
    use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::types::Type;

    use super::Row;
    use crate::manifest::ManifestError;

    pub fn write<W: Write + Send>(
        w: W,
        header: &[String],
        rows: &[Row],
        out: &std::path::Path,
    ) -> Result<(), ManifestError> {
        let perr = |e: parquet::errors::ParquetError| ManifestError::Parquet {
            path: out.display().to_string(),
            message: e.to_string(),
        };
        let build = || -> parquet::errors::Result<Type> {
            let mut fields = Vec::new();
            for (i, name) in header.iter().enumerate() {
                let (phys, logical) = match i {
                    0 | 3 => (PhysicalType::BYTE_ARRAY, Some(LogicalType::String)),
                    1 | 2 => (PhysicalType::DOUBLE, None),
                    _ => (PhysicalType::FLOAT, None),
                };
                fields.push(Arc::new(
                    Type::primitive_type_builder(name, phys)
                        .with_repetition(Repetition::REQUIRED)
                        .with_logical_type(logical)
                        .build()?,
                ));
            }
            Type::group_type_builder("schema").with_fields(fields).build()
        };
        let schema = Arc::new(build().map_err(perr)?);
        let props =
            Arc::new(WriterProperties::builder().set_created_by(format!("dams {}", env!("CARGO_PKG_VERSION"))).build());
        let mut writer = SerializedFileWriter::new(w, schema, props).map_err(perr)?;
        for chunk in rows.chunks(64 * 1024) {
            let mut rg = writer.next_row_group().map_err(perr)?;
            for i in 0..header.len() {
                let mut c = rg
                    .next_column()
                    .map_err(perr)?
                    .ok_or_else(|| perr(parquet::errors::ParquetError::General("missing column".into())))?;
                match i {
                    0 | 3 => {
                        let v: Vec<ByteArray> = chunk
                            .iter()
                            .map(|r| ByteArray::from(if i == 0 { r.path.as_str() } else { r.split }))
                            .collect();
                        c.typed::<ByteArrayType>().write_batch(&v, None, None).map_err(perr)?;
                    }
                    1 | 2 => {
                        let v: Vec<f64> = chunk.iter().map(|r| if i == 1 { r.start } else { r.end }).collect();
                        c.typed::<DoubleType>().write_batch(&v, None, None).map_err(perr)?;
                    }
                    4..=6 => {
                        let v: Vec<f32> = chunk.iter().map(|r| r.scores[i - 4]).collect();
                        c.typed::<FloatType>().write_batch(&v, None, None).map_err(perr)?;
                    }
                    _ => {
                        let v: Vec<f32> = chunk.iter().map(|r| r.raw[i - 7]).collect();
                        c.typed::<FloatType>().write_batch(&v, None, None).map_err(perr)?;
                    }
                }
                c.close().map_err(perr)?;
            }
            rg.close().map_err(perr)?;
        }
        writer.close().map_err(perr)?;
        Ok(())
    }
}
