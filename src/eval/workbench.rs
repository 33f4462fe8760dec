//! The researcher's interactive sessions behind the TUI's threshold view and disagreement
//! browser: which teacher and class is shown, the live explorer, calibration targets, the queue
//! and its filters. Plain state over the store; the TUI only draws it and maps keys onto it.

use std::collections::HashMap;

use super::calibrate::{Calibration, Method};
use super::disagreement::{self, Filter, Order, Row, TeacherVotes};
use super::explorer::{ClassExplorer, Flip};
use super::{Result, calibration_pools, gold_map, run_scores, segment_index};
use crate::labels::{CLASSES, Class, Split};
use crate::store::{NewThreshold, Store, TeacherRun};

/// Gold used by the gold-based calibrations (as `dams calibrate`'s default).
pub const GOLD_SPLITS: [Split; 1] = [Split::Dev];

/// The live threshold view's state: one teacher's latest run, its three class explorers.
pub struct ThresholdSession {
    pub teachers: Vec<TeacherRun>,
    pub teacher: usize,
    pub class: Class,
    /// The three class explorers of the current teacher's run (built once per teacher switch).
    explorers: Vec<ClassExplorer>,
    /// The saved (active) threshold of each class of the current teacher.
    pub saved: [Option<f64>; 3],
    pub target_precision: f64,
    pub quantile: f64,
    /// The calibration that put the slider where it is (None after a manual move): its
    /// method and target become the saved threshold's provenance.
    pub calibration: Option<Calibration>,
    /// Selected row of the flips list.
    pub flip_cursor: usize,
}

impl ThresholdSession {
    /// Load the latest run of every teacher with scores; the first one is shown.
    pub fn load(store: &Store) -> Result<ThresholdSession> {
        let mut s = ThresholdSession {
            teachers: store.latest_runs()?,
            teacher: 0,
            class: Class::Speech,
            explorers: Vec::new(),
            saved: [None; 3],
            target_precision: 0.85,
            quantile: 0.90,
            calibration: None,
            flip_cursor: 0,
        };
        s.load_teacher(store)?;
        Ok(s)
    }

    /// A session over ready-made explorers (benchmarks, tests): one run, the three classes.
    pub fn with_explorers(run: TeacherRun, explorers: Vec<ClassExplorer>) -> ThresholdSession {
        ThresholdSession {
            teachers: vec![run],
            teacher: 0,
            class: Class::Speech,
            explorers,
            saved: [None; 3],
            target_precision: 0.85,
            quantile: 0.90,
            calibration: None,
            flip_cursor: 0,
        }
    }

    pub fn run(&self) -> Option<&TeacherRun> {
        self.teachers.get(self.teacher)
    }

    /// Rebuild the explorers of the current teacher (a full read of its scores: on switches only).
    fn load_teacher(&mut self, store: &Store) -> Result<()> {
        self.explorers.clear();
        self.calibration = None;
        self.flip_cursor = 0;
        let Some(run) = self.teachers.get(self.teacher) else { return Ok(()) };
        let th = store.thresholds(&run.teacher)?;
        self.saved = th.map(|t| t.and_then(|t| t.value));
        let index = segment_index(store)?;
        let gold = gold_map(store, &index, None)?;
        let scores = run_scores(store, run.id)?;
        for c in CLASSES {
            let (g, unl) = calibration_pools(&scores, &gold, &index, Some(&GOLD_SPLITS), c);
            let start = self.saved[c.index()].filter(|v| v.is_finite()).unwrap_or(0.5);
            self.explorers.push(ClassExplorer::new(c, &g, &unl, start));
        }
        Ok(())
    }

    /// Reload everything (e.g. after labels changed or a scoring job finished), keeping the
    /// teacher, class and slider position where possible.
    pub fn reload(&mut self, store: &Store) -> Result<()> {
        let name = self.run().map(|r| r.teacher.clone());
        let pos: Vec<f64> = self.explorers.iter().map(|e| e.threshold()).collect();
        self.teachers = store.latest_runs()?;
        self.teacher = name.and_then(|n| self.teachers.iter().position(|r| r.teacher == n)).unwrap_or(0);
        self.load_teacher(store)?;
        if pos.len() == self.explorers.len() {
            for (e, t) in self.explorers.iter_mut().zip(pos) {
                e.set_threshold(t);
            }
        }
        Ok(())
    }

