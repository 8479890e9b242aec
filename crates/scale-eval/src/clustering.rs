//! `clustering_agreement` as cell-eval 0.8.2 computes it (`metrics/_anndata.py`,
//! `ClusteringAgreement` with its defaults), step for step:
//!
//! 1. Centroids: float64 mean of X per perturbation (control dropped), rows in sorted label order.
//! 2. `sc.pp.neighbors(n_neighbors=min(15, n-1), use_rep="X")` (scanpy 1.11.5): no PCA; below
//!    8192 observations scanpy takes sklearn's brute-force `KNeighborsTransformer` (euclidean),
//!    keeps `k = n_neighbors` columns *including the point itself*, and builds umap-learn 0.5's
//!    `fuzzy_simplicial_set` connectivities (float32, fuzzy union).
//! 3. `sc.tl.leiden(flavor="igraph", n_iterations=2, random_state=0)`: python-igraph 1.0
//!    `community_leiden(objective_function="modularity", weights, resolution, beta=0.01)`, i.e. the
//!    C core's `igraph_community_leiden` with vertex weights = strength and resolution divided by
//!    the total strength, fed by numpy's `RandomState(0)` through scanpy's igraph RNG bridge.
//!    Real at resolution 1.0; pred at 0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0 (one graph per side).
//! 4. sklearn's `adjusted_mutual_info_score` (arithmetic mean, exact expected MI) of real vs each
//!    pred partition; the result is the best, floored at 0.
//!
//! Leiden is ported from igraph's `src/community/leiden.c` (1.0.0) operation for operation, with
//! igraph's edge and incidence order and the same random stream, so the partitions are the same
//! as cell-eval's whenever the graph weights are. The weights come out bit-identical too: the
//! centroids are, the distances agree with sklearn's to ~1e-13 before their float32 cast, and the
//! umap arithmetic (float64 bandwidth search, float32 `expf` strengths) is replayed.
//!
//! Known gaps (all outside the usual inputs): from 8192 perturbations on scanpy switches to
//! pynndescent's approximate neighbours (we stay exact); exact distance ties between *some*
//! centroids (duplicated predictions) are broken by sklearn's BLAS rounding noise, which cannot be
//! replayed (a prediction constant over all perturbations is replayed); with more than 256
//! perturbations sklearn's heap layout for such ties also depends on its thread count.

use rayon::prelude::*;

/// Leiden resolution of the real partition.
pub const REAL_RESOLUTION: f64 = 1.0;
/// Leiden resolutions swept on the predicted side.
pub const PRED_RESOLUTIONS: [f64; 7] = [0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0];
/// `ClusteringAgreement(n_neighbors=15)`.
pub const N_NEIGHBORS: usize = 15;
/// python-igraph's `community_leiden` defaults (beta) and scanpy's call (n_iterations, seed).
const LEIDEN_BETA: f64 = 0.01;
const LEIDEN_ITERATIONS: usize = 2;
const LEIDEN_SEED: u32 = 0;

/// The metric from row-major `n x g` centroid matrices (same perturbation order on both sides).
/// `None` where cell-eval's metric raises (fewer than 3 perturbations: with `n_neighbors = 1`
/// scanpy fails building the distance matrix, with 0 sklearn rejects it), so the column is left
/// out as cell-eval leaves it out.
pub fn clustering_agreement(real: &[f64], pred: &[f64], n: usize) -> Option<f64> {
    if n < 3 || real.len() != pred.len() || real.len() / n * n != real.len() {
        return None;
    }
    let real_graph = Connectivities::from_centroids(real, n);
    let pred_graph = Connectivities::from_centroids(pred, n);
    let real_labels = leiden(&real_graph, REAL_RESOLUTION, LEIDEN_SEED);
    let mut best = 0.0f64;
    for r in PRED_RESOLUTIONS {
        let pred_labels = leiden(&pred_graph, r, LEIDEN_SEED);
        let score = adjusted_mutual_info(&real_labels, &pred_labels);
        // python's max(best, score): NaN never wins
        if score > best {
            best = score;
        }
    }
    Some(best)
}

// ---------------------------------------------------------------------------------------------
// kNN + UMAP connectivities
// ---------------------------------------------------------------------------------------------

/// Exact k nearest neighbours (euclidean), row `i` = `[i, nearest, ...]`, `k` columns.
pub struct Knn {
    pub k: usize,
    pub indices: Vec<usize>,
    pub dists: Vec<f64>,
}

/// scanpy's brute-force kNN for `n_neighbors = k` (scanpy's "shortcut": sklearn
/// `KNeighborsTransformer(algorithm="brute")`, used below 8192 observations): row `i` normally
/// holds `i` then its `k - 1` nearest by ascending distance. The selection replays sklearn's
/// `ArgKmin` (a bounded max-heap fed `j = 0..n` in order, merged into the result heap, then
/// sklearn's introsort) and scanpy's self-column fix-up, so that exact ties (a prediction constant
/// over perturbations, like the mean baseline) pick the same neighbours as cell-eval.
pub fn knn(x: &[f64], n: usize, k: usize) -> Knn {
    let g = x.len() / n.max(1);
    let k = k.min(n);
    // Each pair once (upper triangle). Genes in blocks so that one block of every centroid stays
    // in cache while all pairs use it: one pass over the matrix instead of one per row.
    const BLOCK: usize = 256;
    let mut upper: Vec<Vec<f64>> = (0..n).map(|i| vec![0.0; n - i - 1]).collect();
    for c0 in (0..g).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(g);
        upper.par_iter_mut().enumerate().for_each(|(i, acc)| {
            let xi = &x[i * g + c0..i * g + c1];
            for (a, j) in acc.iter_mut().zip(i + 1..n) {
                *a += sq_dist(xi, &x[j * g + c0..j * g + c1]);
            }
        });
    }
    let sq = |i: usize, j: usize| match i.cmp(&j) {
        std::cmp::Ordering::Less => upper[i][j - i - 1],
        std::cmp::Ordering::Greater => upper[j][i - j - 1],
        std::cmp::Ordering::Equal => 0.0,
    };
    // sklearn asks for n_neighbors + 1 (the query points are the fitted points)
    let kk = (k + 1).min(n);
    let mut rows: Vec<(Vec<f64>, Vec<usize>)> = Vec::with_capacity(n);
    for i in 0..n {
        let (mut tv, mut ti) = (vec![f64::MAX; kk], vec![usize::MAX; kk]);
        for j in 0..n {
            heap_push(&mut tv, &mut ti, sq(i, j), j);
        }
        let (mut v, mut idx) = (vec![f64::MAX; kk], vec![usize::MAX; kk]);
        for (&val, &j) in tv.iter().zip(&ti) {
            heap_push(&mut v, &mut idx, val, j);
        }
        simultaneous_sort(&mut v, &mut idx);
        rows.push((v, idx));
    }
    // scanpy: if no row starts with itself, a self column is prepended; then k columns are kept
    let has_self = rows.iter().enumerate().any(|(i, r)| r.1[0] == i);
    let mut indices = Vec::with_capacity(n * k);
    let mut dists = Vec::with_capacity(n * k);
    for (i, (v, idx)) in rows.iter().enumerate() {
        let mut cols: Vec<(usize, f64)> = Vec::with_capacity(kk + 1);
        if !has_self {
            cols.push((i, 0.0));
        }
        // scanpy zeroes the self distance
        cols.extend(
            idx.iter()
                .zip(v)
                .map(|(&j, &d)| (j, if j == i { 0.0 } else { d.max(0.0).sqrt() })),
        );
        for &(j, d) in cols.iter().take(k) {
            indices.push(j);
            dists.push(d);
        }
    }
    Knn { k, indices, dists }
}

