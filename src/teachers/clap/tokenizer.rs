//! CLAP's text tokenizer: the checkpoint's own `tokenizer.json` (RoBERTa byte-level BPE with `<s> … </s>`) through
//! the `tokenizers` crate, so ids are those of transformers' `RobertaTokenizerFast` for any text, non-ASCII
//! included. Padding and truncation settings in the file are switched off: each prompt is encoded alone (the
//! pipeline pads a batch and masks the padding, which gives the same embeddings).

use std::path::Path;

use super::ClapError;

/// Larger than any real tokenizer file (RoBERTa's is ≈ 2 MB): refuse before parsing.
const MAX_BYTES: u64 = 64 << 20;

pub struct ClapTokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for ClapTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClapTokenizer").field("vocab", &self.inner.get_vocab_size(true)).finish()
    }
}

impl ClapTokenizer {
    /// Load `tokenizer.json`; every id it can produce must be below the text tower's `vocab_size`.
    pub fn from_file(path: &Path, vocab_size: usize) -> Result<ClapTokenizer, ClapError> {
        let err = |m: String| ClapError::Tokenizer(format!("{}: {m}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if meta.len() > MAX_BYTES {
            return Err(err(format!("{} bytes: too large for a tokenizer file", meta.len())));
        }
        let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
        Self::from_bytes(&bytes, vocab_size).map_err(|e| match e {
            ClapError::Tokenizer(m) => err(m),
            other => other,
        })
    }

    pub fn from_bytes(bytes: &[u8], vocab_size: usize) -> Result<ClapTokenizer, ClapError> {
        let err = |m: String| ClapError::Tokenizer(m);
        let mut inner =
            tokenizers::Tokenizer::from_bytes(bytes).map_err(|e| err(format!("not a tokenizer.json: {e}")))?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(|e| err(e.to_string()))?;
        let n = inner.get_vocab_size(true);
        let max_id = inner.get_vocab(true).values().copied().max().unwrap_or(0) as usize;
        if n == 0 {
            return Err(err("the vocabulary is empty".into()));
        }
        if max_id >= vocab_size {
            return Err(err(format!(
                "token id {max_id} is outside the text tower's vocabulary of {vocab_size} (tokenizer.json belongs to \
                 another model?)"
            )));
        }
        for special in ["<s>", "</s>"] {
            if inner.token_to_id(special).is_none() {
                return Err(err(format!("no '{special}' token: not a RoBERTa tokenizer")));
            }
        }
        Ok(ClapTokenizer { inner })
    }

    /// Token ids of `text` with the special tokens (`<s> … </s>`), as `tokenizer(text)["input_ids"]`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, ClapError> {
        let enc = self.inner.encode(text, true).map_err(|e| ClapError::Tokenizer(format!("encoding {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }
}
