//! Cells grouped by perturbation label.

/// Perturbation groups of one matrix: sorted unique labels (byte order, as numpy sorts str), a code
/// per cell and the control's code.
#[derive(Debug, Clone)]
pub struct Groups {
    /// Sorted unique labels, control included.
    pub names: Vec<String>,
    /// `codes[cell]` indexes `names`.
    pub codes: Vec<u32>,
    /// Cells per group.
    pub counts: Vec<usize>,
    pub control: usize,
}

impl Groups {
    /// Groups `labels` (one per cell); `None` when `control` is not among them.
    pub fn new<S: AsRef<str>>(labels: &[S], control: &str) -> Option<Groups> {
        let mut names: Vec<String> = labels.iter().map(|s| s.as_ref().to_string()).collect();
        names.sort();
        names.dedup();
        let codes: Vec<u32> = labels
            .iter()
            .map(|s| names.binary_search_by(|n| n.as_str().cmp(s.as_ref())).unwrap_or(0) as u32)
            .collect();
        let mut counts = vec![0usize; names.len()];
        for &c in &codes {
            counts[c as usize] += 1;
        }
        let control = names.iter().position(|n| n == control)?;
        Some(Groups {
            names,
            codes,
            counts,
            control,
        })
    }

    /// Non-control groups in sorted order: (code, name).
    pub fn perts(&self) -> impl Iterator<Item = (usize, &str)> {
        self.names
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != self.control)
            .map(|(i, n)| (i, n.as_str()))
    }

    pub fn n_perts(&self) -> usize {
        self.names.len() - 1
    }

    /// Cell indices of each group, ascending.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut m: Vec<Vec<usize>> = self.counts.iter().map(|&c| Vec::with_capacity(c)).collect();
        for (cell, &c) in self.codes.iter().enumerate() {
            m[c as usize].push(cell);
        }
        m
    }
}
