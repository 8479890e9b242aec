//! The conditional endpoint-transport set model.
//!
//! Shapes: B sets per batch, S cells per set, G genes (or embedding dimensions), D model width,
//! H heads of width Dh, P perturbation input width (components for one-hot, feature width for a
//! feature table).
//!
//! A set of cells z_t [B, S, G] on the straight path between a control set (t = 0) and a perturbed
//! set (t = 1) is encoded cell by cell to tokens [B, S, D]; the condition (perturbation, context,
//! batch, dose, t) is embedded to [B, D] and added to every token of its set; LLaMA-style
//! bidirectional blocks (RMSNorm, multi-head attention without mask or positional encoding, SwiGLU)
//! mix the cells of a set, so the model is permutation-equivariant over cells; a decoder maps back to
//! G and adds the result to z_t, and a ReLU keeps the prediction of the endpoint z1 non-negative
//! (log1p space).
//!
//! Parameter names (the checkpoint's tensor names) follow the field names: `encoder.layers.0.weight`,
//! `blocks.0.attn.q_proj.weight`, `blocks.0.mlp.gate_proj.weight`, `pert_embedding.weight`, ...

use burn::module::{Module, Param, ParamId};
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::tensor::activation::{relu, silu};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::fused::{Dense, FusedBlock, FusedTransport, LayerWeights};
use crate::ModelError;

static INIT_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Hyper-parameters of the network (the `[model]` table of a preset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Model width D.
    pub hidden: usize,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Attention heads H.
    pub n_heads: usize,
    /// Width of one head; `hidden / n_heads` when absent.
    #[serde(default)]
    pub head_dim: Option<usize>,
    /// Inner width of the SwiGLU MLP; `4 * hidden` when absent.
    #[serde(default)]
    pub mlp_hidden: Option<usize>,
    /// Linear layers in the per-cell encoder G -> D (1 = linear map, 2+ = MLP with SiLU).
    #[serde(default = "default_two")]
    pub encoder_layers: usize,
    /// Linear layers in the decoder D -> G.
    #[serde(default = "default_one")]
    pub decoder_layers: usize,
    /// Sinusoidal frequencies for the scalar (t, dose) embeddings; 2x this many features.
    #[serde(default = "default_freqs")]
    pub time_freqs: usize,
    /// Learn a batch (gem group, plate) embedding. Prediction then needs the batch of each set.
    #[serde(default)]
    pub use_batch: bool,
    /// Embed a per-set dose: `log1p(dose * dose_scale)`, as smooth (low-frequency) sinusoidal features
    /// and an MLP, so a dose between two trained doses gets an embedding between theirs.
    #[serde(default)]
    pub use_dose: bool,
    /// Factor on doses before `log1p`: choose it so that the smallest non-zero dose is about 1 or more
    /// (1000 for µM doses of 0.01-10, which then read as nM); otherwise low doses all sit near 0.
    #[serde(default = "default_dose_scale")]
    pub dose_scale: f32,
    /// RMSNorm epsilon.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
}

fn default_one() -> usize {
    1
}
fn default_two() -> usize {
    2
}
fn default_freqs() -> usize {
    32
}
fn default_dose_scale() -> f32 {
    1.0
}
fn default_norm_eps() -> f64 {
    1e-6
}

/// How a perturbation is turned into the model's input vector [P].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PertEncoding {
    /// Multi-hot over a vocabulary of single perturbations; the projection is a learned embedding
    /// table (no bias), so a combination "A+B" embeds as emb(A) + emb(B).
    OneHot,
    /// Summed rows of a fixed, user-supplied feature table; the projection is a learned linear map,
    /// so any perturbation with a feature row (seen in training or not) can be predicted.
    Features,
}

