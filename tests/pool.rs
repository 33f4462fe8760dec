//! `dams pool build` on generated stems: deterministic per seed, exact timelines that partition each show, licences
//! tracked, non-commercial stems refused, excluded parts never used, bad input named.

use std::path::Path;

use dams::pool::{PoolOptions, build};

fn write(path: &Path, x: &[f32]) {
    dams::audio::write_wav_16k(path, x).unwrap();
}

/// A stems folder: 3 speakers × 2 "utterances" (syllable-rate bursts of a harmonic tone), 2 music pieces (chords),
/// 2 noises, 1 non-commercial music piece that must never be used.
fn stems(dir: &Path) {
    for d in ["speech", "music", "noise"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    let mut rows = vec!["file,kind,speaker,gender,license,attribution,source".to_string()];
    let mut seed = 1u64;
    let mut rnd = move || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((seed >> 33) as f64 / (1u64 << 31) as f64) * 2.0 - 1.0
    };
    for spk in 0..3 {
        for u in 0..2 {
            let f0 = 110.0 + 40.0 * spk as f64;
            let x: Vec<f32> = (0..16_000 * 4)
                .map(|i| {
                    let t = i as f64 / 16_000.0;
                    let env = ((2.0 * std::f64::consts::PI * 4.0 * t).sin()).max(0.0);
                    let v: f64 =
                        (1..6).map(|h| (2.0 * std::f64::consts::PI * f0 * h as f64 * t).sin() / h as f64).sum();
                    (0.2 * env * v) as f32
                })
                .collect();
            let f = format!("speech/s{spk}_{u}.wav");
            write(&dir.join(&f), &x);
            rows.push(format!("{f},speech,spk{spk},F,CC0-1.0,test speaker {spk},gen:s{spk}_{u}"));
        }
    }
    for (m, lic) in [(0, "CC-BY-4.0"), (1, "CC0-1.0"), (2, "CC-BY-NC-4.0")] {
        let x: Vec<f32> = (0..16_000 * 20)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let v: f64 = [261.6, 329.6, 392.0]
                    .iter()
                    .map(|f| (2.0 * std::f64::consts::PI * f * (1.0 + 0.1 * m as f64) * t).sin())
                    .sum();
                (0.1 * v) as f32
            })
            .collect();
        let f = format!("music/m{m}.wav");
        write(&dir.join(&f), &x);
        rows.push(format!("{f},music,,,{lic},test music {m},gen:m{m}"));
    }
    for k in 0..2 {
        let x: Vec<f32> = (0..16_000 * 8).map(|_| (0.1 * rnd()) as f32).collect();
        let f = format!("noise/n{k}.wav");
        write(&dir.join(&f), &x);
        rows.push(format!("{f},noise,,,CC0-1.0,test noise {k},gen:n{k}"));
    }
    std::fs::write(dir.join("stems.csv"), rows.join("\n") + "\n").unwrap();
}

fn opts(stems: &Path, out: &Path, seed: u64) -> PoolOptions {
    PoolOptions {
        stems: stems.into(),
        out: out.into(),
        hours: 1.0 / 60.0,
        seed,
        show_secs: 30.0,
        exclude: Vec::new(),
        disclose: Vec::new(),
    }
}

