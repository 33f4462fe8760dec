//! Run leases: only one process scores a given teacher run at a time.
//!
//! Two `dams score` processes started on the same teacher would both "resume" the same unfinished
//! run and score its segments twice. The first to start takes a lease on the run (a row in
//! `run_leases`, written in an IMMEDIATE transaction, so two takers are serialised); the second
//! finds a lease held by a live process and stops with a message naming it. A lease of a process
//! that is gone (killed, crashed) is taken over. The lease is released when its guard is dropped.
//!
//! The table is created on first use (not by a schema migration), so it needs no schema version.

use std::path::PathBuf;

use rusqlite::{Connection, OptionalExtension, params};

use super::{Result, Store, StoreError, now, process_alive};

const CREATE: &str = "CREATE TABLE IF NOT EXISTS run_leases (\
    run_id INTEGER PRIMARY KEY, pid INTEGER NOT NULL, acquired_at TEXT NOT NULL)";

/// Whether process `pid` (on this machine) is alive.
pub fn pid_alive(pid: i64) -> bool {
    process_alive(pid)
}

/// A held lease; dropping it releases the lease.
#[derive(Debug)]
pub struct RunLease {
    db: Option<PathBuf>,
    run_id: i64,
    pid: i64,
}

impl RunLease {
    /// Take the lease on `run_id` for this process, or say who holds it.
    pub fn acquire(store: &mut Store, run_id: i64) -> Result<RunLease> {
        Self::acquire_as(store, run_id, std::process::id() as i64)
    }

    /// [`RunLease::acquire`] on behalf of process `pid` (tests).
    pub fn acquire_as(store: &mut Store, run_id: i64, pid: i64) -> Result<RunLease> {
        store.conn().execute_batch(CREATE)?;
        let tx = store.conn_mut().transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let held: Option<(i64, String)> = tx
            .query_row("SELECT pid, acquired_at FROM run_leases WHERE run_id = ?1", [run_id], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((other, since)) = held
            && other != pid
            && process_alive(other)
        {
            return Err(StoreError::Invalid(format!(
                "run #{run_id} is being scored by another dams process (pid {other}, since {since}); \
                 wait for it to finish, or stop it — a second process would score the same segments twice"
            )));
        }
        tx.execute(
            "INSERT INTO run_leases (run_id, pid, acquired_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT(run_id) DO UPDATE SET pid = excluded.pid, acquired_at = excluded.acquired_at",
            params![run_id, pid, now()],
        )?;
        tx.commit()?;
        let db = (store.path().as_os_str() != ":memory:").then(|| store.path().to_path_buf());
        Ok(RunLease { db, run_id, pid })
    }

    pub fn run_id(&self) -> i64 {
        self.run_id
    }

    fn release(&self, conn: &Connection) -> rusqlite::Result<usize> {
        conn.execute("DELETE FROM run_leases WHERE run_id = ?1 AND pid = ?2", params![self.run_id, self.pid])
    }
}

impl Drop for RunLease {
    fn drop(&mut self) {
        // Its own connection: the store that took it may be borrowed elsewhere or gone. (An
        // in-memory store dies with its lease.) If this fails the lease goes stale and is taken
        // over once this process has exited.
        if let Some(db) = &self.db
            && let Ok(conn) = Connection::open(db)
        {
            let _ = conn.busy_timeout(std::time::Duration::from_secs(30));
            let _ = self.release(&conn);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_dead_holders_are_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("dams.sqlite");
        let mut a = Store::open(&p).unwrap();
        let mut b = Store::open(&p).unwrap();
        // A live process other than this one: our parent.
        let parent = unsafe { libc::getppid() } as i64;
        let held = RunLease::acquire_as(&mut a, 7, parent).unwrap();
        let e = RunLease::acquire(&mut b, 7).unwrap_err().to_string();
        assert!(e.contains("run #7") && e.contains(&format!("pid {parent}")), "{e}");
        // Another run is free.
        let other = RunLease::acquire(&mut b, 8).unwrap();
        drop(held);
        // Released: now this process takes it.
        let mine = RunLease::acquire(&mut b, 7).unwrap();
        // The same process may take it again (a resumed job in the same process).
        let again = RunLease::acquire(&mut a, 7).unwrap();
        drop(again);
        drop(mine);
        drop(other);
        // A lease of a dead process is taken over.
        std::mem::forget(RunLease::acquire_as(&mut a, 9, 2_147_483_000).unwrap());
        let taken = RunLease::acquire(&mut b, 9).unwrap();
        let pid: i64 = a.conn().query_row("SELECT pid FROM run_leases WHERE run_id = 9", [], |r| r.get(0)).unwrap();
        assert_eq!(pid, std::process::id() as i64);
        std::mem::forget(taken);
        let n: i64 = a.conn().query_row("SELECT count(*) FROM run_leases WHERE run_id = 9", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 1);
    }
}
