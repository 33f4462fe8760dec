//! End-to-end tests of score import, calibration, thresholds, evaluation and pseudo-labelling
//! through the `dams` binary on a small workspace built in a temp dir. Expected values are
//! computed by hand in the comments.

mod common;
use std::path::Path;
use std::process::Output;

use dams::labels::{LabelSet, LabelSource, Split};
use dams::store::NewSegment;
use dams::workspace::Workspace;

fn dams(ws: &Path, args: &[&str]) -> Output {
    common::dams(&ws.join(".home"))
        .arg("--workspace")
        .arg(ws)
        .args(args)
        .env("DAMS_ANNOTATOR", "tester")
        .output()
        .expect("run dams")
}

fn ok(ws: &Path, args: &[&str]) -> String {
    let o = dams(ws, args);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success(), "dams {args:?} failed:\n{out}\n{}", String::from_utf8_lossy(&o.stderr));
    out
}

fn fail(ws: &Path, args: &[&str]) -> String {
    let o = dams(ws, args);
    assert!(!o.status.success(), "dams {args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ls(s: &str) -> LabelSet {
    LabelSet::new(s.contains('S'), s.contains('M'), s.contains('N'))
}

/// dev d1..d6 (d1-d3 in show_a, d4-d6 in show_b) with gold, train t1..t4 (t1 with gold),
/// unlabeled u1, u2.
fn workspace() -> (tempfile::TempDir, Workspace) {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path()).unwrap();
    let mut store = ws.open_store().unwrap();
    let mut rows = Vec::new();
    let mut add = |name: &str, raw: &str, start: f64, split: Split| {
        rows.push(NewSegment {
            segment_path: format!("segments/{name}.wav"),
            raw_file: raw.into(),
            start_time: start,
            end_time: start + 10.0,
            split,
            label_source: LabelSource::none(),
            labels: None,
            scores: [None; 3],
            extra: None,
        })
    };
    for (i, n) in ["d1", "d2", "d3"].iter().enumerate() {
        add(n, "show_a.flac", 5.0 * i as f64, Split::Dev);
    }
    for (i, n) in ["d4", "d5", "d6"].iter().enumerate() {
        add(n, "show_b.flac", 5.0 * i as f64, Split::Dev);
    }
    for n in ["t1", "t2", "t3", "t4"] {
        add(n, "train.flac", 0.0, Split::Train);
    }
    for n in ["u1", "u2"] {
        add(n, "", 0.0, Split::Unlabeled);
    }
    store.upsert_segments(&rows).unwrap();
    let ann = store.annotator_id("alice").unwrap();
    let id = |p: &str| store.segment_by_path(&format!("segments/{p}.wav")).unwrap().unwrap().id;
    let gold = [("d1", "S"), ("d2", "S"), ("d3", "M"), ("d4", ""), ("d5", "SM"), ("d6", "N"), ("t1", "M")];
    let ids: Vec<(i64, LabelSet)> = gold.iter().map(|(p, l)| (id(p), ls(l))).collect();
    for (i, l) in ids {
        store.set_gold(i, ann, Some(l), false, true).unwrap();
    }
    std::fs::write(
        dir.path().join("ast.csv"),
        "segment_path,speech_score,music_score,noise_score\n\
         d1.wav,0.9,0.1,0.2\nd2.wav,0.7,0.2,0.1\nd3.wav,0.3,0.8,0.2\nd4.wav,0.6,0.1,0.3\n\
         d5.wav,0.8,0.6,0.1\nd6.wav,0.2,0.1,0.7\n\
         t1.wav,0.9,0.1,0.1\nt2.wav,0.8,0.1,0.1\nt3.wav,0.1,0.9,0.1\nt4.wav,0.1,0.1,0.1\n\
         u1.wav,0.5,0.5,0.5\nsegments/u2.wav,0.2,0.3,0.6\n",
    )
    .unwrap();
    (dir, ws)
}

