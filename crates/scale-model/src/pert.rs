//! Perturbation names -> the model's perturbation input vectors [P].
//!
//! A name is a single perturbation ("STAT1") or a combination joined by `+` ("STAT1+IRF1"); the
//! control label maps to the zero vector. With a one-hot vocabulary the vector is multi-hot over
//! single perturbations; with a feature table it is the sum of the components' feature rows.

use std::collections::HashMap;
use std::path::Path;

use crate::transport::PertEncoding;
use crate::ModelError;

/// Separator of combination perturbations.
pub const COMBO_SEP: char = '+';

/// A fixed table name -> feature vector, read from CSV/TSV (header row; first column the name).
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureTable {
    names: Vec<String>,
    index: HashMap<String, usize>,
    dim: usize,
    /// Row-major [n_names, dim].
    values: Vec<f32>,
}

impl FeatureTable {
    /// Builds a table from names and row-major values [names.len(), dim].
    pub fn new(names: Vec<String>, dim: usize, values: Vec<f32>, source: &str) -> Result<Self, ModelError> {
        if dim == 0 || values.len() != names.len() * dim {
            return Err(ModelError::FeatureTable {
                path: source.to_string(),
                msg: format!("expected {} x {dim} values, got {}", names.len(), values.len()),
            });
        }
        let mut index = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if index.insert(n.clone(), i).is_some() {
                return Err(ModelError::FeatureTable {
                    path: source.to_string(),
                    msg: format!("perturbation {n:?} appears twice"),
                });
            }
        }
        Ok(Self {
            names,
            index,
            dim,
            values,
        })
    }

    /// Reads a CSV (or, for `.tsv`/`.txt`, tab-separated) file: a header row, then one row per
    /// perturbation: its name and `dim` numbers.
    pub fn read(path: &Path) -> Result<Self, ModelError> {
        let src = path.display().to_string();
        let err = |msg: String| ModelError::FeatureTable { path: src.clone(), msg };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let sep = match path.extension().and_then(|e| e.to_str()) {
            Some("tsv") | Some("txt") => '\t',
            _ => ',',
        };
        let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
        let (_, header) = lines.next().ok_or_else(|| err("empty file".into()))?;
        let dim = header.split(sep).count().saturating_sub(1);
        if dim == 0 {
            return Err(err("header has no feature columns".into()));
        }
        let mut names = Vec::new();
        let mut values = Vec::new();
        for (lineno, line) in lines {
            let mut fields = line.split(sep);
            let name = fields.next().unwrap_or("").trim().to_string();
            if name.is_empty() {
                return Err(err(format!("line {}: empty perturbation name", lineno + 1)));
            }
            let row: Vec<&str> = fields.collect();
            if row.len() != dim {
                return Err(err(format!(
                    "line {}: expected {dim} feature values, found {}",
                    lineno + 1,
                    row.len()
                )));
            }
            for (j, f) in row.iter().enumerate() {
                let v: f32 = f.trim().parse().map_err(|_| {
                    err(format!(
                        "line {}, column {}: {:?} is not a number",
                        lineno + 1,
                        j + 2,
                        f.trim()
                    ))
                })?;
                if !v.is_finite() {
                    return Err(err(format!("line {}, column {}: non-finite value", lineno + 1, j + 2)));
                }
                values.push(v);
            }
            names.push(name);
        }
        Self::new(names, dim, values, &src)
    }

    /// Writes the table as CSV (header `perturbation,f0,f1,...`).
    pub fn to_csv(&self) -> String {
        let mut s = String::from("perturbation");
        for j in 0..self.dim {
            s.push_str(&format!(",f{j}"));
        }
        s.push('\n');
        for (i, n) in self.names.iter().enumerate() {
            s.push_str(n);
            for v in &self.values[i * self.dim..(i + 1) * self.dim] {
                s.push_str(&format!(",{v}"));
            }
            s.push('\n');
        }
        s
    }

    /// Feature width.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Names in table order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    fn row(&self, name: &str) -> Option<&[f32]> {
        self.index
            .get(name)
            .map(|&i| &self.values[i * self.dim..(i + 1) * self.dim])
    }
}

/// Maps perturbation names to input vectors.
#[derive(Debug, Clone, PartialEq)]
pub enum PertEncoder {
    /// Multi-hot over single perturbations (the learned embedding table's rows).
    OneHot {
        /// Single perturbations, in embedding-row order.
        components: Vec<String>,
        /// name -> row.
        index: HashMap<String, usize>,
    },
    /// Sum of fixed feature rows.
    Features(FeatureTable),
}

