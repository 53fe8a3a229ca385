#!/usr/bin/env python
"""The FAISS index choice at scale (issue 17): exact ``IndexFlatIP`` against ``IndexIVFPQ`` and
``IndexHNSWFlat`` on 1M Siamese-width vectors; recall@10, build time, query latency, memory.

Vectors: unit vectors of the Siamese embedding width (``SiameseConfig.dim``, 64) drawn from a
Gaussian mixture with ``--centres`` centres (default 4,000) of uneven sizes (log-normal weights:
a few large communities, many small ones), each vector its centre plus isotropic noise
(``--noise``, the noise's expected norm against the unit centre), normalised, as the Siamese
encoder's outputs are. Queries are fresh draws from the same mixture (users not in the index).
This is a stand-in for real profile embeddings, whose cluster structure it imitates; it is not
one (recall on real embeddings may differ; the same protocol runs on any ``.npy`` of vectors
with ``--vectors``).

Indexes (all inner product on unit vectors = cosine, as graphrec serves):

* ``IndexFlatIP``: exact; the ground truth every recall is measured against.
* ``IndexIVFPQ``: coarse quantiser of ``nlist`` = 4 sqrt(n) lists (rounded to a power of two),
  product quantiser of ``m`` sub-vectors of 8 bits (``m`` bytes per vector), searched with
  ``nprobe`` lists; trained on a sample of 64 x nlist vectors.
* ``IVF-PQ + SQ8``: the same IVF-PQ (``--refine-m``) whose ``4 k`` best candidates are re-ranked
  with 8-bit scalar-quantised copies of the vectors (``dim`` bytes each; ``Refine(SQ8)``).
* ``IndexHNSWFlat``: M = 32 links, efConstruction 80, efSearch 128 (graphrec's own HNSW
  parameters, :mod:`graphrec.core.index`) and efSearch 64.

For each: build seconds (train + add, ``--threads`` OpenMP threads), recall@10 against the exact
top 10 (batch search of ``--queries`` queries), single-query latency p50 / p99 (one OpenMP thread,
one query at a time, as a server searches; ``--latency-queries``), index size (bytes of the
serialised index, which is what it holds in memory) and bytes per vector. Every figure is printed
with the machine's 1-minute load average at the time it was measured (``os.getloadavg``): on a
shared machine a figure measured at load 4 on 2 cores is not the index's speed.

Last, an extrapolation of the memory to 10M, 100M and 1B vectors for each index type
(bytes per vector x n + fixed part): arithmetic from the measured sizes, not a measurement.

Run from the repository root (the 1M measurement takes several minutes; run it alone)::

    .venv/bin/python benchmarks/bench_index_scale.py                # 1M vectors
    .venv/bin/python benchmarks/bench_index_scale.py --n 100000     # quick
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from graphrec.tasks.siamese.config import SiameseConfig  # noqa: E402

HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
EXTRAPOLATE = (10_000_000, 100_000_000, 1_000_000_000)


def load() -> str:
    """The machine's 1-minute load average, as printed beside a figure."""
    return f"{os.getloadavg()[0]:.2f}"


def mixture(n: int, dim: int, centres: int, noise: float, seed: int, chunk: int = 200_000) -> np.ndarray:
    """``n`` unit vectors of a Gaussian mixture (see the module docstring), generated in chunks."""
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((centres, dim)).astype(np.float32)
    mu /= np.linalg.norm(mu, axis=1, keepdims=True)
    weights = rng.lognormal(0.0, 1.0, centres)
    weights /= weights.sum()
    out = np.empty((n, dim), dtype=np.float32)
    sigma = noise / math.sqrt(dim)
    for start in range(0, n, chunk):
        rows = min(chunk, n - start)
        which = rng.choice(centres, size=rows, p=weights)
        x = mu[which] + sigma * rng.standard_normal((rows, dim)).astype(np.float32)
        out[start : start + rows] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


@dataclass
class Row:
    """One index setting's measurements (``*_load``: the load average when it was measured)."""

    index: str
    params: str
    build_s: float
    build_load: str
    recall_at_10: float
    recall_load: str
    p50_ms: float
    p99_ms: float
    latency_load: str
    bytes: int
    fixed_bytes: int
    bytes_per_vector: float


