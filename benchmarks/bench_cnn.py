"""CNN feature extraction: coursekit's path against a plain loop over the same model, in the same run.

    .venv/bin/python benchmarks/bench_cnn.py [--n 48] [--size 480] [--threads 2] [--batch 1 4 8]

The plain loop is what a student would write: for each image, resize its
longer side to ``size``, normalise, ``model.extract_features`` under
``torch.no_grad()``, GeM-pool. coursekit's :func:`coursekit.cnn.extract.pooled_descriptors`
does the same under ``torch.inference_mode()``, grouping images of one
shape into batches of ``--batch``, and computes every pooling (MAC, SPoC,
GeM, R-MAC, CroW) from the one map. Images: the first ``--n`` database
images of the embedded dataset (mixed sizes, so batches of one shape are
small) and the same number of one size (every image resized to 640 x 480
first, so batches are full). Prints images per second and the ratio to
the plain loop; each timing is the best of 2 runs after one warm-up image.
"""

import argparse
import time

import numpy as np
import torch
from PIL import Image

from coursekit.cnn.backbones import load_backbone
from coursekit.cnn.extract import pooled_descriptors, resize_longer, set_threads, to_tensor
from coursekit.cnn.pooling import gem
from coursekit.datasets import load_dataset
from coursekit.images import load_image


def plain_loop(images, backbone, size):
    out = []
    with torch.no_grad():
        for im in images:
            x = to_tensor(resize_longer(im, size), backbone)[None]
            out.append(gem(backbone.model.extract_features(x))[0].numpy())
    return np.stack(out)


def best_of(fn, repeat=2):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    threads = set_threads(args.threads)
    backbone = load_backbone()
    ds = load_dataset("embedded")
    mixed = [load_image(p) for p in ds.db[:args.n]]
    same = [np.asarray(Image.fromarray(im).resize((640, 480))) for im in mixed]
    plain_loop(mixed[:1], backbone, args.size)                                        # warm-up
    print(f"EfficientNet-Lite0, longer side {args.size} px, {args.n} images, {threads} torch threads")
    print("| images | path | images / s | ratio to the plain loop |")
    print("|---|---|---|---|")
    for label, images in (("mixed sizes", mixed), ("all 640 x 480", same)):
        t_plain, ref = best_of(lambda: plain_loop(images, backbone, args.size))
        print(f"| {label} | plain loop (GeM only) | {len(images) / t_plain:.2f} | 1.00 |")
        for b in args.batch:
            t, out = best_of(lambda: pooled_descriptors(images, backbone, args.size, batch_size=b))
            assert np.allclose(out["gem"], ref, rtol=1e-3, atol=1e-4), "coursekit's GeM differs from the plain loop's"
            print(f"| {label} | coursekit, batch {b} (5 poolings) | {len(images) / t:.2f} | {t_plain / t:.2f} |")


if __name__ == "__main__":
    main()