impl PertEncoder {
    /// One-hot vocabulary of the single perturbations making up `perts` (combinations split on
    /// `+`), the control label excluded, in first-seen order.
    pub fn one_hot(perts: &[String], control: &str) -> Self {
        let mut components = Vec::new();
        let mut index = HashMap::new();
        for p in perts {
            if p == control {
                continue;
            }
            for c in split_combo(p) {
                if !index.contains_key(c) {
                    index.insert(c.to_string(), components.len());
                    components.push(c.to_string());
                }
            }
        }
        Self::OneHot { components, index }
    }

    /// Rebuilds a one-hot encoder from its saved component list.
    pub fn from_components(components: Vec<String>) -> Self {
        let index = components.iter().enumerate().map(|(i, c)| (c.clone(), i)).collect();
        Self::OneHot { components, index }
    }

    /// Which projection the model needs.
    pub fn encoding(&self) -> PertEncoding {
        match self {
            Self::OneHot { .. } => PertEncoding::OneHot,
            Self::Features(_) => PertEncoding::Features,
        }
    }

    /// Input width P.
    pub fn dim(&self) -> usize {
        match self {
            Self::OneHot { components, .. } => components.len(),
            Self::Features(t) => t.dim(),
        }
    }

    /// Adds the vector of `name` to `out` [P]. The control label adds nothing.
    pub fn encode_into(&self, name: &str, control: &str, out: &mut [f32]) -> Result<(), ModelError> {
        if name == control {
            return Ok(());
        }
        for c in split_combo(name) {
            match self {
                Self::OneHot { index, .. } => {
                    let i = *index.get(c).ok_or_else(|| ModelError::UnknownPerturbation {
                        name: name.to_string(),
                        component: c.to_string(),
                        hint: "not in the training vocabulary; train with a feature table to predict unseen \
                               perturbations",
                    })?;
                    out[i] += 1.0;
                }
                Self::Features(t) => {
                    let row = t.row(c).ok_or_else(|| ModelError::UnknownPerturbation {
                        name: name.to_string(),
                        component: c.to_string(),
                        hint: "no row in the perturbation feature table",
                    })?;
                    for (o, v) in out.iter_mut().zip(row) {
                        *o += v;
                    }
                }
            }
        }
        Ok(())
    }

    /// Encodes several names: row-major [names.len(), P].
    pub fn encode_all<S: AsRef<str>>(&self, names: &[S], control: &str) -> Result<Vec<f32>, ModelError> {
        let p = self.dim();
        let mut out = vec![0.0f32; names.len() * p];
        for (i, n) in names.iter().enumerate() {
            self.encode_into(n.as_ref(), control, &mut out[i * p..(i + 1) * p])?;
        }
        Ok(out)
    }
}

/// Components of a (possibly combined) perturbation name.
pub fn split_combo(name: &str) -> impl Iterator<Item = &str> {
    name.split(COMBO_SEP).map(str::trim).filter(|c| !c.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_hot_splits_combinations_and_skips_control() {
        let perts: Vec<String> = ["ctrl", "A", "A+B", "C"].iter().map(|s| s.to_string()).collect();
        let enc = PertEncoder::one_hot(&perts, "ctrl");
        assert_eq!(enc.dim(), 3);
        let v = enc.encode_all(&["A+B", "ctrl", "C"], "ctrl").unwrap();
        assert_eq!(v, vec![1., 1., 0., 0., 0., 0., 0., 0., 1.]);
        let e = enc.encode_all(&["A+Z"], "ctrl").unwrap_err();
        assert!(e.to_string().contains("\"Z\""), "{e}");
    }

    #[test]
    fn feature_table_sums_rows_and_rejects_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.csv");
        std::fs::write(&p, "name,a,b\nA,1,2\nB,10,20\n").unwrap();
        let t = FeatureTable::read(&p).unwrap();
        let enc = PertEncoder::Features(t.clone());
        assert_eq!(
            enc.encode_all(&["A+B", "ctrl"], "ctrl").unwrap(),
            vec![11., 22., 0., 0.]
        );
        let back = dir.path().join("g.csv");
        std::fs::write(&back, t.to_csv()).unwrap();
        assert_eq!(FeatureTable::read(&back).unwrap(), t);
        std::fs::write(&p, "name,a,b\nA,1,x\n").unwrap();
        let e = FeatureTable::read(&p).unwrap_err().to_string();
        assert!(e.contains("column 3") && e.contains("f.csv"), "{e}");
        std::fs::write(&p, "name,a,b\nA,1\n").unwrap();
        assert!(FeatureTable::read(&p).is_err());
    }
}
