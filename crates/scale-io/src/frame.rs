//! `obs` / `var` data frames as anndata stores them: an index of names plus typed columns.

/// One column of an anndata dataframe.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// pandas Categorical: `codes[i]` indexes `categories`, -1 is missing.
    Categorical {
        codes: Vec<i32>,
        categories: Vec<String>,
        ordered: bool,
    },
    String(Vec<String>),
    Float(Vec<f64>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::Categorical { codes, .. } => codes.len(),
            Column::String(v) => v.len(),
            Column::Float(v) => v.len(),
            Column::Int(v) => v.len(),
            Column::Bool(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Builds a categorical column from labels, categories in order of first appearance... sorted,
    /// as pandas does for `astype("category")`.
    pub fn categorical_from_labels<S: AsRef<str>>(labels: &[S]) -> Column {
        let mut cats: Vec<String> = labels.iter().map(|s| s.as_ref().to_string()).collect();
        cats.sort();
        cats.dedup();
        let codes = labels
            .iter()
            .map(|s| cats.binary_search_by(|c| c.as_str().cmp(s.as_ref())).unwrap() as i32)
            .collect();
        Column::Categorical {
            codes,
            categories: cats,
            ordered: false,
        }
    }

    /// Value `i` as a string (categorical label, or the formatted value); `None` when missing.
    pub fn get_str(&self, i: usize) -> Option<String> {
        match self {
            Column::Categorical { codes, categories, .. } => {
                let c = codes[i];
                (c >= 0).then(|| categories[c as usize].clone())
            }
            Column::String(v) => Some(v[i].clone()),
            Column::Float(v) => (!v[i].is_nan()).then(|| format!("{}", v[i])),
            Column::Int(v) => Some(v[i].to_string()),
            Column::Bool(v) => Some(if v[i] { "True" } else { "False" }.to_string()),
        }
    }

    /// All values as strings (missing values become the empty string).
    pub fn to_strings(&self) -> Vec<String> {
        (0..self.len()).map(|i| self.get_str(i).unwrap_or_default()).collect()
    }

    /// Number of distinct values (categories actually used for a categorical).
    pub fn n_unique(&self) -> usize {
        let mut v = self.to_strings();
        v.sort();
        v.dedup();
        v.len()
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Column::Categorical { .. } => "categorical",
            Column::String(_) => "string",
            Column::Float(_) => "float",
            Column::Int(_) => "int",
            Column::Bool(_) => "bool",
        }
    }

    /// Rows `rows`, in order.
    pub fn select(&self, rows: &[usize]) -> Column {
        match self {
            Column::Categorical {
                codes,
                categories,
                ordered,
            } => Column::Categorical {
                codes: rows.iter().map(|&r| codes[r]).collect(),
                categories: categories.clone(),
                ordered: *ordered,
            },
            Column::String(v) => Column::String(rows.iter().map(|&r| v[r].clone()).collect()),
            Column::Float(v) => Column::Float(rows.iter().map(|&r| v[r]).collect()),
            Column::Int(v) => Column::Int(rows.iter().map(|&r| v[r]).collect()),
            Column::Bool(v) => Column::Bool(rows.iter().map(|&r| v[r]).collect()),
        }
    }
}

/// A dataframe: index (cell or gene names) plus named columns in stored order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Frame {
    /// Name of the index column in the file (the `_index` attribute); anndata's default is `_index`.
    pub index_name: String,
    pub index: Vec<String>,
    pub columns: Vec<(String, Column)>,
}

impl Frame {
    pub fn new(index: Vec<String>) -> Self {
        Self {
            index_name: "_index".into(),
            index,
            columns: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Adds or replaces a column.
    pub fn set_column(&mut self, name: &str, col: Column) {
        match self.columns.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = col,
            None => self.columns.push((name.to_string(), col)),
        }
    }

    pub fn column_names(&self) -> Vec<&str> {
        self.columns.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Rows `rows`, in order.
    pub fn select(&self, rows: &[usize]) -> Frame {
        Frame {
            index_name: self.index_name.clone(),
            index: rows.iter().map(|&r| self.index[r].clone()).collect(),
            columns: self.columns.iter().map(|(n, c)| (n.clone(), c.select(rows))).collect(),
        }
    }
}