/// Sizes that come from the data contract, fixed when training starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataDims {
    /// Genes / features per cell G.
    pub n_genes: usize,
    /// Width P of the perturbation input vector.
    pub pert_dim: usize,
    /// Meaning of the perturbation input vector.
    pub pert_encoding: PertEncoding,
    /// Context (cell line / cell type) vocabulary size.
    pub n_contexts: usize,
    /// Batch vocabulary size (used only with `use_batch`).
    pub n_batches: usize,
}

/// Everything needed to build the network: hyper-parameters and data sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportConfig {
    /// Network hyper-parameters.
    pub model: ModelConfig,
    /// Data-derived sizes.
    pub dims: DataDims,
}

impl ModelConfig {
    /// Head width Dh.
    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden / self.n_heads.max(1))
    }

    /// SwiGLU inner width.
    pub fn mlp_hidden(&self) -> usize {
        self.mlp_hidden.unwrap_or(4 * self.hidden)
    }

    /// Rejects sizes that cannot build a network.
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |field: &'static str, expected: &'static str| ModelError::Config { field, expected };
        if self.hidden == 0 {
            return Err(bad("model.hidden", "a positive width"));
        }
        if self.n_heads == 0 {
            return Err(bad("model.n_heads", "at least one head"));
        }
        if self.head_dim.is_none() && self.hidden % self.n_heads != 0 {
            return Err(bad(
                "model.n_heads",
                "a divisor of model.hidden (or set model.head_dim)",
            ));
        }
        if self.head_dim() == 0 {
            return Err(bad("model.head_dim", "a positive head width"));
        }
        if self.mlp_hidden() == 0 {
            return Err(bad("model.mlp_hidden", "a positive width"));
        }
        if self.encoder_layers == 0 {
            return Err(bad("model.encoder_layers", "at least 1"));
        }
        if self.decoder_layers == 0 {
            return Err(bad("model.decoder_layers", "at least 1"));
        }
        if self.time_freqs == 0 {
            return Err(bad("model.time_freqs", "at least 1"));
        }
        if !(self.dose_scale.is_finite() && self.dose_scale > 0.0) {
            return Err(bad("model.dose_scale", "a number > 0"));
        }
        if self.norm_eps <= 0.0 {
            return Err(bad("model.norm_eps", "a positive epsilon"));
        }
        Ok(())
    }
}

impl TransportConfig {
    /// Builds the network with freshly initialised weights. Parameter ids are derived from the
    /// parameter names, so optimizer state saved by one process matches the parameters of a model
    /// built (or loaded) in another.
    pub fn init(&self, device: &Device) -> Result<TransportModel, ModelError> {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        self.build(device)
    }

    /// [`init`](Self::init) from burn's RNG seeded with `seed`. burn's RNG is process-global: the
    /// lock (shared with `init`) keeps other model builds from drawing between seeding and building.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> Result<TransportModel, ModelError> {
        let _guard = INIT_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        self.build(device)
    }

    fn build(&self, device: &Device) -> Result<TransportModel, ModelError> {
        self.model.validate()?;
        let m = &self.model;
        let d = &self.dims;
        if d.n_genes == 0 {
            return Err(ModelError::Config {
                field: "dims.n_genes",
                expected: "at least one gene",
            });
        }
        if d.pert_dim == 0 {
            return Err(ModelError::Config {
                field: "dims.pert_dim",
                expected: "a positive width",
            });
        }
        if d.n_contexts == 0 {
            return Err(ModelError::Config {
                field: "dims.n_contexts",
                expected: "at least one context",
            });
        }
        if m.use_batch && d.n_batches == 0 {
            return Err(ModelError::Config {
                field: "dims.n_batches",
                expected: "at least one batch with use_batch",
            });
        }
        let embed_init = Initializer::Normal { mean: 0.0, std: 0.02 };
        let model = TransportModel {
            encoder: MlpConfig {
                d_in: d.n_genes,
                d_hidden: m.hidden,
                d_out: m.hidden,
                n_layers: m.encoder_layers,
            }
            .init(false, device),
            pert_embedding: LinearConfig::new(d.pert_dim, m.hidden)
                .with_bias(d.pert_encoding == PertEncoding::Features)
                .with_initializer(embed_init.clone())
                .init(device),
            context_embedding: EmbeddingConfig::new(d.n_contexts, m.hidden)
                .with_initializer(embed_init.clone())
                .init(device),
            batch_embedding: m.use_batch.then(|| {
                EmbeddingConfig::new(d.n_batches, m.hidden)
                    .with_initializer(embed_init)
                    .init(device)
            }),
            time_embedding: ScalarEmbedding::init(m.time_freqs, TIME_FREQS, m.hidden, device),
            dose_embedding: m
                .use_dose
                .then(|| ScalarEmbedding::init(m.time_freqs, DOSE_FREQS, m.hidden, device)),
            dose_scale: m.dose_scale,
            blocks: (0..m.n_layers).map(|_| Block::init(m, device)).collect(),
            final_norm: RmsNormConfig::new(m.hidden).with_epsilon(m.norm_eps).init(device),
            // Zero-initialised last layer: the untrained model is the identity map z1_hat = z_t, a sane
            // start in log1p space.
            decoder: MlpConfig {
                d_in: m.hidden,
                d_hidden: m.hidden,
                d_out: d.n_genes,
                n_layers: m.decoder_layers,
            }
            .init(true, device),
        };
        Ok(model.with_named_ids())
    }
}

