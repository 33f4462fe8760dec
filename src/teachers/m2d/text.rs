//! The WordPiece tokenizer of M2D-CLAP's BERT (`bert-base-uncased`'s `tokenizer.json`: BERT normaliser with
//! lower-casing, BERT pre-tokeniser, `[CLS] … [SEP]`), through the `tokenizers` crate as the reference's
//! `AutoTokenizer` runs it: `truncation=True, max_length=512` (and never past BERT's positions).

use std::path::Path;

use super::M2dError;

/// The reference's `max_length`.
pub const MAX_LENGTH: usize = 512;

pub struct WordPiece {
    tok: tokenizers::Tokenizer,
    vocab: usize,
    max_len: usize,
    path: std::path::PathBuf,
}

impl std::fmt::Debug for WordPiece {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordPiece").field("path", &self.path).field("vocab", &self.vocab).finish()
    }
}

impl WordPiece {
    /// Load `tokenizer.json` for a BERT with `vocab` embeddings and `positions` positions.
    pub fn open(path: &Path, vocab: usize, positions: usize) -> Result<WordPiece, M2dError> {
        let e = |m: String| M2dError::Tokenizer(format!("{}: {m}", path.display()));
        let mut tok = tokenizers::Tokenizer::from_file(path).map_err(|x| e(format!("not a tokenizer.json: {x}")))?;
        let size = tok.get_vocab_size(true);
        if size != vocab {
            return Err(e(format!(
                "{size} tokens, but the checkpoint's BERT has {vocab} embeddings (bert-base-uncased's tokenizer.json \
                 has 30522)"
            )));
        }
        for t in ["[CLS]", "[SEP]", "[UNK]"] {
            if tok.token_to_id(t).is_none() {
                return Err(e(format!("no '{t}' token: not a BERT WordPiece tokenizer")));
            }
        }
        let max_len = MAX_LENGTH.min(positions);
        tok.with_truncation(Some(tokenizers::TruncationParams { max_length: max_len, ..Default::default() }))
            .map_err(|x| e(x.to_string()))?;
        tok.with_padding(None);
        Ok(WordPiece { tok, vocab, max_len, path: path.to_path_buf() })
    }

    /// Token ids of one text, `[CLS]` and `[SEP]` included.
    pub fn ids(&self, text: &str) -> Result<Vec<u32>, M2dError> {
        let enc =
            self.tok.encode(text, true).map_err(|x| M2dError::Tokenizer(format!("{}: {x}", self.path.display())))?;
        let ids = enc.get_ids().to_vec();
        if ids.is_empty() || ids.len() > self.max_len || ids.iter().any(|&i| i as usize >= self.vocab) {
            return Err(M2dError::Tokenizer(format!(
                "{}: {} ids for {text:?} (at most {}, each below {})",
                self.path.display(),
                ids.len(),
                self.max_len,
                self.vocab
            )));
        }
        Ok(ids)
    }
}
