//! Inputs of ingest: anything that yields cells in row blocks with their labels. `.h5ad` files (streamed),
//! in-memory AnnData (tests, small data) and Tahoe-100M parquet shards ([`crate::tahoe`]).

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use scale_io::{AnnData, Column, Frame, H5adReader, Matrix};

use crate::error::{preview, StoreError};

/// Rows of one block and their labels as codes into the source's vocabularies.
#[derive(Debug, Clone)]
pub struct Block {
    /// [n, n_genes_of_source], CSR (expression) or dense (embeddings).
    pub rows: Matrix,
    pub cell_names: Vec<String>,
    pub pert: Vec<u32>,
    pub context: Vec<u32>,
    pub batch: Vec<u32>,
    /// Dose of each cell (0 without a dose column; control cells are always 0, the vehicle).
    pub dose: Vec<f32>,
}

/// Label vocabularies of a source; codes in [`Block`] index these.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vocabs {
    pub pert: Vec<String>,
    pub context: Vec<String>,
    pub batch: Vec<String>,
}

/// Which obs columns carry the labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpec {
    pub pert_col: String,
    pub control: String,
    /// `None`: one context named after the dataset.
    pub context_col: Option<String>,
    /// `None`: one batch for the whole dataset.
    pub batch_col: Option<String>,
    /// Numeric obs column with each cell's dose (a drug concentration); `None`: no doses (all 0).
    /// Cells of one (context, perturbation, batch) at different doses become different groups.
    pub dose_col: Option<String>,
}

impl Default for LabelSpec {
    fn default() -> Self {
        Self {
            pert_col: "perturbation".into(),
            control: "non-targeting".into(),
            context_col: None,
            batch_col: None,
            dose_col: None,
        }
    }
}

/// Where the values of an `.h5ad` come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValueSource {
    X,
    Layer(String),
    Obsm(String),
}

impl ValueSource {
    /// `X`, `layer:NAME` or `obsm:KEY`.
    pub fn parse(s: &str) -> Option<Self> {
        if s == "X" {
            Some(ValueSource::X)
        } else if let Some(n) = s.strip_prefix("layer:") {
            (!n.is_empty()).then(|| ValueSource::Layer(n.to_string()))
        } else if let Some(k) = s.strip_prefix("obsm:") {
            (!k.is_empty()).then(|| ValueSource::Obsm(k.to_string()))
        } else {
            None
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ValueSource::X => "X".into(),
            ValueSource::Layer(n) => format!("layer:{n}"),
            ValueSource::Obsm(k) => format!("obsm:{k}"),
        }
    }
}

pub trait CellSource: Send {
    /// Dataset name (store-wide unique).
    fn dataset(&self) -> &str;
    /// Input paths, for the manifest.
    fn inputs(&self) -> Vec<String>;
    /// `X`, `layer:NAME`, `obsm:KEY`, `tahoe`.
    fn source_desc(&self) -> String;
    /// Feature names, in column order of the blocks.
    fn genes(&self) -> &[String];
    /// Dense rows (embeddings) instead of sparse expression.
    fn is_dense(&self) -> bool;
    fn labels(&self) -> &LabelSpec;
    /// Next block of rows; `None` when exhausted.
    fn next_block(&mut self) -> Result<Option<Block>, StoreError>;
    /// Vocabularies (complete once the source is exhausted).
    fn vocabs(&self) -> Vocabs;
    /// Free-form notes for the manifest.
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Label codes of every cell, from an obs frame.
struct ObsLabels {
    pert: Vec<u32>,
    context: Vec<u32>,
    batch: Vec<u32>,
    dose: Vec<f32>,
    vocabs: Vocabs,
    /// Control cells whose recorded dose was not 0 (stored as 0).
    control_doses_zeroed: usize,
}

fn column<'a>(obs: &'a Frame, input: &str, col: &str, what: &str) -> Result<&'a Column, StoreError> {
    obs.column(col).ok_or_else(|| StoreError::MissingColumn {
        input: input.to_string(),
        column: col.to_string(),
        what: what.to_string(),
        available: preview(&obs.column_names(), 30),
    })
}

