//! Manifest interop: `dams import` / `dams export` (CSV both spellings, Parquet, snapshots).

mod common;
use std::path::Path;

use dams::labels::{LabelSet, Split};
use dams::manifest::export::{export_csv, snapshot_file_name, write_csv};
use dams::manifest::{ExportOptions, ImportOptions, ManifestError, RowFilter, Spelling, import_path, import_reader};
use dams::store::Store;
use dams::workspace::Workspace;

/// A canonical manifest as the Python project writes it: gold, pseudo and unlabeled rows,
/// floats in Python repr form (`5.0`, `1e-05`), empty scores, extra columns (one quoted).
const CANONICAL: &str = "\
raw_file,segment_path,start_time,end_time,split,label_source,speech_label,music_label,noise_label,speech_score,music_score,noise_score,needs_review,comment
001_NO_RAD_0001.wav,001_NO_RAD_0001_s0001.wav,0.0,10.0,dev,gold,1,0,0,0.9312,0.0123,1e-05,0,\"talk, then jingle\"
001_NO_RAD_0001.wav,001_NO_RAD_0001_s0002.wav,5.0,15.0,test,gold,1,1,0,0.87,0.6400000000000001,0.2,1,
002_show.wav,002_show_s0001.wav,0.0,10.0,train,ast_pseudo,0,1,0,0.123456789,0.99,0.05,0,
002_show.wav,002_show_s0002.wav,5.0,15.0,train,clap_zero_shot,0,0,1,-0.25,0.125,0.75,0,cosine scores
002_show.wav,002_show_s0003.wav,9215.0,9218.472,unlabeled,none,,,,,,,0,
003.wav,raw/003_long.flac,0.0,3.472,unsplit,none,,,,0.5,,,0,\"multi
line\"
";

fn workspace() -> (tempfile::TempDir, Workspace, Store) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path().join("ws")).unwrap();
    let store = ws.open_store().unwrap();
    (dir, ws, store)
}

fn import_str(store: &mut Store, ws: &Workspace, csv: &str) -> Result<dams::manifest::ImportSummary, ManifestError> {
    import_reader(store, &ws.data_dir(), csv.as_bytes(), "test.csv", &ImportOptions::default())
}

fn export_string(store: &Store, opts: &ExportOptions) -> String {
    let mut out = Vec::new();
    write_csv(store, &mut out, opts, "out").unwrap();
    String::from_utf8(out).unwrap()
}

fn problems(e: ManifestError) -> Vec<(u64, Option<usize>, String)> {
    match e {
        ManifestError::Invalid { problems, .. } => {
            problems.into_iter().map(|p| (p.line, p.column.map(|c| c.1), p.message)).collect()
        }
        other => panic!("expected an Invalid error, got {other}"),
    }
}

#[test]
fn canonical_manifest_round_trips_byte_for_byte() {
    let (_d, ws, mut store) = workspace();
    let s = import_str(&mut store, &ws, CANONICAL).unwrap();
    assert_eq!((s.rows, s.counts.inserted, s.counts.updated, s.counts.unchanged), (6, 6, 0, 0));
    assert_eq!(s.extra_columns, vec!["needs_review", "comment"]);
    assert_eq!(s.spelling, Some(Spelling::Dams));
    assert_eq!(export_string(&store, &ExportOptions::default()), CANONICAL);
}

#[test]
fn readme_spelling_round_trips_and_converts() {
    let readme = CANONICAL.replacen("speech_label,music_label,noise_label", "speech,music,noise", 1);
    let (_d, ws, mut store) = workspace();
    let s = import_str(&mut store, &ws, &readme).unwrap();
    assert_eq!(s.spelling, Some(Spelling::DamsReadme));
    let opts = ExportOptions { spelling: Spelling::DamsReadme, ..Default::default() };
    assert_eq!(export_string(&store, &opts), readme);
    // The same data in the Python spelling.
    assert_eq!(export_string(&store, &ExportOptions::default()), CANONICAL);
}