/// The model's input for one batch of sets.
#[derive(Debug, Clone)]
pub struct TransportInput {
    /// Cells on the path between control and perturbed sets, [B, S, G].
    pub z_t: Tensor<3>,
    /// Path time per set, [B], in [0, 1).
    pub t: Tensor<1>,
    /// Perturbation input vector per set, [B, P].
    pub pert: Tensor<2>,
    /// Context index per set, [B].
    pub context: Tensor<1, Int>,
    /// Batch index per set, [B] (required when the model has a batch embedding).
    pub batch: Option<Tensor<1, Int>>,
    /// Dose per set, [B] (required when the model has a dose embedding).
    pub dose: Option<Tensor<1>>,
}

/// The endpoint-transport network.
#[derive(Module, Debug)]
pub struct TransportModel {
    encoder: Mlp,
    pert_embedding: Linear,
    context_embedding: Embedding,
    batch_embedding: Option<Embedding>,
    time_embedding: ScalarEmbedding,
    dose_embedding: Option<ScalarEmbedding>,
    dose_scale: f32,
    blocks: Vec<Block>,
    final_norm: RmsNorm,
    decoder: Mlp,
}

impl TransportModel {
    /// Predicts the endpoint z1_hat [B, S, G] from cells z_t [B, S, G] and the set conditions.
    pub fn forward(&self, input: TransportInput) -> Result<Tensor<3>, ModelError> {
        let [b, s, _g] = input.z_t.dims();
        let cond = self.condition(&input, b)?; // [B, D]
        let d = cond.dims()[1];
        let mut x = self.encoder.forward(input.z_t.clone()); // [B, S, D]
        x = x + cond.reshape([b, 1, d]); // broadcast over the S cells of each set
        for block in &self.blocks {
            x = block.forward(x);
        }
        let x = self.final_norm.forward(x); // [B, S, D]
        let delta = self.decoder.forward(x); // [B, S, G]
        debug_assert_eq!(delta.dims()[1], s);
        Ok(relu(input.z_t + delta))
    }

    /// Sum of the condition embeddings, [B, D].
    fn condition(&self, input: &TransportInput, b: usize) -> Result<Tensor<2>, ModelError> {
        if input.t.dims()[0] != b {
            return Err(ModelError::Shape {
                what: "t",
                expected: b,
                got: input.t.dims()[0],
            });
        }
        self.set_conditions(
            input.t.clone(),
            input.pert.clone(),
            input.context.clone(),
            input.batch.clone(),
            input.dose.clone(),
        )
    }

