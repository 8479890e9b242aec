#!/usr/bin/env python3
"""Small fixtures for crates/scale-store tests (all < 100 kB).

  tiny_a.h5ad, tiny_b.h5ad   Perturb-seq-like raw counts (CSR X, categorical obs), overlapping gene lists;
                             tiny_b also has obsm['X_hvg'] (dense) and var['highly_variable'].
  tahoe/data/*.parquet       Tahoe-100M cell rows in the published schema (genes list<int64>, expressions
                             list<float>, drug, sample, BARCODE_SUB_LIB_ID, cell_line_id, moa-fine,
                             canonical_smiles, pubchem_cid, plate); the first list element is the sentinel
                             token 1 with expression -2, as in the public shards.
  tahoe/metadata/*.parquet   gene_metadata, sample_metadata, drug_metadata, cell_line_metadata.

Values follow closed formulas that the Rust tests recompute (see comments). Needs numpy, scipy, anndata,
pyarrow. Usage: python3 scripts/make_store_fixtures.py [OUT_DIR]
"""
import os
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(__file__), "..", "crates", "scale-store", "tests", "fixtures")


def h5ad(path, n_cells, genes, seed, prefix, hvg=False):
    rng = np.random.default_rng(seed)
    x = rng.poisson(1.2, size=(n_cells, len(genes))).astype(np.float32)
    perts = np.array(["non-targeting", "GENE1", "GENE2", "GENE3"])[rng.integers(0, 4, n_cells)]
    perts[:4] = "non-targeting"  # every context/batch below gets controls
    ctx = np.array(["K562", "RPE1"])[np.arange(n_cells) % 2]
    batch = np.array(["1", "2"])[(np.arange(n_cells) // 2) % 2]
    obs = pd.DataFrame(
        {
            "gene": pd.Categorical(perts),
            "cell_type": pd.Categorical(ctx),
            "gem_group": pd.Categorical(batch),
            "n_counts": x.sum(1),
        },
        index=[f"{prefix}{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=genes)
    a = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    if hvg:
        hv = np.zeros(len(genes), dtype=bool)
        hv[::2] = True
        a.var["highly_variable"] = hv
        a.obsm["X_hvg"] = np.log1p(x[:, hv]).astype(np.float32)
    a.write_h5ad(path)


def tahoe(root):
    os.makedirs(os.path.join(root, "data"), exist_ok=True)
    os.makedirs(os.path.join(root, "metadata"), exist_ok=True)
    # Gene tokens 3..22 (tokens 0-2 are special in the vocabulary; 1 is the sentinel in cell rows).
    tokens = list(range(3, 23))
    pq.write_table(
        pa.table(
            {
                "gene_symbol": [f"SYM{t}" for t in tokens],
                "ensembl_id": [f"ENSG{t:011d}" for t in tokens],
                "token_id": pa.array(tokens, pa.int64()),
            }
        ),
        os.path.join(root, "metadata", "gene_metadata.parquet"),
    )
    drugs = ["DMSO_TF", "Drug_A", "Drug_B"]
    samples = {"smp_1": ("DMSO_TF", 0.0), "smp_2": ("Drug_A", 0.5), "smp_3": ("Drug_A", 5.0), "smp_4": ("Drug_B", 1.0)}
    pq.write_table(
        pa.table(
            {
                "sample": list(samples),
                "drug": [d for d, _ in samples.values()],
                "drugname_drugconc": [f"[('{d}', {c}, 'uM')]" for d, c in samples.values()],
                "concentration": [c for _, c in samples.values()],
                "plate": ["plate1", "plate1", "plate2", "plate2"],
            }
        ),
        os.path.join(root, "metadata", "sample_metadata.parquet"),
    )
    pq.write_table(
        pa.table(
            {
                "drug": drugs,
                "targets": ["", "EGFR", "HDAC1"],
                "moa-broad": ["unclear", "inhibitor", "inhibitor"],
                "moa-fine": ["unclear", "EGFR inhibitor", "HDAC inhibitor"],
                "canonical_smiles": ["CS(C)=O", "C1=CC=CC=C1", "CCO"],
                "pubchem_cid": ["679", "1", "2"],
            }
        ),
        os.path.join(root, "metadata", "drug_metadata.parquet"),
    )
    pq.write_table(
        pa.table(
            {
                "cell_name": ["A549", "HT-29"],
                "Cell_ID_Cellosaur": ["CVCL_0023", "CVCL_0320"],
                "Organ": ["Lung", "Bowel"],
            }
        ),
        os.path.join(root, "metadata", "cell_line_metadata.parquet"),
    )
    # Cell i (global index over shards): sample = smp_{1 + i % 4}; cell line = i // 4 % 2; plate from the
    # sample; genes = tokens t with (i + t) % 3 != 0; expression of t = 1 + (i * t) % 4.
    sample_ids = list(samples)
    lines = ["CVCL_0023", "CVCL_0320"]
    plates = {"smp_1": "plate1", "smp_2": "plate1", "smp_3": "plate2", "smp_4": "plate2"}
    schema = pa.schema(
        [
            ("genes", pa.list_(pa.int64())),
            ("expressions", pa.list_(pa.float32())),
            ("drug", pa.string()),
            ("sample", pa.string()),
            ("BARCODE_SUB_LIB_ID", pa.string()),
            ("cell_line_id", pa.string()),
            ("moa-fine", pa.string()),
            ("canonical_smiles", pa.string()),
            ("pubchem_cid", pa.string()),
            ("plate", pa.string()),
        ]
    )
    i = 0
    for shard, n in enumerate([37, 27]):
        cols = {f.name: [] for f in schema}
        for _ in range(n):
            s = sample_ids[i % 4]
            # Both plates need DMSO for every cell line: put some controls on plate2 as well.
            plate = plates[s] if s != "smp_1" or i % 8 < 4 else "plate2"
            d = samples[s][0]
            g = [t for t in tokens if (i + t) % 3 != 0]
            cols["genes"].append([1] + g)
            cols["expressions"].append([-2.0] + [float(1 + (i * t) % 4) for t in g])
            cols["drug"].append(d)
            cols["sample"].append(s)
            cols["BARCODE_SUB_LIB_ID"].append(f"{i:02d}_001_{shard:03d}-lib_1105")
            cols["cell_line_id"].append(lines[(i // 4) % 2])
            cols["moa-fine"].append("unclear")
            cols["canonical_smiles"].append("CS(C)=O")
            cols["pubchem_cid"].append("679")
            cols["plate"].append(plate)
            i += 1
        pq.write_table(
            pa.table(cols, schema=schema),
            os.path.join(root, "data", f"train-{shard:05d}-of-00002.parquet"),
            row_group_size=16,
        )


def main():
    os.makedirs(OUT, exist_ok=True)
    genes_a = [f"G{i}" for i in range(12)]
    genes_b = [f"G{i}" for i in range(3, 15)]  # overlaps G3..G11 with tiny_a
    h5ad(os.path.join(OUT, "tiny_a.h5ad"), 40, genes_a, 1, "a")
    h5ad(os.path.join(OUT, "tiny_b.h5ad"), 30, genes_b, 2, "b", hvg=True)
    tahoe(os.path.join(OUT, "tahoe"))


if __name__ == "__main__":
    main()