#[test]
fn header_is_case_insensitive_any_order_and_only_segment_path_is_required() {
    let (_d, ws, mut store) = workspace();
    let csv =
        "\u{feff} Split ,SEGMENT_PATH,Speech_Label,music_label,noise_label\r\ndev,a.wav,true,False,0.0\r\nb.wav\r\n";
    // Row 3 has one field: refused. Fix it and import.
    assert!(import_str(&mut store, &ws, csv).is_err());
    let csv = "\u{feff} Split ,SEGMENT_PATH,Speech_Label,music_label,noise_label\r\ndev,a.wav,true,False,0.0\r\n,b.wav,,,\r\n";
    let s = import_str(&mut store, &ws, csv).unwrap();
    assert_eq!(s.counts.inserted, 2);
    assert!(s.missing_columns.contains(&"raw_file") && s.missing_columns.contains(&"speech_score"));
    let a = store.segment_by_path("segments/a.wav").unwrap().unwrap();
    assert_eq!(
        (a.split, a.labels, a.label_source.as_str()),
        (Split::Dev, Some(LabelSet::new(true, false, false)), "none")
    );
    let b = store.segment_by_path("segments/b.wav").unwrap().unwrap();
    assert_eq!((b.split, b.labels, b.scores, b.start_time), (Split::Unsplit, None, [None; 3], 0.0));
}

#[test]
fn malformed_file_is_refused_whole_with_line_and_column_of_each_problem() {
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let before = export_string(&store, &ExportOptions::default());
    let bad = "\
segment_path,split,label_source,speech_label,music_label,noise_label,speech_score,start_time,end_time
new_ok.wav,dev,none,,,,,0.0,10.0
x.wav,validation,none,yes,0,0,nan,0.0,10.0
y.wav,dev,bogus_source,1,,0,0.5,5.0,2.0
y.wav,dev,none,,,,,-1.0,10.0
z.wav,train,gold,1,0,0,,0.0,10.0
w.wav,dev,gold,,,,,0.0,10.0
short.wav,dev
v.wav,dev,none,,,,inf,0.0,ten
";
    let got = problems(import_str(&mut store, &ws, bad).unwrap_err());
    let at: Vec<(u64, Option<usize>)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(
        at,
        vec![
            (3, Some(2)), // unknown split
            (3, Some(4)), // 'yes'
            (3, Some(7)), // nan
            (4, Some(3)), // unknown label source
            (4, Some(5)), // music empty while others set
            (4, Some(9)), // end before start
            (5, Some(1)), // duplicate y.wav
            (5, Some(8)), // negative start
            (6, Some(3)), // gold on train
            (7, Some(3)), // gold without labels
            (8, None),    // field count
            (9, Some(7)), // inf
            (9, Some(9)), // 'ten'
        ],
        "{got:#?}"
    );
    assert!(got[6].2.contains("line 4"), "duplicate names the first line: {}", got[6].2);
    assert!(got[10].2.contains("2 fields") && got[10].2.contains("9 columns"));
    // Nothing was written, not even the valid first row.
    assert!(store.segment_by_path("segments/new_ok.wav").unwrap().is_none());
    assert_eq!(export_string(&store, &ExportOptions::default()), before);

    // The message names line, column index and column name.
    let msg = import_str(&mut store, &ws, bad).unwrap_err().to_string();
    assert!(msg.contains("13 problems"), "{msg}");
    assert!(msg.contains("line 3, column 2 'split': unknown split 'validation'"), "{msg}");
    assert!(msg.contains("nothing was imported"), "{msg}");
}

#[test]
fn invalid_utf8_empty_files_and_missing_headers_are_refused() {
    let (_d, ws, mut store) = workspace();
    let mut bytes = b"segment_path,comment\na.wav,fine\nb.wav,caf".to_vec();
    bytes.extend_from_slice(&[0xe9, b'\n']);
    let e = import_reader(&mut store, &ws.data_dir(), &bytes[..], "latin1.csv", &ImportOptions::default()).unwrap_err();
    assert_eq!(problems(e), vec![(3, Some(2), "not valid UTF-8 (save the file as UTF-8)".to_string())]);

    assert!(matches!(import_str(&mut store, &ws, ""), Err(ManifestError::Empty { .. })));
    assert!(matches!(import_str(&mut store, &ws, "\n\n"), Err(ManifestError::Empty { .. })));
    let e = problems(import_str(&mut store, &ws, "a.wav,dev,gold\nb.wav,dev,none\n").unwrap_err());
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].0, e[0].1), (1, None));
    assert!(e[0].2.contains("no segment_path column"), "{}", e[0].2);
    let e = problems(import_str(&mut store, &ws, "segment_path;split\na.wav;dev\n").unwrap_err());
    assert!(e[0].2.contains("';'"), "{}", e[0].2);
    let e = problems(import_str(&mut store, &ws, "segment_path,speech,speech_label\n").unwrap_err());
    assert_eq!((e[0].0, e[0].1), (1, Some(3)));
    assert!(e[0].2.contains("duplicate column"));
    // A header alone is a valid, empty manifest.
    assert_eq!(import_str(&mut store, &ws, "segment_path\n").unwrap().rows, 0);
    assert_eq!(store.segment_count().unwrap(), 0);

    let e = import_path(&mut store, &ws.data_dir(), Path::new("/nonexistent/m.csv"), &ImportOptions::default());
    assert!(matches!(e, Err(ManifestError::Read { .. })));
}