    /// The condition of each set, [B, D]: the sum of its perturbation, context, time t [B] (and
    /// batch, dose) embeddings, which [`forward`](Self::forward) adds to every cell of the set.
    pub fn set_conditions(
        &self,
        t: Tensor<1>,
        pert: Tensor<2>,
        context: Tensor<1, Int>,
        batch: Option<Tensor<1, Int>>,
        dose: Option<Tensor<1>>,
    ) -> Result<Tensor<2>, ModelError> {
        let [b] = t.dims();
        let check = |what: &'static str, got: usize| {
            if got == b {
                Ok(())
            } else {
                Err(ModelError::Shape { what, expected: b, got })
            }
        };
        check("pert", pert.dims()[0])?;
        check("context", context.dims()[0])?;
        let pert = self.pert_embedding.forward(pert); // [B, D]
        let d = pert.dims()[1];
        let ctx = self.context_embedding.forward(context.reshape([b, 1])).reshape([b, d]);
        let mut cond = pert + ctx + self.time_embedding.forward(t);
        if let Some(emb) = &self.batch_embedding {
            let batch = batch.ok_or(ModelError::MissingInput("batch"))?;
            check("batch", batch.dims()[0])?;
            cond = cond + emb.forward(batch.reshape([b, 1])).reshape([b, d]);
        }
        if let Some(emb) = &self.dose_embedding {
            let dose = dose.ok_or(ModelError::MissingInput("dose"))?;
            check("dose", dose.dims()[0])?;
            cond = cond + emb.forward(dose.mul_scalar(self.dose_scale).add_scalar(1.0).log());
        }
        Ok(cond)
    }

    /// The per-cell part of the network (encoder, blocks, final norm, decoder) as a fused CPU
    /// inference engine with a copy of the weights (see [`crate::fused`]).
    pub fn fused(&self) -> Result<FusedTransport, ModelError> {
        fn host<const R: usize>(t: Tensor<R>) -> Result<Vec<f32>, ModelError> {
            t.into_data()
                .try_to_vec::<f32>()
                .map_err(|e| ModelError::Infer(format!("fused engine needs float32 parameters: {e:?}")))
        }
        // one layer, or several of one input width side by side (q/k/v, gate/up), packed once
        fn dense(layers: &[&Linear]) -> Result<Dense, ModelError> {
            let parts = layers
                .iter()
                .map(|l| {
                    let [d_in, d_out] = l.weight.dims();
                    Ok(LayerWeights {
                        w: host(l.weight.val())?,
                        b: l.bias.as_ref().map(|b| host(b.val())).transpose()?,
                        d_in,
                        d_out,
                    })
                })
                .collect::<Result<_, ModelError>>()?;
            Ok(Dense::side_by_side(parts))
        }
        let first = self.blocks.first();
        Ok(FusedTransport {
            n_genes: self.decoder.layers.last().map_or(0, |l| l.weight.dims()[1]),
            hidden: self.final_norm.gamma.dims()[0],
            n_heads: first.map_or(1, |b| b.attn.n_heads),
            head_dim: first.map_or(1, |b| b.attn.head_dim),
            norm_eps: self.final_norm.epsilon as f32,
            encoder: self
                .encoder
                .layers
                .iter()
                .map(|l| dense(&[l]))
                .collect::<Result<_, _>>()?,
            blocks: self
                .blocks
                .iter()
                .map(|b| {
                    Ok(FusedBlock {
                        attn_norm: host(b.attn_norm.gamma.val())?,
                        qkv: dense(&[&b.attn.q_proj, &b.attn.k_proj, &b.attn.v_proj])?,
                        o: dense(&[&b.attn.o_proj])?,
                        mlp_norm: host(b.mlp_norm.gamma.val())?,
                        gate_up: dense(&[&b.mlp.gate_proj, &b.mlp.up_proj])?,
                        down: dense(&[&b.mlp.down_proj])?,
                    })
                })
                .collect::<Result<_, ModelError>>()?,
            final_norm: host(self.final_norm.gamma.val())?,
            decoder: self
                .decoder
                .layers
                .iter()
                .map(|l| dense(&[l]))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Gives every parameter an id derived from its name (FNV-1a of the dotted path), so optimizer
    /// state (keyed by id) survives a save/load into a freshly built model.
    pub fn with_named_ids(self) -> Self {
        self.map(&mut NamedIds { path: Vec::new() })
    }

    /// Names and shapes of all parameters, in module order.
    pub fn param_names(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = ParamNames {
            path: Vec::new(),
            out: Vec::new(),
        };
        self.visit(&mut v);
        v.out
    }
}

/// Assigns name-derived parameter ids.
struct NamedIds {
    path: Vec<String>,
}

fn fnv1a(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

impl burn::module::ModuleMapper for NamedIds {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (_, value, mapper) = param.consume();
        let id = ParamId::from(fnv1a(&self.path.join(".")));
        Param::from_mapped_value(id, value, mapper)
    }
}

struct ParamNames {
    path: Vec<String>,
    out: Vec<(String, Vec<usize>)>,
}

impl burn::module::ModuleVisitor for ParamNames {
    fn enter_module(&mut self, name: &str, _container_type: &str) {
        self.path.push(name.to_string());
    }
    fn exit_module(&mut self, _name: &str, _container_type: &str) {
        self.path.pop();
    }
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out.push((self.path.join("."), param.shape().to_vec()));
    }
}

/// Stack of linear layers with SiLU between them.
struct MlpConfig {
    d_in: usize,
    d_hidden: usize,
    d_out: usize,
    n_layers: usize,
}

impl MlpConfig {
    fn init(&self, zero_last: bool, device: &Device) -> Mlp {
        let layers = (0..self.n_layers)
            .map(|i| {
                let d_in = if i == 0 { self.d_in } else { self.d_hidden };
                let d_out = if i + 1 == self.n_layers {
                    self.d_out
                } else {
                    self.d_hidden
                };
                let cfg = LinearConfig::new(d_in, d_out);
                if zero_last && i + 1 == self.n_layers {
                    cfg.with_initializer(Initializer::Zeros).init(device)
                } else {
                    cfg.init(device)
                }
            })
            .collect();
        Mlp { layers }
    }
}

#[derive(Module, Debug)]
struct Mlp {
    layers: Vec<Linear>,
}

impl Mlp {
    /// [..., d_in] -> [..., d_out].
    fn forward<const R: usize>(&self, mut x: Tensor<R>) -> Tensor<R> {
        let n = self.layers.len();
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i + 1 < n {
                x = silu(x);
            }
        }
        x
    }
}