#[test]
fn import_scores_refuses_bad_files_whole() {
    let (dir, ws) = workspace();
    let d = dir.path();
    std::fs::write(
        d.join("bad.csv"),
        "segment_path,speech_score,music_score,noise_score\n\
         d1.wav,0.9,0.1,0.2\n\
         nosuch.wav,0.1,0.1,0.1\n\
         d2.wav,abc,0.1,0.1\n\
         ../../etc/passwd,0.1,0.1,0.1\n\
         d1.wav,0.5,0.5,0.5\n\
         d3.wav,0.5,NaN,0.5\n",
    )
    .unwrap();
    let err = fail(d, &["import-scores", "--teacher", "ast", d.join("bad.csv").to_str().unwrap()]);
    assert!(err.contains("nothing imported"), "{err}");
    assert!(err.contains("line 3, column segment_path: unknown segment 'nosuch.wav'"), "{err}");
    assert!(err.contains("line 4, column speech_score: 'abc' is not a finite number"), "{err}");
    assert!(err.contains("line 5, column segment_path"), "{err}");
    assert!(err.contains("line 6, column segment_path: segment 'd1.wav' already appears on line 2"), "{err}");
    assert!(err.contains("line 7, column music_score: 'NaN'"), "{err}");
    // A ragged row and a missing column are refused too.
    std::fs::write(d.join("ragged.csv"), "segment_path,speech_score,music_score,noise_score\nd1.wav,0.9,0.1\n")
        .unwrap();
    let err = fail(d, &["import-scores", "--teacher", "ast", d.join("ragged.csv").to_str().unwrap()]);
    assert!(err.contains("line 2"), "{err}");
    std::fs::write(d.join("nocol.csv"), "segment_path,speech_score,music_score\nd1.wav,0.9,0.1\n").unwrap();
    let err = fail(d, &["import-scores", "--teacher", "ast", d.join("nocol.csv").to_str().unwrap()]);
    assert!(err.contains("no noise score column"), "{err}");
    let err = fail(d, &["import-scores", "--teacher", "a b", d.join("ast.csv").to_str().unwrap()]);
    assert!(err.contains("invalid teacher name"), "{err}");
    // Nothing was stored.
    assert!(ws.open_store().unwrap().runs().unwrap().is_empty());

    // The Python pipeline's prefixed names are accepted.
    std::fs::write(
        d.join("py.csv"),
        "segment_path,ast_speech_score,ast_music_score,ast_noise_score,other\nd1.wav,0.9,0.1,0.2,x\n",
    )
    .unwrap();
    let out = ok(d, &["import-scores", "--teacher", "ast", d.join("py.csv").to_str().unwrap()]);
    assert!(out.contains("imported 1 scores") && out.contains("ast_speech_score"), "{out}");
}