/// Codes and vocabulary of one column; a missing value is an error naming the cell.
fn encode(obs: &Frame, input: &str, col_name: &str, col: &Column) -> Result<(Vec<u32>, Vec<String>), StoreError> {
    let missing = |row: usize| StoreError::MissingLabel {
        input: input.to_string(),
        column: col_name.to_string(),
        row,
        cell: obs.index.get(row).cloned().unwrap_or_default(),
    };
    match col {
        Column::Categorical { codes, categories, .. } => {
            let mut out = Vec::with_capacity(codes.len());
            for (row, &c) in codes.iter().enumerate() {
                if c < 0 || c as usize >= categories.len() {
                    return Err(missing(row));
                }
                out.push(c as u32);
            }
            Ok((out, categories.clone()))
        }
        _ => {
            let mut map: HashMap<String, u32> = HashMap::new();
            let mut vocab = Vec::new();
            let mut out = Vec::with_capacity(col.len());
            for row in 0..col.len() {
                let v = col.get_str(row).ok_or_else(|| missing(row))?;
                let code = *map.entry(v.clone()).or_insert_with(|| {
                    vocab.push(v);
                    (vocab.len() - 1) as u32
                });
                out.push(code);
            }
            Ok((out, vocab))
        }
    }
}

/// Per-cell doses from a numeric column (or text holding numbers). Missing, non-finite or negative
/// doses are errors naming the cell; -0 is stored as 0 so equal doses form one group.
fn decode_doses(obs: &Frame, input: &str, col_name: &str, col: &Column) -> Result<Vec<f32>, StoreError> {
    let bad = |row: usize, value: String, problem: &str| StoreError::BadDose {
        input: input.to_string(),
        column: col_name.to_string(),
        row,
        cell: obs.index.get(row).cloned().unwrap_or_default(),
        detail: format!("dose {value} is {problem}"),
    };
    let mut out = Vec::with_capacity(col.len());
    for row in 0..col.len() {
        let v: f64 = match col {
            Column::Float(v) => v[row],
            Column::Int(v) => v[row] as f64,
            Column::Bool(_) => return Err(bad(row, "a boolean".into(), "expected a number")),
            _ => {
                let text = col.get_str(row).ok_or_else(|| bad(row, "missing".into(), "no value"))?;
                text.trim()
                    .parse::<f64>()
                    .map_err(|_| bad(row, format!("{text:?}"), "not a number"))?
            }
        };
        if !v.is_finite() {
            return Err(bad(row, v.to_string(), "not finite (a missing dose?)"));
        }
        if v < 0.0 {
            return Err(bad(row, v.to_string(), "negative"));
        }
        out.push(v as f32 + 0.0);
    }
    Ok(out)
}

impl ObsLabels {
    fn from_frame(obs: &Frame, input: &str, dataset: &str, spec: &LabelSpec) -> Result<Self, StoreError> {
        let n = obs.len();
        let pc = column(obs, input, &spec.pert_col, "perturbation, --pert-col")?;
        let (pert, pert_vocab) = encode(obs, input, &spec.pert_col, pc)?;
        let (context, context_vocab) = match &spec.context_col {
            Some(c) => encode(obs, input, c, column(obs, input, c, "context, --context-col")?)?,
            None => (vec![0; n], vec![dataset.to_string()]),
        };
        let (batch, batch_vocab) = match &spec.batch_col {
            Some(c) => encode(obs, input, c, column(obs, input, c, "batch, --batch-col")?)?,
            None => (vec![0; n], vec!["all".to_string()]),
        };
        let mut dose = match &spec.dose_col {
            Some(c) => decode_doses(obs, input, c, column(obs, input, c, "dose, --dose-col")?)?,
            None => vec![0.0; n],
        };
        // The control cells are the model's input, not a treatment: their dose (a vehicle volume, or
        // the dose column's filler) is not a condition, so controls of a context stay one group.
        let mut control_doses_zeroed = 0;
        if let Some(ci) = pert_vocab.iter().position(|p| *p == spec.control) {
            for (d, &p) in dose.iter_mut().zip(&pert) {
                if p as usize == ci && *d != 0.0 {
                    *d = 0.0;
                    control_doses_zeroed += 1;
                }
            }
        }
        Ok(Self {
            pert,
            context,
            batch,
            dose,
            control_doses_zeroed,
            vocabs: Vocabs {
                pert: pert_vocab,
                context: context_vocab,
                batch: batch_vocab,
            },
        })
    }

    fn block(&self, rows: Range<usize>) -> (Vec<u32>, Vec<u32>, Vec<u32>, Vec<f32>) {
        (
            self.pert[rows.clone()].to_vec(),
            self.context[rows.clone()].to_vec(),
            self.batch[rows.clone()].to_vec(),
            self.dose[rows].to_vec(),
        )
    }