/// sklearn `_heap.heap_push`: bounded max-heap (root = largest kept); equal values are rejected.
fn heap_push(values: &mut [f64], indices: &mut [usize], val: f64, val_idx: usize) {
    let size = values.len();
    if val >= values[0] {
        return;
    }
    let mut cur = 0;
    loop {
        let left = 2 * cur + 1;
        let right = left + 1;
        let swap = if left >= size {
            break;
        } else if right >= size || values[left] >= values[right] {
            if val < values[left] {
                left
            } else {
                break;
            }
        } else if val < values[right] {
            right
        } else {
            break;
        };
        values[cur] = values[swap];
        indices[cur] = indices[swap];
        cur = swap;
    }
    values[cur] = val;
    indices[cur] = val_idx;
}

/// sklearn `_sorting.simultaneous_sort` (introsort, 2-way partition, median of three).
fn simultaneous_sort(values: &mut [f64], indices: &mut [usize]) {
    let n = values.len();
    if n == 0 {
        return;
    }
    let maxd = 2 * (n as f64).log2() as isize;
    introsort(values, indices, maxd);
}

fn introsort(mut values: &mut [f64], mut indices: &mut [usize], mut maxd: isize) {
    while values.len() > 15 {
        let n = values.len();
        if maxd <= 0 {
            heapsort(values, indices);
            return;
        }
        maxd -= 1;
        // inplace_median3: smallest to the front, median (the pivot) to the end
        let p = n / 2;
        let sw = |v: &mut [f64], ix: &mut [usize], a: usize, b: usize| {
            v.swap(a, b);
            ix.swap(a, b);
        };
        if values[0] > values[n - 1] {
            sw(values, indices, 0, n - 1);
        }
        if values[n - 1] > values[p] {
            sw(values, indices, n - 1, p);
            if values[0] > values[n - 1] {
                sw(values, indices, 0, n - 1);
            }
        }
        let pivot = values[n - 1];
        let (mut i, mut j) = (1isize, n as isize - 2);
        loop {
            while i <= j && values[i as usize] < pivot {
                i += 1;
            }
            while i <= j && values[j as usize] > pivot {
                j -= 1;
            }
            if i >= j {
                break;
            }
            sw(values, indices, i as usize, j as usize);
            i += 1;
            j -= 1;
        }
        let pi = i as usize;
        sw(values, indices, pi, n - 1);
        let (lv, rv) = values.split_at_mut(pi);
        let (li, ri) = indices.split_at_mut(pi);
        introsort(lv, li, maxd);
        values = &mut rv[1..];
        indices = &mut ri[1..];
    }
    // insertion sort
    for i in 1..values.len() {
        let (tv, ti) = (values[i], indices[i]);
        let mut j = i;
        while j > 0 && values[j - 1] > tv {
            values[j] = values[j - 1];
            indices[j] = indices[j - 1];
            j -= 1;
        }
        values[j] = tv;
        indices[j] = ti;
    }
}

fn heapsort(values: &mut [f64], indices: &mut [usize]) {
    let n = values.len();
    let sift_down = |v: &mut [f64], ix: &mut [usize], start: usize, end: usize| {
        let mut root = start;
        loop {
            let child = root * 2 + 1;
            let mut maxind = root;
            if child < end && v[maxind] < v[child] {
                maxind = child;
            }
            if child + 1 < end && v[maxind] < v[child + 1] {
                maxind = child + 1;
            }
            if maxind == root {
                break;
            }
            v.swap(root, maxind);
            ix.swap(root, maxind);
            root = maxind;
        }
    };
    let mut start = (n as isize - 2) / 2;
    loop {
        sift_down(values, indices, start.max(0) as usize, n);
        if start <= 0 {
            break;
        }
        start -= 1;
    }
    let mut end = n - 1;
    while end > 0 {
        values.swap(0, end);
        indices.swap(0, end);
        sift_down(values, indices, 0, end);
        end -= 1;
    }
}

/// Squared euclidean distance, eight accumulators so it vectorises.
fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s: f64 = acc.iter().sum();
    for (x, y) in ra.iter().zip(rb) {
        s += (x - y) * (x - y);
    }
    s
}

/// Symmetric sparse connectivity matrix (CSR, columns ascending, no diagonal), float32 as
/// umap-learn and scanpy keep it.
#[derive(Debug, Clone, PartialEq)]
pub struct Connectivities {
    pub n: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<usize>,
    pub data: Vec<f32>,
}

impl Connectivities {
    /// scanpy's `neighbors(n_neighbors=min(15, n-1), use_rep="X")` on centroid rows.
    pub fn from_centroids(x: &[f64], n: usize) -> Connectivities {
        let k = N_NEIGHBORS.min(n.saturating_sub(1));
        umap_connectivities(&knn(x, n, k), n)
    }
}

const SMOOTH_K_TOLERANCE: f64 = 1e-5;
const MIN_K_DIST_SCALE: f64 = 1e-3;

