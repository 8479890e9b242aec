#!/usr/bin/env python
"""Build the parity fixtures of scale-eval: small real/pred .h5ad pairs plus cell-eval's outputs.

Run with a venv holding the reference tools:
    python3 -m venv /tmp/celleval && /tmp/celleval/bin/pip install cell-eval==0.8.2 pdex==0.3.0
    /tmp/celleval/bin/python scripts/make_eval_fixtures.py [--papalexi PATH] [--out DIR]

Each case DIR/<case>/ holds real.h5ad, pred.h5ad and cell-eval's outputs of
`MetricsEvaluator(...).compute(profile="full")`: real_de.csv, pred_de.csv, results.csv,
agg_results.csv (plus meta.json with the arguments), and clustering.json: the Leiden partitions
behind `clustering_agreement` (real at resolution 1.0, pred at each swept resolution) and their
AMIs, taken from cell-eval's own `ClusteringAgreement` helpers. The Rust integration tests
(crates/scale-eval/tests/parity.rs) recompute everything and compare.

`--only CASE [CASE ...]` rebuilds just those cases (synthetic draws after papalexi from one stream,
so it rebuilds papalexi too; synthetic also makes counts); `--clustering-only` rewrites clustering.json of
the existing cases from their committed h5ad files and leaves everything else untouched.

Cases:
- papalexi: real Papalexi 2021 ECCITE-seq (CRISPR KO, 299 genes): 8 perturbations + control,
  50 genes (the targets + the most variable), cells of bio-rep "rep1" as real and of another
  replicate as pred, normalize_total + log1p (scanpy) over all 299 genes.
- synthetic: edge cases on 40 genes: a perturbation with no effect (0 significant genes), one
  with a single affected gene, one named after a gene ("G03", knocking it down), two all-zero
  genes, heavily tied values (log1p of small integers), pred a noisy copy with a missed effect.
- counts: the synthetic case as raw integer counts, so cell-eval normalises (median library
  size) + log1p itself.
- clusters: 60 perturbations in 6 expression programmes (30 genes, 5 cells each), pred with
  weaker effects, more noise and 8 perturbations moved to another programme, so that
  `clustering_agreement` has a non-trivial resolution sweep (the other cases have 5-8
  perturbations).
"""

import argparse
import json
import logging
import os
import shutil

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

CTRL = "non-targeting"


def run_cell_eval(real, pred, outdir, pert_col):
    from cell_eval import MetricsEvaluator

    ev = MetricsEvaluator(
        adata_pred=pred,
        adata_real=real,
        control_pert=CTRL,
        pert_col=pert_col,
        num_threads=1,
        outdir=outdir,
    )
    ev.compute(profile="full", basename="results.csv")
    return ev.anndata_pair


def clustering_reference(pair, d):
    """clustering.json: cell-eval's `ClusteringAgreement` opened up (same centroids, neighbours
    and Leiden calls as its `__call__`): partition per resolution, AMI per pred resolution, score."""
    from cell_eval.metrics._anndata import ClusteringAgreement
    from sklearn.metrics import adjusted_mutual_info_score

    ca = ClusteringAgreement()
    perts = sorted(str(p) for p in pair.perts if p != pair.control_pert)
    ref = {"perturbations": perts, "score": float(ca(pair))}
    for which, a, res in (
        ("real", pair.real, [ca.real_resolution]),
        ("pred", pair.pred, list(ca.pred_resolutions)),
    ):
        cent = ca._centroid_ann(a, pair.pert_col, pair.control_pert, ca.embed_key)
        assert [str(p) for p in cent.obs[pair.pert_col]] == perts
        ref[which] = {}
        for r in res:
            ca._cluster_leiden(cent, r, f"leiden_{r}", ca.n_neighbors)
            ref[which][str(r)] = [int(x) for x in cent.obs[f"leiden_{r}"]]
    real_labels = pd.Categorical([str(x) for x in ref["real"][str(ca.real_resolution)]])
    ref["ami"] = {
        r: float(adjusted_mutual_info_score(real_labels, pd.Categorical([str(x) for x in labels])))
        for r, labels in ref["pred"].items()
    }
    with open(os.path.join(d, "clustering.json"), "w") as f:
        json.dump(ref, f, indent=1)