#[test]
fn problems_are_capped_with_a_count_of_the_rest() {
    let (_d, ws, mut store) = workspace();
    let mut csv = String::from("segment_path,split\n");
    for i in 0..60 {
        csv.push_str(&format!("s{i}.wav,nope\n"));
    }
    match import_str(&mut store, &ws, &csv).unwrap_err() {
        ManifestError::Invalid { problems, more, .. } => {
            assert_eq!((problems.len(), more), (50, 10));
            assert_eq!(problems[49].line, 51);
        }
        e => panic!("{e}"),
    }
    let msg = import_str(&mut store, &ws, &csv).unwrap_err().to_string();
    assert!(msg.contains("60 problems") && msg.contains("and 10 more"), "{msg}");
}

#[test]
fn paths_escaping_the_data_root_are_refused() {
    let (_d, ws, mut store) = workspace();
    let inside = ws.data_dir().join("segments").join("abs.wav");
    let csv = format!(
        "raw_file,segment_path\nshow.wav,../x.wav\nshow.wav,segments/../../y.wav\nshow.wav,/etc/passwd\n../../raw.wav,ok.wav\nshow.wav,{}\n",
        inside.display()
    );
    let got = problems(import_str(&mut store, &ws, &csv).unwrap_err());
    let at: Vec<(u64, Option<usize>)> = got.iter().map(|(l, c, _)| (*l, *c)).collect();
    assert_eq!(at, vec![(2, Some(2)), (3, Some(2)), (4, Some(2)), (5, Some(1))]);
    assert!(got[0].2.contains("outside"), "{}", got[0].2);
    assert_eq!(store.segment_count().unwrap(), 0);

    // An absolute path inside the data root is fine and stored data-relative.
    let csv = format!("segment_path\n{}\nsegments/sub/./deep.wav\n", inside.display());
    import_str(&mut store, &ws, &csv).unwrap();
    assert!(store.segment_by_path("segments/abs.wav").unwrap().is_some());
    assert!(store.segment_by_path("segments/sub/deep.wav").unwrap().is_some());
}

#[test]
fn reimport_is_idempotent_and_counts_changes() {
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let ids: Vec<i64> = store.segments(None).unwrap().iter().map(|s| s.id).collect();
    let again = import_str(&mut store, &ws, CANONICAL).unwrap();
    assert_eq!((again.counts.inserted, again.counts.updated, again.counts.unchanged), (0, 0, 6));
    assert_eq!((again.counts.gold_written, again.counts.gold_removed), (0, 0));
    assert_eq!(store.segment_count().unwrap(), 6);
    assert_eq!(store.segments(None).unwrap().iter().map(|s| s.id).collect::<Vec<_>>(), ids);

    // The same segment named differently (bare vs data-relative) is the same row.
    let changed = CANONICAL.replace(
        "002_show.wav,002_show_s0001.wav,0.0,10.0,train",
        "002_show.wav,segments/002_show_s0001.wav,0.0,10.0,dev",
    ) + "new.wav,new_s0001.wav,0.0,10.0,unsplit,none,,,,,,,0,\n";
    let s = import_str(&mut store, &ws, &changed).unwrap();
    assert_eq!((s.counts.inserted, s.counts.updated, s.counts.unchanged), (1, 1, 5));
    assert_eq!(store.segment_by_path("segments/002_show_s0001.wav").unwrap().unwrap().split, Split::Dev);

    // A dry run reports but writes nothing.
    let dry = import_reader(
        &mut store,
        &ws.data_dir(),
        CANONICAL.as_bytes(),
        "t",
        &ImportOptions { dry_run: true, ..Default::default() },
    )
    .unwrap();
    assert_eq!((dry.counts.updated, dry.counts.unchanged, dry.dry_run), (1, 5, true));
    assert_eq!(store.segment_by_path("segments/002_show_s0001.wav").unwrap().unwrap().split, Split::Dev);
}

