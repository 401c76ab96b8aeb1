//! A fixed-size ring of samples, one per second, for the groups' sparklines.

use std::collections::VecDeque;

/// How many samples a ring keeps: five minutes at one sample per second.
pub const HISTORY_LEN: usize = 300;

/// The latest [`HISTORY_LEN`] samples, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History {
    samples: VecDeque<u64>,
}

impl History {
    /// Appends a sample, forgetting the oldest when full.
    pub fn push(&mut self, value: u64) {
        if self.samples.len() == HISTORY_LEN {
            self.samples.pop_front();
        }
        self.samples.push_back(value);
    }

    /// Replaces the latest sample (or pushes the first).
    pub fn set_last(&mut self, value: u64) {
        match self.samples.back_mut() {
            Some(last) => *last = value,
            None => self.samples.push_back(value),
        }
    }

    /// The samples, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = u64> + ExactSizeIterator + '_ {
        self.samples.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Latest sample minus the one `seconds` ago (or the oldest kept).
    pub fn growth(&self, seconds: usize) -> i64 {
        let Some(&last) = self.samples.back() else { return 0 };
        let back = seconds.min(self.samples.len() - 1);
        let then = self.samples[self.samples.len() - 1 - back];
        last as i64 - then as i64
    }

    /// The last `window` samples squeezed into `width` buckets (the maximum
    /// of each), oldest first, for a sparkline `width` cells wide covering
    /// `window` seconds. Buckets older than the history kept are `None`.
    pub fn buckets(&self, width: usize, window: usize) -> Vec<Option<u64>> {
        if width == 0 {
            return Vec::new();
        }
        let n = self.samples.len();
        let per = window.div_ceil(width).max(1);
        (0..width)
            .map(|b| {
                let newer = (width - 1 - b) * per;
                let hi = n.checked_sub(newer).filter(|hi| *hi > 0)?;
                let lo = hi.saturating_sub(per);
                self.samples.range(lo..hi).copied().max()
            })
            .collect()
    }
}
