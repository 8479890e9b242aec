//! Tahoe-100M raw parquet shards as an ingest source.
//!
//! Cell rows (`data/*.parquet`): `genes` list<int64> token ids and `expressions` list<float> raw counts
//! aligned with them, `drug`, `sample`, `cell_line_id`, `plate`, `BARCODE_SUB_LIB_ID`, `moa-fine`,
//! `canonical_smiles`, `pubchem_cid`. The first list element is a sentinel (CLS-like) token with a
//! negative expression (-2 in the published shards); it is skipped when its token is not a gene of
//! `gene_metadata` or its value is negative, and counted in the manifest notes.
//!
//! Metadata (`--tahoe-meta DIR`): `gene_metadata.parquet` (token_id, gene_symbol, ensembl_id; required),
//! `sample_metadata.parquet` (sample, drugname_drugconc; optional: the perturbation becomes drug+dose as
//! STATE names it, e.g. `[('DMSO_TF', 0.0, 'uM')]`), `cell_line_metadata.parquet` (cell_line_id /
//! Cell_ID_Cellosaur → cell_name; optional: contexts are named by cell line name).
//!
//! Labels: context = cell line, perturbation = drug (+dose), batch = plate, control = the control drug.
//! With [`TahoeSource::with_doses`] the dose leaves the label: perturbation = the drug's name, dose = the
//! concentration of `drugname_drugconc` in µM, so one drug at several doses is one perturbation whose
//! groups differ by dose (what a dose-aware model needs).

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::record::{Field, Row};
use parquet::schema::types::Type;
use scale_io::{CsrMatrix, Matrix};

use crate::error::StoreError;
use crate::source::{Block, CellSource, LabelSpec, Vocabs};

const CELL_FIELDS: [&str; 6] = ["genes", "expressions", "drug", "sample", "cell_line_id", "plate"];
const NAME_FIELD: &str = "BARCODE_SUB_LIB_ID";

fn pq_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Parquet {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads a whole (small) metadata table as rows of (column name → field).
fn read_table(path: &Path) -> Result<Vec<Row>, StoreError> {
    let f = File::open(path).map_err(|e| StoreError::io(path, e))?;
    let r = SerializedFileReader::new(f).map_err(|e| pq_err(path, e))?;
    let mut rows = Vec::new();
    for row in r.into_iter() {
        rows.push(row.map_err(|e| pq_err(path, e))?);
    }
    Ok(rows)
}

fn field<'a>(row: &'a Row, name: &str) -> Option<&'a Field> {
    row.get_column_iter().find(|(n, _)| n.as_str() == name).map(|(_, f)| f)
}

fn as_string(f: &Field) -> Option<String> {
    match f {
        Field::Str(s) => Some(s.clone()),
        Field::Null => None,
        Field::Int(v) => Some(v.to_string()),
        Field::Long(v) => Some(v.to_string()),
        Field::Float(v) => Some(v.to_string()),
        Field::Double(v) => Some(v.to_string()),
        Field::Bytes(b) => std::str::from_utf8(b.data()).ok().map(|s| s.to_string()),
        _ => None,
    }
}

fn as_i64(f: &Field) -> Option<i64> {
    match *f {
        Field::Byte(v) => Some(v as i64),
        Field::Short(v) => Some(v as i64),
        Field::Int(v) => Some(v as i64),
        Field::Long(v) => Some(v),
        Field::UByte(v) => Some(v as i64),
        Field::UShort(v) => Some(v as i64),
        Field::UInt(v) => Some(v as i64),
        Field::ULong(v) => i64::try_from(v).ok(),
        _ => None,
    }
}

fn as_f32(f: &Field) -> Option<f32> {
    match *f {
        Field::Float(v) => Some(v),
        Field::Double(v) => Some(v as f32),
        _ => as_i64(f).map(|v| v as f32),
    }
}

fn string_col(path: &Path, row: &Row, name: &str, i: usize) -> Result<String, StoreError> {
    field(row, name)
        .and_then(as_string)
        .ok_or_else(|| StoreError::BadInput {
            input: path.display().to_string(),
            message: format!("row {i}: missing or non-string field `{name}`"),
        })
}

/// Interns labels into a vocabulary.
#[derive(Default)]
struct Interner {
    map: HashMap<String, u32>,
    vocab: Vec<String>,
}

impl Interner {
    fn code(&mut self, s: &str) -> u32 {
        if let Some(&c) = self.map.get(s) {
            return c;
        }
        self.vocab.push(s.to_string());
        self.map.insert(s.to_string(), (self.vocab.len() - 1) as u32);
        (self.vocab.len() - 1) as u32
    }
}