#[test]
fn pools_are_seeded_timelines_partition_shows_and_licences_are_tracked() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("stems");
    stems(&st);
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    let ra = build(&opts(&st, &a, 7), |_, _| {}).unwrap();
    build(&opts(&st, &b, 7), |_, _| {}).unwrap();
    build(&opts(&st, &c, 8), |_, _| {}).unwrap();
    assert_eq!(ra.shows, ["pool_001.wav", "pool_002.wav"]);
    assert!((ra.seconds - 60.0).abs() < 25.0, "{}", ra.seconds);
    let bytes = |d: &Path| std::fs::read(d.join("pool_001.wav")).unwrap();
    assert_eq!(bytes(&a), bytes(&b), "same seed, same audio");
    assert_ne!(bytes(&a), bytes(&c), "another seed, another pool");
    assert_eq!(ra.stems_excluded, 1, "the non-commercial piece is refused");
    let sources = std::fs::read_to_string(a.join("sources.csv")).unwrap();
    assert!(!sources.contains("NC"), "{sources}");
    assert!(sources.contains("CC-BY-4.0") || sources.contains("CC0-1.0"), "{sources}");
    for show in &ra.shows {
        let stem = show.trim_end_matches(".wav");
        let x = dams::audio::load_mono_16k(&a.join(show)).unwrap();
        let dur = x.len() as f64 / 16_000.0;
        assert!(x.iter().all(|v| v.abs() <= 0.98), "{show} clips");
        let tl = std::fs::read_to_string(a.join(format!("{stem}_timeline.csv"))).unwrap();
        let rows: Vec<Vec<f64>> =
            tl.lines().skip(1).map(|l| l.split(',').map(|v| v.parse().unwrap()).collect()).collect();
        assert_eq!(rows[0][0], 0.0);
        assert!(
            (rows.last().unwrap()[1] - dur).abs() < 2e-3,
            "{show}: timeline ends at {:?}, audio {dur}",
            rows.last()
        );
        for w in rows.windows(2) {
            assert_eq!(w[0][1], w[1][0], "{show}: not a partition");
            assert_ne!(w[0][2..], w[1][2..], "{show}: equal neighbours not merged");
        }
        // Silence where the timeline says dead air (only the −78 dBFS floor), sound where it says speech/music.
        for r in &rows {
            let (s0, s1) = ((r[0] * 16_000.0) as usize, ((r[1] * 16_000.0) as usize).min(x.len()));
            if s1 <= s0 + 3200 {
                continue;
            }
            let inner = &x[s0 + 1600..s1 - 1600];
            let rms = (inner.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / inner.len() as f64).sqrt();
            if r[2..] == [0.0, 0.0, 0.0] {
                assert!(rms < 1e-3, "{show} {r:?}: dead air at rms {rms}");
            } else if r[3] == 1.0 {
                assert!(rms > 3e-3, "{show} {r:?}: music at rms {rms}");
            }
        }
    }
    assert!(ra.combination_secs.len() >= 3, "{:?}", ra.combination_secs);
}

#[test]
fn excluded_parts_are_never_used_and_bad_tables_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let st = tmp.path().join("stems");
    stems(&st);
    // Evaluation used all of speaker 0's utterances, music 0 from 2 s to 19 s, and all of noise 0.
    let ev = tmp.path().join("eval_events.csv");
    std::fs::write(
        &ev,
        "file,layer,start,end,source,src_start,src_end\n\
         x,speech,0,4,gen:s0_0,0,4\nx,speech,0,4,gen:s0_1,0,4\nx,music,0,17,gen:m0,2,19\nx,noise,0,8,gen:n0,0,8\n",
    )
    .unwrap();
    let out = tmp.path().join("p");
    let r = build(&PoolOptions { exclude: vec![ev.clone()], ..opts(&st, &out, 3) }, |_, _| {}).unwrap();
    let mut events = String::new();
    for show in &r.shows {
        events += &std::fs::read_to_string(out.join(show.replace(".wav", "_events.csv"))).unwrap();
    }
    assert!(!events.contains("gen:s0_"), "an excluded utterance was used");
    assert!(!events.contains("gen:n0"), "excluded noise was used");
    for l in events.lines().filter(|l| l.contains("gen:m0")) {
        panic!("music 0 has no free part of 3 s after excluding 1.5–19.5 s of 20 s: {l}");
    }
    // Shared speakers are reported, not hidden; speaker 0 has no free part and is gone entirely.
    assert!(r.overlap.iter().all(|o| !o.contains("spk0")), "{:?}", r.overlap);
    // A table without the needed columns is named with the column.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "source,start\nx,1\n").unwrap();
    let e = build(&PoolOptions { exclude: vec![bad], ..opts(&st, &out, 3) }, |_, _| {}).unwrap_err();
    assert!(format!("{e:#}").contains("src_start"), "{e:#}");
    // A stems folder without stems.csv says so.
    let e = build(&opts(tmp.path(), &out, 3), |_, _| {}).unwrap_err();
    assert!(format!("{e:#}").contains("stems.csv"), "{e:#}");
}