/// umap-learn's `smooth_knn_dist` (local_connectivity 1, bandwidth 1, 64 iterations); returns
/// `(sigmas, rhos)` as float32. Its numba `locals` ask for float32 `psum`/`lo`/`mid`/`hi`, but
/// inside the `prange` body they are inferred float64 (checked bit for bit against umap 0.5.12):
/// only the distances, `rho` and the stored result are float32.
fn smooth_knn_dist(d: &[f32], n: usize, k: usize) -> (Vec<f32>, Vec<f32>) {
    let target = (k as f64).log2();
    // numba's np.mean of a float32 array: float32 running sum, divided in float64
    let mean = |v: &[f32]| -> f64 {
        let mut s = 0.0f32;
        for &x in v {
            s += x;
        }
        s as f64 / v.len().max(1) as f64
    };
    let mean_distances = mean(d);
    let floatmax = f32::MAX as f64;
    let mut sigmas = vec![0f32; n];
    let mut rhos = vec![0f32; n];
    for i in 0..n {
        let row = &d[i * k..(i + 1) * k];
        let (mut lo, mut hi, mut mid) = (0.0f64, floatmax, 1.0f64);
        // local_connectivity = 1: rho is the first non-zero distance
        let rho = row.iter().copied().find(|&x| x > 0.0).unwrap_or(0.0);
        rhos[i] = rho;
        for _ in 0..64 {
            let mut psum = 0.0f64;
            for &dj in &row[1..] {
                let dd = dj - rho;
                if dd > 0.0 {
                    psum += (-(dd as f64 / mid)).exp();
                } else {
                    psum += 1.0;
                }
            }
            if (psum - target).abs() < SMOOTH_K_TOLERANCE {
                break;
            }
            if psum > target {
                hi = mid;
                mid = (lo + hi) / 2.0;
            } else {
                lo = mid;
                if hi >= floatmax {
                    mid *= 2.0;
                } else {
                    mid = (lo + hi) / 2.0;
                }
            }
        }
        let mut result = mid as f32;
        let floor = MIN_K_DIST_SCALE * if rho > 0.0 { mean(row) } else { mean_distances };
        if (result as f64) < floor {
            result = floor as f32;
        }
        sigmas[i] = result;
    }
    (sigmas, rhos)
}

/// umap-learn's `fuzzy_simplicial_set` from precomputed neighbours, as scanpy calls it
/// (`set_op_mix_ratio` 1: fuzzy union `A + A^T - A∘A^T`, float32 arithmetic).
pub fn umap_connectivities(knn: &Knn, n: usize) -> Connectivities {
    let k = knn.k;
    let d32: Vec<f32> = knn.dists.iter().map(|&v| v as f32).collect();
    let (sigmas, rhos) = smooth_knn_dist(&d32, n, k);
    // membership strengths; zeros (self, float32 underflow) are eliminated
    let mut rows: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..k {
            let c = knn.indices[i * k + j];
            let val: f32 = if c == i {
                0.0
            } else if d32[i * k + j] - rhos[i] <= 0.0 || sigmas[i] == 0.0 {
                1.0
            } else {
                // float32 throughout, C expf (numba's float32 np.exp)
                (-((d32[i * k + j] - rhos[i]) / sigmas[i])).exp()
            };
            if val != 0.0 {
                rows[i].push((c, val));
            }
        }
    }
    let mut cols: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
    for (i, r) in rows.iter().enumerate() {
        for &(c, v) in r {
            cols[c].push((i, v));
        }
    }
    let mut indptr = vec![0usize];
    let mut indices = Vec::new();
    let mut data = Vec::new();
    for i in 0..n {
        let mut a = rows[i].clone();
        a.sort_by_key(|e| e.0);
        let mut b = cols[i].clone();
        b.sort_by_key(|e| e.0);
        let (mut p, mut q) = (0, 0);
        while p < a.len() || q < b.len() {
            let ca = a.get(p).map_or(usize::MAX, |e| e.0);
            let cb = b.get(q).map_or(usize::MAX, |e| e.0);
            let (c, v) = if ca == cb {
                let (x, y) = (a[p].1, b[q].1);
                p += 1;
                q += 1;
                (ca, (x + y) - x * y)
            } else if ca < cb {
                p += 1;
                (ca, a[p - 1].1)
            } else {
                q += 1;
                (cb, b[q - 1].1)
            };
            if v != 0.0 {
                indices.push(c);
                data.push(v);
            }
        }
        indptr.push(indices.len());
    }
    Connectivities {
        n,
        indptr,
        indices,
        data,
    }
}

// ---------------------------------------------------------------------------------------------
// Random numbers: numpy RandomState through scanpy's `_RNGIgraph` and python-igraph's bridge
// ---------------------------------------------------------------------------------------------

/// MT19937 seeded like numpy's legacy `RandomState(seed)` (`init_genrand`).
struct Mt19937 {
    mt: [u32; 624],
    idx: usize,
}

impl Mt19937 {
    fn new(seed: u32) -> Self {
        let mut mt = [0u32; 624];
        mt[0] = seed;
        for i in 1..624 {
            mt[i] = 1812433253u32
                .wrapping_mul(mt[i - 1] ^ (mt[i - 1] >> 30))
                .wrapping_add(i as u32);
        }
        Mt19937 { mt, idx: 624 }
    }