def index_bytes(index: Any) -> int:
    """Bytes of the serialised index (what FAISS holds for it in memory, within its small headers)."""
    import faiss

    return int(faiss.serialize_index(index).nbytes)


def latency(index: Any, queries: np.ndarray, k: int) -> tuple[float, float, str]:
    """p50 and p99 milliseconds of one-query searches on one OpenMP thread, and the load."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        times = np.empty(len(queries))
        for i in range(len(queries)):
            t = time.perf_counter()
            index.search(queries[i : i + 1], k)
            times[i] = time.perf_counter() - t
    finally:
        faiss.omp_set_num_threads(threads)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3), load()


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of the exact top ``k`` ids each query's ``k`` results contain."""
    hits = (found[:, :, None] == truth[:, None, :]).any(axis=2).sum()
    return float(hits / truth.size)


def measure(name: str, params: str, index: Any, build_s: float, build_load: str, queries: np.ndarray, lat_queries: np.ndarray,
            truth: np.ndarray, k: int, n: int, fixed: int) -> Row:
    _, found = index.search(queries, k)
    rec, rec_load = recall(found, truth), load()
    p50, p99, lat_load = latency(index, lat_queries, k)
    size = index_bytes(index)
    return Row(name, params, build_s, build_load, rec, rec_load, p50, p99, lat_load, size, fixed, (size - fixed) / n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the index")
    parser.add_argument("--dim", type=int, default=SiameseConfig.dim, help="vector width (the Siamese embedding width)")
    parser.add_argument("--centres", type=int, default=4000)
    parser.add_argument("--noise", type=float, default=0.8, help="expected norm of a vector's noise against its unit centre")
    parser.add_argument("--vectors", type=Path, help="a .npy of vectors to index instead of the mixture (normalised here)")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--latency-queries", type=int, default=500)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--m", type=int, nargs="+", default=[16, 32], help="IVF-PQ sub-quantisers (bytes per code)")
    parser.add_argument("--refine-m", type=int, default=32, help="IVF-PQ sub-quantisers of the IVF-PQ + SQ8 re-ranking row (0: none)")
    parser.add_argument("--nprobe", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="OpenMP threads for builds and batch searches")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    import faiss

    faiss.omp_set_num_threads(args.threads)
    print(f"faiss {faiss.__version__}, {args.threads} threads, {os.cpu_count()} CPUs, load {load()}")
    t = time.perf_counter()
    if args.vectors is not None:
        base = np.load(args.vectors).astype(np.float32)
        base /= np.linalg.norm(base, axis=1, keepdims=True)
        rng = np.random.default_rng(args.seed)
        pick = rng.permutation(len(base))
        queries, base = base[pick[: args.queries]], base[pick[args.queries :]]
        args.n, args.dim = len(base), base.shape[1]
        source = str(args.vectors)
    else:
        both = mixture(args.n + args.queries, args.dim, args.centres, args.noise, args.seed)
        base, queries = both[: args.n], both[args.n :]
        source = f"Gaussian mixture of {args.centres} centres, noise {args.noise}"
    lat_queries = queries[: args.latency_queries]
    print(f"{args.n:,} vectors x {args.dim} ({source}), {len(queries)} queries: {time.perf_counter() - t:.1f} s (load {load()})")

    rows: list[Row] = []
    k, n, d = args.k, args.n, args.dim

    t = time.perf_counter()
    flat = faiss.IndexFlatIP(d)
    flat.add(base)
    flat_s, flat_load = time.perf_counter() - t, load()
    _, truth = flat.search(queries, k)
    rows.append(measure("IndexFlatIP", "exact", flat, flat_s, flat_load, queries, lat_queries, truth, k, n, 0))
    del flat

    nlist = 2 ** round(math.log2(4 * math.sqrt(n)))
    rng = np.random.default_rng(args.seed + 1)
    sample = base[rng.choice(n, size=min(n, 64 * nlist), replace=False)]
    for m in args.m:
        t = time.perf_counter()
        quantiser = faiss.IndexFlatIP(d)
        ivfpq = faiss.IndexIVFPQ(quantiser, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
        ivfpq.train(sample)
        ivfpq.add(base)
        build_s, build_load = time.perf_counter() - t, load()
        fixed = nlist * d * 4 + 256 * d * 4  # coarse centroids + PQ codebooks (m x 256 x d/m floats)
        for nprobe in args.nprobe:
            ivfpq.nprobe = nprobe
            rows.append(measure("IndexIVFPQ", f"nlist={nlist} m={m} nprobe={nprobe}", ivfpq, build_s, build_load, queries,
                                lat_queries, truth, k, n, fixed))
        del ivfpq, quantiser
    if args.refine_m:
        # IVF-PQ candidates re-ranked by 8-bit scalar-quantised vectors (d bytes each): the usual
        # way to get IVF-PQ's recall up without keeping the float vectors
        t = time.perf_counter()
        # np: no polysemous training (as the plain IVF-PQ rows)
        refined: Any = faiss.index_factory(d, f"IVF{nlist},PQ{args.refine_m}np,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)
        refined.train(sample)
        refined.add(base)
        build_s, build_load = time.perf_counter() - t, load()
        refined.k_factor = 4
        fixed = nlist * d * 4 + 256 * d * 4 + 2 * d * 4  # + the SQ8 ranges
        for nprobe in args.nprobe:
            faiss.extract_index_ivf(refined).nprobe = nprobe
            rows.append(measure("IVFPQ+SQ8", f"nlist={nlist} m={args.refine_m} nprobe={nprobe} kf=4", refined, build_s, build_load,
                                queries, lat_queries, truth, k, n, fixed))
        del refined

    t = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(d, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    hnsw.add(base)
    build_s, build_load = time.perf_counter() - t, load()
    for ef in (128, 64):
        hnsw.hnsw.efSearch = ef
        rows.append(measure("IndexHNSWFlat", f"M={HNSW_M} efC={HNSW_EF_CONSTRUCTION} efSearch={ef}", hnsw, build_s, build_load,
                            queries, lat_queries, truth, k, n, 0))
    del hnsw

    print()
    head = (f"{'index':<14s} {'parameters':<30s} {'build s':>8s} {'[load]':>7s} {'recall@10':>9s} {'[load]':>7s} "
            f"{'p50 ms':>7s} {'p99 ms':>7s} {'[load]':>7s} {'MiB':>8s} {'B/vector':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.index:<14s} {r.params:<30s} {r.build_s:8.1f} {'[' + r.build_load + ']':>7s} {r.recall_at_10:9.4f} "
              f"{'[' + r.recall_load + ']':>7s} {r.p50_ms:7.3f} {r.p99_ms:7.3f} {'[' + r.latency_load + ']':>7s} "
              f"{r.bytes / 2**20:8.1f} {r.bytes_per_vector:8.1f}")

    print(f"\nMemory at larger sizes: ARITHMETIC, not measured: bytes per vector (measured at {n:,}) x n + fixed part "
          "(IVF-PQ: coarse centroids for nlist = 4 sqrt(n) lists and the PQ codebooks; Flat and HNSW: none). "
          "HNSW's per-vector cost grows slightly with log n (upper levels); ids kept by graphrec's id map (8 B/vector) not included.")
    seen = set()
    print(f"{'index':<14s} {'parameters':<18s} " + " ".join(f"{x:>12,d}" for x in EXTRAPOLATE))
    for r in rows:
        key = (r.index, r.params.split(" nprobe")[0].split(" efSearch")[0])  # one line per built index
        if key in seen:
            continue
        seen.add(key)
        cells = []
        for size in EXTRAPOLATE:
            fixed = 0
            if r.index in ("IndexIVFPQ", "IVFPQ+SQ8"):
                fixed = 2 ** round(math.log2(4 * math.sqrt(size))) * d * 4 + 256 * d * 4
            cells.append(r.bytes_per_vector * size + fixed)
        params = " ".join(w for w in key[1].split() if w.startswith(("m=", "M=")))  # nlist follows n here
        print(f"{r.index:<14s} {params:<18s} " + " ".join(f"{c / 2**30:9.1f} GiB" for c in cells))
    if args.json is not None:
        args.json.write_text(json.dumps({"n": n, "dim": d, "source": source, "threads": args.threads,
                                         "rows": [asdict(r) for r in rows]}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
