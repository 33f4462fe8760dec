//! Rounds of self-training as `dams loop` records them (`experiments/loop_<seed>_<time>.json`): per round the
//! teachers, the pseudo-label run, the student trained and every teacher's and the student's macro F1 on gold dev
//! and test. The CLI writes these records; the TUI's rounds screen reads them back to compare rounds and runs.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// How students are named as teachers (`crate::student::teacher::PREFIX`, which needs the model engine).
const STUDENT_PREFIX: &str = "student:";

/// Macro F1 of one teacher (or student) on the gold of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeacherF1 {
    pub teacher: String,
    pub split: String,
    pub n: usize,
    /// Speech, music, noise.
    pub f1: [f64; 3],
    pub macro_f1: f64,
}

/// One round of `dams loop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    pub round: usize,
    pub teachers: Vec<String>,
    pub pseudo_run: i64,
    pub pseudo_labelled: usize,
    pub student: String,
    pub results: Vec<TeacherF1>,
}

impl Round {
    /// The student as a teacher id (`student:<name>`), as its results are recorded.
    pub fn student_id(&self) -> String {
        if self.student.starts_with(STUDENT_PREFIX) {
            self.student.clone()
        } else {
            format!("{}{}", STUDENT_PREFIX, self.student)
        }
    }

    /// The figure of `teacher` on `split`, if evaluated.
    pub fn f1(&self, teacher: &str, split: &str) -> Option<&TeacherF1> {
        self.results.iter().find(|r| r.teacher == teacher && r.split == split)
    }

    /// The best macro F1 on `split` among the round's teachers (not its student), with the teacher.
    pub fn best_teacher(&self, split: &str) -> Option<&TeacherF1> {
        self.results
            .iter()
            .filter(|r| r.split == split && self.teachers.contains(&r.teacher))
            .max_by(|a, b| a.macro_f1.total_cmp(&b.macro_f1))
    }
}

/// One run of `dams loop` (one file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopRecord {
    /// The file name (not part of the JSON).
    #[serde(skip)]
    pub file: String,
    pub seed: u64,
    pub backbone: String,
    pub combine: String,
    #[serde(default)]
    pub k: usize,
    #[serde(default)]
    pub epochs: usize,
    pub teachers: Vec<String>,
    pub rounds: Vec<Round>,
}

impl LoopRecord {
    /// `(round, the student's macro F1 minus the best teacher's of that round)` on `split`.
    pub fn margins(&self, split: &str) -> Vec<(usize, f64)> {
        self.rounds
            .iter()
            .filter_map(|r| Some((r.round, r.f1(&r.student_id(), split)?.macro_f1 - r.best_teacher(split)?.macro_f1)))
            .collect()
    }

    /// When the run started, from its file name (`loop_<seed>_<YYYYmmddTHHMMSS>.json` → `YYYY-mm-dd HH:MM`).
    pub fn started(&self) -> Option<String> {
        let t = self.file.strip_suffix(".json")?.rsplit('_').next()?;
        let (d, h) = t.split_once('T')?;
        (d.len() == 8 && h.len() == 6 && t.chars().filter(|c| *c != 'T').all(|c| c.is_ascii_digit()))
            .then(|| format!("{}-{}-{} {}:{}", &d[..4], &d[4..6], &d[6..], &h[..2], &h[2..4]))
    }

    /// A one-line description: recipe and rounds.
    pub fn summary(&self) -> String {
        let combine = if self.combine == "vote" { format!("vote k={}", self.k) } else { self.combine.clone() };
        format!("seed {} · {} · {} · {} round(s)", self.seed, self.backbone, combine, self.rounds.len())
    }
}

/// Every loop record in `experiments_dir`, newest first (by the time in the file name), and one message per file that
/// could not be read (the others are still listed).
pub fn list(experiments_dir: &Path) -> (Vec<LoopRecord>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(experiments_dir) else { return (out, errors) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !(name.starts_with("loop_") && name.ends_with(".json")) {
            continue;
        }
        let parsed = std::fs::read_to_string(e.path())
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<LoopRecord>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(mut r) => {
                r.file = name;
                out.push(r);
            }
            Err(err) => errors.push(format!("{name}: {err}")),
        }
    }
    // loop_<seed>_<YYYYmmddTHHMMSS>.json: the time part orders them.
    let time = |f: &str| f.trim_end_matches(".json").rsplit('_').next().unwrap_or_default().to_string();
    out.sort_by(|a, b| time(&b.file).cmp(&time(&a.file)).then_with(|| a.file.cmp(&b.file)));
    errors.sort();
    (out, errors)
}

/// Records for tests (here and in the TUI's).
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    /// A figure with the same F1 for every class.
    pub fn f(teacher: &str, split: &str, m: f64) -> TeacherF1 {
        TeacherF1 { teacher: teacher.into(), split: split.into(), n: 10, f1: [m; 3], macro_f1: m }
    }

    /// A one-round ina-head, 1-vote run of `teachers` with student `student` and these figures.
    pub fn record(
        seed: u64,
        teachers: &[&str],
        student: &str,
        pseudo_labelled: usize,
        results: Vec<TeacherF1>,
    ) -> LoopRecord {
        let teachers: Vec<String> = teachers.iter().map(|t| t.to_string()).collect();
        LoopRecord {
            file: String::new(),
            seed,
            backbone: "ina-head".into(),
            combine: "vote".into(),
            k: 1,
            epochs: 15,
            teachers: teachers.clone(),
            rounds: vec![Round {
                round: 1,
                teachers,
                pseudo_run: 3,
                pseudo_labelled,
                student: student.into(),
                results,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{f, record};
    use super::*;

    #[test]
    fn records_list_newest_first_with_margins_and_broken_files_reported() {
        let dir = tempfile::tempdir().unwrap();
        let rec = |seed: u64, student_dev: f64| {
            let results =
                vec![f("a", "dev", 0.9), f("b", "dev", 0.8), f("student:s", "dev", student_dev), f("a", "test", 0.7)];
            record(seed, &["a", "b"], "s", 5, results)
        };
        std::fs::write(dir.path().join("loop_0_20261207T100000.json"), serde_json::to_string(&rec(0, 0.95)).unwrap())
            .unwrap();
        std::fs::write(dir.path().join("loop_1_20261207T110000.json"), serde_json::to_string(&rec(1, 0.85)).unwrap())
            .unwrap();
        std::fs::write(dir.path().join("loop_2_20261207T120000.json"), "{ not json").unwrap();
        std::fs::write(dir.path().join("other.json"), "{}").unwrap();
        let (recs, errors) = list(dir.path());
        assert_eq!(recs.iter().map(|r| r.seed).collect::<Vec<_>>(), vec![1, 0]);
        assert_eq!(recs[1].file, "loop_0_20261207T100000.json");
        assert_eq!(recs[1].started().as_deref(), Some("2026-12-07 10:00"));
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("loop_2_"), "{errors:?}");
        let m = recs[1].margins("dev");
        assert_eq!(m.len(), 1);
        assert!((m[0].1 - 0.05).abs() < 1e-12, "{m:?}");
        assert!((recs[0].margins("dev")[0].1 + 0.05).abs() < 1e-12);
        // No student figure on test: no margin.
        assert!(recs[0].margins("test").is_empty());
        assert_eq!(recs[0].rounds[0].best_teacher("dev").unwrap().teacher, "a");
        assert_eq!(recs[0].summary(), "seed 1 · ina-head · vote k=1 · 1 round(s)");
        assert!(list(&dir.path().join("missing")).0.is_empty());
    }
}
