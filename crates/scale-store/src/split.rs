//! Train / val / test splits as sets of group ids: STATE/cell-load TOML files unchanged, or programmatic
//! hold-outs of contexts, perturbations or a seeded fraction of perturbations.
//!
//! cell-load's TOML:
//! ```toml
//! [datasets]
//! replogle = "/data/replogle/"          # path ignored: the store holds the data
//! [training]
//! replogle = "train"
//! [zeroshot]
//! "replogle.jurkat" = "test"            # a whole context held out (its controls too, as cell-load does)
//! [fewshot."replogle.rpe1"]
//! val = ["AARS"]
//! test = ["NUP107", "RPUSD4"]           # these perturbations of that context held out
//! ```
//! Control groups stay in train except in zero-shot contexts. A split that puts a held-out (context,
//! perturbation) into training as well is refused.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{preview, StoreError};
use crate::store::Store;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Part {
    Train,
    Val,
    Test,
}

impl Part {
    pub fn as_str(&self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Val => "val",
            Part::Test => "test",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// Where the split came from (file path or `holdout`), for messages.
    pub source: String,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
    /// Groups of datasets the split does not use.
    pub excluded: Vec<usize>,
}

/// Programmatic hold-out. Names are store context / perturbation names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Holdout {
    pub test_contexts: Vec<String>,
    pub val_contexts: Vec<String>,
    pub test_perts: Vec<String>,
    pub val_perts: Vec<String>,
    /// Single doses held out everywhere, as `PERTURBATION@DOSE` (dose as written in the store's dose
    /// column, compared as float32): the other doses of that perturbation stay in training, so the
    /// model is tested on a dose it never saw.
    pub test_doses: Vec<String>,
    /// Fractions of the remaining (non-control) perturbations held out everywhere, drawn with `seed`.
    pub test_fraction: f64,
    pub val_fraction: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartReport {
    pub groups: usize,
    pub cells: u64,
    pub control_cells: u64,
    /// Distinct non-control perturbations.
    pub perts: usize,
    pub contexts: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SplitReport {
    pub train: PartReport,
    pub val: PartReport,
    pub test: PartReport,
    pub excluded_groups: usize,
}

impl std::fmt::Display for SplitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{:<6} {:>7} {:>10} {:>10} {:>6} {:>8}",
            "part", "groups", "cells", "controls", "perts", "contexts"
        )?;
        for (name, p) in [("train", &self.train), ("val", &self.val), ("test", &self.test)] {
            writeln!(
                f,
                "{:<6} {:>7} {:>10} {:>10} {:>6} {:>8}",
                name, p.groups, p.cells, p.control_cells, p.perts, p.contexts
            )?;
        }
        if self.excluded_groups > 0 {
            writeln!(
                f,
                "({} groups of datasets not named by the split are excluded)",
                self.excluded_groups
            )?;
        }
        Ok(())
    }
}

#[derive(serde::Deserialize)]
struct TomlSplit {
    #[serde(default)]
    datasets: HashMap<String, toml::Value>,
    #[serde(default)]
    training: HashMap<String, String>,
    #[serde(default)]
    zeroshot: HashMap<String, String>,
    #[serde(default)]
    fewshot: HashMap<String, FewShot>,
}

#[derive(serde::Deserialize)]
struct FewShot {
    #[serde(default)]
    val: Vec<String>,
    #[serde(default)]
    test: Vec<String>,
}

fn parse_part(source: &str, key: &str, v: &str) -> Result<Part, StoreError> {
    match v {
        "test" => Ok(Part::Test),
        "val" => Ok(Part::Val),
        other => Err(StoreError::Split {
            source_name: source.to_string(),
            message: format!("`{key}` = \"{other}\": expected \"val\" or \"test\""),
        }),
    }
}