    /// Switch teacher by `delta` (wrapping).
    pub fn switch_teacher(&mut self, store: &Store, delta: isize) -> Result<()> {
        let n = self.teachers.len();
        if n == 0 {
            return Ok(());
        }
        self.teacher = (self.teacher as isize + delta).rem_euclid(n as isize) as usize;
        self.load_teacher(store)
    }

    pub fn next_class(&mut self) {
        self.class = Class::from_index((self.class.index() + 1) % 3).unwrap_or(Class::Speech);
        self.calibration = None;
        self.flip_cursor = 0;
    }

    /// The explorer of the current class (None without teacher runs).
    pub fn explorer(&self) -> Option<&ClassExplorer> {
        self.explorers.get(self.class.index())
    }

    fn explorer_mut(&mut self) -> Option<&mut ClassExplorer> {
        self.explorers.get_mut(self.class.index())
    }

    /// Move the slider by fine or coarse steps: O(log n) (two binary searches).
    pub fn nudge(&mut self, steps: i32, coarse: bool) {
        self.calibration = None;
        self.flip_cursor = 0;
        if let Some(e) = self.explorer_mut() {
            e.nudge(steps, coarse);
        }
    }

    /// Calibrate the current class; the slider moves there when the goal is reached.
    pub fn calibrate(&mut self, method: Method) -> Option<Calibration> {
        let target = match method {
            Method::TargetPrecision => self.target_precision,
            Method::Quantile => self.quantile,
            Method::F1Optimal => 0.0,
        };
        self.flip_cursor = 0;
        let c = self.explorer_mut()?.calibrate(method, target);
        self.calibration = c.reached().then(|| c.clone());
        Some(c)
    }

    /// The flips of the last move (lazily: only the first `n`).
    pub fn flips(&self, n: usize) -> Vec<Flip> {
        self.explorer().map(|e| e.flips().take(n).collect()).unwrap_or_default()
    }

    /// Save the current class's slider position as the teacher's threshold, with provenance:
    /// the calibration method and target that produced it (or `manual`), the run, the gold size
    /// and who. Returns the threshold id.
    pub fn save(&mut self, store: &mut Store, created_by: &str) -> Result<Option<(i64, f64)>> {
        let (Some(run), Some(e)) = (self.teachers.get(self.teacher), self.explorers.get(self.class.index())) else {
            return Ok(None);
        };
        let value = e.threshold();
        let (method, target) = match &self.calibration {
            Some(c) => (c.method.as_str().to_string(), c.target),
            None => ("manual".to_string(), None),
        };
        let quantile = self.calibration.as_ref().is_some_and(|c| c.method == Method::Quantile);
        let m = e.metrics();
        let id = store.save_threshold(&NewThreshold {
            teacher: run.teacher.clone(),
            class: Some(self.class),
            value: Some(value),
            method,
            target,
            run_id: Some(run.id),
            gold_n: (!quantile).then_some(m.gold_n as i64),
            source: None,
            created_by: created_by.to_string(),
            note: Some(if quantile {
                format!("TUI threshold view: quantile of {} unlabeled scores", m.unlabeled_n)
            } else {
                format!("TUI threshold view on gold of dev: P {:.3} R {:.3} F1 {:.3}", m.precision, m.recall, m.f1)
            }),
        })?;
        self.saved[self.class.index()] = Some(value);
        Ok(Some((id, value)))
    }
}

/// The disagreement browser's state: the teachers' votes, all rows, the ordered queue.
pub struct DisagreementSession {
    pub teachers: Vec<TeacherVotes>,
    /// Teachers left out, with why (no complete set of thresholds).
    pub skipped: Vec<(String, String)>,
    pub rows: Vec<Row>,
    pub order: Order,
    pub filter: Filter,
    /// Indices into `rows`, most disagreeing first.
    pub queue: Vec<usize>,
    pub cursor: usize,
    /// Teacher-vs-teacher kappa per class.
    pub kappa: [Vec<Vec<Option<f64>>>; 3],
    /// Segment paths by id (for display).
    pub paths: HashMap<i64, String>,
}

