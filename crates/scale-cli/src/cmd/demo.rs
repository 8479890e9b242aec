//! `scale demo`: the whole pipeline on the vendored real data, end to end, through the same code paths as
//! the individual commands: ingest → train (tiny) → predict the held-out part → baselines → eval, then a
//! comparison table. Default split, on the PerturBench devel set: few-shot on a held-out cell line
//! (McFaline-Figueroa 2023 U87MG CRISPRi: 5 of its 9 kinase knock-downs held out; the other 4 and its
//! controls are training data) plus unseen combinations in K562 (Norman 2019: 5 pairs whose single genes
//! were seen). Evaluation runs per cell line (`--celltype-col cell_type`).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Context;

use scale_model::DeviceChoice;

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Output directory (store, run, predictions, evaluations).
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Input .h5ad (default: the vendored PerturBench devel set).
    #[arg(long, default_value = "data/perturbench_devel/devel.h5ad")]
    pub input: PathBuf,
    /// Model preset.
    #[arg(long, default_value = "configs/demo.toml")]
    pub config: PathBuf,
    /// Training steps (default: the preset's).
    #[arg(long)]
    pub steps: Option<u64>,
    /// Metric profile of the comparison.
    #[arg(long, default_value = "full")]
    pub profile: String,
    /// Threads (0 = all cores).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Compute device: cpu (burn flex), wgpu (Vulkan/Metal/DX12 adapter) or cuda. wgpu and cuda need a
    /// binary built with the cargo feature of that name.
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

const SPLIT: &str = r#"# Few-shot on a held-out cell line: U87MG keeps its controls and 4 knock-downs for training;
# 5 knock-downs are predicted. Every other context (K562, A172, T98G) is training data.
[datasets]
devel = "data/perturbench_devel/devel.h5ad"

[training]
devel = "train"

[fewshot."devel.U87MG"]
val = []
test = ["MAP2K3", "MAPK1", "PLK4", "SGK1", "TGFBR2"]

# Unseen combinations in K562 (Norman 2019 CRISPRa): both single genes were seen, the pair was not.
[fewshot."devel.k562"]
val = []
test = ["KLF1+MAP2K6", "KLF1+TGFBR2", "MAP2K3+MAP2K6", "MAP2K3+SLC38A2", "MAPK1+TGFBR2"]
"#;

/// Parses `argv` as the arguments of one subcommand (the same parser the CLI uses).
fn parse<A: clap::Args>(name: &str, argv: &[OsString]) -> anyhow::Result<A> {
    #[derive(clap::Parser)]
    struct Wrap<B: clap::Args> {
        #[command(flatten)]
        inner: B,
    }
    let mut full = vec![OsString::from(name)];
    full.extend_from_slice(argv);
    let w = <Wrap<A> as clap::Parser>::try_parse_from(full).with_context(|| format!("demo: arguments of `{name}`"))?;
    Ok(w.inner)
}

fn os(v: &[&dyn AsRef<std::ffi::OsStr>]) -> Vec<OsString> {
    v.iter().map(|s| s.as_ref().to_os_string()).collect()
}