impl Split {
    pub fn from_toml(path: &Path, store: &Store) -> Result<Split, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|e| StoreError::io(path, e))?;
        Self::from_toml_str(&text, &path.display().to_string(), store)
    }

    pub fn from_toml_str(text: &str, source: &str, store: &Store) -> Result<Split, StoreError> {
        let t: TomlSplit = toml::from_str(text).map_err(|e| StoreError::Split {
            source_name: source.to_string(),
            message: format!("not a cell-load split TOML: {e}"),
        })?;
        let m = store.manifest();
        let ds_names: Vec<String> = m.datasets.iter().map(|d| d.name.clone()).collect();
        let unknown = |kind: &str, name: &str, known: &[String]| StoreError::UnknownName {
            source_name: source.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            known: preview(known, 20),
        };
        for name in t.datasets.keys() {
            if m.dataset_index(name).is_none() {
                return Err(unknown("dataset", name, &ds_names));
            }
        }
        let mut training: HashSet<u32> = HashSet::new();
        for (name, v) in &t.training {
            let d = m
                .dataset_index(name)
                .ok_or_else(|| unknown("dataset", name, &ds_names))?;
            if v != "train" {
                return Err(StoreError::Split {
                    source_name: source.to_string(),
                    message: format!("[training] {name} = \"{v}\": expected \"train\""),
                });
            }
            training.insert(d);
        }
        // "dataset.context" → (dataset, context); the dataset name is matched as a prefix so that context
        // names may contain dots.
        let resolve = |key: &str| -> Result<(u32, u32), StoreError> {
            for (di, d) in m.datasets.iter().enumerate() {
                if let Some(ctx) = key.strip_prefix(&format!("{}.", d.name)) {
                    let c = m
                        .context_index(ctx)
                        .ok_or_else(|| unknown("context", ctx, &m.contexts))?;
                    let present = m.groups.iter().any(|g| g.dataset == di as u32 && g.context == c);
                    if !present {
                        return Err(StoreError::Split {
                            source_name: source.to_string(),
                            message: format!("context `{ctx}` has no cells in dataset `{}`", d.name),
                        });
                    }
                    return Ok((di as u32, c));
                }
            }
            Err(unknown("dataset.context", key, &ds_names))
        };
        let mut zeroshot: HashMap<(u32, u32), Part> = HashMap::new();
        for (key, v) in &t.zeroshot {
            zeroshot.insert(resolve(key)?, parse_part(source, key, v)?);
        }
        let mut fewshot: HashMap<(u32, u32, u32), Part> = HashMap::new();
        for (key, fs) in &t.fewshot {
            let (d, c) = resolve(key)?;
            if zeroshot.contains_key(&(d, c)) {
                return Err(StoreError::Split {
                    source_name: source.to_string(),
                    message: format!("`{key}` is both zero-shot and few-shot"),
                });
            }
            for (list, part) in [(&fs.val, Part::Val), (&fs.test, Part::Test)] {
                for p in list {
                    let pi = m.pert_index(p).ok_or_else(|| unknown("perturbation", p, &m.perts))?;
                    if pi == m.control_pert {
                        return Err(StoreError::Split {
                            source_name: source.to_string(),
                            message: format!("[fewshot.\"{key}\"] holds out the control `{p}`"),
                        });
                    }
                    if !m
                        .groups
                        .iter()
                        .any(|g| g.dataset == d && g.context == c && g.pert == pi)
                    {
                        return Err(StoreError::Split {
                            source_name: source.to_string(),
                            message: format!("perturbation `{p}` has no cells in `{key}`"),
                        });
                    }
                    if let Some(prev) = fewshot.insert((d, c, pi), part) {
                        if prev != part {
                            return Err(StoreError::Split {
                                source_name: source.to_string(),
                                message: format!("perturbation `{p}` of `{key}` is in both val and test"),
                            });
                        }
                    }
                }
            }
        }
        let zs_ds: HashSet<u32> = zeroshot.keys().map(|k| k.0).collect();
        let fs_ds: HashSet<u32> = fewshot.keys().map(|k| k.0).collect();
        let assign = |gi: &crate::manifest::GroupInfo| -> Option<Part> {
            if let Some(&p) = zeroshot.get(&(gi.dataset, gi.context)) {
                return Some(p);
            }
            if let Some(&p) = fewshot.get(&(gi.dataset, gi.context, gi.pert)) {
                return Some(p);
            }
            if training.contains(&gi.dataset) || zs_ds.contains(&gi.dataset) || fs_ds.contains(&gi.dataset) {
                return Some(Part::Train);
            }
            None
        };
        let split = Self::from_assignment(source, store, assign);
        split.check(store)?;
        Ok(split)
    }

    /// Programmatic hold-out (see [`Holdout`]).
    pub fn holdout(store: &Store, h: &Holdout) -> Result<Split, StoreError> {
        let source = "holdout";
        let m = store.manifest();
        let unknown = |kind: &str, name: &str, known: &[String]| StoreError::UnknownName {
            source_name: source.to_string(),
            kind: kind.to_string(),
            name: name.to_string(),
            known: preview(known, 20),
        };
        for f in [h.test_fraction, h.val_fraction] {
            if !(0.0..=1.0).contains(&f) || h.test_fraction + h.val_fraction > 1.0 {
                return Err(StoreError::Split {
                    source_name: source.into(),
                    message: format!(
                        "fractions test {} + val {} must lie in [0, 1]",
                        h.test_fraction, h.val_fraction
                    ),
                });
            }
        }
        let mut ctx_part: HashMap<u32, Part> = HashMap::new();
        for (list, part) in [(&h.test_contexts, Part::Test), (&h.val_contexts, Part::Val)] {
            for c in list {
                let ci = m.context_index(c).ok_or_else(|| unknown("context", c, &m.contexts))?;
                if ctx_part.insert(ci, part).is_some_and(|p| p != part) {
                    return Err(StoreError::Split {
                        source_name: source.into(),
                        message: format!("context `{c}` is in both val and test"),
                    });
                }
            }
        }
        let mut pert_part: HashMap<u32, Part> = HashMap::new();
        for (list, part) in [(&h.test_perts, Part::Test), (&h.val_perts, Part::Val)] {
            for p in list {
                let pi = m.pert_index(p).ok_or_else(|| unknown("perturbation", p, &m.perts))?;
                if pi == m.control_pert {
                    return Err(StoreError::Split {
                        source_name: source.into(),
                        message: format!("cannot hold out the control `{p}`"),
                    });
                }
                if pert_part.insert(pi, part).is_some_and(|q| q != part) {
                    return Err(StoreError::Split {
                        source_name: source.into(),
                        message: format!("perturbation `{p}` is in both val and test"),
                    });
                }
            }
        }
        let mut dose_part: HashMap<(u32, u32), Part> = HashMap::new();
        for spec in &h.test_doses {
            let (p, d) = spec.rsplit_once('@').ok_or_else(|| StoreError::Split {
                source_name: source.into(),
                message: format!("held-out dose `{spec}`: expected PERTURBATION@DOSE"),
            })?;
            let pi = m.pert_index(p).ok_or_else(|| unknown("perturbation", p, &m.perts))?;
            let dose: f32 = d.trim().parse().map_err(|_| StoreError::Split {
                source_name: source.into(),
                message: format!("held-out dose `{spec}`: `{d}` is not a number"),
            })?;
            let mut known: Vec<f32> = m.groups.iter().filter(|g| g.pert == pi).map(|g| g.dose).collect();
            known.sort_by(f32::total_cmp);
            known.dedup();
            if !known.contains(&dose) {
                return Err(StoreError::Split {
                    source_name: source.into(),
                    message: format!(
                        "held-out dose `{spec}`: `{p}` has no cells at dose {dose} (its doses: {known:?})"
                    ),
                });
            }
            dose_part.insert((pi, dose.to_bits()), Part::Test);
        }
        if h.test_fraction > 0.0 || h.val_fraction > 0.0 {
            let mut rest: Vec<u32> = (0..m.perts.len() as u32)
                .filter(|&p| p != m.control_pert && !pert_part.contains_key(&p))
                .collect();
            let mut rng = ChaCha8Rng::seed_from_u64(h.seed);
            rest.shuffle(&mut rng);
            let n_test = (h.test_fraction * rest.len() as f64).round() as usize;
            let n_val = ((h.val_fraction * rest.len() as f64).round() as usize).min(rest.len() - n_test);
            for &p in &rest[..n_test] {
                pert_part.insert(p, Part::Test);
            }
            for &p in &rest[n_test..n_test + n_val] {
                pert_part.insert(p, Part::Val);
            }
        }
        let control = m.control_pert;
        let split = Self::from_assignment(source, store, |gi| {
            // A held-out context wins over a held-out perturbation: the whole context is unseen.
            if let Some(&p) = ctx_part.get(&gi.context) {
                return Some(p);
            }
            if gi.pert == control {
                return Some(Part::Train);
            }
            if let Some(&p) = dose_part.get(&(gi.pert, gi.dose.to_bits())) {
                return Some(p);
            }
            Some(pert_part.get(&gi.pert).copied().unwrap_or(Part::Train))
        });
        split.check(store)?;
        Ok(split)
    }

    fn from_assignment(
        source: &str,
        store: &Store,
        assign: impl Fn(&crate::manifest::GroupInfo) -> Option<Part>,
    ) -> Split {
        let mut s = Split {
            source: source.to_string(),
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
            excluded: Vec::new(),
        };
        for (g, gi) in store.manifest().groups.iter().enumerate() {
            match assign(gi) {
                Some(Part::Train) => s.train.push(g),
                Some(Part::Val) => s.val.push(g),
                Some(Part::Test) => s.test.push(g),
                None => s.excluded.push(g),
            }
        }
        s
    }

    /// Refuses a (context, perturbation, dose) held out in val/test that also appears in train, and an
    /// empty training set.
    pub fn check(&self, store: &Store) -> Result<(), StoreError> {
        let m = store.manifest();
        let train: HashSet<(u32, u32, u32)> = self
            .train
            .iter()
            .map(|&g| (m.groups[g].context, m.groups[g].pert, m.groups[g].dose.to_bits()))
            .filter(|k| k.1 != m.control_pert)
            .collect();
        for (part, list) in [(Part::Val, &self.val), (Part::Test, &self.test)] {
            for &g in list {
                let gi = &m.groups[g];
                if gi.pert != m.control_pert && train.contains(&(gi.context, gi.pert, gi.dose.to_bits())) {
                    return Err(StoreError::Leak {
                        source_name: self.source.clone(),
                        context: m.contexts[gi.context as usize].clone(),
                        pert: crate::manifest::condition_label(&m.perts[gi.pert as usize], gi.dose),
                        part: part.as_str().into(),
                    });
                }
            }
        }
        if !self.train.iter().any(|&g| m.groups[g].pert != m.control_pert) {
            return Err(StoreError::Split {
                source_name: self.source.clone(),
                message: "the training part has no perturbed cells".into(),
            });
        }
        Ok(())
    }

    pub fn part_of(&self, g: usize) -> Option<Part> {
        if self.train.contains(&g) {
            Some(Part::Train)
        } else if self.val.contains(&g) {
            Some(Part::Val)
        } else if self.test.contains(&g) {
            Some(Part::Test)
        } else {
            None
        }
    }

    pub fn report(&self, store: &Store) -> SplitReport {
        let m = store.manifest();
        let part = |list: &[usize]| {
            let mut r = PartReport {
                groups: list.len(),
                ..Default::default()
            };
            let mut perts = BTreeSet::new();
            let mut ctxs = BTreeSet::new();
            for &g in list {
                let gi = &m.groups[g];
                r.cells += gi.n_cells;
                if gi.pert == m.control_pert {
                    r.control_cells += gi.n_cells;
                } else {
                    perts.insert(gi.pert);
                }
                ctxs.insert(gi.context);
            }
            r.perts = perts.len();
            r.contexts = ctxs.len();
            r
        };
        SplitReport {
            train: part(&self.train),
            val: part(&self.val),
            test: part(&self.test),
            excluded_groups: self.excluded.len(),
        }
    }
}
