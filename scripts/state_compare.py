#!/usr/bin/env python
"""Glue for comparing STATE (pip `arc-state`) with scale on the same split (see scripts/state_compare.sh).

Run with the peers venv (`$PEERS/venv/bin/python`, anndata + toml + numpy). Subcommands:

  prep IN.h5ad SPLIT.toml OUTDIR
      OUTDIR/<dataset>.h5ad: a copy of IN that cell-load reads (unnamed var index plus var['gene_name'],
      X as float32 CSR); OUTDIR/split.toml: SPLIT with its dataset path pointing at that copy. Nothing
      else changes (obs, values, the held-out lists).

  infer-input REAL.h5ad OUT.h5ad PERT_COL CONTROL
      The input of `state tx infer`: the rows of scale's real.h5ad (held-out perturbed cells + the control
      cells of their contexts), with X of every non-control row set to 0, so that STATE sees only the
      control cells' expression (it samples its basal cells from the controls of the same cell type and
      overwrites every row).

  assemble STATE_OUT.h5ad SCALE_PRED.h5ad OUT.h5ad PERT_COL CONTROL
      STATE's predictions laid out exactly like scale's pred.h5ad: same rows, names, obs, genes; the
      perturbed rows take STATE's predicted X (matched row by row), the control rows keep the real control
      cells (as in scale's pred.h5ad), so `scale eval` compares like with like.
"""
import os
import sys

import anndata as ad
import numpy as np
import scipy.sparse as sp
import toml


def prep(src, split, outdir):
    os.makedirs(outdir, exist_ok=True)
    cfg = toml.load(split)
    (name, _), = cfg["datasets"].items()
    a = ad.read_h5ad(src)
    a.var["gene_name"] = a.var.index.astype(str)
    a.var.index = a.var.index.astype(str)
    a.var.index.name = None
    x = a.X.tocsr() if sp.issparse(a.X) else sp.csr_matrix(a.X)
    a.X = x.astype(np.float32)
    dst = os.path.abspath(os.path.join(outdir, f"{name}.h5ad"))
    a.write_h5ad(dst)
    cfg["datasets"][name] = dst
    with open(os.path.join(outdir, "split.toml"), "w") as f:
        toml.dump(cfg, f)
    print(f"wrote {dst} ({a.n_obs} x {a.n_vars}) and {outdir}/split.toml")


def infer_input(real, out, pert_col, control):
    a = ad.read_h5ad(real)
    x = a.X.toarray() if sp.issparse(a.X) else np.array(a.X, dtype=np.float32)
    ctrl = (a.obs[pert_col].astype(str) == control).to_numpy()
    x[~ctrl] = 0.0
    a.X = x.astype(np.float32)
    a.var["gene_name"] = a.var.index.astype(str)
    a.write_h5ad(out)
    print(f"wrote {out}: {int((~ctrl).sum())} cells to predict, {int(ctrl.sum())} controls")


def assemble(state_out, scale_pred, out, pert_col, control):
    s = ad.read_h5ad(state_out)
    p = ad.read_h5ad(scale_pred)
    if list(s.var_names) != list(p.var_names):
        sys.exit("gene order differs between STATE's output and scale's pred.h5ad")
    if s.n_obs != p.n_obs:
        sys.exit(f"row count differs: STATE {s.n_obs}, scale {p.n_obs}")
    sp_lab = s.obs[pert_col].astype(str).to_numpy()
    pp_lab = p.obs[pert_col].astype(str).to_numpy()
    ctx = [c for c in p.obs.columns if c != pert_col]
    if not (sp_lab == pp_lab).all():
        sys.exit("perturbation labels differ row by row")
    for c in ctx:
        if c in s.obs and not (s.obs[c].astype(str).to_numpy() == p.obs[c].astype(str).to_numpy()).all():
            sys.exit(f"obs[{c!r}] differs row by row")
    px = p.X.toarray() if sp.issparse(p.X) else np.array(p.X, dtype=np.float32)
    sx = s.X.toarray() if sp.issparse(s.X) else np.asarray(s.X, dtype=np.float32)
    pert = pp_lab != control
    px[pert] = sx[pert]
    p.X = px.astype(np.float32)
    p.write_h5ad(out)
    print(f"wrote {out}: {int(pert.sum())} STATE-predicted cells + {int((~pert).sum())} real controls")


def gene_features(src, pert_col, control, out):
    import torch

    a = ad.read_h5ad(src, backed="r")
    labels = sorted(set(a.obs[pert_col].astype(str)))
    genes = sorted({g for lab in labels if lab != control for g in lab.split("+")})
    col = {g: i for i, g in enumerate(genes)}
    feats = {}
    for lab in labels:
        v = torch.zeros(len(genes))
        if lab != control:
            for g in lab.split("+"):
                v[col[g]] += 1.0
        feats[lab] = v
    torch.save(feats, out)
    print(f"wrote {out}: {len(labels)} labels over {len(genes)} genes")


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"prep": prep, "infer-input": infer_input, "assemble": assemble, "gene-features": gene_features}[cmd](*args)
