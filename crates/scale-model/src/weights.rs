//! Model weights in safetensors: tensor names are the parameter paths (`blocks.0.attn.q_proj.weight`).

use std::path::Path;

use burn::store::{ModuleSnapshot, SafetensorsStore};

use crate::transport::TransportModel;
use crate::ModelError;

/// Serialises the weights to safetensors bytes.
pub fn to_safetensors_bytes(model: &TransportModel) -> Result<Vec<u8>, ModelError> {
    let mut store = SafetensorsStore::from_bytes(None).metadata("format", "scale-transport");
    model.save_into(&mut store).map_err(|e| ModelError::Weights {
        path: "<memory>".into(),
        msg: e.to_string(),
    })?;
    store.get_bytes().map_err(|e| ModelError::Weights {
        path: "<memory>".into(),
        msg: e.to_string(),
    })
}

/// Writes the weights atomically (`<path>.tmp`, then rename).
pub fn save(model: &TransportModel, path: &Path) -> Result<(), ModelError> {
    let bytes = to_safetensors_bytes(model)?;
    let err = |e: std::io::Error| ModelError::Weights {
        path: path.display().to_string(),
        msg: e.to_string(),
    };
    let tmp = path.with_extension("safetensors.tmp");
    std::fs::write(&tmp, &bytes).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    Ok(())
}

/// Loads weights into `model` (built from the same config). Every parameter must be present with
/// its shape; extra or missing tensors are errors that name them.
pub fn load(model: TransportModel, path: &Path) -> Result<TransportModel, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Weights {
        path: path.display().to_string(),
        msg: e.to_string(),
    })?;
    load_bytes(model, bytes, &path.display().to_string())
}

/// Loads weights from safetensors bytes; `source` names them in errors.
pub fn load_bytes(mut model: TransportModel, bytes: Vec<u8>, source: &str) -> Result<TransportModel, ModelError> {
    let err = |msg: String| ModelError::Weights {
        path: source.to_string(),
        msg,
    };
    let mut store = SafetensorsStore::from_bytes(Some(bytes))
        .validate(true)
        .allow_partial(false);
    let result = model.load_from(&mut store).map_err(|e| err(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(err(format!("{:?}", result.errors)));
    }
    if !result.missing.is_empty() {
        let names: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(err(format!("missing tensors {names:?}")));
    }
    if !result.unused.is_empty() {
        return Err(err(format!(
            "unexpected tensors {:?} (a different model config?)",
            result.unused
        )));
    }
    // Loading assigns fresh ids (safetensors carries none); restore the name-derived ones.
    Ok(model.with_named_ids())
}
