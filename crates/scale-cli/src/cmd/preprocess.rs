//! `scale preprocess IN.h5ad --out OUT.h5ad`: gene subsetting, highly variable genes, normalize_total
//! and log1p, with scanpy's numerics (see `scale_prep`).
//!
//! Order: `--genes` subset → `--hvg` with `seurat_v3` (on the counts) → `--normalize` → `--log1p` →
//! `--hvg` with `seurat` (on the log data) → subset to the selected genes. Raw counts that get
//! transformed are kept as layer `counts` (unless the file already has one).

use std::path::PathBuf;

use anyhow::{bail, Context};
use scale_io::{detect_space, read_h5ad, write_h5ad, Column, ExpressionSpace, Matrix};
use scale_prep::hvg::{highly_variable_genes, HvgFlavor, HvgOptions, HvgResult};
use scale_prep::{log1p, normalize_total, require_space, select_genes};

use super::Ctx;

#[derive(clap::Args)]
pub struct Args {
    /// Input .h5ad.
    pub input: PathBuf,
    /// Output .h5ad (written atomically).
    #[arg(long)]
    pub out: PathBuf,
    /// Scale every cell to the same total (scanpy normalize_total).
    #[arg(long)]
    pub normalize: bool,
    /// Total per cell after --normalize (default: the median library size, as scanpy).
    #[arg(long, requires = "normalize")]
    pub target_sum: Option<f64>,
    /// log(1 + x); refused on data that is already log1p.
    #[arg(long)]
    pub log1p: bool,
    /// Keep the N most highly variable genes.
    #[arg(long, value_name = "N")]
    pub hvg: Option<usize>,
    /// HVG method: seurat (on log data, scanpy's default) or seurat_v3 (on counts).
    #[arg(long, default_value = "seurat", requires = "hvg")]
    pub hvg_flavor: String,
    /// obs column whose values are batches for HVG selection (scanpy's batch_key).
    #[arg(long, requires = "hvg")]
    pub hvg_batch_key: Option<String>,
    /// Keep all genes and only annotate var with the HVG statistics.
    #[arg(long, requires = "hvg")]
    pub hvg_annotate_only: bool,
    /// Keep only the genes listed in FILE (one name per line; `#` starts a comment), in that order.
    #[arg(long, value_name = "FILE")]
    pub genes: Option<PathBuf>,
    /// With --genes: fail if any listed gene is missing (default: warn and list them).
    #[arg(long, requires = "genes")]
    pub require_all_genes: bool,
    /// Process this layer instead of X (e.g. `counts`); the result becomes X.
    #[arg(long)]
    pub layer: Option<String>,
}