/// Highest frequency of a scalar embedding's sinusoidal features, and its ratio to the lowest.
#[derive(Debug, Clone, Copy)]
struct FreqRange {
    max: f32,
    ratio: f32,
}

/// Path time t in [0, 1]: 1000 down to 0.1, the range a diffusion timestep in [0, 1000] would span.
const TIME_FREQS: FreqRange = FreqRange {
    max: 1000.0,
    ratio: 10000.0,
};
/// log1p(scaled dose), about 0-12: 1 down to 1/64, so every feature is smooth across neighbouring
/// doses and an unseen dose interpolates (high frequencies would hash each dose to its own vector).
const DOSE_FREQS: FreqRange = FreqRange { max: 1.0, ratio: 64.0 };

/// Scalar (t or dose) -> sinusoidal features -> 2-layer MLP.
#[derive(Module, Debug)]
struct ScalarEmbedding {
    fc1: Linear,
    fc2: Linear,
    n_freqs: usize,
    max_freq: f32,
    freq_ratio: f32,
}

impl ScalarEmbedding {
    fn init(n_freqs: usize, range: FreqRange, d: usize, device: &Device) -> Self {
        Self {
            fc1: LinearConfig::new(2 * n_freqs, d).init(device),
            fc2: LinearConfig::new(d, d).init(device),
            n_freqs,
            max_freq: range.max,
            freq_ratio: range.ratio,
        }
    }