pub struct TahoeSource {
    dataset: String,
    files: Vec<PathBuf>,
    spec: LabelSpec,
    genes: Vec<String>,
    token_col: HashMap<i64, u32>,
    sample_pert: HashMap<String, String>,
    /// Dose mode: sample -> (drug, dose in µM), parsed from `drugname_drugconc`.
    sample_dose: HashMap<String, (String, f32)>,
    /// cell_line_id → cell name.
    cell_names: HashMap<String, String>,
    control_drug: String,
    block_rows: usize,
    file_idx: usize,
    rows: Option<(PathBuf, parquet::record::reader::RowIter<'static>)>,
    row_in_file: usize,
    pert: Interner,
    context: Interner,
    batch: Interner,
    sentinels: u64,
    sentinel_tokens: std::collections::BTreeSet<i64>,
    notes: Vec<String>,
    /// How the labels were made (perturbation and control), replaced as a whole by dose mode.
    label_notes: Vec<String>,
}

/// Parquet files of `inputs`: files as given, directories expanded to their `*.parquet` (sorted).
pub fn expand_parquet_inputs(inputs: &[PathBuf]) -> Result<Vec<PathBuf>, StoreError> {
    let mut out = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .map_err(|e| StoreError::io(p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|q| q.extension().is_some_and(|x| x == "parquet"))
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(StoreError::BadInput {
                    input: p.display().to_string(),
                    message: "directory has no *.parquet files".into(),
                });
            }
            out.extend(v);
        } else {
            out.push(p.clone());
        }
    }
    Ok(out)
}

impl TahoeSource {
    /// `control_drug`: the `drug` value of control cells (Tahoe: `DMSO_TF`).
    pub fn open(
        inputs: &[PathBuf],
        meta_dir: &Path,
        dataset: &str,
        control_drug: &str,
        block_rows: usize,
    ) -> Result<Self, StoreError> {
        let files = expand_parquet_inputs(inputs)?;
        let mut notes = Vec::new();
        // Genes, ordered by token id.
        let gpath = meta_dir.join("gene_metadata.parquet");
        let mut genes_tab: Vec<(i64, String, String)> = Vec::new();
        for (i, row) in read_table(&gpath)?.iter().enumerate() {
            let tok = field(row, "token_id")
                .and_then(as_i64)
                .ok_or_else(|| StoreError::BadInput {
                    input: gpath.display().to_string(),
                    message: format!("row {i}: missing integer `token_id`"),
                })?;
            let sym = field(row, "gene_symbol").and_then(as_string).unwrap_or_default();
            let ens = field(row, "ensembl_id").and_then(as_string).unwrap_or_default();
            genes_tab.push((tok, sym, ens));
        }
        genes_tab.sort_by_key(|g| g.0);
        if genes_tab.windows(2).any(|w| w[0].0 == w[1].0) {
            return Err(StoreError::BadInput {
                input: gpath.display().to_string(),
                message: "duplicate token_id".into(),
            });
        }
        // Symbols when they are unique and present, else Ensembl ids (always unique).
        let mut syms: Vec<&str> = genes_tab.iter().map(|g| g.1.as_str()).collect();
        syms.sort_unstable();
        let symbols_ok = !syms.iter().any(|s| s.is_empty()) && syms.windows(2).all(|w| w[0] != w[1]);
        let genes: Vec<String> = genes_tab
            .iter()
            .map(|g| if symbols_ok { g.1.clone() } else { g.2.clone() })
            .collect();
        if genes.iter().any(|g| g.is_empty()) {
            return Err(StoreError::BadInput {
                input: gpath.display().to_string(),
                message: "gene_symbol is not unique and ensembl_id is missing for some genes".into(),
            });
        }
        notes.push(format!(
            "tahoe: {} genes from gene_metadata, named by {}",
            genes.len(),
            if symbols_ok {
                "gene_symbol"
            } else {
                "ensembl_id (gene symbols are not unique)"
            }
        ));
        let token_col: HashMap<i64, u32> = genes_tab.iter().enumerate().map(|(i, g)| (g.0, i as u32)).collect();

        let mut sample_pert = HashMap::new();
        let spath = meta_dir.join("sample_metadata.parquet");
        if spath.exists() {
            for (i, row) in read_table(&spath)?.iter().enumerate() {
                let s = string_col(&spath, row, "sample", i)?;
                let p = string_col(&spath, row, "drugname_drugconc", i)?;
                sample_pert.insert(s, p);
            }
        }
        let label_notes = vec![if sample_pert.is_empty() {
            "tahoe: no sample_metadata.parquet; perturbation = drug".to_string()
        } else {
            "tahoe: perturbation = sample_metadata.drugname_drugconc (drug and dose)".to_string()
        }];
        let mut cell_names = HashMap::new();
        let cpath = meta_dir.join("cell_line_metadata.parquet");
        if cpath.exists() {
            for row in read_table(&cpath)?.iter() {
                let id = field(row, "cell_line_id")
                    .or_else(|| field(row, "Cell_ID_Cellosaur"))
                    .and_then(as_string);
                let name = field(row, "cell_name").and_then(as_string);
                if let (Some(id), Some(name)) = (id, name) {
                    cell_names.insert(id, name);
                }
            }
        }
        Ok(Self {
            dataset: dataset.to_string(),
            files,
            spec: LabelSpec {
                pert_col: if sample_pert.is_empty() {
                    "drug".into()
                } else {
                    "drugname_drugconc".into()
                },
                control: String::new(), // resolved once the control's label is known
                context_col: Some("cell_line_id".into()),
                batch_col: Some("plate".into()),
                // The dose is part of `drugname_drugconc`, so each (drug, dose) is its own label.
                dose_col: None,
            },
            genes,
            token_col,
            sample_pert,
            sample_dose: HashMap::new(),
            cell_names,
            control_drug: control_drug.to_string(),
            block_rows: block_rows.max(1),
            file_idx: 0,
            rows: None,
            row_in_file: 0,
            pert: Interner::default(),
            context: Interner::default(),
            batch: Interner::default(),
            sentinels: 0,
            sentinel_tokens: Default::default(),
            notes,
            label_notes,
        }
        .with_control_label())
    }

