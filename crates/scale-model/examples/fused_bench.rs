//! Forward pass alone, fused CPU engine against burn, at STATE's tiny config (hidden 128, 2 layers,
//! 4 heads × 32, SwiGLU 512, 2-layer encoder, 1-layer decoder, 2,000 genes, sets of 32 cells, 32 sets
//! per pass). Random weights (the decoder is not zero), random non-negative cells; K = 1.
//!
//!     cargo run --release -p scale-model --example fused_bench -- [PASSES] [THREADS]
//!
//! Prints the minimum and median cells/s over PASSES timed passes (after one warm-up) per engine,
//! alternating the engines pass by pass so machine noise hits both alike. A third argument `fused`
//! times the fused engine alone (for a profiler); `encoded` times it alone with the control cells
//! encoded once before the passes, as `scale predict` does for a control pool it draws from again.

use std::time::Instant;

use scale_model::burn::module::{Module, ModuleMapper, Param};
use scale_model::burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use scale_model::{
    transport_sets, transport_sets_fused, transport_sets_fused_encoded, Conditions, DataDims, ModelConfig,
    PertEncoding, TransportConfig,
};

struct Jitter;
impl ModuleMapper for Jitter {
    fn map_float<const D: usize>(&mut self, p: Param<Tensor<D>>) -> Param<Tensor<D>> {
        p.map(|t| {
            let noise = Tensor::<D>::random(t.shape(), Distribution::Uniform(-0.05, 0.05), &t.device());
            t + noise
        })
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let passes: usize = args.next().map_or(20, |a| a.parse().expect("PASSES"));
    let threads: usize = args.next().map_or(2, |a| a.parse().expect("THREADS"));
    // `fused` as a third argument times the fused engine alone (for profiling it)
    let mode = args.next();
    let fused_only = matches!(mode.as_deref(), Some("fused" | "encoded"));
    let pre_encoded = mode.as_deref() == Some("encoded");
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().ok();
    let (g, s, b, p) = (2000usize, 32usize, 32usize, 48usize);
    let model: ModelConfig = toml::from_str(
        "hidden = 128\nn_layers = 2\nn_heads = 4\nhead_dim = 32\nmlp_hidden = 512\nencoder_layers = 2\ndecoder_layers = 1",
    )
    .expect("config");
    let cfg = TransportConfig {
        model,
        dims: DataDims {
            n_genes: g,
            pert_dim: p,
            pert_encoding: PertEncoding::OneHot,
            n_contexts: 1,
            n_batches: 0,
        },
    };
    let dev = Device::flex();
    dev.seed(1);
    let net = cfg.init(&dev).expect("model").map(&mut Jitter);
    let fused = net.fused().expect("fused");
    let z = Tensor::<3>::random([b, s, g], Distribution::Uniform(0.0, 3.0), &dev);
    let host: Vec<f32> = z.clone().into_data().try_to_vec::<f32>().expect("f32");
    let pert: Vec<f32> = (0..b * p).map(|i| (i % p == (i / p) % p) as u8 as f32).collect();
    let cond = Conditions {
        pert: Tensor::from_data(TensorData::new(pert, [b, p]), &dev),
        context: Tensor::<1, Int>::from_data(TensorData::new(vec![0i64; b], [b]), &dev),
        batch: None,
        dose: None,
    };
    let cells = (b * s) as f64;
    let (mut t_fused, mut t_burn) = (Vec::new(), Vec::new());
    let (mut zf, mut scratch) = (Vec::new(), Vec::new());
    let mut encoded = vec![0.0f32; b * s * fused.hidden()];
    if pre_encoded {
        fused.encode(&host, &mut encoded);
    }
    for i in 0..=passes {
        zf.clone_from(&host);
        let t0 = Instant::now();
        if pre_encoded {
            transport_sets_fused_encoded(&net, &fused, &mut zf, &encoded, &mut scratch, s, &cond, 1).expect("fused");
        } else {
            transport_sets_fused(&net, &fused, &mut zf, &mut scratch, s, &cond, 1).expect("fused");
        }
        let tf = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        if !fused_only {
            let out = transport_sets(&net, z.clone(), &cond, 1).expect("burn");
            let _host: Vec<f32> = out.into_data().try_to_vec::<f32>().expect("f32");
        }
        let tb = t0.elapsed().as_secs_f64();
        if i > 0 {
            t_fused.push(tf);
            t_burn.push(tb);
        }
    }
    for (name, mut t) in [("fused", t_fused), ("burn", t_burn)] {
        t.sort_by(f64::total_cmp);
        println!(
            "{name:>5}: {:>8.0} cells/s best, {:>8.0} median ({} passes of {} cells, {threads} threads)",
            cells / t[0],
            cells / t[t.len() / 2],
            t.len(),
            b * s
        );
    }
}
