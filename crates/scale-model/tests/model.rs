//! Model properties: shapes, permutation equivariance over cells, non-negativity, the energy
//! distance against a direct computation, Euler sampling, and weight round trips.

use scale_model::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use scale_model::{
    energy_distance, transport_sets, transport_sets_fused, transport_sets_fused_encoded, weights, Conditions, DataDims,
    ModelConfig, PertEncoding, TransportConfig, TransportInput,
};

const G: usize = 10;

fn config() -> TransportConfig {
    let model: ModelConfig = toml::from_str(
        "hidden = 16\nn_layers = 2\nn_heads = 2\nmlp_hidden = 32\nencoder_layers = 2\ndecoder_layers = 2\nuse_batch = true",
    )
    .unwrap();
    TransportConfig {
        model,
        dims: DataDims {
            n_genes: G,
            pert_dim: 3,
            pert_encoding: PertEncoding::OneHot,
            n_contexts: 2,
            n_batches: 2,
        },
    }
}

fn vec_of(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn input(z: Tensor<3>, dev: &Device) -> TransportInput {
    TransportInput {
        z_t: z,
        t: Tensor::from_data(TensorData::new(vec![0.3f32, 0.7], [2]), dev),
        pert: Tensor::from_data(TensorData::new(vec![1f32, 0., 0., 0., 1., 1.], [2, 3]), dev),
        context: Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), dev),
        batch: Some(Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 0], [2]), dev)),
        dose: None,
    }
}

/// A model whose decoder is not zero (the fresh model is the identity map by construction).
fn trained_like(dev: &Device) -> scale_model::TransportModel {
    jittered(config(), dev)
}

fn jittered(cfg: TransportConfig, dev: &Device) -> scale_model::TransportModel {
    use scale_model::burn::module::{Module, ModuleMapper, Param};
    struct Jitter;
    impl ModuleMapper for Jitter {
        fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
            p.map(|t| {
                let shape = t.shape();
                let noise = Tensor::<D>::random(shape, Distribution::Uniform(-0.2, 0.2), &t.device());
                t + noise
            })
        }
    }
    dev.seed(3);
    cfg.init(dev).unwrap().map(&mut Jitter).with_named_ids()
}

#[test]
fn fresh_model_is_identity_and_outputs_have_input_shape() {
    let dev = Device::flex();
    let model = config().init(&dev).unwrap();
    let z = Tensor::<3>::random([2, 5, G], Distribution::Uniform(0.0, 3.0), &dev);
    let out = model.forward(input(z.clone(), &dev)).unwrap();
    assert_eq!(out.dims(), [2, 5, G]);
    assert_eq!(vec_of(out), vec_of(z));
}

#[test]
fn permutation_equivariant_over_cells_and_non_negative() {
    let dev = Device::flex();
    let model = trained_like(&dev);
    let z = Tensor::<3>::random([2, 6, G], Distribution::Uniform(0.0, 3.0), &dev);
    let out = vec_of(model.forward(input(z.clone(), &dev)).unwrap());
    let perm = [3usize, 0, 5, 1, 4, 2];
    let idx = Tensor::<1, Int>::from_data(
        TensorData::new(perm.iter().map(|&i| i as i64).collect::<Vec<_>>(), [6]),
        &dev,
    );
    let zp = z.clone().select(1, idx);
    let outp = vec_of(model.forward(input(zp, &dev)).unwrap());
    for b in 0..2 {
        for (k, &src) in perm.iter().enumerate() {
            for j in 0..G {
                let a = out[(b * 6 + src) * G + j];
                let c = outp[(b * 6 + k) * G + j];
                assert!((a - c).abs() < 1e-4, "set {b} cell {k} gene {j}: {a} vs {c}");
            }
        }
    }
    assert!(out.iter().all(|&v| v >= 0.0));
    // The conditions matter: another perturbation changes the output.
    let mut inp = input(z, &dev);
    inp.pert = Tensor::zeros([2, 3], &dev);
    assert_ne!(vec_of(model.forward(inp).unwrap()), out);
}

#[test]
fn missing_batch_input_is_a_named_error() {
    let dev = Device::flex();
    let model = config().init(&dev).unwrap();
    let mut inp = input(Tensor::zeros([2, 3, G], &dev), &dev);
    inp.batch = None;
    let e = model.forward(inp).unwrap_err().to_string();
    assert!(e.contains("batch"), "{e}");
}

