//! POPE's yes/no evaluation (Li et al. 2023, "Evaluating Object Hallucination in Large
//! Vision-Language Models", its `evaluate.py`), which VAR's paper and its follow-ups report:
//! an answer is "no" when its first sentence (up to the first '.', commas dropped, split on
//! spaces) has the word `No`, `no` or `not`, and "yes" otherwise, whatever else it says; over
//! the items labelled yes or no, with "yes" the positive class: accuracy, precision, recall,
//! F1 and the share of "yes" answers.

/// POPE's reading of an answer: true for "yes".
pub fn says_yes(answer: &str) -> bool {
    let first = answer.split('.').next().unwrap_or("");
    let text = first.replace(',', "");
    !text.split(' ').any(|w| w == "No" || w == "no" || w == "not")
}

/// A question file's label as POPE's: `yes` or `no` (any case, spaces around), else none (the
/// item is answered and shown, not scored).
pub fn label(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// POPE's metrics over (answer says yes, label is yes) pairs. The ratios are None where their
/// denominator is 0 (POPE's script divides by zero there).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    pub items: usize,
    pub true_pos: usize,
    pub false_pos: usize,
    pub true_neg: usize,
    pub false_neg: usize,
    pub accuracy: Option<f64>,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub yes_ratio: Option<f64>,
}

impl Metrics {
    pub fn of(pairs: &[(bool, bool)]) -> Self {
        let count = |said: bool, label: bool| pairs.iter().filter(|&&p| p == (said, label)).count();
        let (tp, fp, tn, fn_) = (count(true, true), count(true, false), count(false, false), count(false, true));
        let ratio = |a: usize, b: usize| (b > 0).then(|| a as f64 / b as f64);
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        let f1 = match (precision, recall) {
            (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
            _ => None,
        };
        Self {
            items: pairs.len(),
            true_pos: tp,
            false_pos: fp,
            true_neg: tn,
            false_neg: fn_,
            accuracy: ratio(tp + tn, pairs.len()),
            precision,
            recall,
            f1,
            yes_ratio: ratio(tp + fp, pairs.len()),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "items": self.items,
            "true_positives": self.true_pos, "false_positives": self.false_pos,
            "true_negatives": self.true_neg, "false_negatives": self.false_neg,
            "accuracy": self.accuracy, "precision": self.precision, "recall": self.recall,
            "f1": self.f1, "yes_ratio": self.yes_ratio,
        })
    }
}
