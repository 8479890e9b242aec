//! Subsetting genes by a list of names.

use std::collections::HashMap;

/// Result of matching a requested gene list against `var_names`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GeneSelection {
    /// Column indices of the found genes, in the order requested.
    pub indices: Vec<usize>,
    /// Requested names absent from `var_names`, in the order requested.
    pub missing: Vec<String>,
    /// Names requested more than once (kept once, at their first position).
    pub duplicates: Vec<String>,
}

impl GeneSelection {
    /// One line for logs and errors, e.g. `kept 48 of 50 genes; missing (2): FOO, BAR`.
    pub fn summary(&self, n_requested: usize) -> String {
        let mut s = format!("kept {} of {} requested genes", self.indices.len(), n_requested);
        if !self.missing.is_empty() {
            let shown: Vec<&str> = self.missing.iter().take(20).map(|s| s.as_str()).collect();
            let more = if self.missing.len() > 20 {
                format!(" and {} more", self.missing.len() - 20)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "; missing ({}): {}{more}",
                self.missing.len(),
                shown.join(", ")
            ));
        }
        if !self.duplicates.is_empty() {
            s.push_str(&format!("; listed twice: {}", self.duplicates.join(", ")));
        }
        s
    }
}

/// Matches `wanted` (names, surrounding whitespace ignored, empty entries skipped) against `var_names`
/// (the first of repeated var names wins).
pub fn select_genes<S: AsRef<str>>(var_names: &[String], wanted: &[S]) -> GeneSelection {
    let mut pos: HashMap<&str, usize> = HashMap::with_capacity(var_names.len());
    for (i, n) in var_names.iter().enumerate() {
        pos.entry(n.as_str()).or_insert(i);
    }
    let mut seen = std::collections::HashSet::new();
    let mut out = GeneSelection::default();
    for w in wanted {
        let w = w.as_ref().trim();
        if w.is_empty() {
            continue;
        }
        if !seen.insert(w.to_string()) {
            out.duplicates.push(w.to_string());
            continue;
        }
        match pos.get(w) {
            Some(&i) => out.indices.push(i),
            None => out.missing.push(w.to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_missing_and_duplicates() {
        let var: Vec<String> = ["A", "B", "C"].iter().map(|s| s.to_string()).collect();
        let sel = select_genes(&var, &["C", "X", "A", "C", " ", "Y"]);
        assert_eq!(sel.indices, vec![2, 0]);
        assert_eq!(sel.missing, vec!["X", "Y"]);
        assert_eq!(sel.duplicates, vec!["C"]);
        assert!(sel.summary(6).contains("missing (2): X, Y"));
    }
}
