//! Shared builders for the store tests: small in-memory AnnData with known labels and values.
#![allow(dead_code)]

use scale_io::{AnnData, Column, CsrMatrix, Frame, Matrix};
use scale_store::{ingest, CellSource, IngestOptions, LabelSpec, MemorySource, ValueSource};

/// One cell: (name, pert, context, batch).
pub type Cell<'a> = (&'a str, &'a str, &'a str, &'a str);

/// Counts that identify the cell: gene j of cell i is `(i * 7 + j * 3) % 5` (zeros included).
pub fn value(i: usize, j: usize) -> f32 {
    ((i * 7 + j * 3) % 5) as f32
}

pub fn adata(cells: &[Cell], genes: &[&str], offset: usize) -> AnnData {
    let mut x = CsrMatrix::empty(genes.len());
    for i in 0..cells.len() {
        let (c, v): (Vec<u32>, Vec<f32>) = (0..genes.len())
            .map(|j| (j as u32, value(i + offset, j)))
            .filter(|p| p.1 != 0.0)
            .unzip();
        x.push_row(&c, &v);
    }
    let mut obs = Frame::new(cells.iter().map(|c| c.0.to_string()).collect());
    let col = |k: usize| Column::categorical_from_labels(&cells.iter().map(|c| [c.1, c.2, c.3][k]).collect::<Vec<_>>());
    obs.set_column("perturbation", col(0));
    obs.set_column("cell_type", col(1));
    obs.set_column("gem_group", col(2));
    let var = Frame::new(genes.iter().map(|g| g.to_string()).collect());
    AnnData::new(Matrix::Csr(x), obs, var)
}

pub fn spec() -> LabelSpec {
    LabelSpec {
        pert_col: "perturbation".into(),
        control: "non-targeting".into(),
        context_col: Some("cell_type".into()),
        batch_col: Some("gem_group".into()),
        dose_col: None,
    }
}

pub fn source(name: &str, a: AnnData) -> Box<dyn CellSource> {
    Box::new(MemorySource::new(name, a, ValueSource::X, spec(), 3).unwrap())
}

/// A standard data set: 2 contexts (A, B), 2 batches, control + 3 perturbations; B/b2 has no controls.
pub fn standard_cells() -> Vec<(String, String, String, String)> {
    let mut v = Vec::new();
    let mut k = 0;
    let mut add = |p: &str, c: &str, b: &str, n: usize| {
        for _ in 0..n {
            v.push((format!("cell{k}"), p.to_string(), c.to_string(), b.to_string()));
            k += 1;
        }
    };
    add("non-targeting", "A", "b1", 6);
    add("GENE1", "A", "b1", 4);
    add("GENE2", "A", "b2", 2);
    add("non-targeting", "A", "b2", 3);
    add("GENE1", "B", "b1", 5);
    add("non-targeting", "B", "b1", 4);
    add("GENE3", "B", "b2", 3); // no B/b2 controls: fallback to B's pool
    add("GENE2", "A", "b1", 3);
    v
}

pub fn standard_adata() -> AnnData {
    let cells = standard_cells();
    let refs: Vec<Cell> = cells
        .iter()
        .map(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str(), c.3.as_str()))
        .collect();
    adata(&refs, &["g0", "g1", "g2", "g3", "g4", "g5"], 0)
}

pub fn build_standard(dir: &std::path::Path) -> scale_store::Store {
    let out = dir.join("store");
    ingest(
        vec![source("ds", standard_adata())],
        &out,
        &IngestOptions::default(),
        &|_, _| {},
    )
    .unwrap();
    scale_store::Store::open(&out).unwrap()
}