#[test]
fn energy_distance_matches_direct_computation() {
    let dev = Device::flex();
    let x = Tensor::<3>::random([2, 5, 4], Distribution::Normal(0.0, 1.0), &dev);
    let y = Tensor::<3>::random([2, 7, 4], Distribution::Normal(0.5, 1.0), &dev);
    let got: Vec<f32> = energy_distance(x.clone(), y.clone(), 0.0)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let xs: Vec<f32> = x.into_data().try_to_vec::<f32>().unwrap();
    let ys: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
    let d = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(p, q)| ((p - q) as f64).powi(2))
            .sum::<f64>()
            .sqrt()
    };
    for b in 0..2 {
        let xr: Vec<&[f32]> = (0..5).map(|i| &xs[(b * 5 + i) * 4..(b * 5 + i + 1) * 4]).collect();
        let yr: Vec<&[f32]> = (0..7).map(|i| &ys[(b * 7 + i) * 4..(b * 7 + i + 1) * 4]).collect();
        let mean = |p: &[&[f32]], q: &[&[f32]]| {
            p.iter().flat_map(|a| q.iter().map(move |c| d(a, c))).sum::<f64>() / (p.len() * q.len()) as f64
        };
        let want = mean(&xr, &yr) - 0.5 * mean(&xr, &xr) - 0.5 * mean(&yr, &yr);
        assert!((got[b] as f64 - want).abs() < 1e-4, "set {b}: {} vs {want}", got[b]);
        assert!(want > 0.0);
    }
    // Identical sets: zero.
    let z = Tensor::<3>::random([1, 6, 4], Distribution::Normal(0.0, 1.0), &dev);
    let e: Vec<f32> = energy_distance(z.clone(), z, 1e-8)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert!(e[0].abs() < 1e-3, "{}", e[0]);
}

#[test]
fn energy_gradient_is_finite_with_duplicate_cells() {
    let dev = Device::flex().autodiff();
    let x = Tensor::<3>::from_data(TensorData::new(vec![1.0f32; 2 * 3], [1, 2, 3]), &dev).require_grad();
    let y = Tensor::<3>::from_data(TensorData::new(vec![0.0f32, 1., 2., 0., 1., 2.], [1, 2, 3]), &dev);
    let loss = energy_distance(x.clone(), y, 1e-6).sum();
    let grads = loss.backward();
    let g: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
}

#[test]
fn euler_sampler_k1_is_the_direct_map_and_k_steps_stay_non_negative() {
    let dev = Device::flex();
    let model = trained_like(&dev);
    let z0 = Tensor::<3>::random([2, 4, G], Distribution::Uniform(0.0, 2.0), &dev);
    let base = input(z0.clone(), &dev);
    let cond = Conditions {
        pert: base.pert.clone(),
        context: base.context.clone(),
        batch: base.batch.clone(),
        dose: None,
    };
    let one = vec_of(transport_sets(&model, z0.clone(), &cond, 1).unwrap());
    let mut direct = base.clone();
    direct.t = Tensor::zeros([2], &dev);
    assert_eq!(one, vec_of(model.forward(direct).unwrap()));
    let four = vec_of(transport_sets(&model, z0.clone(), &cond, 4).unwrap());
    assert!(four.iter().all(|&v| v >= 0.0 && v.is_finite()));
    assert_ne!(one, four);
    assert!(transport_sets(&model, z0, &cond, 0).is_err());
}

#[test]
fn weights_round_trip_and_reject_mismatched_configs() {
    let dev = Device::flex();
    let model = trained_like(&dev);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    weights::save(&model, &path).unwrap();
    let names: Vec<String> = model.param_names().into_iter().map(|(n, _)| n).collect();
    assert!(names.contains(&"blocks.1.attn.q_proj.weight".to_string()), "{names:?}");
    assert!(names.contains(&"pert_embedding.weight".to_string()));
    dev.seed(99);
    let loaded = weights::load(config().init(&dev).unwrap(), &path).unwrap();
    let z = Tensor::<3>::random([2, 3, G], Distribution::Uniform(0.0, 2.0), &dev);
    assert_eq!(
        vec_of(model.forward(input(z.clone(), &dev)).unwrap()),
        vec_of(loaded.forward(input(z, &dev)).unwrap())
    );
    let mut other = config();
    other.model.n_layers = 1;
    let e = weights::load(other.init(&dev).unwrap(), &path).unwrap_err().to_string();
    assert!(e.contains("m.safetensors"), "{e}");
}

/// The dose embedding is smooth in log dose: a 5% dose change moves the output far less than going from
/// 0.1 to 10 does, so an unseen dose between two trained ones gets a condition between theirs (the
/// diffusion-time frequencies used before hashed every dose to an unrelated vector).
#[test]
fn dose_embedding_is_smooth_in_log_dose() {
    let dev = Device::default();
    let mut cfg = config();
    cfg.model.use_dose = true;
    cfg.model.dose_scale = 1000.0;
    let model = jittered(cfg, &dev);
    let z = Tensor::<3>::random([2, 4, G], Distribution::Uniform(0.0, 2.0), &dev);
    let at = |d: f32| {
        let mut inp = input(z.clone(), &dev);
        inp.dose = Some(Tensor::from_data(TensorData::new(vec![d, d], [2]), &dev));
        vec_of(model.forward(inp).unwrap())
    };
    let dist = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f32>().sqrt();
    let span = dist(&at(0.1), &at(10.0));
    let step = dist(&at(1.0), &at(1.05));
    assert!(span > 1e-3, "dose has no effect: {span}");
    assert!(
        step < 0.1 * span,
        "5% dose step moved the output {step}, 0.1 -> 10 moved it {span}"
    );
    let err = model
        .forward(input(z, &dev))
        .expect_err("a dose model ran without doses");
    assert!(err.to_string().contains("dose"), "{err}");
}

