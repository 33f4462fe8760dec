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
    s.put_scores(run, &[ScoreRow { segment_id: 1, scores: [0.9, 0.1, 0.5], raw: Some(logits.clone()) }]).unwrap();
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

#[test]
fn latest_annotator_wins_and_same_millisecond_ties_go_to_the_later_change() {
    let mut s = Store::open_in_memory().unwrap();
    s.upsert_segments(&[seg("segments/a.wav", Split::Dev), seg("segments/b.wav", Split::Dev)]).unwrap();
    let (alice, bob) = (s.annotator_id("alice").unwrap(), s.annotator_id("bob").unwrap());
    // Segment 1: bob labels after alice; segment 2: alice labels after bob.
    s.set_gold(1, alice, Some(LabelSet::new(true, false, false)), false, false).unwrap();
    s.set_gold(2, bob, Some(LabelSet::new(false, true, false)), false, false).unwrap();
    s.set_gold(1, bob, Some(LabelSet::new(false, false, true)), false, false).unwrap();
    s.set_gold(2, alice, Some(LabelSet::new(true, true, false)), false, false).unwrap();
    // All four in the same millisecond: the history decides, whatever order the rows are scanned in.
    s.conn().execute("UPDATE gold_labels SET updated_at = '2026-01-01T00:00:00.000Z'", []).unwrap();
    let want = vec![(1, LabelSet::new(false, false, true)), (2, LabelSet::new(true, true, false))];
    assert_eq!(s.resolved_gold().unwrap(), want);
    // A later timestamp still wins over history order.
    s.conn()
        .execute(
            "UPDATE gold_labels SET updated_at = '2026-01-02T00:00:00.000Z' WHERE segment_id = 1 AND annotator_id = ?1",
            [alice],
        )
        .unwrap();
    assert_eq!(s.resolved_gold().unwrap()[0], (1, LabelSet::new(true, false, false)));
}

#[test]
fn thresholds_apply_only_to_runs_with_the_same_scoring_settings() {
    let mut s = Store::open_in_memory().unwrap();
    s.upsert_segments(&[seg("segments/a.wav", Split::Dev)]).unwrap();
    let run = |s: &mut Store, settings: &str| {
        let id = s
            .create_run(&NewRun { teacher: "ast", checksum: "abc", settings, imported: false, zero_shot: false })
            .unwrap();
        s.put_scores(id, &[ScoreRow { segment_id: 1, scores: [0.5, 0.5, 0.5], raw: None }]).unwrap();
        s.finish_run(id, "done").unwrap();
        id
    };
    let noisy = run(&mut s, r#"{"pooling":"noisy_or","device":"cpu"}"#);
    let t = |v: f64| NewThreshold {
        teacher: "ast".into(),
        class: Some(Class::Speech),
        value: Some(v),
        method: "manual".into(),
        ..Default::default()
    };
    s.save_threshold(&t(0.3)).unwrap();
    assert_eq!(s.thresholds("ast").unwrap()[0].as_ref().unwrap().value, Some(0.3));
    // A max-pooled run becomes the latest: the noisy-OR threshold does not apply to it.
    let max = run(&mut s, r#"{"pooling":"max","device":"gpu"}"#);
    assert!(s.thresholds("ast").unwrap()[0].is_none());
    s.save_threshold(&t(0.7)).unwrap();
    assert_eq!(s.thresholds("ast").unwrap()[0].as_ref().unwrap().value, Some(0.7));
    // Another noisy-OR run on another device: the noisy-OR threshold applies again.
    let _ = (noisy, max);
    run(&mut s, r#"{"device":"gpu","pooling":"noisy_or","splits":"dev"}"#);
    assert_eq!(s.thresholds("ast").unwrap()[0].as_ref().unwrap().value, Some(0.3));
}

#[test]
fn a_schema_v3_workspace_migrates_its_runs_embeddings_and_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v3.sqlite");
    {
        // A database written by the dams of schema v3 (AST logits, the ast-head cache, a calibrated threshold).
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)").unwrap();
        for (i, sql) in schema::MIGRATIONS[..3].iter().enumerate() {
            c.execute_batch(sql).unwrap();
            c.execute("INSERT INTO schema_version VALUES (?1, 'then')", [i as i64 + 1]).unwrap();
        }
        c.execute("INSERT INTO segments (segment_path, split) VALUES ('segments/a.wav', 'dev')", []).unwrap();
        c.execute("INSERT INTO teacher_runs (teacher, checksum, settings, state) VALUES ('ast', 'sha256:x', '{\"pooling\":\"noisy_or\",\"device\":\"cpu\"}', 'done')", []).unwrap();
        c.execute("INSERT INTO teacher_runs (teacher, checksum, settings, state) VALUES ('builtin', 'sha256:b', '{}', 'done')", []).unwrap();
        let logits = f32s_to_bytes(&vec![0.5f32; 527]);
        c.execute("INSERT INTO teacher_scores VALUES (1, 1, 0.9, 0.1, 0.2, ?1)", [logits]).unwrap();
        c.execute("INSERT INTO teacher_scores VALUES (2, 1, 0.8, 0.1, 0.2, NULL)", []).unwrap();
        c.execute(
            "INSERT INTO ast_embeddings (checksum, segment_id, dim, vec) VALUES ('sha256:x', 1, 2, ?1)",
            [f32s_to_bytes(&[1.0, 2.0])],
        )
        .unwrap();
        c.execute("INSERT INTO thresholds (teacher, class, value, method, run_id) VALUES ('ast', 'speech', 0.4, 'f1_optimal', 1)", []).unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), schema::LATEST_VERSION);
    assert_eq!(s.run_head(1).unwrap().unwrap().raw_vocab.as_deref(), Some("audioset-527"));
    assert_eq!(s.run_head(2).unwrap().unwrap().raw_vocab, None);
    assert_eq!(s.embeddings("sha256:x", "ast-pooled", 2).unwrap()[&1], vec![1.0, 2.0]);
    assert_eq!(s.thresholds("ast").unwrap()[0].as_ref().unwrap().value, Some(0.4));
}
