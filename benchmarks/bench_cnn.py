"""CNN feature extraction: coursekit's path against a plain loop over the same model, in the same run.

    .venv/bin/python benchmarks/bench_cnn.py [--n 48] [--size 480] [--threads 2] [--batch 1 4 8]

The plain loop (:func:`coursekit.cnn.extract.plain_loop`) is what a
student would write: for each image, resize its longer side to ``size``,
normalise, the network under ``torch.no_grad()``, GeM.
:func:`coursekit.cnn.extract.pooled_descriptors` does the same under
``torch.inference_mode()``, grouping images of one shape into batches of
``--batch``, and computes all five poolings from the one map. Images: the
first ``--n`` database images of the embedded dataset (mixed sizes, so
batches of one shape are small), then the same images resized to 640 x 480
(batches full). Prints images per second and the ratio to the plain loop
(:func:`coursekit.cnn.extract.measure_throughput`: best of 2 runs, after a
warm-up image).
"""

import argparse

import numpy as np
from PIL import Image

from coursekit.cnn.backbones import load_backbone
from coursekit.cnn.extract import measure_throughput, set_threads
from coursekit.datasets import load_dataset
from coursekit.images import load_image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48)
    parser.add_argument("--size", type=int, default=480)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4, 8])
    args = parser.parse_args()
    threads = set_threads(args.threads)
    backbone = load_backbone()
    mixed = [load_image(p) for p in load_dataset("embedded").db[:args.n]]
    same = [np.asarray(Image.fromarray(im).resize((640, 480))) for im in mixed]
    print(f"EfficientNet-Lite0, longer side {args.size} px, {args.n} images, {threads} torch threads")
    print("| images | path | batch | images / s | ratio to the plain loop |")
    print("|---|---|---|---|---|")
    for label, images in (("mixed sizes", mixed), ("all 640 x 480", same)):
        for r in measure_throughput(images, backbone, args.size, args.batch):
            print(f"| {label} | {r['path']} | {r['batch_size']} | {r['images_per_s']:.2f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