    /// [B] -> [B, D].
    fn forward(&self, t: Tensor<1>) -> Tensor<2> {
        let [b] = t.dims();
        let device = t.device();
        // Geometric from max_freq down by freq_ratio (the last one stops a step short of it).
        let freqs: Vec<f32> = (0..self.n_freqs)
            .map(|k| self.max_freq * (-(self.freq_ratio.ln()) * k as f32 / self.n_freqs as f32).exp())
            .collect();
        let freqs = Tensor::<2>::from_data(TensorData::new(freqs, [1, self.n_freqs]), &device);
        let angles = t.reshape([b, 1]) * freqs; // [B, n]
        let feats = Tensor::cat(vec![angles.clone().sin(), angles.cos()], 1); // [B, 2n]
        self.fc2.forward(silu(self.fc1.forward(feats)))
    }
}

/// Pre-norm LLaMA block: x + attn(norm(x)), then + mlp(norm(x)).
#[derive(Module, Debug)]
struct Block {
    attn_norm: RmsNorm,
    attn: SelfAttention,
    mlp_norm: RmsNorm,
    mlp: SwiGlu,
}

impl Block {
    fn init(m: &ModelConfig, device: &Device) -> Self {
        Self {
            attn_norm: RmsNormConfig::new(m.hidden).with_epsilon(m.norm_eps).init(device),
            attn: SelfAttention::init(m.hidden, m.n_heads, m.head_dim(), device),
            mlp_norm: RmsNormConfig::new(m.hidden).with_epsilon(m.norm_eps).init(device),
            mlp: SwiGlu::init(m.hidden, m.mlp_hidden(), device),
        }
    }

    /// [B, S, D] -> [B, S, D].
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.attn.forward(self.attn_norm.forward(x));
        x.clone() + self.mlp.forward(self.mlp_norm.forward(x))
    }
}

/// Multi-head self-attention over the cells of a set: no mask, no positional encoding.
#[derive(Module, Debug)]
struct SelfAttention {
    q_proj: Linear,
    k_proj: Linear,
    v_proj: Linear,
    o_proj: Linear,
    n_heads: usize,
    head_dim: usize,
}

impl SelfAttention {
    fn init(d: usize, n_heads: usize, head_dim: usize, device: &Device) -> Self {
        let inner = n_heads * head_dim;
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            q_proj: lin(d, inner),
            k_proj: lin(d, inner),
            v_proj: lin(d, inner),
            o_proj: lin(inner, d),
            n_heads,
            head_dim,
        }
    }

    /// [B, S, D] -> [B, S, D].
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, s, _] = x.dims();
        let (h, dh) = (self.n_heads, self.head_dim);
        // [B, S, H*Dh] -> [B, H, S, Dh]
        let split = |t: Tensor<3>| t.reshape([b, s, h, dh]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        let opts = AttentionModuleOptions {
            scale: None,
            softcap: None,
            is_causal: false,
        };
        let o = attention(q, k, v, None, None, opts); // [B, H, S, Dh]
        self.o_proj.forward(o.swap_dims(1, 2).reshape([b, s, h * dh]))
    }
}

/// SwiGLU MLP: down(silu(gate(x)) * up(x)).
#[derive(Module, Debug)]
struct SwiGlu {
    gate_proj: Linear,
    up_proj: Linear,
    down_proj: Linear,
}

impl SwiGlu {
    fn init(d: usize, m: usize, device: &Device) -> Self {
        let lin = |i, o| LinearConfig::new(i, o).with_bias(false).init(device);
        Self {
            gate_proj: lin(d, m),
            up_proj: lin(d, m),
            down_proj: lin(m, d),
        }
    }

    /// [B, S, D] -> [B, S, D].
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}
