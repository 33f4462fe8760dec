//! `dams check`: the full integrity check of the workspace's store.

use anyhow::Result;

use super::Ctx;
use crate::store::integrity::full_check;

/// Run `PRAGMA integrity_check` and `foreign_key_check` on the store. A store that fails is
/// marked (`dams.sqlite.check-failed`) and refused by every later open until a check passes.
pub fn run_check(ctx: &Ctx) -> Result<()> {
    let ws = ctx.workspace()?;
    let db = ws.db_path();
    let report = full_check(&db)?;
    if report.ok() {
        println!("{}: ok (integrity_check and foreign_key_check found no problem)", db.display());
        return Ok(());
    }
    for p in &report.problems {
        eprintln!("  {p}");
    }
    anyhow::bail!(
        "{}: {} problem(s) found; dams refuses to use this store until `dams check` passes (restore a backup, or \
         repair it with `sqlite3 {} .recover`); the report is in {}",
        db.display(),
        report.problems.len(),
        db.display(),
        crate::store::integrity::failed_marker(&db).display()
    )
}
