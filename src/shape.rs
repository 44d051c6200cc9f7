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
        let s = Self { heads, queries, keys };
        if heads == 0 || queries == 0 || keys == 0 {
            return Err(Error::Shape(format!("empty attention shape {s:?}")));
        }
        if queries > keys {
            return Err(Error::Shape(format!("{queries} query rows but only {keys} keys (Q <= K)")));
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

/// The largest head_dim the fused kernel's tiles hold.
pub const MAX_HEAD_DIM: usize = 128;

/// Attention shapes: Q and O [heads, queries, head_dim]; K and V [kv_heads, keys, head_dim].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FusedShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub queries: usize,
    pub keys: usize,
    pub head_dim: usize,
}

impl FusedShape {
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Shape(m));
        if self.heads == 0 || self.kv_heads == 0 || self.queries == 0 || self.keys == 0 {
            return bad(format!("empty attention shape {self:?}"));
        }
        if self.heads % self.kv_heads != 0 {
            return bad(format!(
                "{} query heads are not a multiple of {} kv heads",
                self.heads, self.kv_heads
            ));
        }
        if self.queries > self.keys {
            return bad(format!("{} query rows but only {} keys (Q <= K)", self.queries, self.keys));
        }
        check_head_dim(self.head_dim)
    }
    pub fn q_len(&self) -> usize {
        self.heads * self.queries * self.head_dim
    }
    pub fn kv_len(&self) -> usize {
        self.kv_heads * self.keys * self.head_dim
    }
}

/// A head_dim the attention kernels hold: a multiple of 4 in 4..=[`MAX_HEAD_DIM`].
pub(crate) fn check_head_dim(head_dim: usize) -> Result<()> {
    if head_dim == 0 || head_dim % 4 != 0 || head_dim > MAX_HEAD_DIM {
        return Err(Error::Shape(format!(
            "head_dim {head_dim} must be a multiple of 4 in 4..={MAX_HEAD_DIM}"
        )));
    }
    Ok(())
}
