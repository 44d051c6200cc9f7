//! Tensor shapes shared by the reference, the kernels and the dump reader.

use crate::error::{Error, Result};

/// Post-softmax attention [heads, queries, keys]; query row q sits at absolute position
/// `keys - queries + q` (bottom-right aligned, as HF lays out a decode step).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttnShape {
    pub heads: usize,
    pub queries: usize,
    pub keys: usize,
}

impl AttnShape {
    pub fn new(heads: usize, queries: usize, keys: usize) -> Result<Self> {
        let s = Self {
            heads,
            queries,
            keys,
        };
        if heads == 0 || queries == 0 || keys == 0 {
            return Err(Error::Shape(format!("empty attention shape {s:?}")));
        }
        if queries > keys {
            return Err(Error::Shape(format!(
                "{queries} query rows but only {keys} keys (Q <= K)"
            )));
        }
        s.len_checked()?;
        Ok(s)
    }

    /// heads x queries.
    pub fn rows(&self) -> usize {
        self.heads * self.queries
    }
    pub fn len(&self) -> usize {
        self.rows() * self.keys
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn len_checked(&self) -> Result<usize> {
        self.heads
            .checked_mul(self.queries)
            .and_then(|r| r.checked_mul(self.keys))
            .filter(|&n| n <= u32::MAX as usize)
            .ok_or_else(|| Error::Shape(format!("attention shape {self:?} is too large")))
    }
    /// Absolute position of query row `q`.
    pub fn position(&self, q: usize) -> usize {
        self.keys - self.queries + q
    }
    pub fn check_probs(&self, len: usize) -> Result<()> {
        if len != self.len() {
            return Err(Error::Shape(format!(
                "attention has {len} values, expected H x Q x K = {} x {} x {}",
                self.heads, self.queries, self.keys
            )));
        }
        Ok(())
    }
}