pub fn run(args: Args, _ctx: &Ctx) -> anyhow::Result<()> {
    if !args.normalize && !args.log1p && args.hvg.is_none() && args.genes.is_none() {
        bail!("nothing to do: pass at least one of --normalize, --log1p, --hvg N, --genes FILE");
    }
    let flavor = HvgFlavor::parse(&args.hvg_flavor)
        .with_context(|| format!("--hvg-flavor `{}`: expected seurat or seurat_v3", args.hvg_flavor))?;
    let inp = args.input.display().to_string();
    let mut ad = read_h5ad(&args.input).with_context(|| format!("reading {inp}"))?;

    // the matrix being processed
    let (mut x, what) = match &args.layer {
        // X is replaced by the result at the end; take it rather than copy it
        None => (
            std::mem::replace(&mut ad.x, Matrix::Csr(scale_io::CsrMatrix::empty(0))),
            format!("{inp} X"),
        ),
        Some(l) => {
            let m = ad.layer(l).with_context(|| {
                let keys: Vec<&str> = ad.layers.iter().map(|(k, _)| k.as_str()).collect();
                format!("{inp}: no layer `{l}` (layers: {keys:?})")
            })?;
            (m.clone(), format!("{inp} layers[{l}]"))
        }
    };
    scale_prep::stats::check_finite(&x, &what)?;
    let space = detect_space(&x);
    tracing::info!("{what}: {} cells × {} genes, {space}", x.n_rows(), x.n_cols());

    // --genes
    if let Some(path) = &args.genes {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading gene list {}", path.display()))?;
        let wanted: Vec<&str> = text.lines().map(|l| l.split('#').next().unwrap_or("").trim()).collect();
        let n_req = wanted.iter().filter(|w| !w.is_empty()).count();
        let sel = select_genes(&ad.var.index, &wanted);
        let summary = format!("{}: {}", path.display(), sel.summary(n_req));
        if sel.indices.is_empty() || (args.require_all_genes && !sel.missing.is_empty()) {
            bail!("{summary}");
        }
        if sel.missing.is_empty() {
            tracing::info!("{summary}");
        } else {
            tracing::warn!("{summary}");
        }
        subset_genes(&mut ad, &mut x, &sel.indices);
    }

    let batches = match &args.hvg_batch_key {
        None => None,
        Some(k) => {
            let col = ad
                .obs
                .column(k)
                .with_context(|| format!("{inp}: obs has no column `{k}` (columns: {:?})", ad.obs.column_names()))?;
            let labels = col.to_strings();
            let mut cats = labels.clone();
            cats.sort();
            cats.dedup();
            Some(
                labels
                    .iter()
                    .map(|l| cats.binary_search(l).unwrap_or(0) as u32)
                    .collect::<Vec<u32>>(),
            )
        }
    };
    let hvg_opts = |n: usize| HvgOptions {
        flavor,
        n_top_genes: Some(n),
        ..Default::default()
    };
    let mut hvg: Option<HvgResult> = None;
    if let (Some(n), HvgFlavor::SeuratV3) = (args.hvg, flavor) {
        require_space("--hvg-flavor seurat_v3", &what, space, &[ExpressionSpace::RawCounts])?;
        hvg = Some(highly_variable_genes(
            &x,
            &ad.var.index,
            &hvg_opts(n),
            batches.as_deref(),
        )?);
    }

    // raw counts of X that get transformed are kept as layer `counts` (following later gene subsets)
    let keep_counts = space == ExpressionSpace::RawCounts
        && (args.normalize || args.log1p)
        && args.layer.is_none()
        && !ad.layers.iter().any(|(k, _)| k == "counts");
    let mut counts = keep_counts.then(|| x.clone());
    let mut steps = Vec::new();
    if args.normalize {
        require_space(
            "--normalize",
            &what,
            space,
            &[ExpressionSpace::RawCounts, ExpressionSpace::Other],
        )?;
        let rep = normalize_total(&mut x, args.target_sum)?;
        steps.push(format!("normalize_total(target_sum={})", rep.target_sum));
        tracing::info!(
            "normalize_total: target sum {} ({} empty cells)",
            rep.target_sum,
            rep.n_zero_cells
        );
    }
    if args.log1p {
        // judged on the input: normalised counts can look like log1p values
        require_space(
            "--log1p",
            &what,
            space,
            &[ExpressionSpace::RawCounts, ExpressionSpace::Other],
        )?;
        log1p(&mut x)?;
        steps.push("log1p".to_string());
    }
    if let (Some(n), HvgFlavor::Seurat) = (args.hvg, flavor) {
        if !args.log1p {
            require_space("--hvg-flavor seurat", &what, space, &[ExpressionSpace::Log1p])?;
        }
        hvg = Some(highly_variable_genes(
            &x,
            &ad.var.index,
            &hvg_opts(n),
            batches.as_deref(),
        )?);
    }
    if let Some(h) = &hvg {
        annotate_var(&mut ad.var, h);
        steps.push(format!(
            "highly_variable_genes(flavor={}, n_top_genes={})",
            args.hvg_flavor,
            args.hvg.unwrap_or(0)
        ));
        let sel = h.selected();
        tracing::info!("highly variable genes: {} selected", sel.len());
        if !args.hvg_annotate_only {
            subset_genes(&mut ad, &mut x, &sel);
            counts = counts.map(|c| c.select_cols(&sel));
        }
    }
    if let Some(c) = counts {
        ad.layers.push(("counts".into(), c));
    }
    ad.x = x;
    ad.uns.retain(|(k, _)| k != "scale_preprocess");
    ad.uns.push(("scale_preprocess".into(), steps.join("; ")));
    write_h5ad(&args.out, &ad).with_context(|| format!("writing {}", args.out.display()))?;
    println!(
        "{}: {} cells × {} genes ({})",
        args.out.display(),
        ad.x.n_rows(),
        ad.x.n_cols(),
        if steps.is_empty() {
            "genes subset".to_string()
        } else {
            steps.join("; ")
        }
    );
    Ok(())
}

