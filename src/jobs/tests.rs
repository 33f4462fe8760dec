use super::*;
use crate::workspace::Workspace;

/// A job that processes items one by one, skipping those already recorded as done — the same
/// resume pattern scoring uses (per segment) — and checks for cancellation between items.
fn counting_job(
    db: PathBuf,
    n: u64,
    gate: Arc<(Mutex<u64>, std::sync::Condvar)>,
) -> impl FnOnce(&JobCtx) -> Result<Value> {
    move |ctx| {
        let store = Store::open(&db)?;
        store.conn().execute_batch("CREATE TABLE IF NOT EXISTS work_done (item INTEGER PRIMARY KEY)")?;
        let already: i64 = store.conn().query_row("SELECT count(*) FROM work_done", [], |r| r.get(0))?;
        ctx.resume_from(already as u64);
        let mut processed = 0u64;
        for i in 0..n {
            let done: bool =
                store
                    .conn()
                    .query_row("SELECT count(*) > 0 FROM work_done WHERE item = ?1", [i as i64], |r| r.get(0))?;
            if done {
                continue;
            }
            // Wait until the test lets item i through (so cancellation lands at a known point).
            {
                let (lock, cv) = &*gate;
                let mut allowed = lock.lock().unwrap();
                while *allowed <= i && !ctx.is_cancelled() {
                    allowed = cv.wait_timeout(allowed, Duration::from_millis(20)).unwrap().0;
                }
            }
            ctx.check_cancel()?;
            store.conn().execute("INSERT INTO work_done (item) VALUES (?1)", [i as i64])?;
            processed += 1;
            ctx.progress(i + 1, Some(n));
        }
        Ok(serde_json::json!({ "processed": processed }))
    }
}

fn release(gate: &Arc<(Mutex<u64>, std::sync::Condvar)>, upto: u64) {
    let (lock, cv) = &**gate;
    *lock.lock().unwrap() = upto;
    cv.notify_all();
}

fn wait_for(runner: &JobRunner, id: i64, pred: impl Fn(&JobView) -> bool) -> JobView {
    let t0 = Instant::now();
    loop {
        let v = runner.view(id).unwrap();
        if pred(&v) {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(20), "timed out waiting; last view {v:?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn cancel_then_resume_does_not_redo_work() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path()).unwrap();
    let db = ws.db_path();
    let mut runner = JobRunner::new(&db);
    let gate = Arc::new((Mutex::new(0u64), std::sync::Condvar::new()));
    let id = runner
        .spawn("count", serde_json::json!({"n": 10}), Some(10), counting_job(db.clone(), 10, gate.clone()))
        .unwrap();
    release(&gate, 4);
    wait_for(&runner, id, |v| v.done == 4);
    assert!(runner.cancel(id));
    let v = runner.wait(id).unwrap();
    assert_eq!(v.state, JobState::Cancelled);
    assert_eq!(v.done, 4);
    let store = Store::open(&db).unwrap();
    let job = store.jobs(10).unwrap().into_iter().find(|j| j.id == id).unwrap();
    assert_eq!(job.state, "cancelled");
    assert!(job.finished_at.is_some());

    // Resume: a new job with the same work skips the 4 finished items.
    let gate2 = Arc::new((Mutex::new(100u64), std::sync::Condvar::new()));
    let id2 =
        runner.spawn("count", serde_json::json!({"n": 10}), Some(10), counting_job(db.clone(), 10, gate2)).unwrap();
    let v2 = runner.wait(id2).unwrap();
    assert_eq!(v2.state, JobState::Done, "{v2:?}");
    assert_eq!(v2.result.unwrap()["processed"], 6);
    assert_eq!(v2.done, 10);
    let n: i64 = store.conn().query_row("SELECT count(*) FROM work_done", [], |r| r.get(0)).unwrap();
    assert_eq!(n, 10);
}

#[test]
fn failures_and_panics_are_recorded_not_propagated() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path()).unwrap();
    let mut runner = JobRunner::new(ws.db_path());
    let a = runner.spawn("bad", Value::Null, None, |_| anyhow::bail!("no such teacher 'xyz'")).unwrap();
    let b = runner.spawn("panicky", Value::Null, None, |_| -> Result<Value> { panic!("boom") }).unwrap();
    let va = runner.wait(a).unwrap();
    let vb = runner.wait(b).unwrap();
    assert_eq!(va.state, JobState::Failed);
    assert!(va.error.unwrap().contains("no such teacher"));
    assert_eq!(vb.state, JobState::Failed);
    assert!(vb.error.unwrap().contains("boom"));
    let store = ws.open_store().unwrap();
    let states: Vec<String> = store.jobs(10).unwrap().into_iter().map(|j| j.state).collect();
    assert_eq!(states, vec!["failed", "failed"]);
}

#[test]
fn metrics_log_and_eta() {
    let mut runner = JobRunner::in_memory();
    let id = runner
        .spawn("train", Value::Null, Some(3), |ctx| {
            for (i, loss) in [0.9, 0.5, 0.3].into_iter().enumerate() {
                ctx.phase(format!("epoch {}", i + 1));
                ctx.metric("loss", loss);
                ctx.log(format!("epoch {} loss {loss}", i + 1));
                ctx.progress(i as u64 + 1, None);
            }
            Ok(Value::Bool(true))
        })
        .unwrap();
    let v = runner.wait(id).unwrap();
    assert_eq!(v.state, JobState::Done);
    assert_eq!(v.metric("loss").unwrap(), &[0.9, 0.5, 0.3]);
    assert_eq!(v.log.back().unwrap(), "epoch 3 loss 0.3");
    assert_eq!(v.fraction(), Some(1.0));
    assert_eq!(v.phase, "epoch 3");
}

#[test]
fn jobs_of_a_dead_process_are_marked_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let ws = Workspace::init(dir.path()).unwrap();
    let mut store = ws.open_store().unwrap();
    let id = store.create_job("score", "{}", Some(10)).unwrap();
    // Pretend a process that no longer exists owned it.
    store.conn().execute("UPDATE jobs SET pid = 2147483000 WHERE id = ?1", [id]).unwrap();
    let mine = store.create_job("score", "{}", Some(10)).unwrap();
    assert_eq!(store.mark_interrupted_jobs().unwrap(), 1);
    let jobs = store.jobs(10).unwrap();
    assert_eq!(jobs.iter().find(|j| j.id == id).unwrap().state, "interrupted");
    assert_eq!(jobs.iter().find(|j| j.id == mine).unwrap().state, "running");
}

#[test]
fn durations_format() {
    assert_eq!(fmt_duration(Duration::from_secs(5)), "5s");
    assert_eq!(fmt_duration(Duration::from_secs(185)), "3m05s");
    assert_eq!(fmt_duration(Duration::from_secs(3720)), "1h02m");
}