#[test]
fn calibrate_eval_and_pseudo_label_end_to_end() {
    let (dir, ws) = workspace();
    let d = dir.path();
    let csv = d.join("ast.csv");
    ok(d, &["import-scores", "--teacher", "ast", csv.to_str().unwrap()]);

    // Speech on dev gold: positives d1 .9, d2 .7, d5 .8; negatives d3 .3, d4 .6, d6 .2.
    //   t=.6 → TP3 FP1 P .75 ; t=.7 → TP3 FP0 P 1.
    // Target .75 is met exactly at .6 (the lowest qualifying threshold).
    let out = ok(d, &["calibrate", "--teacher", "ast", "--class", "speech", "--target", "0.75"]);
    assert!(out.contains("threshold 0.6000") && out.contains("precision 0.750 recall 1.000"), "{out}");
    // Target .8 → .7; save it.
    let out = ok(d, &["calibrate", "--teacher", "ast", "--class", "speech", "--target", "0.8", "--save"]);
    assert!(out.contains("threshold 0.7000") && out.contains("saved speech"), "{out}");
    // No gold on test → unreachable: said so, left unset, nothing saved.
    let out = ok(d, &["calibrate", "--teacher", "ast", "--class", "noise", "--split", "test", "--save"]);
    assert!(out.contains("left unset") && !out.contains("saved noise"), "{out}");
    // Quantile .5 of music scores of segments without gold (t2 .1, t3 .9, t4 .1, u1 .5, u2 .3)
    //   sorted .1 .1 .3 .5 .9 → median .3
    let out = ok(d, &["calibrate", "--teacher", "ast", "--method", "quantile", "--class", "music", "--target", "0.5"]);
    assert!(out.contains("threshold 0.3000"), "{out}");
    ok(d, &["thresholds", "set", "ast", "music", "0.5"]);
    ok(d, &["thresholds", "set", "ast", "noise", "0.25"]);
    let out = ok(d, &["thresholds", "show", "--teacher", "ast"]);
    assert!(out.contains("target_precision, target 0.8, run #1, gold n 6, by tester"), "{out}");
    assert!(out.contains("manual"), "{out}");

    // eval on dev, segment level, thresholds S .7 M .5 N .25:
    //   speech TP3 FP0 FN0 TN3 → F1 1; music pred d3 d5 = gold → F1 1;
    //   noise pred d4 (.3) d6 (.7), gold d6 → TP1 FP1 → P .5 R 1 F1 2/3; macro 8/9.
    let json = d.join("eval.json");
    let csv_out = d.join("eval.csv");
    let out = ok(
        d,
        &[
            "eval",
            "--teacher",
            "ast",
            "--split",
            "dev",
            "--json",
            json.to_str().unwrap(),
            "--csv",
            csv_out.to_str().unwrap(),
        ],
    );
    println!("{out}");
    assert!(out.contains("macro F1 0.889"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let t = &v["teachers"][0]["report"];
    assert_eq!(t["n"], 6);
    assert_eq!(t["classes"][2]["confusion"]["tp"], 1);
    assert_eq!(t["classes"][2]["confusion"]["fp"], 1);
    assert!((t["classes"][2]["f1"]["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9);
    assert!(t["classes"][2]["f1"]["lo"].is_number(), "bootstrap interval present");
    // d4: gold none (0) predicted noise (bits 4).
    assert_eq!(t["combinations"][0][4], 1);
    assert_eq!(t["combinations"][3][3], 1, "d5: SM predicted SM");
    let table = std::fs::read_to_string(&csv_out).unwrap();
    assert!(table.lines().next().unwrap().starts_with("teacher,run_id,level,class"));
    assert_eq!(table.lines().count(), 1 + 4);
    // File level: show_a gold S|S|M = SM, max scores (.9,.8,.2) → SM; show_b gold SMN,
    //   max (.8,.6,.7) → SMN → two files, both exact.
    let json_f = d.join("eval_file.json");
    ok(d, &["eval", "--split", "dev", "--level", "file", "--bootstrap", "0", "--json", json_f.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_f).unwrap()).unwrap();
    let t = &v["teachers"][0]["report"];
    assert_eq!(t["n"], 2);
    assert_eq!(t["combinations"][3][3], 1);
    assert_eq!(t["combinations"][7][7], 1);

    // Reuse AST thresholds for a zero-shot teacher with the plain column names.
    std::fs::write(
        d.join("clap.csv"),
        "segment_path,speech,music,noise\nd1.wav,0.9,0.1,0.1\nd2.wav,0.1,0.1,0.1\nd3.wav,0.1,0.9,0.1\n\
         t2.wav,0.9,0.1,0.1\nt3.wav,0.1,0.1,0.9\nu1.wav,0.1,0.9,0.9\nu2.wav,0.1,0.1,0.1\n",
    )
    .unwrap();
    ok(d, &["import-scores", "--teacher", "clap", "--zero-shot", d.join("clap.csv").to_str().unwrap()]);
    let out = ok(d, &["thresholds", "copy", "--from", "ast", "--to", "clap"]);
    assert!(out.contains("copied 3"), "{out}");
    let out = ok(d, &["thresholds", "show", "--teacher", "clap"]);
    assert!(out.contains("copied") && out.contains("from ast"), "{out}");
    let out = ok(d, &["eval", "--all", "--split", "dev", "--bootstrap", "0"]);
    println!("{out}");
    assert!(out.contains("kappa between teachers, speech"), "{out}");
    assert!(out.contains("(3 gold segments unscored, left out)"), "{out}");

    // Pseudo-labels from AST on train + unlabeled (S .7 M .5 N .25):
    //   t1 has gold (M) → keeps gold; t2 S-- ; t3 -M- ; t4 nothing → excluded;
    //   u1 (.5,.5,.5) → -MN ; u2 (.2,.3,.6) → --N.
    let out = ok(d, &["pseudo-label", "--teacher", "ast"]);
    assert!(out.contains("4 segments labelled"), "{out}");
    assert!(out.contains("1 with no class on") && out.contains("1 kept their gold label"), "{out}");
    let labels = std::fs::read_to_string(ws.metadata_dir().join("blocs_smad_labels.csv")).unwrap();
    let lines: Vec<&str> = labels.lines().collect();
    assert_eq!(
        lines[0],
        "raw_file,segment_path,start_time,end_time,split,label_source,speech_label,music_label,noise_label,speech_score,music_score,noise_score"
    );
    assert_eq!(lines.len(), 1 + 7 + 4, "7 gold rows + 4 pseudo rows:\n{labels}");
    assert!(lines.contains(&"train.flac,t1.wav,0.0,10.0,train,gold,0,1,0,,,"), "gold wins on t1:\n{labels}");
    assert!(lines.iter().any(|l| l.starts_with("train.flac,t2.wav,0.0,10.0,train,ast_pseudo,1,0,0,0.8,")), "{labels}");
    assert!(lines.iter().any(|l| l.starts_with(",u1.wav,0.0,10.0,unlabeled,ast_pseudo,0,1,1,")), "{labels}");
    assert!(!labels.contains("t4.wav"), "empty label excluded");
    let date = chrono::Utc::now().format("%Y%m%d").to_string();
    let snap = ws.experiments_dir().join(format!("ast_pseudo_train-unlabeled_{date}.csv"));
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), labels);
    let store = ws.open_store().unwrap();
    let t1 = store.segment_by_path("segments/t1.wav").unwrap().unwrap().id;
    let n: i64 =
        store.conn().query_row("SELECT count(*) FROM pseudo_labels WHERE segment_id = ?1", [t1], |r| r.get(0)).unwrap();
    assert_eq!(n, 0, "pseudo-labels never touch a gold segment");
    let gold_after = store.resolved_gold().unwrap();
    assert!(gold_after.contains(&(t1, ls("M"))), "gold unchanged");

    // Residual-noise rule: t4 becomes noise, u1 becomes music only.
    let out = ok(d, &["pseudo-label", "--teacher", "ast", "--residual-noise"]);
    assert!(out.contains("5 segments labelled"), "{out}");

    // Consensus of ast and clap, k = 2 (both use S .7 M .5 N .25), on segments both scored:
    //   t2: ast S, clap S → S ; t3: ast M, clap N → nothing → excluded ;
    //   u1: ast MN, clap MN → MN (scores: music mean(.5,.9) = .7) ; u2: ast N, clap nothing → excluded.
    //   t4 is not scored by clap → left out.
    let out = ok(d, &["pseudo-label", "--teacher", "ast,clap", "--k", "2"]);
    assert!(out.contains("2 segments labelled") && out.contains("consensus_pseudo"), "{out}");
    assert!(out.contains("2 with no class on, 1 not scored by every teacher"), "{out}");
    let labels = std::fs::read_to_string(ws.metadata_dir().join("blocs_smad_labels.csv")).unwrap();
    assert!(labels.contains(",u1.wav,0.0,10.0,unlabeled,consensus_pseudo,0,1,1,0.3,0.7,0.7"), "{labels}");
    let (cfg, job): (String, String) = store
        .conn()
        .query_row(
            "SELECT p.config, j.state FROM pseudo_runs p, jobs j WHERE j.kind = 'pseudo_label' ORDER BY p.id DESC, j.id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(job, "done");
    let cfg: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(cfg["k"], 2);
    assert_eq!(cfg["teachers"][0]["run_id"], 1);
    assert_eq!(cfg["teachers"][1]["teacher"], "clap");
    assert!(cfg["teachers"][1]["thresholds"][0][0].is_number(), "threshold ids are snapshotted");

    // k larger than the number of teachers is refused; a teacher without thresholds too.
    assert!(fail(d, &["pseudo-label", "--teacher", "ast,clap", "--k", "3"]).contains("k must be"));
    ok(d, &["import-scores", "--teacher", "m2d", csv.to_str().unwrap()]);
    assert!(fail(d, &["pseudo-label", "--teacher", "m2d"]).contains("no usable speech threshold"));

    // A single zero-shot teacher labels as <teacher>_zero_shot.
    let out = ok(d, &["pseudo-label", "--teacher", "clap"]);
    assert!(out.contains("(clap_zero_shot;"), "{out}");

    let out = ok(d, &["disagreements", "--teacher", "ast,clap", "--order", "spread"]);
    println!("{out}");
    assert!(out.contains("segments/"), "{out}");
}

#[test]
fn live_threshold_explorer_on_a_store() {
    use dams::eval::explorer::FlipKind;
    let (dir, ws) = workspace();
    ok(dir.path(), &["import-scores", "--teacher", "ast", dir.path().join("ast.csv").to_str().unwrap()]);
    let store = ws.open_store().unwrap();
    let run = dams::eval::resolve_run(&store, "ast", None).unwrap();
    let mut e =
        dams::eval::explorer_for_run(&store, run.id, dams::labels::Class::Speech, Some(&[Split::Dev]), 0.5).unwrap();
    // t = .5 on dev speech (d1 .9+, d2 .7+, d3 .3−, d4 .6−, d5 .8+, d6 .2−): TP3 FP1 → F1 6/7.
    // Without gold: t2 .8, t3 .1, t4 .1, u1 .5, u2 .2 → 2 predicted at ≥ .5.
    let m = *e.metrics();
    assert_eq!((m.tp, m.fp, m.fn_, m.tn), (3, 1, 0, 2));
    assert!((m.f1 - 6.0 / 7.0).abs() < 1e-12);
    assert_eq!((m.unlabeled_predicted, m.unlabeled_n), (2, 5));
    // Slide up by 15 fine steps to .65: d4 (.6, a negative) stops being a false positive, F1 → 1.
    e.nudge(15, false);
    assert!((e.threshold() - 0.65).abs() < 1e-9);
    assert_eq!(e.metrics().f1, 1.0);
    let flips: Vec<_> = e.flips().collect();
    assert_eq!(flips.len(), 1);
    assert_eq!(flips[0].kind, FlipKind::NoLongerFp);
    assert_eq!(flips[0].segment_id, store.segment_by_path("segments/d4.wav").unwrap().unwrap().id);
    assert_eq!(e.metrics().unlabeled_predicted, 1, "u1 (.5) dropped, t2 (.8) stays");
}

#[test]
fn kappa_between_annotators() {
    let (_dir, ws) = workspace();
    let mut store = ws.open_store().unwrap();
    let bob = store.annotator_id("bob").unwrap();
    // alice (from the fixture) on d1..d6 speech: 1 1 0 0 1 0
    // bob on d1..d6 speech:                      1 0 0 0 1 1  → κ = 1/3 (po 2/3, pe 1/2)
    // music: alice 0 0 1 0 1 0, bob 0 0 1 0 1 0 → κ = 1
    // noise: alice 0 0 0 0 0 1, bob all 0 → po 5/6, pa 1/6, pb 0 → pe 5/6 → κ = 0
    let bob_labels = ["S", "", "M", "", "SM", "S"];
    for (i, l) in bob_labels.iter().enumerate() {
        let id = store.segment_by_path(&format!("segments/d{}.wav", i + 1)).unwrap().unwrap().id;
        store.set_gold(id, bob, Some(ls(l)), false, false).unwrap();
    }
    let index = dams::eval::segment_index(&store).unwrap();
    let k = dams::eval::annotator_kappas(&store, &index, Some(&[Split::Dev])).unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!((k[0].a.as_str(), k[0].b.as_str(), k[0].n), ("alice", "bob", 6));
    assert!((k[0].kappa[0].unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(k[0].kappa[1], Some(1.0));
    assert!(k[0].kappa[2].unwrap().abs() < 1e-12);
}