#[test]
fn extra_columns_are_kept_in_order_and_exported_back() {
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let s = store.segment_by_path("segments/001_NO_RAD_0001_s0001.wav").unwrap().unwrap();
    assert_eq!(s.extra.as_deref(), Some(r#"{"needs_review":"0","comment":"talk, then jingle"}"#));
    // A second manifest with another extra column: the union is exported, blanks where unset.
    import_str(&mut store, &ws, "segment_path,zz_note\nother.wav,hi\n").unwrap();
    let out = export_string(&store, &ExportOptions::default());
    let mut lines = out.lines();
    assert!(lines.next().unwrap().ends_with("noise_score,needs_review,comment,zz_note"));
    assert!(out.ends_with(",other.wav,0.0,0.0,unsplit,none,,,,,,,,,hi\n"), "{out}");
}

#[test]
fn gold_rows_become_gold_labels_of_the_manifest_annotator() {
    let (_d, ws, mut store) = workspace();
    let s = import_str(&mut store, &ws, CANONICAL).unwrap();
    assert_eq!(s.counts.gold_written, 2);
    let ann = store.annotators().unwrap();
    assert_eq!(ann.iter().map(|a| a.1.as_str()).collect::<Vec<_>>(), vec!["manifest"]);
    let seg1 = store.segment_by_path("segments/001_NO_RAD_0001_s0001.wav").unwrap().unwrap();
    let seg2 = store.segment_by_path("segments/001_NO_RAD_0001_s0002.wav").unwrap().unwrap();
    let gold = store.resolved_gold().unwrap();
    assert_eq!(gold, vec![(seg1.id, LabelSet::new(true, false, false)), (seg2.id, LabelSet::new(true, true, false))]);

    // A later human label wins in the export; re-importing the manifest does not undo that.
    let alice = store.annotator_id("alice").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(5));
    store.set_gold(seg1.id, alice, Some(LabelSet::new(true, true, true)), false, false).unwrap();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let out = export_string(&store, &ExportOptions::default());
    assert!(out.contains("001_NO_RAD_0001_s0001.wav,0.0,10.0,dev,gold,1,1,1,"), "{out}");

    // A row that is no longer gold in the manifest loses the manifest's gold label.
    let demoted = CANONICAL.replace("5.0,15.0,test,gold,1,1,0", "5.0,15.0,test,none,1,1,0");
    let s = import_str(&mut store, &ws, &demoted).unwrap();
    assert_eq!((s.counts.updated, s.counts.gold_removed), (1, 1));
    assert_eq!(store.resolved_gold().unwrap().len(), 1);

    // The labels file holds the labeled rows only.
    let labeled = export_string(
        &store,
        &ExportOptions { filter: RowFilter { labeled_only: true, ..Default::default() }, ..Default::default() },
    );
    // Rows 1 (gold), 3 (ast_pseudo) and 4 (clap_zero_shot); the demoted row is `none` now.
    assert_eq!(labeled.lines().count(), 1 + 3);
    assert!(!labeled.contains(",none,"));
}

#[test]
fn snapshot_file_naming_and_filtering() {
    let d = chrono::NaiveDate::from_ymd_opt(2026, 3, 9).unwrap();
    assert_eq!(snapshot_file_name("gold", &[Split::Dev, Split::Test], d), "gold_dev-test_20260309.csv");
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let path = ws.experiments_dir().join(snapshot_file_name("gold", &[Split::Dev, Split::Test], d));
    let opts = ExportOptions {
        filter: RowFilter {
            source: Some("gold".into()),
            splits: Some(vec![Split::Dev, Split::Test]),
            ..Default::default()
        },
        ..Default::default()
    };
    let s = export_csv(&store, &path, &opts).unwrap();
    assert_eq!(s.rows, 2);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 3);
    assert!(text.lines().skip(1).all(|l| l.contains(",gold,")));
}