/// Conditions for `b` sets of the `trained_like` model: three perturbations, two contexts, two batches.
fn set_conditions(b: usize, dev: &Device) -> Conditions {
    let pert: Vec<f32> = (0..b * 3).map(|i| ((i * 7) % 3 == 0) as u8 as f32).collect();
    let ints = |v: Vec<i64>| Tensor::<1, Int>::from_data(TensorData::new(v, [b]), dev);
    Conditions {
        pert: Tensor::from_data(TensorData::new(pert, [b, 3]), dev),
        context: ints((0..b as i64).map(|i| i % 2).collect()),
        batch: Some(ints((0..b as i64).map(|i| (i / 2) % 2).collect())),
        dose: None,
    }
}

/// The fused CPU engine computes what burn's forward pass does, up to float32 rounding: several
/// chunks of sets (40 cells per set, so 3 sets per work item and a partial last item), a 2-layer
/// decoder, batch embedding, K = 1 and K = 3.
#[test]
fn fused_engine_matches_burn_forward() {
    let dev = Device::flex();
    let model = trained_like(&dev);
    let fused = model.fused().unwrap();
    let (b, s) = (7usize, 40usize);
    let z = Tensor::<3>::random([b, s, G], Distribution::Uniform(0.0, 3.0), &dev);
    let host = vec_of(z.clone());
    let cond = set_conditions(b, &dev);
    for steps in [1usize, 3] {
        let want = vec_of(transport_sets(&model, z.clone(), &cond, steps).unwrap());
        let (mut got, mut scratch) = (host.clone(), Vec::new());
        transport_sets_fused(&model, &fused, &mut got, &mut scratch, s, &cond, steps).unwrap();
        assert_eq!(got.len(), want.len());
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, w)| (a - w).abs() / w.abs().max(1.0))
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "K = {steps}: worst difference {worst}");
        assert!(got.iter().all(|&v| v >= 0.0));
        // not trivially the input: the jittered decoder moves the cells
        assert!(got.iter().zip(&host).any(|(a, h)| (a - h).abs() > 1e-2));
    }
    // whole sets only
    let e = transport_sets_fused(
        &model,
        &fused,
        &mut host[..G * 3].to_vec(),
        &mut Vec::new(),
        s,
        &cond,
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("whole sets"), "{e}");
}

/// Control cells encoded once and handed to the first Euler step give the same cells as encoding them
/// inside the pass, bit for bit: the encoder sees each cell alone, and its sums run in the same order
/// whichever rows share a product. Encoded rows for the wrong number of cells are a named error.
#[test]
fn encoded_controls_give_the_same_prediction() {
    let dev = Device::flex();
    let model = trained_like(&dev);
    let fused = model.fused().unwrap();
    let (b, s) = (7usize, 40usize);
    let host = vec_of(Tensor::<3>::random([b, s, G], Distribution::Uniform(0.0, 3.0), &dev));
    let cond = set_conditions(b, &dev);
    let d = fused.hidden();
    // encoded in a different grouping than the pass uses: all but 5 cells in one call, then one at a time
    let mut encoded = vec![0.0f32; b * s * d];
    let split = b * s - 5;
    fused.encode(&host[..split * G], &mut encoded[..split * d]);
    for r in split..b * s {
        fused.encode(&host[r * G..(r + 1) * G], &mut encoded[r * d..(r + 1) * d]);
    }
    for steps in [1usize, 3] {
        let (mut want, mut got, mut scratch) = (host.clone(), host.clone(), Vec::new());
        transport_sets_fused(&model, &fused, &mut want, &mut scratch, s, &cond, steps).unwrap();
        transport_sets_fused_encoded(&model, &fused, &mut got, &encoded, &mut scratch, s, &cond, steps).unwrap();
        assert!(got == want, "K = {steps}: the encoded controls changed the prediction");
    }
    // a wrong encoding changes it (the encoded rows are really used)
    let mut wrong = encoded.clone();
    wrong[3] += 1.0;
    let (mut want, mut got, mut scratch) = (host.clone(), host.clone(), Vec::new());
    transport_sets_fused(&model, &fused, &mut want, &mut scratch, s, &cond, 1).unwrap();
    transport_sets_fused_encoded(&model, &fused, &mut got, &wrong, &mut scratch, s, &cond, 1).unwrap();
    assert!(got != want);
    let e = transport_sets_fused_encoded(
        &model,
        &fused,
        &mut host.clone(),
        &encoded[d..],
        &mut scratch,
        s,
        &cond,
        1,
    )
    .unwrap_err();
    assert!(e.to_string().contains("one row of"), "{e}");
}