pub fn run(args: Args, ctx: &Ctx) -> anyhow::Result<()> {
    let out = &args.out;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let store = out.join("store");
    let run_dir = out.join("run");
    let pred_dir = out.join("pred");
    let split = out.join("split.toml");
    let threads = args.threads.to_string();
    let device = args.device.to_string();
    // Fail before the ingest when the device cannot be had.
    args.device.device()?;
    std::fs::write(&split, SPLIT).with_context(|| format!("writing {}", split.display()))?;

    eprintln!("[1/5] ingest {}", args.input.display());
    let a = parse::<super::ingest::Args>(
        "ingest",
        &os(&[
            &"--input",
            &args.input,
            &"--out",
            &store,
            &"--pert-col",
            &"condition",
            &"--control",
            &"control",
            &"--context-col",
            &"cell_type",
            &"--dataset-name",
            &"devel",
            &"--overwrite",
        ]),
    )?;
    super::ingest::run(a, ctx)?;

    eprintln!("[2/5] train ({})", args.config.display());
    if run_dir.exists() {
        std::fs::remove_dir_all(&run_dir).with_context(|| format!("removing old run {}", run_dir.display()))?;
    }
    let mut targs = os(&[
        &"--store",
        &store,
        &"--split",
        &split,
        &"--config",
        &args.config,
        &"--out",
        &run_dir,
        &"--threads",
        &threads,
        &"--device",
        &device,
    ]);
    if let Some(s) = args.steps {
        targs.extend(os(&[&"--steps", &s.to_string()]));
    }
    super::train::run(parse::<super::train::Args>("train", &targs)?, ctx)?;

    eprintln!("[3/5] predict the held-out cells");
    let p = parse::<super::predict::Args>(
        "predict",
        &os(&[
            &"--run",
            &run_dir,
            &"--store",
            &store,
            &"--split",
            &"test",
            &"--out",
            &pred_dir,
            &"--threads",
            &threads,
            &"--device",
            &device,
        ]),
    )?;
    super::predict::run(p, ctx)?;
    let real = pred_dir.join("real.h5ad");

    eprintln!("[4/5] baselines");
    let mut predictors: Vec<(String, PathBuf)> = vec![("scale (model)".into(), pred_dir.join("pred.h5ad"))];
    for kind in ["cell-mean", "context-mean", "additive", "linear"] {
        let b_out = out.join(format!("baseline_{kind}.h5ad"));
        let sa = super::store_baseline::StoreBaselineArgs {
            store: Some(store.clone()),
            run: Some(run_dir.clone()),
            template: Some(real.clone()),
            lambda: 1.0,
            combo_sep: "+".into(),
            ..Default::default()
        };
        super::store_baseline::run_kind(kind.parse()?, &sa, &b_out, 0)?;
        predictors.push((kind.to_string(), b_out));
    }

    eprintln!("[5/5] evaluate ({} profile)", args.profile);
    let mut rows = Vec::new();
    for (name, pred) in &predictors {
        let dir = out.join(format!("eval_{}", name.split_whitespace().next().unwrap_or("model")));
        if dir.exists() {
            // Stale per-cell-line files from an earlier run would end up in the table.
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let e = parse::<super::eval::Args>(
            "eval",
            &os(&[
                &"--pred",
                pred,
                &"--real",
                &real,
                &"--pert-col",
                &"condition",
                &"--control",
                &"control",
                &"--celltype-col",
                &"cell_type",
                &"--profile",
                &args.profile,
                &"--out",
                &dir,
            ]),
        )?;
        super::eval::run(e, &Ctx { quiet: true })?;
        // One aggregate per cell line: `{celltype}_agg_results.csv`.
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with("agg_results.csv"))
            })
            .collect();
        files.sort();
        for f in files {
            let fname = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let ct = fname.trim_end_matches("agg_results.csv").trim_end_matches('_');
            rows.push((format!("{name} [{ct}]"), read_agg_means(&f)?));
        }
    }
    print_table(&rows);
    println!("\noutputs in {}", out.display());
    Ok(())
}

/// Metric → mean over perturbations, from an `agg_results.csv`.
fn read_agg_means(path: &Path) -> anyhow::Result<Vec<(String, f64)>> {
    let (names, values) = scale_eval::score::read_agg(path, "mean")?;
    Ok(names.into_iter().zip(values).collect())
}

const SHOWN: [(&str, bool); 8] = [
    ("pearson_delta", true),
    ("overlap_at_N", true),
    ("discrimination_score_l1", true),
    ("de_direction_match", true),
    ("pr_auc", true),
    ("mse_delta", false),
    ("mae", false),
    ("pearson_edistance", true),
];

fn print_table(rows: &[(String, Vec<(String, f64)>)]) {
    let shown: Vec<(&str, bool)> = SHOWN
        .iter()
        .copied()
        .filter(|(m, _)| rows.iter().any(|(_, v)| v.iter().any(|(k, _)| k == m)))
        .collect();
    println!();
    print!("{:<26}", "predictor [cell line]");
    for (m, better_high) in &shown {
        print!(" {:>24}", format!("{m} {}", if *better_high { "↑" } else { "↓" }));
    }
    println!();
    for (name, vals) in rows {
        print!("{name:<26}");
        for (m, _) in &shown {
            let v = vals.iter().find(|(k, _)| k == m).map(|x| x.1).unwrap_or(f64::NAN);
            print!(" {v:>24.4}");
        }
        println!();
    }
}
