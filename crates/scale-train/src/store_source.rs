//! The on-disk store's sampler as a [`BatchSource`], and the data contract of a store.

use std::sync::Arc;

use scale_store::{Manifest, Sampler, SamplerConfig, SetBatch, Store};
use serde::{Deserialize, Serialize};

use crate::contract::DataContract;
use crate::source::BatchSource;
use crate::TrainError;

/// Batches from [`scale_store::Sampler`]. Its batch `k` depends only on (seed, k), so the position
/// is the number of batches consumed and resuming restarts the sampler there.
pub struct StoreSource {
    store: Arc<Store>,
    groups: Vec<usize>,
    cfg: SamplerConfig,
    sampler: Sampler,
}

#[derive(Serialize, Deserialize)]
struct StoreState {
    seed: u64,
    batches_done: u64,
}

impl StoreSource {
    /// A sampler over `groups` (group ids of the store) from batch 0.
    pub fn new(store: Arc<Store>, groups: Vec<usize>, cfg: SamplerConfig) -> Result<Self, TrainError> {
        let sampler = Sampler::new(store.clone(), groups.clone(), cfg.clone()).map_err(store_err)?;
        Ok(Self {
            store,
            groups,
            cfg,
            sampler,
        })
    }

    /// The underlying sampler (statistics).
    pub fn sampler(&self) -> &Sampler {
        &self.sampler
    }
}

fn store_err(e: scale_store::StoreError) -> TrainError {
    TrainError::Data(e.to_string())
}

impl BatchSource for StoreSource {
    fn next_batch(&mut self) -> Result<&SetBatch, TrainError> {
        self.sampler.next_batch().map_err(store_err)
    }

    fn state(&self) -> serde_json::Value {
        serde_json::to_value(StoreState {
            seed: self.cfg.seed,
            batches_done: self.sampler.batches_done(),
        })
        .unwrap_or_default()
    }

    fn restore(&mut self, state: &serde_json::Value) -> Result<(), TrainError> {
        let st: StoreState =
            serde_json::from_value(state.clone()).map_err(|e| TrainError::Resume(format!("sampler state: {e}")))?;
        if st.seed != self.cfg.seed {
            return Err(TrainError::Resume(format!(
                "sampler seed {} differs from the run's {}",
                st.seed, self.cfg.seed
            )));
        }
        if st.batches_done == self.sampler.batches_done() {
            return Ok(());
        }
        let mut cfg = self.cfg.clone();
        cfg.start_batch = st.batches_done;
        // Drop the old sampler (joins its workers) before starting the new one.
        self.sampler = Sampler::new(self.store.clone(), self.groups.clone(), cfg).map_err(store_err)?;
        Ok(())
    }
}

impl DataContract {
    /// The contract of a store's manifest (one-hot encoding until a trainer sets it).
    pub fn from_manifest(m: &Manifest) -> Result<Self, TrainError> {
        let control = m
            .perts
            .get(m.control_pert as usize)
            .ok_or_else(|| TrainError::Data(format!("manifest: control index {} outside perts", m.control_pert)))?;
        if control != &m.control_label {
            return Err(TrainError::Data(format!(
                "manifest: control label {:?} but perts[{}] = {control:?}",
                m.control_label, m.control_pert
            )));
        }
        Ok(Self {
            genes: m.genes.clone(),
            space: m.space.as_str().to_string(),
            perts: m.perts.clone(),
            control_pert: m.control_label.clone(),
            contexts: m.contexts.clone(),
            batches: m.batches.clone(),
            pert_col: m.pert_col.clone(),
            context_col: m.context_col.clone().unwrap_or_else(|| "cell_type".to_string()),
            batch_col: m.batch_col.clone(),
            dose_col: m.dose_col.clone(),
            pert_encoding: scale_model::PertEncoding::OneHot,
            pert_components: Vec::new(),
            pert_features_file: None,
        })
    }
}

/// How a run's split was made, saved as `split.json` so prediction can rebuild the held-out part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitSpec {
    /// A STATE/cell-load TOML split (its text).
    Toml {
        /// Path given at training time (for messages).
        source: String,
        /// The file's text.
        text: String,
    },
    /// A programmatic hold-out.
    Holdout {
        /// Contexts held out for testing.
        test_contexts: Vec<String>,
        /// Perturbations held out for testing.
        test_perts: Vec<String>,
        /// Contexts held out for validation.
        #[serde(default)]
        val_contexts: Vec<String>,
        /// Perturbations held out for validation.
        #[serde(default)]
        val_perts: Vec<String>,
        /// Single doses held out for testing, `PERTURBATION@DOSE`.
        #[serde(default)]
        test_doses: Vec<String>,
        /// Fraction of perturbations held out for validation.
        #[serde(default)]
        val_fraction: f64,
        /// Seed of the fractional hold-out.
        #[serde(default)]
        seed: u64,
    },
}

/// File name of the split spec in a run directory.
pub const SPLIT_FILE: &str = "split.json";

impl SplitSpec {
    /// Rebuilds the split against a store.
    pub fn build(&self, store: &Store) -> Result<scale_store::Split, TrainError> {
        match self {
            SplitSpec::Toml { source, text } => {
                scale_store::Split::from_toml_str(text, source, store).map_err(store_err)
            }
            SplitSpec::Holdout {
                test_contexts,
                test_perts,
                val_contexts,
                val_perts,
                test_doses,
                val_fraction,
                seed,
            } => {
                let h = scale_store::Holdout {
                    test_contexts: test_contexts.clone(),
                    val_contexts: val_contexts.clone(),
                    test_perts: test_perts.clone(),
                    val_perts: val_perts.clone(),
                    test_doses: test_doses.clone(),
                    test_fraction: 0.0,
                    val_fraction: *val_fraction,
                    seed: *seed,
                };
                scale_store::Split::holdout(store, &h).map_err(store_err)
            }
        }
    }

    /// Writes `split.json` into a run directory.
    pub fn save(&self, run_dir: &std::path::Path) -> Result<(), TrainError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| TrainError::Data(e.to_string()))?;
        crate::trainer::write_atomic(&run_dir.join(SPLIT_FILE), text.as_bytes())
    }

    /// Reads `split.json` from a run directory.
    pub fn load(run_dir: &std::path::Path) -> Result<Self, TrainError> {
        let path = run_dir.join(SPLIT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| TrainError::Config {
            path: path.display().to_string(),
            msg: e.to_string(),
        })
    }
}

/// Checks that a store carries the contract a run was trained under (genes, space, vocabularies).
pub fn check_store_matches(contract: &DataContract, m: &Manifest, store_dir: &str) -> Result<(), TrainError> {
    contract.check_genes(&m.genes, store_dir)?;
    contract.check_space(m.space.as_str(), store_dir)?;
    for (what, a, b) in [
        ("perturbation", &contract.perts, &m.perts),
        ("context", &contract.contexts, &m.contexts),
        ("batch", &contract.batches, &m.batches),
    ] {
        if a != b {
            return Err(TrainError::Contract(format!(
                "{store_dir}: the {what} vocabulary differs from the run's ({} vs {} entries)",
                b.len(),
                a.len()
            )));
        }
    }
    Ok(())
}