def save_case(name, real, pred, out, pert_col):
    d = os.path.join(out, name)
    if os.path.exists(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for a in (real, pred):
        a.obs[pert_col] = a.obs[pert_col].astype("category")
    real.write_h5ad(os.path.join(d, "real.h5ad"))
    pred.write_h5ad(os.path.join(d, "pred.h5ad"))
    # cell-eval normalises counts in place, so give it copies of what was written
    pair = run_cell_eval(ad.read_h5ad(os.path.join(d, "real.h5ad")), ad.read_h5ad(os.path.join(d, "pred.h5ad")), d, pert_col)
    clustering_reference(pair, d)
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump({"pert_col": pert_col, "control": CTRL, "profile": "full"}, f)
    for fn in sorted(os.listdir(d)):
        print(f"  {name}/{fn}: {os.path.getsize(os.path.join(d, fn))} bytes")


def papalexi(path, out, rng):
    a = ad.read_h5ad(path)
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    sc.pp.normalize_total(a)
    sc.pp.log1p(a)
    perts = ["IFNGR1", "IRF1", "JAK2", "STAT1", "CD86", "SMAD4", "MYC", "CUL3"]
    reps = a.obs["bio_rep"].astype(str)
    rep_names = sorted(reps.unique())
    targets = [g for g in perts if g in a.var_names]
    X = a.X.toarray()
    var = np.argsort(-X.var(axis=0))
    genes = list(targets)
    for i in var:
        if len(genes) >= 50:
            break
        if a.var_names[i] not in genes:
            genes.append(a.var_names[i])
    gidx = [list(a.var_names).index(g) for g in genes]

    def take(rep, n_pert, n_ctrl):
        rows = []
        for p in [CTRL] + perts:
            idx = np.flatnonzero((a.obs["perturbation"].astype(str) == p).to_numpy() & (reps == rep).to_numpy())
            k = n_ctrl if p == CTRL else n_pert
            rows.extend(rng.choice(idx, size=min(k, idx.size), replace=False))
        sub = a[np.sort(np.array(rows))][:, gidx].copy()
        sub.obs = sub.obs[["perturbation", "bio_rep"]].copy()
        sub.obs["perturbation"] = sub.obs["perturbation"].astype(str)
        sub.X = sp.csr_matrix(sub.X, dtype=np.float32)
        return sub

    real = take(rep_names[0], 40, 120)
    pred = take(rep_names[1], 35, 100)
    save_case("papalexi", real, pred, out, "perturbation")


def synthetic_counts(rng):
    n_genes = 40
    genes = [f"G{i:02d}" for i in range(n_genes)]
    base = rng.gamma(2.0, 1.0, size=n_genes)
    base[[38, 39]] = 0.0  # all-zero genes
    groups = {CTRL: 150, "P_none": 40, "P_one": 40, "G03": 40, "P_big": 40, "P_mixed": 30}
    eff = {g: np.ones(n_genes) for g in groups}
    eff["P_one"][7] = 6.0
    eff["G03"][3] = 0.05
    eff["P_big"][:12] = rng.uniform(0.1, 4.0, size=12)
    eff["P_mixed"][[5, 9, 14, 20, 21]] = [3.0, 0.2, 2.5, 0.3, 4.0]

    def draw(effects, seed):
        r = np.random.default_rng(seed)
        rows, labels = [], []
        for g, n in groups.items():
            lam = base * effects[g]
            rows.append(r.poisson(lam, size=(n, n_genes)))
            labels += [g] * n
        return np.vstack(rows).astype(np.float32), labels

    Xr, lr = draw(eff, 1)
    peff = {g: v.copy() for g, v in eff.items()}
    peff["P_big"][:12] = 1.0 + 0.6 * (eff["P_big"][:12] - 1.0)
    peff["G03"][3] = 1.0  # model misses the knockdown
    peff["P_none"][11] = 2.5  # a false positive
    Xp, lp = draw(peff, 2)
    return genes, Xr, lr, Xp, lp


def synthetic(out, rng):
    genes, Xr, lr, Xp, lp = synthetic_counts(rng)

    def mk(X, labels, logged):
        obs = pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))])
        Y = np.log1p(X).astype(np.float32) if logged else X
        return ad.AnnData(X=sp.csr_matrix(Y), obs=obs, var=pd.DataFrame(index=genes))

    save_case("synthetic", mk(Xr, lr, True), mk(Xp, lp, True), out, "target_gene")
    save_case("counts", mk(Xr, lr, False), mk(Xp, lp, False), out, "target_gene")


