use super::*;

fn seg(path: &str, split: Split) -> NewSegment {
    NewSegment {
        segment_path: path.into(),
        raw_file: "show.wav".into(),
        start_time: 0.0,
        end_time: 10.0,
        split,
        label_source: LabelSource::none(),
        labels: None,
        scores: [None; 3],
        extra: None,
    }
}

#[test]
fn fresh_db_is_latest_version_and_wal() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path().join("db.sqlite")).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::LATEST_VERSION);
    let mode: String = s.conn().query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = s.conn().query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
    assert_eq!(fk, 1);
}

#[test]
fn migrates_an_older_schema_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.sqlite");
    {
        // A database written by a dams that only knew schema v1.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)").unwrap();
        c.execute_batch(schema::MIGRATIONS[0]).unwrap();
        c.execute("INSERT INTO schema_version VALUES (1, 'then')", []).unwrap();
        c.execute("INSERT INTO segments (segment_path, split) VALUES ('segments/a.wav', 'dev')", []).unwrap();
        c.execute("INSERT INTO annotators (name) VALUES ('ann')", []).unwrap();
        c.execute(
            "INSERT INTO gold_labels (segment_id, annotator_id, speech, music, noise) VALUES (1, 1, 1, 0, 1)",
            [],
        )
        .unwrap();
        c.execute("INSERT INTO jobs (kind) VALUES ('score')", []).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::LATEST_VERSION);
    assert_eq!(s.gold(1, 1).unwrap().0, Some(LabelSet::new(true, false, true)));
    // v2 added jobs.log with a default for old rows.
    let log: String = s.conn().query_row("SELECT log FROM jobs WHERE id = 1", [], |r| r.get(0)).unwrap();
    assert_eq!(log, "");
}

#[test]
fn refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.sqlite");
    drop(Store::open(&path).unwrap());
    {
        let c = Connection::open(&path).unwrap();
        c.execute("INSERT INTO schema_version VALUES (999, 'future')", []).unwrap();
    }
    let err = Store::open(&path).err().expect("must refuse");
    let msg = err.to_string();
    assert!(msg.contains("999") && msg.contains("newer"), "{msg}");
}

#[test]
fn upsert_is_idempotent() {
    let mut s = Store::open_in_memory().unwrap();
    let rows = vec![seg("segments/a.wav", Split::Dev), seg("segments/b.wav", Split::Test)];
    assert_eq!(s.upsert_segments(&rows).unwrap(), (2, 0));
    assert_eq!(s.upsert_segments(&rows).unwrap(), (0, 2));
    assert_eq!(s.segment_count().unwrap(), 2);
}

#[test]
fn gold_undo_redo_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    let (seg_id, ann) = {
        let mut s = Store::open(&path).unwrap();
        s.upsert_segments(&[seg("segments/a.wav", Split::Dev)]).unwrap();
        let id = s.segment_by_path("segments/a.wav").unwrap().unwrap().id;
        let ann = s.annotator_id("alice").unwrap();
        s.set_gold(id, ann, Some(LabelSet::new(true, false, false)), false, false).unwrap();
        s.set_gold(id, ann, Some(LabelSet::new(true, true, false)), true, false).unwrap();
        (id, ann)
    };
    let mut s = Store::open(&path).unwrap();
    assert_eq!(s.gold(seg_id, ann).unwrap(), (Some(LabelSet::new(true, true, false)), true));
    let u = s.undo(ann).unwrap().unwrap();
    assert_eq!(u.labels, Some(LabelSet::new(true, false, false)));
    assert!(!u.needs_review);
    let u = s.undo(ann).unwrap().unwrap();
    assert_eq!(u.labels, None);
    assert_eq!(s.gold(seg_id, ann).unwrap(), (None, false));
    assert!(s.undo(ann).unwrap().is_none());
    let r = s.redo(ann).unwrap().unwrap();
    assert_eq!(r.labels, Some(LabelSet::new(true, false, false)));
    // A new change drops the redo stack.
    s.set_gold(seg_id, ann, Some(LabelSet::new(false, false, true)), false, false).unwrap();
    assert!(s.redo(ann).unwrap().is_none());
    assert_eq!(s.gold(seg_id, ann).unwrap().0, Some(LabelSet::new(false, false, true)));
}

#[test]
fn gold_refused_on_train_unless_allowed() {
    let mut s = Store::open_in_memory().unwrap();
    s.upsert_segments(&[seg("segments/t.wav", Split::Train)]).unwrap();
    let ann = s.annotator_id("bob").unwrap();
    let err = s.set_gold(1, ann, Some(LabelSet::new(true, false, false)), false, false).unwrap_err();
    assert!(matches!(err, StoreError::GoldNotAllowed(Split::Train)));
    assert_eq!(s.gold(1, ann).unwrap().0, None);
    s.set_gold(1, ann, Some(LabelSet::new(true, false, false)), false, true).unwrap();
    assert_eq!(s.gold(1, ann).unwrap().0, Some(LabelSet::new(true, false, false)));
}

#[test]
fn scores_and_thresholds_round_trip() {
    let mut s = Store::open_in_memory().unwrap();
    s.upsert_segments(&[seg("segments/a.wav", Split::Dev)]).unwrap();
    let run = s
        .create_run(&NewRun { teacher: "ast", checksum: "abc", settings: "{}", imported: false, zero_shot: false })
        .unwrap();
    let logits: Vec<f32> = (0..527).map(|i| i as f32 * 0.01).collect();
    s.put_scores(run, &[ScoreRow { segment_id: 1, scores: [0.9, 0.1, 0.5], logits: Some(logits.clone()) }]).unwrap();
    assert_eq!(s.run_scores(run).unwrap(), vec![(1, [0.9, 0.1, 0.5])]);
    assert_eq!(s.logits(run, 1).unwrap().unwrap(), logits);
    assert_eq!(s.scored_segments(run).unwrap().len(), 1);
    assert_eq!(s.resumable_run("ast", "abc", "{}").unwrap(), Some(run));
    s.finish_run(run, "done").unwrap();
    assert_eq!(s.resumable_run("ast", "abc", "{}").unwrap(), None);

    s.save_threshold(&NewThreshold {
        teacher: "ast".into(),
        class: Some(Class::Music),
        value: Some(0.4),
        method: "manual".into(),
        ..Default::default()
    })
    .unwrap();
    s.save_threshold(&NewThreshold {
        teacher: "ast".into(),
        class: Some(Class::Music),
        value: Some(0.43),
        method: "target_precision".into(),
        target: Some(0.9),
        run_id: Some(run),
        gold_n: Some(10),
        ..Default::default()
    })
    .unwrap();
    let t = s.thresholds("ast").unwrap();
    assert!(t[0].is_none());
    let m = t[1].as_ref().unwrap();
    assert_eq!(m.value, Some(0.43));
    assert_eq!(m.method, "target_precision");
}
