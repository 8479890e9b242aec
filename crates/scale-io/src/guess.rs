//! Guessing which obs columns play which role, from the names the field's tools use
//! (cell-eval: `target_gene`/`non-targeting`; STATE/cell-load: `gene`, `cell_type`, `gem_group`;
//! Tahoe: `drugname_drugconc`, `cell_name`, `plate`, `DMSO_TF`; scPerturb/PerturBench: `perturbation`,
//! `condition`, `control`). Used by `inspect` and as defaults; every command lets the user override.

use crate::{Column, Frame};

const PERT_NAMES: &[&str] = &[
    "target_gene",
    "gene",
    "perturbation",
    "condition",
    "drugname_drugconc",
    "drug",
    "guide_target",
    "target",
    "treatment",
    "perturbation_name",
];
const CONTROL_LABELS: &[&str] = &[
    "non-targeting",
    "control",
    "ctrl",
    "NT",
    "non_targeting",
    "DMSO_TF",
    "DMSO",
    "vehicle",
    "[('DMSO_TF', 0.0, 'uM')]",
];
const CONTEXT_NAMES: &[&str] = &[
    "cell_type",
    "celltype",
    "cell_line",
    "cell_name",
    "cell_line_id",
    "cell_type_name",
];
const BATCH_NAMES: &[&str] = &[
    "gem_group",
    "batch",
    "plate",
    "bio_rep",
    "replicate",
    "gemgroup",
    "sample",
    "library",
];

/// The columns a perturbation data set is organised by, as far as names tell.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ColumnGuess {
    pub perturbation: Option<String>,
    pub control: Option<String>,
    pub context: Option<String>,
    pub batch: Option<String>,
}

fn is_label_column(c: &Column) -> bool {
    matches!(c, Column::Categorical { .. } | Column::String(_))
}

fn find(frame: &Frame, names: &[&str]) -> Option<String> {
    names
        .iter()
        .find(|n| frame.column(n).is_some_and(is_label_column))
        .map(|n| n.to_string())
        .or_else(|| {
            // Case-insensitive second pass (e.g. `Cell_Type`).
            frame
                .columns
                .iter()
                .find(|(c, col)| is_label_column(col) && names.iter().any(|n| n.eq_ignore_ascii_case(c)))
                .map(|(c, _)| c.clone())
        })
}

/// Control label present in `col`, if it holds one of the conventional names.
pub fn find_control_label(col: &Column) -> Option<String> {
    let mut labels = col.to_strings();
    labels.sort();
    labels.dedup();
    CONTROL_LABELS
        .iter()
        .find(|c| labels.iter().any(|l| l == *c))
        .map(|c| c.to_string())
        .or_else(|| {
            labels
                .iter()
                .find(|l| l.to_ascii_lowercase().contains("non-targeting"))
                .cloned()
        })
}

pub fn guess_columns(obs: &Frame) -> ColumnGuess {
    let perturbation = find(obs, PERT_NAMES);
    let control = perturbation
        .as_ref()
        .and_then(|p| obs.column(p))
        .and_then(find_control_label);
    ColumnGuess {
        perturbation,
        control,
        context: find(obs, CONTEXT_NAMES),
        batch: find(obs, BATCH_NAMES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_cell_eval_convention() {
        let mut f = Frame::new(vec!["a".into(), "b".into()]);
        f.set_column(
            "target_gene",
            Column::categorical_from_labels(&["non-targeting", "STAT1"]),
        );
        f.set_column("Cell_Type", Column::categorical_from_labels(&["K562", "K562"]));
        f.set_column("gem_group", Column::Int(vec![1, 2]));
        let g = guess_columns(&f);
        assert_eq!(g.perturbation.as_deref(), Some("target_gene"));
        assert_eq!(g.control.as_deref(), Some("non-targeting"));
        assert_eq!(g.context.as_deref(), Some("Cell_Type"));
        // Numeric columns are not label columns.
        assert_eq!(g.batch, None);
    }
}
