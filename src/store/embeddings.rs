//! The embedding cache of every model with audio embeddings: one vector per (model checksum, embedding kind,
//! segment) — the ast-head student's pooled AST vectors (`ast-pooled`), a zero-shot teacher's audio embeddings...
//!
//! Kept in the workspace database rather than in files: each batch of vectors is one committed
//! transaction, so a killed or cancelled computation resumes per segment with nothing half
//! written; vectors of deleted segments go with them (`ON DELETE CASCADE`); and the cache travels
//! with the labels it was computed for. A vector is small (768 × 4 bytes for AST-base: 3 KB per
//! segment, 30 MB for 10 000 segments), well within what SQLite stores comfortably as a blob.
//! Different weights (another checksum) and different kinds of vector never mix: both are part of the key.

use std::collections::{HashMap, HashSet};

use rusqlite::params;

use super::{Result, Store, bytes_to_f32s, f32s_to_bytes};

impl Store {
    /// Segments that have a cached embedding for AST weights `checksum`.
    pub fn embedded_segments(&self, checksum: &str, kind: &str) -> Result<HashSet<i64>> {
        let mut stmt =
            self.conn().prepare("SELECT segment_id FROM embeddings WHERE model_checksum = ?1 AND kind = ?2")?;
        let ids = stmt.query_map([checksum, kind], |r| r.get::<_, i64>(0))?.collect::<rusqlite::Result<_>>()?;
        Ok(ids)
    }

    /// Store embeddings of AST weights `checksum` (replacing any of the same segments), in one
    /// transaction.
    pub fn put_embeddings(&mut self, checksum: &str, kind: &str, rows: &[(i64, Vec<f32>)]) -> Result<()> {
        let tx = self.conn_mut().transaction()?;
        {
            let mut stmt = tx.prepare(
                "INSERT OR REPLACE INTO embeddings (model_checksum, kind, segment_id, dim, vec) VALUES (?1, ?5, ?2, ?3, ?4)",
            )?;
            for (id, v) in rows {
                stmt.execute(params![checksum, id, v.len() as i64, f32s_to_bytes(v), kind])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The cached embeddings of AST weights `checksum` of width `dim`, by segment (vectors of
    /// another width, which a corrupt row could hold, are left out: they get recomputed).
    pub fn embeddings(&self, checksum: &str, kind: &str, dim: usize) -> Result<HashMap<i64, Vec<f32>>> {
        let mut stmt = self
            .conn()
            .prepare("SELECT segment_id, vec FROM embeddings WHERE model_checksum = ?1 AND dim = ?2 AND kind = ?3")?;
        let rows = stmt
            .query_map(params![checksum, dim as i64, kind], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?;
        let mut out = HashMap::new();
        for row in rows {
            let (id, blob) = row?;
            let v = bytes_to_f32s(&blob);
            if v.len() == dim && v.iter().all(|x| x.is_finite()) {
                out.insert(id, v);
            }
        }
        Ok(out)
    }

    /// The cached embeddings of `ids` (those that have one) for AST weights `checksum` of width `dim`.
    pub fn embeddings_of(&self, checksum: &str, kind: &str, dim: usize, ids: &[i64]) -> Result<HashMap<i64, Vec<f32>>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT vec FROM embeddings WHERE model_checksum = ?1 AND segment_id = ?2 AND dim = ?3 AND kind = ?4",
        )?;
        let mut out = HashMap::new();
        for &id in ids {
            let blob: Option<Vec<u8>> = stmt
                .query_row(params![checksum, id, dim as i64, kind], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            if let Some(v) =
                blob.map(|b| bytes_to_f32s(&b)).filter(|v| v.len() == dim && v.iter().all(|x| x.is_finite()))
            {
                out.insert(id, v);
            }
        }
        Ok(out)
    }

    /// Drop the cache of AST weights `checksum`; returns the number of vectors removed.
    pub fn clear_embeddings(&mut self, checksum: &str, kind: &str) -> Result<usize> {
        Ok(self.conn().execute("DELETE FROM embeddings WHERE model_checksum = ?1 AND kind = ?2", [checksum, kind])?)
    }
}