    /// The store's control label: the control drug's `drugname_drugconc` (one label; several doses of
    /// the control would be ambiguous and are folded into the first, noted).
    fn with_control_label(mut self) -> Self {
        if self.sample_pert.is_empty() {
            self.spec.control = self.control_drug.clone();
            return self;
        }
        let prefix = format!("[('{}',", self.control_drug);
        let mut labels: Vec<String> = self
            .sample_pert
            .values()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect();
        labels.sort();
        labels.dedup();
        self.spec.control = labels.first().cloned().unwrap_or_else(|| self.control_drug.clone());
        if labels.len() > 1 {
            self.label_notes.push(format!(
                "tahoe: control drug `{}` has {} dose labels; all mapped to `{}`",
                self.control_drug,
                labels.len(),
                self.spec.control
            ));
        }
        self
    }

    /// Dose mode: the perturbation is the drug's name and the dose its concentration (µM) from
    /// `drugname_drugconc`, so one drug at several doses is one perturbation whose groups differ by dose.
    /// Needs `sample_metadata.parquet`; a label that is not one `[('NAME', DOSE, 'UNIT')]` is an error.
    pub fn with_doses(mut self, meta_dir: &Path) -> Result<Self, StoreError> {
        let spath = meta_dir.join("sample_metadata.parquet");
        if self.sample_pert.is_empty() {
            return Err(StoreError::BadInput {
                input: spath.display().to_string(),
                message: "doses need sample_metadata.parquet (its drugname_drugconc column)".into(),
            });
        }
        for (sample, label) in &self.sample_pert {
            let (drug, dose) = parse_drugconc(label).map_err(|why| StoreError::BadInput {
                input: spath.display().to_string(),
                message: format!("sample `{sample}`: drugname_drugconc {label:?}: {why}"),
            })?;
            self.sample_dose.insert(sample.clone(), (drug, dose));
        }
        self.spec.pert_col = "drug".into();
        self.spec.dose_col = Some("drugname_drugconc".into());
        self.spec.control = self.control_drug.clone();
        self.label_notes = vec![
            "tahoe: perturbation = the drug of sample_metadata.drugname_drugconc, dose = its concentration in µM"
                .into(),
        ];
        Ok(self)
    }