    fn next_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        const MATRIX_A: u32 = 0x9908_b0df;
        if self.idx >= 624 {
            for i in 0..624 {
                let y = (self.mt[i] & UPPER) | (self.mt[(i + 1) % 624] & LOWER);
                let mag = if y & 1 == 1 { MATRIX_A } else { 0 };
                self.mt[i] = self.mt[(i + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.idx = 0;
        }
        let mut y = self.mt[self.idx];
        self.idx += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^= y >> 18;
        y
    }
}

/// igraph's default RNG as scanpy installs it (`set_igraph_random_state(0)`): igraph asks for 32
/// bits via `getrandbits(32)` = `RandomState.tomaxint() & 0xffffffff` and for reals via
/// `RandomState.random()`; integer ranges and shuffles are igraph's own (Lemire, Fisher-Yates).
pub(crate) struct IgraphRng(Mt19937);

impl IgraphRng {
    pub(crate) fn new(seed: u32) -> Self {
        IgraphRng(Mt19937::new(seed))
    }

    /// `tomaxint()` is `next_uint64 >> 1` (high word drawn first), masked to 32 bits.
    fn bits32(&mut self) -> u32 {
        let hi = self.0.next_u32() as u64;
        let lo = self.0.next_u32() as u64;
        (((hi << 32) | lo) >> 1) as u32
    }

    /// numpy `random_sample`: 53-bit double from two draws.
    fn unif01(&mut self) -> f64 {
        let a = (self.0.next_u32() >> 5) as f64;
        let b = (self.0.next_u32() >> 6) as f64;
        (a * 67108864.0 + b) / 9007199254740992.0
    }

    /// `igraph_rng_get_integer(l, h)` (inclusive), 32-bit Lemire debiasing.
    fn integer(&mut self, l: usize, h: usize) -> usize {
        if h == l {
            return l;
        }
        let range = (h - l + 1) as u32;
        let t = range.wrapping_neg() % range;
        loop {
            let m = self.bits32() as u64 * range as u64;
            if (m as u32) >= t {
                return l + (m >> 32) as usize;
            }
        }
    }

    /// `igraph_rng_get_unif(l, h)`: never returns `h` unless `l == h` (then draws nothing).
    fn unif(&mut self, l: f64, h: f64) -> f64 {
        if l == h {
            return h;
        }
        loop {
            let r = self.unif01() * (h - l) + l;
            if r != h {
                return r;
            }
        }
    }

    /// `igraph_vector_int_shuffle`.
    fn shuffle(&mut self, v: &mut [usize]) {
        let mut n = v.len();
        while n > 1 {
            let k = self.integer(0, n - 1);
            n -= 1;
            v.swap(n, k);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Leiden (igraph 1.0 `igraph_community_leiden`, undirected)
// ---------------------------------------------------------------------------------------------

/// An undirected igraph graph: edge `e` joins `from[e] >= to[e]` (igraph stores the larger id as
/// `from`), and `inc[v]` lists v's edges in `igraph_incident(IGRAPH_ALL)` order: edges to smaller
/// ids sorted by that id, then edges to larger ids sorted by that id, ties by edge id.
struct Graph {
    n: usize,
    from: Vec<usize>,
    to: Vec<usize>,
    inc: Vec<Vec<usize>>,
}

impl Graph {
    fn new(n: usize, edges: &[(usize, usize)]) -> Graph {
        let from: Vec<usize> = edges.iter().map(|&(a, b)| a.max(b)).collect();
        let to: Vec<usize> = edges.iter().map(|&(a, b)| a.min(b)).collect();
        let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut inn: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in 0..edges.len() {
            out[from[e]].push(e);
            inn[to[e]].push(e);
        }
        let inc = out
            .into_iter()
            .zip(inn)
            .map(|(mut o, mut i)| {
                // stable: equal endpoints keep edge-id order
                o.sort_by_key(|&e| to[e]);
                i.sort_by_key(|&e| from[e]);
                o.extend(i);
                o
            })
            .collect();
        Graph { n, from, to, inc }
    }

    fn other(&self, e: usize, v: usize) -> usize {
        if self.to[e] == v {
            self.from[e]
        } else {
            self.to[e]
        }
    }
}

/// `sc.tl.leiden(flavor="igraph", n_iterations=2, random_state=seed)` on `conn`: the membership.
pub fn leiden(conn: &Connectivities, resolution: f64, seed: u32) -> Vec<usize> {
    let n = conn.n;
    // scanpy's get_igraph_from_adjacency: one edge per stored entry (both directions), CSR order
    let mut edges = Vec::with_capacity(conn.data.len());
    let mut w = Vec::with_capacity(conn.data.len());
    for i in 0..n {
        for p in conn.indptr[i]..conn.indptr[i + 1] {
            edges.push((i, conn.indices[p]));
            w.push(conn.data[p] as f64);
        }
    }
    let g = Graph::new(n, &edges);
    // python-igraph: node weights = igraph_strength(ALL, NO_LOOPS), resolution /= their sum
    let mut vw = vec![0.0f64; n];
    for e in 0..edges.len() {
        if g.from[e] != g.to[e] {
            vw[g.from[e]] += w[e];
        }
    }
    for e in 0..edges.len() {
        if g.from[e] != g.to[e] {
            vw[g.to[e]] += w[e];
        }
    }
    let mut total = 0.0;
    for &x in &vw {
        total += x;
    }
    let res = resolution / total;
    let mut rng = IgraphRng::new(seed);
    let mut membership: Vec<usize> = (0..n).collect();
    for _ in 0..LEIDEN_ITERATIONS {
        community_leiden(&g, &w, &vw, res, LEIDEN_BETA, &mut membership, &mut rng);
    }
    membership
}

/// `igraph_reindex_membership`: clusters renumbered by first appearance; returns their count.
fn reindex(m: &mut [usize]) -> usize {
    let mut new = vec![0usize; m.len()];
    let mut nb = 1;
    for &c in m.iter() {
        if new[c] == 0 {
            new[c] = nb;
            nb += 1;
        }
    }
    for c in m.iter_mut() {
        *c = new[*c] - 1;
    }
    nb - 1
}

/// `leiden_get_clusters`: members of each cluster, ascending.
fn get_clusters(m: &[usize], nb: usize) -> Vec<Vec<usize>> {
    let mut cl = vec![Vec::new(); nb];
    for (v, &c) in m.iter().enumerate() {
        cl[c].push(v);
    }
    cl
}

/// One Leiden iteration (`community_leiden` in leiden.c): local moving, refinement, aggregation
/// until every cluster is a single aggregate vertex. Updates `membership`.
fn community_leiden(
    g0: &Graph,
    w0: &[f64],
    vw0: &[f64],
    res: f64,
    beta: f64,
    membership: &mut [usize],
    rng: &mut IgraphRng,
) {
    let n = g0.n;
    reindex(membership);
    let mut aggregate_vertex: Vec<usize> = (0..n).collect();
    let mut i_mem: Vec<usize> = membership.to_vec();
    let mut refined: Vec<usize> = Vec::new();
    let mut agg: Option<(Graph, Vec<f64>, Vec<f64>)> = None;
    let mut level = 0;
    loop {
        let (g, w, vw): (&Graph, &[f64], &[f64]) = match &agg {
            Some((g, w, vw)) => (g, w, vw),
            None => (g0, w0, vw0),
        };
        let nb = fastmove(g, w, vw, res, &mut i_mem, rng);
        if level == 0 {
            membership.copy_from_slice(&i_mem);
        }
        if nb >= g.n {
            break;
        }
        if level > 0 {
            for i in 0..n {
                membership[i] = i_mem[aggregate_vertex[i]];
            }
        }
        let clusters = get_clusters(&i_mem, nb);
        refined.resize(g.n, 0);
        let mut nb_refined = 0;
        for (c, cluster) in clusters.iter().enumerate() {
            merge_vertices(
                g,
                w,
                vw,
                cluster,
                &i_mem,
                c,
                res,
                beta,
                &mut nb_refined,
                &mut refined,
                rng,
            );
        }
        if nb_refined >= g.n {
            refined.copy_from_slice(&i_mem);
            nb_refined = nb;
        }
        for a in aggregate_vertex.iter_mut() {
            *a = refined[*a];
        }
        let (ng, nw, nvw, nm) = aggregate(g, w, vw, &i_mem, &refined, nb_refined);
        i_mem = nm;
        agg = Some((ng, nw, nvw));
        level += 1;
    }
}

/// `leiden_fastmove_vertices`: queue-based local moving, strictly improving moves only.
fn fastmove(g: &Graph, w: &[f64], vw: &[f64], res: f64, mem: &mut [usize], rng: &mut IgraphRng) -> usize {
    let n = g.n;
    let mut stable = vec![false; n];
    let mut order: Vec<usize> = (0..n).collect();
    rng.shuffle(&mut order);
    let mut queue: std::collections::VecDeque<usize> = order.into_iter().collect();
    let mut cw = vec![0.0f64; n];
    let mut nbv = vec![0usize; n];
    for i in 0..n {
        cw[mem[i]] += vw[i];
        nbv[mem[i]] += 1;
    }
    let mut empty: Vec<usize> = (0..n).filter(|&c| nbv[c] == 0).collect();
    let mut ewpc = vec![0.0f64; n];
    let mut added = vec![false; n];
    let mut nc = vec![0usize; n];
    while let Some(v) = queue.pop_front() {
        let cur = mem[v];
        cw[cur] -= vw[v];
        nbv[cur] -= 1;
        if nbv[cur] == 0 {
            empty.push(cur);
        }
        let c0 = *empty.last().expect("an empty cluster exists");
        nc[0] = c0;
        added[c0] = true;
        let mut nn = 1;
        for &e in &g.inc[v] {
            let u = g.other(e, v);
            if u != v {
                let c = mem[u];
                if !added[c] {
                    added[c] = true;
                    nc[nn] = c;
                    nn += 1;
                }
                ewpc[c] += w[e];
            }
        }
        let mut best = cur;
        let mut max_diff = ewpc[cur] - vw[v] * cw[cur] * res;
        for &c in &nc[..nn] {
            let diff = ewpc[c] - vw[v] * cw[c] * res;
            if diff > max_diff {
                best = c;
                max_diff = diff;
            }
            ewpc[c] = 0.0;
            added[c] = false;
        }
        cw[best] += vw[v];
        nbv[best] += 1;
        if empty.last() == Some(&best) {
            empty.pop();
        }
        stable[v] = true;
        if best != cur {
            mem[v] = best;
            for &e in &g.inc[v] {
                let u = g.other(e, v);
                if stable[u] && mem[u] != best {
                    queue.push_back(u);
                    stable[u] = false;
                }
            }
        }
    }
    reindex(mem)
}

/// `igraph_vector_binsearch_slice`: an index holding `what`, else the insertion point.
fn binsearch(v: &[f64], what: f64) -> usize {
    let (mut left, mut right) = (0isize, v.len() as isize - 1);
    while left <= right {
        let mid = left + ((right - left) >> 1);
        let x = v[mid as usize];
        if x > what {
            right = mid - 1;
        } else if x < what {
            left = mid + 1;
        } else {
            return mid as usize;
        }
    }
    left as usize
}

/// `leiden_merge_vertices`: refinement of one cluster (`subset`, = `cluster` in `mem`), starting
/// from singletons; a singleton joins a well-connected sub-cluster drawn with probability
/// `~ exp(diff / beta)`. Refined ids continue from `nb_refined`.
#[allow(clippy::too_many_arguments)]
fn merge_vertices(
    g: &Graph,
    w: &[f64],
    vw: &[f64],
    subset: &[usize],
    mem: &[usize],
    cluster: usize,
    res: f64,
    beta: f64,
    nb_refined: &mut usize,
    refined: &mut [usize],
    rng: &mut IgraphRng,
) {
    let n = subset.len();
    let mut cw = vec![0.0f64; n];
    let mut ext = vec![0.0f64; n];
    let mut total = 0.0f64;
    for (i, &v) in subset.iter().enumerate() {
        refined[v] = i;
        cw[i] += vw[v];
        total += vw[v];
        for &e in &g.inc[v] {
            let u = g.other(e, v);
            if u != v && mem[u] == cluster {
                ext[i] += w[e];
            }
        }
    }
    let mut order = subset.to_vec();
    rng.shuffle(&mut order);
    let mut non_singleton = vec![false; n];
    let mut ewpc = vec![0.0f64; n];
    let mut added = vec![false; n];
    let mut nc = vec![0usize; n];
    let mut cum = vec![0.0f64; n];
    for &v in &order {
        let cur = refined[v];
        let vwp = cw[cur] * (total - cw[cur]);
        if non_singleton[cur] || ext[cur] < vwp * res {
            continue;
        }
        cw[cur] = 0.0;
        nc[0] = cur;
        added[cur] = true;
        let mut nn = 1;
        for &e in &g.inc[v] {
            let u = g.other(e, v);
            if u != v && mem[u] == cluster {
                let c = refined[u];
                if !added[c] {
                    added[c] = true;
                    nc[nn] = c;
                    nn += 1;
                }
                ewpc[c] += w[e];
            }
        }
        let mut best = cur;
        let mut max_diff = 0.0f64;
        let mut tot = 0.0f64;
        for j in 0..nn {
            let c = nc[j];
            let vwp = cw[c] * (total - cw[c]);
            if ext[c] >= vwp * res {
                let diff = ewpc[c] - vw[v] * cw[c] * res;
                if diff > max_diff {
                    best = c;
                    max_diff = diff;
                }
                if diff >= 0.0 {
                    tot += (diff / beta).exp();
                }
            }
            cum[j] = tot;
            ewpc[c] = 0.0;
            added[c] = false;
        }
        let chosen = if tot < f64::INFINITY {
            let r = rng.unif(0.0, tot);
            nc[binsearch(&cum[..nn], r).min(nn - 1)]
        } else {
            best
        };
        cw[chosen] += vw[v];
        for &e in &g.inc[v] {
            let u = g.other(e, v);
            if mem[u] == cluster {
                if refined[u] == chosen {
                    ext[chosen] -= w[e];
                } else {
                    ext[chosen] += w[e];
                }
            }
        }
        if chosen != cur {
            refined[v] = chosen;
            non_singleton[chosen] = true;
        }
    }
    // leiden_clean_refined_membership: number this cluster's parts from nb_refined on
    let mut new = vec![0usize; n];
    *nb_refined += 1;
    for &v in subset {
        let c = refined[v];
        if new[c] == 0 {
            new[c] = *nb_refined;
            *nb_refined += 1;
        }
    }
    for &v in subset {
        refined[v] = new[refined[v]] - 1;
    }
    *nb_refined -= 1;
}

/// `leiden_aggregate`: one vertex per refined cluster, one edge per pair of adjacent refined
/// clusters (no self-loops), membership from the unrefined partition.
fn aggregate(
    g: &Graph,
    w: &[f64],
    vw: &[f64],
    mem: &[usize],
    refined: &[usize],
    nb_refined: usize,
) -> (Graph, Vec<f64>, Vec<f64>, Vec<usize>) {
    let clusters = get_clusters(refined, nb_refined);
    let mut edges = Vec::new();
    let mut ew = Vec::new();
    let mut avw = vec![0.0f64; nb_refined];
    let mut am = vec![0usize; nb_refined];
    let mut to_c = vec![0.0f64; nb_refined];
    let mut added = vec![false; nb_refined];
    let mut nc = Vec::new();
    for (c, members) in clusters.iter().enumerate() {
        nc.clear();
        let mut last = 0;
        for &v in members {
            last = v;
            for &e in &g.inc[v] {
                let c2 = refined[g.other(e, v)];
                if c2 > c {
                    if !added[c2] {
                        added[c2] = true;
                        nc.push(c2);
                    }
                    to_c[c2] += w[e];
                }
            }
            avw[c] += vw[v];
        }
        for &c2 in &nc {
            edges.push((c, c2));
            ew.push(to_c[c2]);
            to_c[c2] = 0.0;
            added[c2] = false;
        }
        am[c] = mem[last];
    }
    (Graph::new(nb_refined, &edges), ew, avw, am)
}

// ---------------------------------------------------------------------------------------------
// Adjusted mutual information (sklearn 1.9 `adjusted_mutual_info_score`, arithmetic average)
// ---------------------------------------------------------------------------------------------

/// numpy's pairwise summation (`np.sum` of a contiguous float64 array).
fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        let mut s = 0.0;
        for &x in a {
            s += x;
        }
        s
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let mut i = 8;
        while i < n - n % 8 {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while i < n {
            s += a[i];
            i += 1;
        }
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        np_sum(&a[..n2]) + np_sum(&a[n2..])
    }
}

/// Label codes in the order `np.unique` sorts the string labels scanpy produces ("10" < "2").
fn str_codes(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut uniq: Vec<usize> = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    uniq.sort_by_key(|u| u.to_string());
    let max = uniq.iter().copied().max().unwrap_or(0);
    let mut code = vec![0usize; max + 1];
    for (i, &u) in uniq.iter().enumerate() {
        code[u] = i;
    }
    (labels.iter().map(|&l| code[l]).collect(), uniq.len())
}

fn entropy(codes: &[usize], k: usize) -> f64 {
    if codes.is_empty() {
        return 1.0;
    }
    let mut counts = vec![0f64; k];
    for &c in codes {
        counts[c] += 1.0;
    }
    if k == 1 {
        return 0.0;
    }
    let sum = np_sum(&counts);
    let terms: Vec<f64> = counts.iter().map(|&p| (p / sum) * (p.ln() - sum.ln())).collect();
    -np_sum(&terms)
}

fn gammaln(x: f64) -> f64 {
    libm::lgamma(x)
}

/// sklearn's `adjusted_mutual_info_score(a, b)` (arithmetic normalisation), with its summation
/// orders; labels are cluster ids.
pub fn adjusted_mutual_info(a: &[usize], b: &[usize]) -> f64 {
    assert_eq!(a.len(), b.len());
    let (ca, ka) = str_codes(a);
    let (cb, kb) = str_codes(b);
    if (ka == kb && ka == 1) || (ka == 0 && kb == 0) {
        return 1.0;
    }
    if ka == 1 || kb == 1 {
        return 0.0;
    }
    let n = a.len();
    let nf = n as f64;
    // sparse contingency, CSR order (row = class of a, column = class of b)
    let mut cont: std::collections::BTreeMap<(usize, usize), i64> = std::collections::BTreeMap::new();
    for (&x, &y) in ca.iter().zip(&cb) {
        *cont.entry((x, y)).or_insert(0) += 1;
    }
    let mut pi = vec![0i64; ka];
    let mut pj = vec![0i64; kb];
    for (&(x, y), &v) in &cont {
        pi[x] += v;
        pj[y] += v;
    }
    // mutual_info_score
    let (spi, spj): (i64, i64) = (pi.iter().sum(), pj.iter().sum());
    let terms: Vec<f64> = cont
        .iter()
        .map(|(&(x, y), &v)| {
            let nm = v as f64 / nf;
            let outer = pi[x] * pj[y];
            let log_outer = -(outer as f64).ln() + (spi as f64).ln() + (spj as f64).ln();
            let t = nm * ((v as f64).ln() - nf.ln()) + nm * log_outer;
            if t.abs() < f64::EPSILON {
                0.0
            } else {
                t
            }
        })
        .collect();
    let mi = np_sum(&terms).max(0.0);
    let emi = expected_mutual_information(&pi, &pj, n as i64);
    let (h_a, h_b) = (entropy(&ca, ka), entropy(&cb, kb));
    let normalizer = (h_a + h_b) / 2.0;
    let mut den = normalizer - emi;
    den = if den < 0.0 {
        den.min(-f64::EPSILON)
    } else {
        den.max(f64::EPSILON)
    };
    let mut num = mi - emi;
    num = if num < 0.0 {
        num.min(-f64::EPSILON)
    } else {
        num.max(f64::EPSILON)
    };
    num / den
}

/// sklearn's `expected_mutual_information` (exact hypergeometric expectation), same loop order.
fn expected_mutual_information(a: &[i64], b: &[i64], n: i64) -> f64 {
    if a.len() == 1 || b.len() == 1 {
        return 0.0;
    }
    let nf = n as f64;
    let max = (*a.iter().max().unwrap_or(&0)).max(*b.iter().max().unwrap_or(&0)) as usize;
    let mut nijs: Vec<f64> = (0..=max).map(|x| x as f64).collect();
    nijs[0] = 1.0;
    let term1: Vec<f64> = nijs.iter().map(|&x| x / nf).collect();
    let log_a: Vec<f64> = a.iter().map(|&x| (x as f64).ln()).collect();
    let log_b: Vec<f64> = b.iter().map(|&x| (x as f64).ln()).collect();
    let log_nnij: Vec<f64> = nijs.iter().map(|&x| nf.ln() + x.ln()).collect();
    let gln_a: Vec<f64> = a.iter().map(|&x| gammaln(x as f64 + 1.0)).collect();
    let gln_b: Vec<f64> = b.iter().map(|&x| gammaln(x as f64 + 1.0)).collect();
    let gln_na: Vec<f64> = a.iter().map(|&x| gammaln((n - x) as f64 + 1.0)).collect();
    let gln_nb: Vec<f64> = b.iter().map(|&x| gammaln((n - x) as f64 + 1.0)).collect();
    let gln_n1 = gammaln(nf + 1.0);
    let gln_nnij: Vec<f64> = nijs.iter().map(|&x| gammaln(x + 1.0) + gln_n1).collect();
    let mut emi = 0.0f64;
    for i in 0..a.len() {
        for j in 0..b.len() {
            let start = 1.max(a[i] - n + b[j]);
            let end = a[i].min(b[j]) + 1;
            for nij in start..end {
                let k = nij as usize;
                let term2 = log_nnij[k] - log_a[i] - log_b[j];
                let gln = gln_a[i] + gln_b[j] + gln_na[i] + gln_nb[j]
                    - gln_nnij[k]
                    - libm::lgamma((a[i] - nij + 1) as f64)
                    - libm::lgamma((b[j] - nij + 1) as f64)
                    - libm::lgamma((n - a[i] - b[j] + nij + 1) as f64);
                emi += term1[k] * term2 * gln.exp();
            }
        }
    }
    emi
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_matches_numpy_random_state_via_scanpy_bridge() {
        // python: from scanpy._utils.random import _RNGIgraph; r = _RNGIgraph(0)
        //         [r.getrandbits(32) for _ in range(3)], r.random()
        let mut r = IgraphRng::new(0);
        assert_eq!(
            [r.bits32(), r.bits32(), r.bits32()],
            [1273124119, 3960530528, 3989907837]
        );
        assert_eq!(r.unif01(), 0.5448831829968969);
        // np.random.RandomState(0).randint(0, 2**32, size=4, dtype=np.uint32)
        let mut m = Mt19937::new(0);
        let first: Vec<u32> = (0..4).map(|_| m.next_u32()).collect();
        assert_eq!(first, [2357136044, 2546248239, 3071714933, 3626093760]);
    }

    /// Symmetric CSR from undirected weighted edges (each stored in both directions).
    fn conn_from_edges(n: usize, edges: &[(usize, usize)], w: &[f32]) -> Connectivities {
        let mut rows: Vec<Vec<(usize, f32)>> = vec![Vec::new(); n];
        for (&(a, b), &x) in edges.iter().zip(w) {
            rows[a].push((b, x));
            rows[b].push((a, x));
        }
        let mut c = Connectivities {
            n,
            indptr: vec![0],
            indices: Vec::new(),
            data: Vec::new(),
        };
        for mut r in rows {
            r.sort_by_key(|e| e.0);
            for (j, x) in r {
                c.indices.push(j);
                c.data.push(x);
            }
            c.indptr.push(c.indices.len());
        }
        c
    }

    #[rustfmt::skip]
    const ZACHARY: [(usize, usize); 78] = [
        (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (0, 8), (0, 10), (0, 11), (0, 12),
        (0, 13), (0, 17), (0, 19), (0, 21), (0, 31), (1, 2), (1, 3), (1, 7), (1, 13), (1, 17), (1, 19),
        (1, 21), (1, 30), (2, 3), (2, 7), (2, 27), (2, 28), (2, 32), (2, 9), (2, 8), (2, 13), (3, 7),
        (3, 12), (3, 13), (4, 6), (4, 10), (5, 6), (5, 10), (5, 16), (6, 16), (8, 30), (8, 32), (8, 33),
        (9, 33), (13, 33), (14, 32), (14, 33), (15, 32), (15, 33), (18, 32), (18, 33), (19, 33), (20, 32), (20, 33),
        (22, 32), (22, 33), (23, 25), (23, 27), (23, 32), (23, 33), (23, 29), (24, 25), (24, 27), (24, 31), (25, 31),
        (26, 29), (26, 33), (27, 33), (28, 31), (28, 33), (29, 32), (29, 33), (30, 32), (30, 33), (31, 32), (31, 33),
        (32, 33),
    ];

    /// igraph's Leiden through scanpy, membership for membership. Reference (scanpy 1.11.5,
    /// python-igraph 1.0.0), with E = igraph.Graph.Famous("Zachary").get_edgelist() and
    /// w = np.random.default_rng(5).uniform(0.1, 1.0, size=78).astype(np.float32):
    ///   A = scipy.sparse.coo_matrix((np.r_[w, w], (np.r_[E[:,0], E[:,1]], np.r_[E[:,1], E[:,0]]))).tocsr()
    ///   sc.tl.leiden(adata, resolution=r, adjacency=A, flavor="igraph", n_iterations=2)
    #[test]
    fn leiden_reproduces_igraph_on_zachary() {
        let ones = vec![1.0f32; ZACHARY.len()];
        let unweighted = conn_from_edges(34, &ZACHARY, &ones);
        #[rustfmt::skip]
        let expect_unweighted: [(f64, [usize; 34]); 3] = [
            (0.5, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]),
            (1.0, [0, 0, 0, 0, 1, 1, 1, 0, 2, 2, 1, 0, 0, 0, 2, 2, 1, 0, 2, 0, 2, 0, 2, 3, 3, 3, 2, 3, 3, 2, 2, 3, 2, 2]),
            (2.0, [0, 1, 2, 1, 3, 3, 3, 1, 4, 2, 3, 0, 0, 1, 5, 5, 3, 0, 5, 0, 5, 0, 5, 6, 6, 6, 7, 6, 2, 7, 4, 6, 5, 5]),
        ];
        for (r, m) in expect_unweighted {
            assert_eq!(leiden(&unweighted, r, 0), m, "unweighted, resolution {r}");
        }
        #[rustfmt::skip]
        #[allow(clippy::excessive_precision)] // float32 weights as numpy printed them
        let w: [f32; 78] = [
            0.8245026469230652, 0.8271467089653015, 0.5637930035591125, 0.35722124576568604,
            0.14853763580322266, 0.445032000541687, 0.4676258862018585, 0.14074768126010895,
            0.14388194680213928, 0.9992585182189941, 0.6871321797370911, 0.3110591769218445,
            0.49145278334617615, 0.9767675995826721, 0.9079098701477051, 0.8598079085350037,
            0.4531641900539398, 0.5437207221984863, 0.7090204358100891, 0.1547224372625351,
            0.6000365018844604, 0.34430643916130066, 0.8916860818862915, 0.15779300034046173,
            0.7112633585929871, 0.8830796480178833, 0.3045866787433624, 0.9059033989906311,
            0.8849759101867676, 0.11666549742221832, 0.7367460131645203, 0.10107971727848053,
            0.5530275702476501, 0.4930003583431244, 0.282927542924881, 0.392448365688324,
            0.8255937695503235, 0.38480687141418457, 0.2341347187757492, 0.7286607623100281,
            0.503689706325531, 0.8190455436706543, 0.31196480989456177, 0.3878061771392822,
            0.8198915719985962, 0.5563613176345825, 0.5557464957237244, 0.31257471442222595,
            0.113082654774189, 0.9399015307426453, 0.1772432178258896, 0.8604341149330139,
            0.43109267950057983, 0.9559206962585449, 0.45948272943496704, 0.942797839641571,
            0.6005437970161438, 0.31612178683280945, 0.7672795057296753, 0.7069507241249084,
            0.7157846689224243, 0.5174419283866882, 0.29969969391822815, 0.6768461465835571,
            0.19638054072856903, 0.7230000495910645, 0.6718481183052063, 0.43886128067970276,
            0.8186709880828857, 0.27462291717529297, 0.45141303539276123, 0.8181405067443848,
            0.4424278438091278, 0.7419320940971375, 0.6512660384178162, 0.9469009041786194,
            0.9925090670585632, 0.7513086199760437,
        ];
        let weighted = conn_from_edges(34, &ZACHARY, &w);
        #[rustfmt::skip]
        let expect_weighted: [(f64, [usize; 34]); 3] = [
            (0.5, [0, 0, 0, 0, 1, 1, 1, 0, 2, 2, 1, 0, 0, 0, 2, 2, 1, 0, 2, 0, 2, 0, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2]),
            (1.0, [0, 0, 0, 0, 1, 1, 1, 0, 2, 3, 1, 0, 0, 0, 3, 3, 1, 0, 3, 0, 3, 0, 3, 3, 3, 3, 3, 3, 0, 3, 2, 3, 3, 3]),
            (2.0, [0, 0, 1, 1, 2, 2, 2, 1, 3, 4, 2, 0, 0, 4, 5, 4, 2, 0, 4, 0, 5, 0, 5, 6, 6, 7, 8, 6, 1, 8, 3, 7, 5, 4]),
        ];
        for (r, m) in expect_weighted {
            assert_eq!(leiden(&weighted, r, 0), m, "weighted, resolution {r}");
        }
    }

    /// Three 6-cliques joined in a ring by weak single edges: three communities, whatever the
    /// seed; the same seed gives the same labels.
    #[test]
    fn leiden_finds_obvious_communities() {
        let mut edges = Vec::new();
        let mut w = Vec::new();
        for c in 0..3 {
            for a in 0..6 {
                for b in a + 1..6 {
                    edges.push((c * 6 + a, c * 6 + b));
                    w.push(1.0f32);
                }
            }
            edges.push((c * 6 + 5, ((c + 1) % 3) * 6));
            w.push(0.05);
        }
        let conn = conn_from_edges(18, &edges, &w);
        for seed in 0..5 {
            let m = leiden(&conn, 1.0, seed);
            for c in 0..3 {
                assert!(m[c * 6..c * 6 + 6].iter().all(|&x| x == m[c * 6]), "seed {seed}: {m:?}");
            }
            assert!(m[0] != m[6] && m[6] != m[12] && m[0] != m[12], "seed {seed}: {m:?}");
            assert_eq!(m, leiden(&conn, 1.0, seed));
        }
    }

    /// Gaussian blobs through the whole metric: a prediction with the same centroids scores 1.
    #[test]
    fn well_separated_centroids_agree() {
        let mut rng = Mt19937::new(7);
        let mut unif = || rng.next_u32() as f64 / 4294967296.0;
        let (n, g) = (40, 12);
        let mut x = vec![0.0; n * g];
        for i in 0..n {
            for j in 0..g {
                x[i * g + j] = if j == i % 4 { 10.0 } else { 0.0 } + unif();
            }
        }
        assert_eq!(clustering_agreement(&x, &x, n), Some(1.0));
        assert_eq!(clustering_agreement(&x[..g], &x[..g], 1), None);
        assert_eq!(clustering_agreement(&x[..2 * g], &x[..2 * g], 2), None);
    }

    /// Exact ties in the kNN search (a constant prediction such as the mean baseline) pick the
    /// neighbours sklearn's heap and sort pick. Reference: cell-eval's `ClusteringAgreement`
    /// steps (`_cluster_leiden` on `AnnData(X)` per side, best AMI) on
    ///   R[i][j] = ((i*i*7 + j*13 + i*j*5) % 31) / 7 (distinct rows), P[i][j] = (j % 5) / 2,
    /// n = 30, g = 10. (Partially duplicated centroids are not covered: there sklearn's
    /// `|x|^2 - 2x.y + |y|^2` leaves ~1e-8 noise instead of 0, which moves umap's `rho`.)
    #[test]
    fn constant_prediction_follows_sklearn_neighbour_order() {
        let (n, g) = (30, 10);
        let r: Vec<f64> = (0..n * g)
            .map(|k| ((k / g * (k / g) * 7 + k % g * 13 + k / g * (k % g) * 5) % 31) as f64 / 7.0)
            .collect();
        let p: Vec<f64> = (0..n * g).map(|k| (k % g % 5) as f64 / 2.0).collect();
        let got = clustering_agreement(&r, &p, n).unwrap();
        assert!((got - 0.0917315929984152).abs() <= 1e-12, "{got}");
    }

    /// sklearn 1.9.1 `adjusted_mutual_info_score` on the string labels, e.g.
    ///   adjusted_mutual_info_score(np.array(a).astype(str), np.array(b).astype(str))
    #[test]
    fn ami_matches_sklearn() {
        let cases: [(&[usize], &[usize], f64); 6] = [
            (
                &[0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
                &[0, 0, 1, 1, 1, 2, 2, 2, 3, 3],
                0.3393713656092221,
            ),
            (
                &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11],
                &[0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5],
                3.203426503814903e-15,
            ),
            (&[0, 0, 1, 1], &[1, 1, 0, 0], 1.0),
            (&[0, 0, 0, 0], &[0, 1, 2, 3], 0.0),
            (&[0, 1, 2, 3], &[0, 1, 2, 3], 1.0),
            (&[0, 0, 0, 0], &[5, 5, 5, 5], 1.0),
        ];
        for (a, b, want) in cases {
            let got = adjusted_mutual_info(a, b);
            assert!((got - want).abs() <= 1e-12, "{a:?} {b:?}: {got} vs {want}");
        }
        // rng = np.random.default_rng(3); x = rng.integers(0, 12, size=60)
        // y = [(v + rng.integers(0, 3)) % 14 for v in x]
        #[rustfmt::skip]
        let x = [
            9, 1, 2, 2, 2, 9, 10, 6, 0, 1, 3, 5, 7, 5, 3, 1, 8, 8, 0, 1, 5, 4, 10, 6, 5, 5, 7, 7, 2, 8,
            9, 11, 9, 3, 3, 7, 7, 8, 10, 3, 11, 0, 0, 11, 11, 3, 1, 3, 0, 10, 7, 7, 2, 5, 2, 9, 5, 0, 3, 8,
        ];
        #[rustfmt::skip]
        let y = [
            10, 2, 2, 2, 3, 10, 11, 8, 2, 1, 4, 6, 7, 5, 4, 3, 8, 10, 1, 1, 6, 6, 12, 7, 5, 7, 7, 9, 4, 9,
            11, 13, 9, 5, 4, 7, 8, 10, 11, 4, 13, 1, 1, 11, 11, 5, 3, 3, 1, 12, 7, 7, 3, 6, 3, 10, 5, 1, 5, 8,
        ];
        let got = adjusted_mutual_info(&x, &y);
        assert!((got - 0.43661289542215137).abs() <= 1e-12, "{got}");
    }

    #[test]
    fn np_sum_is_pairwise() {
        let v: Vec<f64> = (0..300).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let naive: f64 = v.iter().sum();
        assert!((np_sum(&v) - naive).abs() < 1e-12);
    }
}