def clusters(out):
    rng = np.random.default_rng(11)  # own stream: rebuilding this case leaves the others as they are
    n_genes, n_prog, n_pert, n_cells = 30, 6, 60, 5
    genes = [f"G{i:02d}" for i in range(n_genes)]
    base = rng.gamma(3.0, 1.0, size=n_genes)
    prog = np.ones((n_prog, n_genes))
    for k in range(n_prog):
        hit = rng.choice(n_genes, size=8, replace=False)
        prog[k, hit] = rng.choice([0.4, 0.6, 1.7, 2.5], size=8)
    perts = [f"P{i:02d}" for i in range(n_pert)]
    member = np.arange(n_pert) % n_prog
    moved = rng.choice(n_pert, size=8, replace=False)
    pmember = member.copy()
    pmember[moved] = (member[moved] + rng.integers(1, n_prog, size=8)) % n_prog

    def draw(members, shrink, jitter, seed):
        r = np.random.default_rng(seed)
        rows, labels = [r.poisson(base, size=(60, n_genes))], [CTRL] * 60
        for i, p in enumerate(perts):
            eff = 1.0 + shrink * (prog[members[i]] - 1.0)
            eff = eff * r.lognormal(0.0, jitter, size=n_genes)  # per-perturbation identity
            rows.append(r.poisson(base * eff, size=(n_cells, n_genes)))
            labels += [p] * n_cells
        X = np.log1p(np.vstack(rows)).astype(np.float32)
        obs = pd.DataFrame({"target_gene": labels}, index=[f"c{i}" for i in range(len(labels))])
        return ad.AnnData(X=sp.csr_matrix(X), obs=obs, var=pd.DataFrame(index=genes))

    save_case("clusters", draw(member, 1.0, 0.4, 21), draw(pmember, 0.7, 0.5, 22), out, "target_gene")


def clustering_only(out):
    """Rewrites clustering.json of the existing cases from their committed inputs."""
    from cell_eval._evaluator import _build_anndata_pair

    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if not os.path.exists(os.path.join(d, "meta.json")):
            continue
        with open(os.path.join(d, "meta.json")) as f:
            meta = json.load(f)
        pair = _build_anndata_pair(
            ad.read_h5ad(os.path.join(d, "real.h5ad")), ad.read_h5ad(os.path.join(d, "pred.h5ad")),
            control_pert=meta["control"], pert_col=meta["pert_col"],
        )
        clustering_reference(pair, d)
        print(f"  {name}/clustering.json: {os.path.getsize(os.path.join(d, 'clustering.json'))} bytes")


def baseline_and_score(out):
    """cell-eval baseline of the synthetic real data, its evaluation, and `cell-eval score`."""
    from cell_eval import MetricsEvaluator, build_base_mean_adata, score_agg_metrics

    d = os.path.join(out, "synthetic")
    real = ad.read_h5ad(os.path.join(d, "real.h5ad"))
    base = build_base_mean_adata(ad.read_h5ad(os.path.join(d, "real.h5ad")), pert_col="target_gene", control_pert=CTRL)
    # the baseline vector (every perturbed cell holds it)
    X = base.X.toarray() if sp.issparse(base.X) else np.asarray(base.X)
    labels = base.obs["target_gene"].astype(str).to_numpy()
    row = X[np.flatnonzero(labels != CTRL)[0]]
    pd.DataFrame({"gene": real.var_names, "baseline": row.astype(np.float64)}).to_csv(
        os.path.join(d, "baseline_mean.csv"), index=False
    )
    bdir = os.path.join(d, "base_eval")
    os.makedirs(bdir, exist_ok=True)
    base.obs["target_gene"] = base.obs["target_gene"].astype("category")
    ev = MetricsEvaluator(adata_pred=base, adata_real=real, control_pert=CTRL, pert_col="target_gene", num_threads=1, outdir=bdir)
    ev.compute(profile="vcc", basename="results.csv")
    ev2 = MetricsEvaluator(adata_pred=ad.read_h5ad(os.path.join(d, "pred.h5ad")), adata_real=real, control_pert=CTRL,
                           pert_col="target_gene", num_threads=1, outdir=bdir, de_real=os.path.join(d, "real_de.csv"))
    ev2.compute(profile="vcc", basename="user_results.csv")
    score_agg_metrics(os.path.join(bdir, "agg_user_results.csv"), os.path.join(bdir, "agg_results.csv"),
                      output=os.path.join(bdir, "score.csv"))
    for fn in ("real_de.csv", "pred_de.csv", "user_results.csv"):
        p = os.path.join(bdir, fn)
        if os.path.exists(p):
            os.remove(p)
    for fn in sorted(os.listdir(bdir)):
        print(f"  synthetic/base_eval/{fn}: {os.path.getsize(os.path.join(bdir, fn))} bytes")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--papalexi", default="/work/shared/data/papalexi2021_eccite_lowmoi/papalexi2021_lowmoi.h5ad")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "crates", "scale-eval", "tests", "fixtures"))
    ap.add_argument("--only", nargs="+", choices=["papalexi", "synthetic", "clusters"])
    ap.add_argument("--clustering-only", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.makedirs(args.out, exist_ok=True)
    if args.clustering_only:
        clustering_only(args.out)
        return
    cases = args.only or ["papalexi", "synthetic", "clusters"]
    # papalexi and synthetic share one stream (in this order), as when the fixtures were made
    rng = np.random.default_rng(0)
    if "papalexi" in cases or "synthetic" in cases:
        papalexi(args.papalexi, args.out, rng)
    if "synthetic" in cases:
        synthetic(args.out, rng)
        baseline_and_score(args.out)
    if "clusters" in cases:
        clusters(args.out)


if __name__ == "__main__":
    main()