impl DisagreementSession {
    /// Every teacher with scores and a complete set of thresholds takes part.
    pub fn load(store: &Store) -> Result<DisagreementSession> {
        let index = segment_index(store)?;
        let gold = gold_map(store, &index, None)?;
        let mut teachers = Vec::new();
        let mut skipped = Vec::new();
        for run in store.latest_runs()? {
            match super::required_thresholds(store, &run.teacher) {
                Ok((th, _)) => teachers.push(TeacherVotes {
                    teacher: run.teacher.clone(),
                    run_id: run.id,
                    scores: run_scores(store, run.id)?,
                    thresholds: th,
                }),
                Err(e) => skipped.push((run.teacher.clone(), e.to_string())),
            }
        }
        let rows = disagreement::rows(&teachers, &index, &gold);
        let kappa = CLASSES.map(|c| disagreement::agreement_matrix(&teachers, c));
        let paths = store.segments(None)?.into_iter().map(|s| (s.id, s.segment_path)).collect();
        let mut s = DisagreementSession {
            teachers,
            skipped,
            rows,
            order: Order::VoteEntropy,
            filter: Filter::default(),
            queue: Vec::new(),
            cursor: 0,
            kappa,
            paths,
        };
        s.requeue();
        Ok(s)
    }

    fn requeue(&mut self) {
        let keep = self.selected().map(|r| r.segment_id);
        self.queue = disagreement::queue(&self.rows, self.order, &self.filter);
        self.cursor = keep
            .and_then(|id| self.queue.iter().position(|&i| self.rows[i].segment_id == id))
            .unwrap_or(0)
            .min(self.queue.len().saturating_sub(1));
    }

    pub fn selected(&self) -> Option<&Row> {
        self.queue.get(self.cursor).map(|&i| &self.rows[i])
    }

    pub fn cycle_order(&mut self) {
        self.order = match self.order {
            Order::VoteEntropy => Order::Spread,
            Order::Spread => Order::Gold,
            Order::Gold => Order::Uncertainty,
            Order::Uncertainty => Order::VoteEntropy,
        };
        self.requeue();
    }

    pub fn cycle_class(&mut self) {
        self.filter.class = match self.filter.class {
            None => Some(Class::Speech),
            Some(Class::Speech) => Some(Class::Music),
            Some(Class::Music) => Some(Class::Noise),
            Some(Class::Noise) => None,
        };
        self.requeue();
    }

    pub fn cycle_split(&mut self) {
        const ORDER: [Split; 5] = [Split::Dev, Split::Test, Split::Train, Split::Unlabeled, Split::Unsplit];
        let next = match self.filter.splits.first() {
            None => Some(ORDER[0]),
            Some(s) => ORDER.iter().position(|x| x == s).and_then(|i| ORDER.get(i + 1)).copied(),
        };
        self.filter.splits = next.into_iter().collect();
        self.requeue();
    }

    pub fn move_cursor(&mut self, delta: isize) {
        let n = self.queue.len();
        if n > 0 {
            self.cursor = (self.cursor as isize + delta).clamp(0, n as isize - 1) as usize;
        }
    }