    fn notes(&self, input: &str, spec: &LabelSpec) -> Vec<String> {
        match &spec.dose_col {
            Some(c) if self.control_doses_zeroed > 0 => vec![format!(
                "{input}: {} control cells had a non-zero `{c}`; controls are stored with dose 0",
                self.control_doses_zeroed
            )],
            _ => Vec::new(),
        }
    }
}

/// Gene names of a var frame, checked unique.
fn unique_genes(input: &str, names: Vec<String>) -> Result<Vec<String>, StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    for g in &names {
        if !seen.insert(g.as_str()) {
            return Err(StoreError::DuplicateGene {
                input: input.to_string(),
                gene: g.clone(),
            });
        }
    }
    Ok(names)
}

/// Feature names for an obsm embedding: the highly-variable genes when `var['highly_variable']` selects
/// exactly as many genes as the embedding has columns (how `X_hvg` is built), else `KEY:i`.
fn obsm_feature_names(var: &Frame, key: &str, dim: usize) -> (Vec<String>, Option<String>) {
    if let Some(Column::Bool(hv)) = var.column("highly_variable") {
        let names: Vec<String> = var
            .index
            .iter()
            .zip(hv)
            .filter(|(_, &h)| h)
            .map(|(n, _)| n.clone())
            .collect();
        if names.len() == dim {
            return (
                names,
                Some(format!(
                    "obsm:{key} columns named after var['highly_variable'] genes in var order"
                )),
            );
        }
    }
    ((0..dim).map(|i| format!("{key}:{i}")).collect(), None)
}

/// An `.h5ad` file read in row blocks; only `obs`, `var` and one block of values are in memory.
pub struct H5adSource {
    path: PathBuf,
    dataset: String,
    reader: H5adReader,
    value: ValueSource,
    spec: LabelSpec,
    genes: Vec<String>,
    obs_names: Vec<String>,
    labels: ObsLabels,
    next_row: usize,
    block_rows: usize,
    notes: Vec<String>,
}

impl H5adSource {
    pub fn open(
        path: &Path,
        dataset: &str,
        value: ValueSource,
        spec: LabelSpec,
        block_rows: usize,
    ) -> Result<Self, StoreError> {
        let input = path.display().to_string();
        let reader = H5adReader::open(path)?;
        let obs = reader.read_obs()?;
        let var = reader.read_var()?;
        let labels = ObsLabels::from_frame(&obs, &input, dataset, &spec)?;
        let mut notes = labels.notes(&input, &spec);
        let genes = match &value {
            ValueSource::X => var.index.clone(),
            ValueSource::Layer(name) => {
                let keys = reader.layer_keys()?;
                if !keys.contains(name) {
                    return Err(StoreError::BadInput {
                        input,
                        message: format!("no layer `{name}`; layers: {}", preview(&keys, 20)),
                    });
                }
                var.index.clone()
            }
            ValueSource::Obsm(key) => {
                let keys = reader.obsm_keys()?;
                if !keys.contains(key) {
                    return Err(StoreError::BadInput {
                        input,
                        message: format!("no obsm `{key}`; obsm keys: {}", preview(&keys, 20)),
                    });
                }
                let first = reader.read_obsm_rows(key, 0..obs.len().min(1))?;
                let (names, note) = obsm_feature_names(&var, key, first.n_cols);
                notes.extend(note);
                names
            }
        };
        let genes = unique_genes(&input, genes)?;
        Ok(Self {
            path: path.to_path_buf(),
            dataset: dataset.to_string(),
            reader,
            value,
            spec,
            genes,
            obs_names: obs.index,
            labels,
            next_row: 0,
            block_rows: block_rows.max(1),
            notes,
        })
    }

    pub fn n_cells(&self) -> usize {
        self.obs_names.len()
    }
}