/// Keeps columns `cols` (in that order) of the processed matrix `x`, every layer and var (`ad.x` is
/// replaced by `x` before writing).
fn subset_genes(ad: &mut scale_io::AnnData, x: &mut Matrix, cols: &[usize]) {
    *x = x.select_cols(cols);
    for (_, m) in ad.layers.iter_mut() {
        *m = m.select_cols(cols);
    }
    let var = &ad.var;
    let mut out = scale_io::Frame::new(cols.iter().map(|&c| var.index[c].clone()).collect());
    out.index_name = var.index_name.clone();
    out.columns = var.columns.iter().map(|(n, c)| (n.clone(), c.select(cols))).collect();
    ad.var = out;
}

/// Adds scanpy's var columns (highly_variable, means, dispersions… or variances…).
fn annotate_var(var: &mut scale_io::Frame, h: &HvgResult) {
    var.set_column("highly_variable", Column::Bool(h.highly_variable.clone()));
    var.set_column("means", Column::Float(h.means.clone()));
    let opt = [
        ("dispersions", &h.dispersions),
        ("dispersions_norm", &h.dispersions_norm),
        ("variances", &h.variances),
        ("variances_norm", &h.variances_norm),
        ("highly_variable_rank", &h.highly_variable_rank),
    ];
    for (name, v) in opt {
        if let Some(v) = v {
            var.set_column(name, Column::Float(v.clone()));
        }
    }
    if let Some(nb) = &h.highly_variable_nbatches {
        var.set_column(
            "highly_variable_nbatches",
            Column::Int(nb.iter().map(|&v| v as i64).collect()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scale_io::{AnnData, CsrMatrix, Frame};

    fn args(input: PathBuf, out: PathBuf) -> Args {
        Args {
            input,
            out,
            normalize: false,
            target_sum: None,
            log1p: false,
            hvg: None,
            hvg_flavor: "seurat".into(),
            hvg_batch_key: None,
            hvg_annotate_only: false,
            genes: None,
            require_all_genes: false,
            layer: None,
        }
    }

    fn counts_file(dir: &std::path::Path) -> PathBuf {
        // 60 cells × 40 genes of deterministic pseudo-random counts; gene g has mean ~ g % 7
        let mut x = CsrMatrix::empty(40);
        let mut state = 12345u64;
        for _ in 0..60 {
            let (mut c, mut v) = (Vec::new(), Vec::new());
            for g in 0..40u32 {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = ((state >> 33) % (2 + 2 * (g as u64 % 7))) as f32;
                if k > 0.0 {
                    c.push(g);
                    v.push(k);
                }
            }
            x.push_row(&c, &v);
        }
        let obs = Frame::new((0..60).map(|i| format!("c{i}")).collect());
        let var = Frame::new((0..40).map(|i| format!("G{i}")).collect());
        let path = dir.join("in.h5ad");
        write_h5ad(&path, &AnnData::new(Matrix::Csr(x), obs, var)).unwrap();
        path
    }

    #[test]
    fn normalize_log1p_hvg_then_refuses_second_log1p() {
        let dir = std::env::temp_dir().join(format!("scale-prep-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let input = counts_file(&dir);
        let out = dir.join("out.h5ad");
        let mut a = args(input, out.clone());
        a.normalize = true;
        a.log1p = true;
        a.hvg = Some(10);
        run(a, &Ctx { quiet: true }).unwrap();
        let ad = read_h5ad(&out).unwrap();
        assert_eq!((ad.x.n_rows(), ad.x.n_cols()), (60, 10));
        assert_eq!(detect_space(&ad.x), ExpressionSpace::Log1p);
        assert_eq!(
            ad.layer("counts").map(|m| m.n_cols()),
            Some(10),
            "raw counts kept, subset alike"
        );
        assert!(ad.var.column("dispersions_norm").is_some());

        let err = run(args(out.clone(), dir.join("out2.h5ad")), &Ctx { quiet: true });
        assert!(err.is_err(), "nothing to do must fail");
        let mut again = args(out, dir.join("out2.h5ad"));
        again.log1p = true;
        let msg = format!("{:#}", run(again, &Ctx { quiet: true }).unwrap_err());
        assert!(msg.contains("refusing --log1p") && msg.contains("log1p"), "{msg}");
        assert!(!dir.join("out2.h5ad").exists());
        std::fs::remove_dir_all(&dir).ok();
    }
}