    fn open_next_file(&mut self) -> Result<bool, StoreError> {
        let Some(path) = self.files.get(self.file_idx).cloned() else {
            return Ok(false);
        };
        self.file_idx += 1;
        let f = File::open(&path).map_err(|e| StoreError::io(&path, e))?;
        let r = SerializedFileReader::new(f).map_err(|e| pq_err(&path, e))?;
        let schema = r.metadata().file_metadata().schema();
        let mut fields = Vec::new();
        for want in CELL_FIELDS.iter().chain([NAME_FIELD].iter()) {
            match schema.get_fields().iter().find(|f| f.name() == *want) {
                Some(f) => fields.push(f.clone()),
                None => {
                    return Err(StoreError::MissingColumn {
                        input: path.display().to_string(),
                        column: want.to_string(),
                        what: "Tahoe-100M cell field".into(),
                        available: schema
                            .get_fields()
                            .iter()
                            .map(|f| f.name().to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
                }
            }
        }
        let proj = Type::group_type_builder(schema.name())
            .with_fields(fields)
            .build()
            .map_err(|e| pq_err(&path, e))?;
        let iter = r.into_iter().project(Some(proj)).map_err(|e| pq_err(&path, e))?;
        self.rows = Some((path, iter));
        self.row_in_file = 0;
        Ok(true)
    }
}

impl CellSource for TahoeSource {
    fn dataset(&self) -> &str {
        &self.dataset
    }
    fn inputs(&self) -> Vec<String> {
        self.files.iter().map(|p| p.display().to_string()).collect()
    }
    fn source_desc(&self) -> String {
        "tahoe".into()
    }
    fn genes(&self) -> &[String] {
        &self.genes
    }
    fn is_dense(&self) -> bool {
        false
    }
    fn labels(&self) -> &LabelSpec {
        &self.spec
    }
    fn next_block(&mut self) -> Result<Option<Block>, StoreError> {
        let mut m = CsrMatrix::empty(self.genes.len());
        let mut names = Vec::new();
        let (mut pert, mut context, mut batch) = (Vec::new(), Vec::new(), Vec::new());
        let mut dose: Vec<f32> = Vec::new();
        let mut cols: Vec<u32> = Vec::new();
        let mut vals: Vec<f32> = Vec::new();
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        while names.len() < self.block_rows {
            if self.rows.is_none() && !self.open_next_file()? {
                break;
            }
            let Some((path, iter)) = self.rows.as_mut() else { break };
            let Some(row) = iter.next() else {
                self.rows = None;
                continue;
            };
            let path = path.clone();
            let i = self.row_in_file;
            self.row_in_file += 1;
            let row = row.map_err(|e| pq_err(&path, e))?;
            let bad = |message: String| StoreError::BadInput {
                input: path.display().to_string(),
                message: format!("row {i}: {message}"),
            };
            let list = |name: &str| match field(&row, name) {
                Some(Field::ListInternal(l)) => Ok(l.elements()),
                _ => Err(bad(format!("`{name}` is missing or not a list"))),
            };
            let g = list("genes")?;
            let e = list("expressions")?;
            if g.len() != e.len() {
                return Err(bad(format!("genes has {} entries, expressions {}", g.len(), e.len())));
            }
            pairs.clear();
            for (k, (gf, ef)) in g.iter().zip(e).enumerate() {
                let tok = as_i64(gf).ok_or_else(|| bad(format!("genes[{k}] is not an integer")))?;
                let v = as_f32(ef).ok_or_else(|| bad(format!("expressions[{k}] is not a number")))?;
                let col = self.token_col.get(&tok).copied();
                if k == 0 && (col.is_none() || v < 0.0) {
                    // The sentinel token (see module docs).
                    self.sentinels += 1;
                    self.sentinel_tokens.insert(tok);
                    continue;
                }
                let col = col.ok_or_else(|| bad(format!("genes[{k}] = {tok} is not a token of gene_metadata")))?;
                if !v.is_finite() || v < 0.0 {
                    return Err(StoreError::BadValue {
                        input: path.display().to_string(),
                        row: i,
                        col: col as usize,
                        value: v,
                        problem: "not a non-negative count".into(),
                    });
                }
                if v != 0.0 {
                    pairs.push((col, v));
                }
            }
            pairs.sort_by_key(|p| p.0);
            if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
                return Err(bad("a gene token occurs twice".into()));
            }
            cols.clear();
            vals.clear();
            cols.extend(pairs.iter().map(|p| p.0));
            vals.extend(pairs.iter().map(|p| p.1));
            m.push_row(&cols, &vals);
            let drug = string_col(&path, &row, "drug", i)?;
            let sample = string_col(&path, &row, "sample", i)?;
            let p = if !self.sample_dose.is_empty() {
                let (name, d) = self
                    .sample_dose
                    .get(&sample)
                    .ok_or_else(|| bad(format!("sample `{sample}` is not in sample_metadata")))?;
                if *name != drug {
                    return Err(bad(format!(
                        "drug `{drug}` but sample `{sample}` is `{name}` in sample_metadata"
                    )));
                }
                // the control is the vehicle: dose 0, whatever its label says
                dose.push(if drug == self.control_drug { 0.0 } else { *d });
                drug.clone()
            } else if self.sample_pert.is_empty() {
                drug.clone()
            } else if drug == self.control_drug {
                self.spec.control.clone()
            } else {
                self.sample_pert
                    .get(&sample)
                    .cloned()
                    .ok_or_else(|| bad(format!("sample `{sample}` is not in sample_metadata")))?
            };
            pert.push(self.pert.code(&p));
            let cl = string_col(&path, &row, "cell_line_id", i)?;
            let ctx = self.cell_names.get(&cl).cloned().unwrap_or(cl);
            context.push(self.context.code(&ctx));
            batch.push(self.batch.code(&string_col(&path, &row, "plate", i)?));
            names.push(string_col(&path, &row, NAME_FIELD, i)?);
        }
        if names.is_empty() {
            return Ok(None);
        }
        if dose.is_empty() {
            dose = vec![0.0; names.len()];
        }
        Ok(Some(Block {
            rows: Matrix::Csr(m),
            cell_names: names,
            pert,
            context,
            batch,
            dose,
        }))
    }
    fn vocabs(&self) -> Vocabs {
        Vocabs {
            pert: self.pert.vocab.clone(),
            context: self.context.vocab.clone(),
            batch: self.batch.vocab.clone(),
        }
    }
    fn notes(&self) -> Vec<String> {
        let mut n = self.notes.clone();
        n.extend(self.label_notes.iter().cloned());
        n.push(format!(
            "tahoe: skipped the leading sentinel element of {} cells (tokens {:?})",
            self.sentinels, self.sentinel_tokens
        ));
        n
    }
}

/// `[('NAME', DOSE, 'UNIT')]` (Tahoe's `drugname_drugconc`, a Python repr) -> (NAME, dose in µM).
fn parse_drugconc(label: &str) -> Result<(String, f32), String> {
    let inner = label
        .trim()
        .strip_prefix("[(")
        .and_then(|x| x.strip_suffix(")]"))
        .ok_or("expected [('NAME', DOSE, 'UNIT')]")?;
    if inner.contains("), (") {
        return Err("several drugs in one sample; doses of combinations are not supported".into());
    }
    // The name is quoted and may hold commas: split the dose and unit off the end.
    let (rest, unit) = inner.rsplit_once(',').ok_or("expected NAME, DOSE, UNIT")?;
    let (name, dose) = rest.rsplit_once(',').ok_or("expected NAME, DOSE, UNIT")?;
    let unquote = |x: &str| -> Result<String, String> {
        let x = x.trim();
        x.strip_prefix('\'')
            .and_then(|y| y.strip_suffix('\''))
            .or_else(|| x.strip_prefix('"').and_then(|y| y.strip_suffix('"')))
            .map(str::to_string)
            .ok_or_else(|| format!("{x} is not a quoted string"))
    };
    let name = unquote(name)?;
    let value: f64 = dose
        .trim()
        .parse()
        .map_err(|_| format!("dose {:?} is not a number", dose.trim()))?;
    let factor = match unquote(unit)?.as_str() {
        "uM" | "µM" => 1.0,
        "nM" => 1e-3,
        "mM" => 1e3,
        "pM" => 1e-6,
        other => return Err(format!("unit `{other}`: expected uM, nM, mM or pM")),
    };
    let dose = value * factor;
    if !(dose.is_finite() && dose >= 0.0) {
        return Err(format!("dose {value} is not a number >= 0"));
    }
    if name.is_empty() {
        return Err("empty drug name".into());
    }
    Ok((name, dose as f32))
}

#[cfg(test)]
mod tests {
    use super::parse_drugconc;

    #[test]
    fn drugconc_labels_parse_to_drug_and_micromolar_dose() {
        assert_eq!(
            parse_drugconc("[('Bortezomib', 0.05, 'uM')]"),
            Ok(("Bortezomib".into(), 0.05))
        );
        assert_eq!(parse_drugconc("[('DMSO_TF', 0.0, 'uM')]"), Ok(("DMSO_TF".into(), 0.0)));
        assert_eq!(parse_drugconc("[('A, B-7', 500, 'nM')]"), Ok(("A, B-7".into(), 0.5)));
        for bad in [
            "Bortezomib",
            "[('A', 1.0, 'uM'), ('B', 2.0, 'uM')]",
            "[('A', x, 'uM')]",
            "[('A', 1.0, 'g')]",
            "[('A', -1.0, 'uM')]",
            "[(A, 1.0, 'uM')]",
        ] {
            assert!(parse_drugconc(bad).is_err(), "{bad}");
        }
    }
}
