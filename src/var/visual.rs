//! Which tokens are image tokens: one span, several spans, or any per-token mask.

use crate::error::{Error, Result};

/// A run of image tokens `[start, start + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpan {
    pub start: usize,
    pub len: usize,
}

impl ImageSpan {
    pub fn new(start: usize, len: usize) -> Self {
        Self { start, len }
    }
    pub fn end(&self) -> usize {
        self.start + self.len
    }
}

/// The set I_vis over a sequence of `tokens` positions, with the end of its first span (the
/// row rule of var-spec.md section 3 counts from there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisualTokens {
    mask: Vec<bool>,
    first_end: usize,
    count: usize,
}

impl VisualTokens {
    /// From sorted, non-overlapping, non-empty spans inside `tokens`.
    pub fn from_spans(spans: &[ImageSpan], tokens: usize) -> Result<Self> {
        if spans.is_empty() {
            return Err(Error::NoImage);
        }
        let mut mask = vec![false; tokens];
        let mut prev_end = 0;
        for (i, s) in spans.iter().enumerate() {
            let err = |reason| Error::Span {
                start: s.start,
                len: s.len,
                tokens,
                reason,
            };
            if s.len == 0 {
                return Err(err("empty span"));
            }
            if s.start.checked_add(s.len).is_none_or(|end| end > tokens) {
                return Err(err("span ends past the last token"));
            }
            if i > 0 && s.start < prev_end {
                return Err(err("spans must be sorted and must not overlap"));
            }
            mask[s.start..s.end()].iter_mut().for_each(|m| *m = true);
            prev_end = s.end();
        }
        Ok(Self::from_mask(mask).expect("non-empty by construction"))
    }

    /// A sequence of `tokens` positions without image tokens (a text-only prompt): nothing for
    /// VAR to redistribute, and no row may change. For sessions that run with every layer off
    /// (a host serving text prompts through the same decode path); VAR itself needs an image
    /// ([`VisualTokens::from_spans`] refuses none).
    pub fn none(tokens: usize) -> Self {
        Self {
            mask: vec![false; tokens],
            first_end: tokens,
            count: 0,
        }
    }

    /// From a per-token mask; the first span is the first run of `true`.
    pub fn from_mask(mask: Vec<bool>) -> Result<Self> {
        let start = mask.iter().position(|&m| m).ok_or(Error::NoImage)?;
        let first_end = mask[start..].iter().position(|&m| !m).map_or(mask.len(), |n| start + n);
        let count = mask.iter().filter(|&&m| m).count();
        Ok(Self { mask, first_end, count })
    }

    pub fn mask(&self) -> &[bool] {
        &self.mask
    }
    pub fn tokens(&self) -> usize {
        self.mask.len()
    }
    /// n_vis: the number of image tokens.
    pub fn count(&self) -> usize {
        self.count
    }
    /// One past the last token of the first span.
    pub fn first_end(&self) -> usize {
        self.first_end
    }
    pub fn is_visual(&self, pos: usize) -> bool {
        self.mask[pos]
    }

    /// The spans, recovered from the mask.
    pub fn spans(&self) -> Vec<ImageSpan> {
        let mut spans = Vec::new();
        let mut i = 0;
        while i < self.mask.len() {
            if self.mask[i] {
                let start = i;
                while i < self.mask.len() && self.mask[i] {
                    i += 1;
                }
                spans.push(ImageSpan::new(start, i - start));
            } else {
                i += 1;
            }
        }
        spans
    }

    /// var-spec.md section 3: a row may change when it is not an image token and sits at or
    /// after the end of the first span. `pos` is the row's absolute position.
    pub fn row_may_change(&self, pos: usize) -> bool {
        pos >= self.first_end && !self.mask[pos]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_make_a_mask() {
        let v = VisualTokens::from_spans(&[ImageSpan::new(2, 3), ImageSpan::new(7, 2)], 10).unwrap();
        assert_eq!(v.count(), 5);
        assert_eq!(v.first_end(), 5);
        assert_eq!(v.spans(), vec![ImageSpan::new(2, 3), ImageSpan::new(7, 2)]);
        assert!(v.row_may_change(5) && !v.row_may_change(7) && v.row_may_change(9));
        assert!(!v.row_may_change(1));
    }

    #[test]
    fn bad_spans_are_refused() {
        assert_eq!(VisualTokens::from_spans(&[], 4), Err(Error::NoImage));
        let none = VisualTokens::none(4);
        assert_eq!((none.count(), none.spans(), none.tokens()), (0, vec![], 4));
        assert!((0..4).all(|p| !none.row_may_change(p) && !none.is_visual(p)));
        assert!(matches!(
            VisualTokens::from_spans(&[ImageSpan::new(3, 2)], 4),
            Err(Error::Span { .. })
        ));
        assert!(matches!(
            VisualTokens::from_spans(&[ImageSpan::new(0, 0)], 4),
            Err(Error::Span { .. })
        ));
        assert!(matches!(
            VisualTokens::from_spans(&[ImageSpan::new(0, 3), ImageSpan::new(2, 1)], 4),
            Err(Error::Span { .. })
        ));
        assert!(matches!(
            VisualTokens::from_spans(&[ImageSpan::new(usize::MAX, 2)], 4),
            Err(Error::Span { .. })
        ));
        assert_eq!(VisualTokens::from_mask(vec![false; 3]), Err(Error::NoImage));
    }
}