impl CellSource for H5adSource {
    fn dataset(&self) -> &str {
        &self.dataset
    }
    fn inputs(&self) -> Vec<String> {
        vec![self.path.display().to_string()]
    }
    fn source_desc(&self) -> String {
        self.value.describe()
    }
    fn genes(&self) -> &[String] {
        &self.genes
    }
    fn is_dense(&self) -> bool {
        matches!(self.value, ValueSource::Obsm(_))
    }
    fn labels(&self) -> &LabelSpec {
        &self.spec
    }
    fn next_block(&mut self) -> Result<Option<Block>, StoreError> {
        let n = self.obs_names.len();
        if self.next_row >= n {
            return Ok(None);
        }
        let rows = self.next_row..(self.next_row + self.block_rows).min(n);
        self.next_row = rows.end;
        let m = match &self.value {
            ValueSource::X => self.reader.read_x_rows(rows.clone())?,
            ValueSource::Layer(name) => self.reader.read_layer_rows(name, rows.clone())?,
            ValueSource::Obsm(key) => Matrix::Dense(self.reader.read_obsm_rows(key, rows.clone())?),
        };
        let (pert, context, batch, dose) = self.labels.block(rows.clone());
        Ok(Some(Block {
            rows: m,
            cell_names: self.obs_names[rows].to_vec(),
            pert,
            context,
            batch,
            dose,
        }))
    }
    fn vocabs(&self) -> Vocabs {
        self.labels.vocabs.clone()
    }
    fn notes(&self) -> Vec<String> {
        self.notes.clone()
    }
}

/// An in-memory AnnData (tests, small data sets already loaded).
pub struct MemorySource {
    dataset: String,
    adata: AnnData,
    value: ValueSource,
    spec: LabelSpec,
    genes: Vec<String>,
    labels: ObsLabels,
    next_row: usize,
    block_rows: usize,
}

impl MemorySource {
    pub fn new(
        dataset: &str,
        adata: AnnData,
        value: ValueSource,
        spec: LabelSpec,
        block_rows: usize,
    ) -> Result<Self, StoreError> {
        let input = format!("<memory:{dataset}>");
        let labels = ObsLabels::from_frame(&adata.obs, &input, dataset, &spec)?;
        let genes = match &value {
            ValueSource::X => adata.var.index.clone(),
            ValueSource::Layer(name) => {
                if adata.layer(name).is_none() {
                    return Err(StoreError::BadInput {
                        input,
                        message: format!("no layer `{name}`"),
                    });
                }
                adata.var.index.clone()
            }
            ValueSource::Obsm(key) => {
                let m = adata.obsm(key).ok_or_else(|| StoreError::BadInput {
                    input: input.clone(),
                    message: format!("no obsm `{key}`"),
                })?;
                obsm_feature_names(&adata.var, key, m.n_cols).0
            }
        };
        let genes = unique_genes(&input, genes)?;
        Ok(Self {
            dataset: dataset.to_string(),
            adata,
            value,
            spec,
            genes,
            labels,
            next_row: 0,
            block_rows: block_rows.max(1),
        })
    }
}

impl CellSource for MemorySource {
    fn dataset(&self) -> &str {
        &self.dataset
    }
    fn inputs(&self) -> Vec<String> {
        vec![format!("<memory:{}>", self.dataset)]
    }
    fn source_desc(&self) -> String {
        self.value.describe()
    }
    fn genes(&self) -> &[String] {
        &self.genes
    }
    fn is_dense(&self) -> bool {
        matches!(self.value, ValueSource::Obsm(_))
    }
    fn labels(&self) -> &LabelSpec {
        &self.spec
    }
    fn next_block(&mut self) -> Result<Option<Block>, StoreError> {
        let n = self.adata.n_obs();
        if self.next_row >= n {
            return Ok(None);
        }
        let rows: Vec<usize> = (self.next_row..(self.next_row + self.block_rows).min(n)).collect();
        let range = rows[0]..rows[rows.len() - 1] + 1;
        self.next_row = range.end;
        let m = match &self.value {
            ValueSource::X => self.adata.x.select_rows(&rows),
            // Presence was checked in `new`.
            ValueSource::Layer(name) => match self.adata.layer(name) {
                Some(l) => l.select_rows(&rows),
                None => return Err(StoreError::Empty(format!("layer `{name}` vanished"))),
            },
            ValueSource::Obsm(key) => match self.adata.obsm(key) {
                Some(m) => Matrix::Dense(m.select_rows(&rows)),
                None => return Err(StoreError::Empty(format!("obsm `{key}` vanished"))),
            },
        };
        let (pert, context, batch, dose) = self.labels.block(range.clone());
        Ok(Some(Block {
            rows: m,
            cell_names: self.adata.obs.index[range].to_vec(),
            pert,
            context,
            batch,
            dose,
        }))
    }
    fn vocabs(&self) -> Vocabs {
        self.labels.vocabs.clone()
    }
    fn notes(&self) -> Vec<String> {
        self.labels.notes(&format!("<memory:{}>", self.dataset), &self.spec)
    }
}