#[test]
fn cli_import_export_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = common::dams(&dir.path().join(".home")).args(args).current_dir(dir.path()).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let ws = dir.path().join("ws");
    let ws_s = ws.to_str().unwrap();
    assert!(run(&["init", ws_s]).0);
    let m = dir.path().join("m.csv");
    std::fs::write(&m, CANONICAL).unwrap();
    let (ok, out) = run(&["-w", ws_s, "import", m.to_str().unwrap(), "--dry-run"]);
    assert!(ok && out.contains("dry run") && out.contains("6 inserted"), "{out}");
    let (ok, out) = run(&["-w", ws_s, "import", m.to_str().unwrap()]);
    assert!(ok && out.contains("6 inserted") && out.contains("needs_review, comment"), "{out}");
    let (ok, out) = run(&["-w", ws_s, "export"]);
    assert!(ok, "{out}");
    let meta = ws.join("data").join("metadata");
    assert_eq!(std::fs::read_to_string(meta.join("blocs_smad_segments.csv")).unwrap(), CANONICAL);
    assert_eq!(std::fs::read_to_string(meta.join("blocs_smad_labels.csv")).unwrap().lines().count(), 1 + 4);
    let (ok, out) = run(&["-w", ws_s, "export", "--snapshot", "--source", "gold", "--splits", "dev,test"]);
    assert!(ok, "{out}");
    let today = chrono::Utc::now().date_naive().format("%Y%m%d").to_string();
    let snap = meta.join("experiments").join(format!("gold_dev-test_{today}.csv"));
    assert_eq!(std::fs::read_to_string(&snap).unwrap().lines().count(), 3, "{out}");
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "segment_path,split\n../escape.wav,dev\n").unwrap();
    let (ok, out) = run(&["-w", ws_s, "import", bad.to_str().unwrap()]);
    assert!(!ok && out.contains("line 2, column 1 'segment_path'"), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[cfg(feature = "parquet")]
#[test]
fn parquet_export_reads_back_with_types_and_nulls() {
    use parquet::basic::{LogicalType, Type as PhysicalType};
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;

    let (dir, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let path = dir.path().join("m.parquet");
    let s = dams::manifest::export::export_parquet(&store, &path, &ExportOptions::default()).unwrap();
    assert_eq!(s.rows, 6);

    let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let meta = reader.metadata();
    assert_eq!(meta.file_metadata().num_rows(), 6);
    let schema = meta.file_metadata().schema_descr();
    let cols: Vec<(String, PhysicalType, Option<LogicalType>, bool)> = schema
        .columns()
        .iter()
        .map(|c| {
            let t = c.self_type();
            (c.name().to_string(), c.physical_type(), t.get_basic_info().logical_type_ref().cloned(), t.is_optional())
        })
        .collect();
    let names: Vec<&str> = cols.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names[..],
        Spelling::Dams.header().iter().chain(["needs_review", "comment"].iter()).copied().collect::<Vec<_>>()[..]
    );
    assert_eq!((cols[1].1, cols[1].2.clone(), cols[1].3), (PhysicalType::BYTE_ARRAY, Some(LogicalType::String), false));
    assert_eq!((cols[2].1, cols[2].3), (PhysicalType::DOUBLE, false));
    assert_eq!(
        (cols[6].1, cols[6].2.clone(), cols[6].3),
        (PhysicalType::INT32, Some(LogicalType::integer(8, true)), true)
    );
    assert_eq!((cols[9].1, cols[9].3), (PhysicalType::DOUBLE, true));
    assert_eq!((cols[13].1, cols[13].3), (PhysicalType::BYTE_ARRAY, true));

    let rows: Vec<Vec<(String, Field)>> = reader
        .get_row_iter(None)
        .unwrap()
        .map(|r| r.unwrap().get_column_iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .collect();
    assert_eq!(rows.len(), 6);
    let get = |r: usize, name: &str| rows[r].iter().find(|(k, _)| k == name).unwrap().1.clone();
    assert_eq!(get(0, "segment_path"), Field::Str("001_NO_RAD_0001_s0001.wav".into()));
    assert_eq!(get(0, "speech_label"), Field::Byte(1));
    assert_eq!(get(0, "noise_score"), Field::Double(1e-05));
    assert_eq!(get(0, "comment"), Field::Str("talk, then jingle".into()));
    assert_eq!(get(4, "speech_label"), Field::Null);
    assert_eq!(get(4, "speech_score"), Field::Null);
    assert_eq!(get(4, "end_time"), Field::Double(9218.472));
    assert_eq!(get(5, "segment_path"), Field::Str("raw/003_long.flac".into()));
    assert_eq!(get(5, "comment"), Field::Str("multi\nline".into()));
}

#[test]
fn line_numbers_count_lines_inside_quoted_fields() {
    let (_d, ws, mut store) = workspace();
    for eol in ["\n", "\r\n"] {
        let csv = "segment_path,comment,split\na.wav,\"two\nlines\",dev\nb.wav,x,nope\nc.wav,,dev\nd.wav,,x\n"
            .replace('\n', eol);
        let got = problems(import_str(&mut store, &ws, &csv).unwrap_err());
        assert_eq!(
            got.iter().map(|p| (p.0, p.1)).collect::<Vec<_>>(),
            vec![(4, Some(3)), (6, Some(3))],
            "{eol:?} {got:?}"
        );
    }
}

#[test]
fn gold_rows_in_a_later_import_are_added_and_updated() {
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, "segment_path,split\nfirst.wav,dev\n").unwrap();
    assert!(store.annotators().unwrap().is_empty(), "no gold rows, no manifest annotator");
    let csv =
        "segment_path,split,label_source,speech,music,noise\nfirst.wav,dev,gold,0,1,0\nsecond.wav,test,gold,1,0,1\n";
    let s = import_str(&mut store, &ws, csv).unwrap();
    assert_eq!((s.counts.inserted, s.counts.updated, s.counts.gold_written), (1, 1, 2));
    let id = |p: &str| store.segment_by_path(p).unwrap().unwrap().id;
    let (first, second) = (id("segments/first.wav"), id("segments/second.wav"));
    assert_eq!(
        store.resolved_gold().unwrap(),
        vec![(first, LabelSet::new(false, true, false)), (second, LabelSet::new(true, false, true))]
    );
    let changed = csv.replace("second.wav,test,gold,1,0,1", "second.wav,test,gold,1,1,1");
    let s = import_str(&mut store, &ws, &changed).unwrap();
    assert_eq!((s.counts.updated, s.counts.unchanged, s.counts.gold_written), (1, 1, 1));
    assert_eq!(store.resolved_gold().unwrap()[1], (second, LabelSet::new(true, true, true)));
}

#[test]
fn a_partial_manifest_keeps_the_columns_it_leaves_out() {
    let (_d, ws, mut store) = workspace();
    import_str(&mut store, &ws, CANONICAL).unwrap();
    let before = store.segment_by_path("segments/002_show_s0001.wav").unwrap().unwrap();
    // Only segment_path and split: moves the segment to dev, wipes nothing else.
    let s = import_str(&mut store, &ws, "segment_path,split\n002_show_s0001.wav,dev\n").unwrap();
    assert_eq!((s.counts.inserted, s.counts.updated, s.counts.unchanged), (0, 1, 0));
    let after = store.segment_by_path("segments/002_show_s0001.wav").unwrap().unwrap();
    assert_eq!(after.split, Split::Dev);
    assert_eq!(
        (&after.raw_file, after.start_time, after.end_time, &after.label_source, after.labels, after.scores),
        (&before.raw_file, before.start_time, before.end_time, &before.label_source, before.labels, before.scores)
    );
    // The same partial file again changes nothing; a new segment in it gets the defaults.
    let s = import_str(&mut store, &ws, "segment_path,split\n002_show_s0001.wav,dev\nfresh.wav,test\n").unwrap();
    assert_eq!((s.counts.inserted, s.counts.updated, s.counts.unchanged), (1, 0, 1));
    let fresh = store.segment_by_path("segments/fresh.wav").unwrap().unwrap();
    assert_eq!((fresh.raw_file.as_str(), fresh.end_time, fresh.labels), ("", 0.0, None));
}