    /// The kappa matrix shown: the filtered class, or speech when ranking over all classes.
    pub fn kappa_class(&self) -> Class {
        self.filter.class.unwrap_or(Class::Speech)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{LabelSet, LabelSource};
    use crate::store::{NewRun, NewSegment, ScoreRow};

    /// Five dev segments with gold speech + - + + -; teacher `a` speech scores .9 .8 .6 .4 .1
    /// (the explorer's sample), two unlabeled segments .7 .95; teacher `b` inverts them.
    fn store() -> Store {
        let mut s = Store::open_in_memory().unwrap();
        let segs: Vec<NewSegment> = (0..7)
            .map(|i| NewSegment {
                segment_path: format!("segments/s{i}.wav"),
                raw_file: "r.wav".into(),
                start_time: 5.0 * i as f64,
                end_time: 5.0 * i as f64 + 10.0,
                split: if i < 5 { Split::Dev } else { Split::Unlabeled },
                label_source: LabelSource::none(),
                labels: None,
                scores: [None; 3],
                extra: None,
            })
            .collect();
        s.upsert_segments(&segs).unwrap();
        let ann = s.annotator_id("t").unwrap();
        for (id, p) in [(1, true), (2, false), (3, true), (4, true), (5, false)] {
            s.set_gold(id, ann, Some(LabelSet::new(p, false, false)), false, false).unwrap();
        }
        let sp = [0.9, 0.8, 0.6, 0.4, 0.1, 0.7, 0.95];
        for (name, inv) in [("a", false), ("b", true)] {
            let run = s.create_run(&NewRun {
                teacher: name,
                checksum: "c",
                settings: "{}",
                imported: true,
                zero_shot: false,
            });
            let run = run.unwrap();
            let rows: Vec<ScoreRow> = (0..7)
                .map(|i| {
                    let v = if inv { 1.0 - sp[i] } else { sp[i] } as f32;
                    ScoreRow { segment_id: i as i64 + 1, scores: [v, 0.0, 0.0], raw: None }
                })
                .collect();
            s.put_scores(run, &rows).unwrap();
            for c in CLASSES {
                s.save_threshold(&NewThreshold {
                    teacher: name.into(),
                    class: Some(c),
                    value: Some(0.5),
                    method: "manual".into(),
                    created_by: "t".into(),
                    ..Default::default()
                })
                .unwrap();
            }
        }
        s
    }

    #[test]
    fn threshold_session_moves_calibrates_and_saves_with_provenance() {
        let mut st = store();
        let mut s = ThresholdSession::load(&st).unwrap();
        assert_eq!(s.teachers.len(), 2);
        let m = *s.explorer().unwrap().metrics();
        // t = .5: TP 2 FP 1 FN 1 → F1 2/3; unlabeled ≥ .5: .7 .95
        assert_eq!((m.tp, m.fp, m.fn_, m.unlabeled_predicted), (2, 1, 1, 2));
        // ten fine steps down to .4: the .4 positive flips back (no longer FN)
        s.nudge(-10, false);
        let m = *s.explorer().unwrap().metrics();
        assert!((m.threshold - 0.4).abs() < 1e-9);
        assert!((m.f1 - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(s.flips(10).len(), 1);
        assert_eq!(s.flips(10)[0].segment_id, 4);
        // F1-optimal lands on .4 as well; saving records the method, run and gold size.
        s.nudge(5, false);
        let c = s.calibrate(Method::F1Optimal).unwrap();
        // scores are stored as f32: 0.4 comes back as 0.4f32
        assert_eq!(c.threshold, Some(0.4f32 as f64));
        let (id, v) = s.save(&mut st, "ann").unwrap().unwrap();
        assert_eq!(v, 0.4f32 as f64);
        let t = st.thresholds("a").unwrap()[0].clone().unwrap();
        assert_eq!((t.id, t.method.as_str(), t.gold_n, t.created_by.as_str()), (id, "f1_optimal", Some(5), "ann"));
        assert_eq!(t.run_id, Some(s.run().unwrap().id));
        // Unreachable target precision leaves the slider (and provenance) alone.
        s.target_precision = 1.0;
        s.nudge(0, false);
        let c = s.calibrate(Method::TargetPrecision).unwrap();
        assert!(c.reached(), "precision 1 is reached at .9");
        s.switch_teacher(&st, 1).unwrap();
        assert_eq!(s.run().unwrap().teacher, "b");
        s.next_class();
        assert_eq!(s.class, Class::Music);
    }

    #[test]
    fn disagreement_session_filters_and_has_a_kappa_matrix() {
        let st = store();
        let mut d = DisagreementSession::load(&st).unwrap();
        assert_eq!(d.teachers.len(), 2);
        // a and b vote oppositely on speech for every segment (.5 is never a score), so every
        // segment has entropy 1 on speech; queue in segment order.
        assert_eq!(d.queue.len(), 7);
        assert_eq!(d.selected().unwrap().segment_id, 1);
        // kappa of perfectly opposite votes with balanced marginals is -1 (a: 5 on/2 off... ).
        assert!(d.kappa[0][0][1].unwrap() < 0.0);
        d.cycle_split();
        assert_eq!(d.filter.splits, vec![Split::Dev]);
        assert_eq!(d.queue.len(), 5);
        d.cycle_order();
        d.cycle_order();
        assert_eq!(d.order, Order::Gold);
        assert_eq!(d.queue.len(), 5);
        d.move_cursor(10);
        assert_eq!(d.cursor, 4);
    }
}
