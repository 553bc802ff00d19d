"""Fine-tuning the last blocks of a CNN for retrieval, on a laptop CPU (notebook 08).

    head, history = finetune(ds, checkpoint="gem-ft.pt")          # trains, or resumes, or loads
    X_db = finetuned_descriptors(ds, "db", head, load_backbone())  # (N, 1280) float32, L2

The recipe is Radenovic, Tolias and Chum's, "Fine-tuning CNN image
retrieval with no human annotation", TPAMI 2018 (and their code,
``cirtorch/examples/train.py`` and ``cirtorch/datasets/traindataset.py`` in
filipradenovic/cnnimageretrieval-pytorch): a siamese network whose
descriptor is GeM with a learnable ``p``, L2-normalised, trained with the
contrastive loss on tuples of a query, one matching image and five
non-matching ones. Every epoch draws new queries at random, and re-mines
their negatives with the *current* network among a random pool of
training images: the most similar images of other objects, at most one per
object (:func:`coursekit.learning.mining.hard_negatives`). Adam, batches of
5 tuples, weight decay 1e-6, ``p`` learned ten times as fast and without
weight decay, the learning rate decayed by ``exp(-0.01)`` per epoch, batch
norm statistics frozen: as in their code. Positives: their pairs come from
3D models; ours are another training image of the same label
(:func:`coursekit.learning.mining.positive_pairs`). The triplet loss
(Schroff et al., CVPR 2015; Gordo et al., ECCV 2016) is the alternative.

What makes it run on two CPU cores: only the last ``n_trainable`` blocks
are trained (the *head*); the network below them (the *trunk*) is frozen,
so its output for every training image is computed once and cached on disk
(:func:`dataset_trunk_maps`), and an epoch runs the head alone. For the
default EfficientNet-Lite0 with ``n_trainable=2`` the head is the last two
MBConv blocks, the 1 x 1 head convolution and its batch norm: 1.49 M of
the 3.37 M weights below the classifier, on maps of 11 x 15 cells at 480
pixels.

Batch norm: the head's batch-norm layers keep ImageNet's running
statistics (eval mode, also while training; their scale and shift are
trained): batches of a few images give statistics too noisy to normalise
with (cirtorch's ``set_batchnorm_eval`` does the same). Drop-connect is
not used. Every random draw comes from ``numpy.random.default_rng((seed,
epoch))`` and nothing in the head is random, so the same seed gives the
same numbers on the same machine, and resuming from a checkpoint gives
what training straight through gives.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from ..cache import atomic_write
from ..cnn.backbones import Backbone, load_backbone
from ..cnn.pooling import GeM
from .losses import contrastive_loss, triplet_loss
from .mining import hard_negatives, positive_pairs, random_negatives

__all__ = ["TRAIN_SIZE", "FAST", "split_backbone", "dataset_trunk_maps", "RetrievalHead", "head_descriptors",
           "finetune", "load_finetuned", "finetuned_descriptors", "checkpoint_meta"]

TRAIN_SIZE = 480      # pixels on the longer side of the training and test images, as coursekit.methods.CNN_SIZE
# A setting for CI and quick looks: `finetune(ds, **FAST)` trains in well under a minute on two cores, for a smaller
# gain than the defaults' (both measured in notebook 08 and the course report)
FAST = {"epochs": 2, "queries_per_epoch": 48, "pool_size": 156, "lr": 3e-4}
_MAX_HALF = 60000.0   # float16 holds up to 65504


# ----------------------------------------------------------------------------------------------------------- split


def _check_n(n_trainable: int, most: int, what: str) -> None:
    if not (isinstance(n_trainable, (int, np.integer)) and 0 <= n_trainable <= most):
        raise ValueError(f"n_trainable must be an integer from 0 to {most} ({what}); got {n_trainable!r}")


def split_backbone(backbone: Backbone, n_trainable: int = 2) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                                      nn.Module]:
    """Cut a backbone into a frozen trunk and a trainable head, ``head(trunk(x)) == backbone.feature_map(x)``.

    ``x (B, 3, H, W) float32`` normalised -> ``trunk(x) (B, C', H', W')``
    -> ``head(.) (B, C, H / 32, W / 32)``. The trunk runs the backbone's own
    modules (call it under ``torch.inference_mode()``: it is never
    trained); the head is a deep copy, so training it never changes
    ``backbone.model``. What the head holds:

    - EfficientNet-Lite: the last ``n_trainable`` of the MBConv blocks (16
      for lite0), the 1 x 1 head convolution, its batch norm and the ReLU
      of :meth:`~coursekit.cnn.backbones.Backbone.feature_map`;
      ``n_trainable`` from 0 (the head convolution alone) to all blocks.
    - ResNet-50/101: the last ``n_trainable`` bottleneck blocks of
      ``layer4`` (3), the earlier ones staying in the trunk.
    - VGG16: the last ``n_trainable`` convolutions of ``features[:-1]``
      (13) with their ReLUs (and the max-pools between them).

    The head is returned in eval mode.
    """
    m = backbone.model
    if backbone.name.startswith("efficientnet"):
        blocks = list(m._blocks)
        _check_n(n_trainable, len(blocks), f"MBConv blocks of {backbone.name}")
        cut = len(blocks) - n_trainable

        def trunk(x: torch.Tensor) -> torch.Tensor:
            x = m._swish(m._bn0(m._conv_stem(x)))
            for block in blocks[:cut]:
                x = block(x)
            return x

        head = nn.Sequential(*copy.deepcopy(blocks[cut:]), copy.deepcopy(m._conv_head), copy.deepcopy(m._bn1),
                             nn.ReLU())
    elif backbone.name == "vgg16":
        features = m.features[:-1]                                  # conv5_3 + ReLU, without the last max-pool
        convs = [i for i, layer in enumerate(features) if isinstance(layer, nn.Conv2d)]
        _check_n(n_trainable, len(convs), "convolutions of vgg16")
        cut = convs[len(convs) - n_trainable] if n_trainable else len(features)
        trunk = features[:cut]                                      # shares the backbone's modules
        head = copy.deepcopy(features[cut:])
    elif backbone.name.startswith("resnet"):
        blocks = list(m.layer4)
        _check_n(n_trainable, len(blocks), f"bottleneck blocks of {backbone.name}'s layer4")
        cut = len(blocks) - n_trainable
        stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3, *blocks[:cut])
        trunk = stem                                                # shares the backbone's modules
        head = nn.Sequential(*copy.deepcopy(blocks[cut:]))
    else:
        raise ValueError(f"cannot split backbone {backbone.name!r}")
    for param in head.parameters():
        param.requires_grad_(True)
    return trunk, head.eval()


# ------------------------------------------------------------------------------------------------ cached trunk maps


def dataset_trunk_maps(ds, split: str, backbone: Backbone, n_trainable: int = 2, size: int = TRAIN_SIZE,
                       progress: bool = True) -> tuple[list[np.ndarray], float]:
    """The trunk's output (:func:`split_backbone`) for every image of a split, cached on disk:
    ``(maps, seconds saved)``, ``maps[i]`` a ``(C', h_i, w_i) float16`` array.

    ``split``: ``"train"``, ``"db"`` or ``"queries"`` (each query resized
    whole so that its longer side is ``size``, then cropped to its box, as
    :func:`coursekit.cnn.extract.pooled_descriptors` does). Maps differ in
    shape (aspect ratios, query boxes), so they are stored as one flat
    float16 array with their shapes; float16 halves the disk and memory,
    and the head (in float32) gives, from them, the off-the-shelf GeM
    vectors up to float16's rounding. Keyed as :func:`coursekit.cnn.extract.dataset_descriptors`
    (backbone, its weights file, size, the split's files and boxes) plus
    ``n_trainable``: a changed parameter never reuses stale maps.
    EfficientNet-Lite0, ``n_trainable=2``, 480 pixels: 192 x 11 x 15 per
    landscape image, 63 KB.
    """
    from ..cache import cached_arrays
    from ..cnn.extract import feature_maps, split_images, weights_key

    if size < 32:
        raise ValueError(f"size must be >= 32 pixels; got {size}")
    images, boxes, split_key = split_images(ds, split)
    if not images:
        raise ValueError(f"the {split!r} split of {ds.name!r} has no images")
    trunk, _ = split_backbone(backbone, n_trainable)
    key = {"what": "cnn trunk maps", "backbone": backbone.name, "weights": weights_key(backbone), "size": size,
           "n_trainable": int(n_trainable), **split_key, "version": 1}

    def compute() -> dict[str, np.ndarray]:
        parts: list[np.ndarray | None] = [None] * len(images)
        shapes = np.zeros((len(images), 3), np.int64)
        with torch.inference_mode():
            for rows, fmap in tqdm(feature_maps(images, backbone, size, boxes, forward=trunk),
                                   total=len(images), desc=f"{backbone.name} trunk: {ds.name} {split}",
                                   disable=not progress):
                big = float(fmap.abs().max())
                if not math.isfinite(big) or big > _MAX_HALF:
                    raise ValueError(f"trunk activations reach {big:g}, beyond float16; cannot cache them")
                for i, f in zip(rows, fmap):
                    parts[i] = f.numpy().astype(np.float16).ravel()
                    shapes[i] = f.shape
        return {"maps": np.concatenate(parts), "shapes": shapes}

    arrays, saved = cached_arrays("cnn", key, compute)
    shapes = arrays["shapes"]
    ends = np.cumsum(shapes.prod(axis=1))
    flat = arrays["maps"]
    return [flat[e - int(np.prod(s)):e].reshape(s) for e, s in zip(ends, shapes)], saved


# ------------------------------------------------------------------------------------------------------------ head


class RetrievalHead(nn.Module):
    """The trainable part of the siamese network: head, GeM with a learnable ``p``, L2 normalisation.

    ``forward(maps)``: a list of ``B`` trunk maps ``(C', h_i, w_i)``
    (float16 or float32, tensors or arrays; shapes may differ) -> ``(B, D)
    float32`` L2-normalised vectors. Maps of one shape run as one batch.
    ``train()`` leaves every batch-norm layer in eval mode (frozen running
    statistics; see the module's docstring). ``n_trainable`` says which
    trunk the maps must come from; ``meta`` what trained it (set by
    :func:`finetune` and :func:`load_finetuned`).
    """

    def __init__(self, head: nn.Module, n_trainable: int, p: float = 3.0, batch_size: int = 32):
        super().__init__()
        self.head = head
        self.pool = GeM(p)
        self.n_trainable = int(n_trainable)
        self.batch_size = batch_size
        self.meta: dict = {}

    def train(self, mode: bool = True) -> "RetrievalHead":
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self

    def forward(self, maps: Sequence) -> torch.Tensor:
        from ..cnn.extract import batches

        if len(maps) == 0:
            raise ValueError("no maps to describe")
        tensors = [torch.as_tensor(np.asarray(m) if not isinstance(m, torch.Tensor) else m).float() for m in maps]
        if any(t.ndim != 3 for t in tensors):
            raise ValueError(f"maps must be (C, h, w) each; got shapes {sorted({tuple(t.shape) for t in tensors})}")
        groups = batches([tuple(t.shape) for t in tensors], self.batch_size)
        parts = [self.pool(self.head(torch.stack([tensors[i] for i in g]))) for g in groups]
        order = torch.as_tensor(np.argsort(np.concatenate(groups), kind="stable"))
        return nn.functional.normalize(torch.cat(parts)[order], dim=1, eps=1e-6)


def head_descriptors(head: RetrievalHead, maps: Sequence, chunk: int = 256) -> np.ndarray:
    """``head`` over trunk maps, in eval mode and without gradients: ``(N, D) float32`` L2-normalised."""
    was_training = head.training
    head.eval()
    try:
        with torch.inference_mode():
            out = [head(maps[s:s + chunk]).numpy() for s in range(0, len(maps), chunk)]
    finally:
        head.train(was_training)
    return np.concatenate(out).astype(np.float32)


# -------------------------------------------------------------------------------------------------------- training


def checkpoint_meta(ds, backbone: Backbone, **params) -> dict:
    """What a fine-tuned head depends on, as a JSON-able dict: the backbone and its weights file, the dataset's
    name and a fingerprint of its training files and labels, and ``params`` (the training parameters)."""
    from ..cache import array_digest, files_fingerprint
    from ..cnn.extract import weights_key

    meta = {"backbone": backbone.name, "weights": weights_key(backbone), "dataset": ds.name,
            "train_files": files_fingerprint(ds.train), "train_labels": array_digest(np.asarray(ds.train_labels)),
            **params, "version": 2}
    return json.loads(json.dumps(meta))        # tuples -> lists, numpy scalars refused: as it will be read back


def _differences(stored: dict, wanted: dict) -> list[str]:
    keys = sorted(set(stored) | set(wanted))
    return [f"{k}: {stored.get(k, '(absent)')!r} in the checkpoint, {wanted.get(k, '(absent)')!r} now"
            for k in keys if stored.get(k) != wanted.get(k)]


def _epoch_tuples(rng: np.random.Generator, labels: np.ndarray, queries: int, pool_size: int):
    """This epoch's queries, their positives and the pool of negatives: ``(q (n,), p (n,), pool (P,))`` int64
    indices into the training split."""
    pairs = positive_pairs(labels, rng)                       # (M, 2): every image with another of its label
    if len(pairs) == 0:
        raise ValueError("no training image shares its label with another: there are no positive pairs")
    pick = rng.permutation(len(pairs))[:queries]
    pool = np.sort(rng.permutation(len(labels))[:pool_size])
    return pairs[pick, 0], pairs[pick, 1], pool


def _tuple_loss(head: RetrievalHead, maps: list, q: np.ndarray, p: np.ndarray, negs: np.ndarray, loss: str,
                margin: float) -> torch.Tensor:
    """The loss of a batch of tuples ``q (b,)``, ``p (b,)``, ``negs (b, n)`` (indices into ``maps``), each image
    described once."""
    ids, inverse = np.unique(np.concatenate([q, p, negs.ravel()]), return_inverse=True)
    V = head([maps[i] for i in ids])                          # (U, D)
    b, n = negs.shape
    vq, vp, vn = V[inverse[:b]], V[inverse[b:2 * b]], V[inverse[2 * b:]].reshape(b, n, -1)
    if loss == "triplet":
        return triplet_loss(vq, vp, vn, margin)
    x1 = vq[:, None].expand(b, n + 1, vq.shape[1]).reshape(b * (n + 1), -1)
    x2 = torch.cat([vp[:, None], vn], dim=1).reshape(b * (n + 1), -1)
    y = torch.cat([torch.ones(b, 1), torch.zeros(b, n)], dim=1).reshape(-1)
    return contrastive_loss(x1, x2, y, margin)


def _check_finetune_args(ds, loss: str, mining: str, margin: float | None, **counts) -> float:
    """Refuse what :func:`finetune` cannot do; return the margin (``loss``'s default where ``None``).

    ``counts``: ``epochs`` (an integer >= 0) and the other integer
    parameters (each >= 1), by name, as the error messages name them.
    """
    if loss not in ("contrastive", "triplet"):
        raise ValueError(f"loss must be 'contrastive' or 'triplet'; got {loss!r}")
    if not ds.train or ds.train_labels is None:
        raise ValueError(f"fine-tuning needs a labelled training split, and {ds.name!r} has none")
    if mining not in ("hard", "random"):
        raise ValueError(f"mining must be 'hard' or 'random'; got {mining!r}")
    if margin is None:
        margin = 0.7 if loss == "contrastive" else 0.1
    for name, value in counts.items():
        if not (isinstance(value, (int, np.integer)) and value >= (0 if name == "epochs" else 1)):
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return margin


def _checkpoint_path(checkpoint: str | Path | None, ds, meta: dict) -> Path | None:
    """Where :func:`finetune` keeps its checkpoint: ``None`` (none), the path given, or for ``"auto"`` a file in
    ``cache_root()/finetune`` named by the dataset and a digest of ``meta``."""
    path = None if checkpoint is None else Path(checkpoint).expanduser()
    if checkpoint == "auto":
        from ..cache import cache_root, key_digest

        path = cache_root() / "finetune" / f"{ds.name}-{key_digest(meta)}.pt"
    return path


def _read_checkpoint(path: Path | None, meta: dict) -> dict | None:
    """The checkpoint at ``path`` (``meta``, ``epoch``, ``history``, ``head`` and ``optimizer`` state dicts), or
    ``None`` where there is none; a ValueError naming the differences if it was trained with other ``meta``."""
    if path is None or not path.exists():
        return None
    stored = torch.load(path, map_location="cpu", weights_only=True)
    diff = _differences(stored["meta"], meta)
    if diff:
        raise ValueError(f"the checkpoint {path} was trained otherwise ({'; '.join(diff)}). It is not "
                         f"overwritten: pass another checkpoint path, or delete {path} to train afresh")
    return stored


def _optimizer(head: RetrievalHead, lr: float, weight_decay: float) -> tuple[torch.optim.Adam, list[float]]:
    """Adam over the head's weights (``lr``, ``weight_decay``) and GeM's ``p`` (``10 lr``, no weight decay), as
    cirtorch's code: ``(optimizer, base learning rates of its two parameter groups)``."""
    optimizer = torch.optim.Adam([
        {"params": list(head.head.parameters()), "lr": lr, "weight_decay": weight_decay},
        {"params": list(head.pool.parameters()), "lr": 10 * lr, "weight_decay": 0.0},    # cirtorch: p, 10 x lr
    ])
    return optimizer, [lr, 10 * lr]


def _mine_tuples(head: RetrievalHead, maps: list, labels: np.ndarray, q: np.ndarray, p: np.ndarray,
                 pool: np.ndarray, mining: str, n_negatives: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """The negatives of an epoch's queries, mined with the current head: ``(negs, pos_sim, neg_sim)``.

    ``q (Q,)``, ``p (Q,)``, ``pool (P,)`` int64 indices into the training
    split (``maps``, ``labels (T,)``). Every image needed is described once
    (:func:`head_descriptors`, ``(U, D) float32``). ``negs (Q, n_negatives)
    int64``: indices into the training split, the hardest of the pool, one
    per label (``mining="hard"``), or drawn from ``rng`` among other labels
    (``"random"``). ``pos_sim``, ``neg_sim``: the mean dot product of each
    query with its positive, and with its negatives (floats).
    """
    needed = np.unique(np.concatenate([q, p, pool]))            # described once, with the current head
    where = np.zeros(len(labels), np.int64)
    where[needed] = np.arange(len(needed))
    V = head_descriptors(head, [maps[i] for i in needed])
    Vq, Vpool = V[where[q]], V[where[pool]]
    pos_sim = float(np.einsum("qd,qd->q", Vq, V[where[p]]).mean())
    if mining == "hard":
        mined = hard_negatives(Vq, Vpool, labels[q], labels[pool], n=n_negatives, one_per_label=True)  # (Q, n)
    else:
        mined = random_negatives(labels[q], labels[pool], n_negatives, rng)
    neg_sim = float(np.einsum("qd,qnd->qn", Vq, Vpool[mined]).mean())
    return pool[mined], pos_sim, neg_sim


def _decay_lr(optimizer: torch.optim.Optimizer, base_lrs: list[float], epoch: int) -> float:
    """Set each parameter group's learning rate to its base times ``exp(-0.01 epoch)`` (cirtorch's
    ExponentialLR; ``epoch`` 0-based); return that factor."""
    decay = math.exp(-0.01 * epoch)                                      # cirtorch's ExponentialLR
    for group, base in zip(optimizer.param_groups, base_lrs):
        group["lr"] = base * decay
    return decay


def _adam_steps(head: RetrievalHead, optimizer: torch.optim.Optimizer, maps: list, q: np.ndarray, p: np.ndarray,
                 negs: np.ndarray, batch_size: int, loss: str, margin: float) -> float:
    """One Adam step per ``batch_size`` tuples ``q (Q,)``, ``p (Q,)``, ``negs (Q, n)`` (int64 indices into
    ``maps``), in their order, the head in training mode (batch norm frozen) and left in eval mode: the mean loss
    over the tuples, each batch's taken before its step (a float)."""
    head.train()
    total = 0.0
    for s in range(0, len(q), batch_size):
        optimizer.zero_grad()
        value = _tuple_loss(head, maps, q[s:s + batch_size], p[s:s + batch_size], negs[s:s + batch_size],
                            loss, margin)
        value.backward()
        optimizer.step()
        total += float(value.detach()) * len(q[s:s + batch_size])
    head.eval()
    return total / len(q)


def _resume(head: RetrievalHead, optimizer: torch.optim.Optimizer, stored: dict | None, epochs: int,
            path: Path | None) -> tuple[int, list[dict]]:
    """Load a checkpoint's head and optimiser states (``stored``, from :func:`_read_checkpoint`, or ``None``):
    ``(epochs done, history so far)``, ``(0, [])`` without one. Warns (for :func:`finetune`'s caller) if it holds
    more than ``epochs`` epochs."""
    if stored is None:
        return 0, []
    head.load_state_dict(stored["head"])
    optimizer.load_state_dict(stored["optimizer"])
    start, history = int(stored["epoch"]), list(stored["history"])
    if start > epochs:
        warnings.warn(f"the checkpoint {path} has {start} epochs, more than the {epochs} asked: returning it as "
                      "it is", stacklevel=3)
    return start, history


def _train_epoch(head: RetrievalHead, optimizer: torch.optim.Optimizer, base_lrs: list[float], maps: list,
                 labels: np.ndarray, epoch: int, seed: int, queries: int, pool_size: int, mining: str,
                 n_negatives: int, batch_size: int, loss: str, margin: float) -> dict:
    """One epoch of :func:`finetune` (``epoch`` 0-based): draw its tuples from ``default_rng((seed, epoch))``,
    mine their negatives with the current head, decay the learning rate, take the Adam steps. ``maps``: the
    training split's trunk maps; ``labels (T,)``. Returns the epoch's row of the history (see :func:`finetune`)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng((seed, epoch))
    q, p, pool = _epoch_tuples(rng, labels, queries, pool_size)
    negs, pos_sim, neg_sim = _mine_tuples(head, maps, labels, q, p, pool, mining, n_negatives, rng)
    decay = _decay_lr(optimizer, base_lrs, epoch)
    mean_loss = _adam_steps(head, optimizer, maps, q, p, negs, batch_size, loss, margin)
    return {"epoch": epoch + 1, "loss": mean_loss, "seconds": time.perf_counter() - t0,
            "positive_similarity": pos_sim, "negative_similarity": neg_sim,
            "p": float(head.pool.p.detach()), "lr": base_lrs[0] * decay}


def _save_checkpoint(path: Path, meta: dict, epoch: int, history: list[dict], head: RetrievalHead,
                     optimizer: torch.optim.Optimizer) -> None:
    """Write a checkpoint that :func:`finetune` resumes from and :func:`load_finetuned` loads, atomically:
    ``meta``, ``epoch`` (epochs done), ``history`` and the head's and the optimiser's state dicts."""
    with atomic_write(path) as tmp:
        torch.save({"meta": meta, "epoch": epoch, "history": history, "head": head.state_dict(),
                    "optimizer": optimizer.state_dict()}, tmp)


def finetune(ds, backbone: str | Backbone = "efficientnet_lite0", n_trainable: int = 2, loss: str = "contrastive",
             margin: float | None = None, epochs: int = 5, queries_per_epoch: int = 156, pool_size: int = 2000,
             n_negatives: int = 5, mining: str = "hard", lr: float = 1e-4, weight_decay: float = 1e-6,
             batch_size: int = 5,
             size: int = TRAIN_SIZE, seed: int = 0, checkpoint: str | Path | None = None,
             progress: bool = True) -> tuple[RetrievalHead, list[dict]]:
    """Fine-tune the last ``n_trainable`` blocks of ``backbone`` and GeM's ``p`` on ``ds``'s training split:
    ``(head, history)``.

    Radenovic, Tolias and Chum, TPAMI 2018 (see the module's docstring).
    Each of ``epochs`` epochs draws ``queries_per_epoch`` training images
    with a positive (another image of their label) and a pool of
    ``pool_size`` training images, describes them with the current head,
    mines ``n_negatives`` hard negatives per query from the pool (one per
    label; ``mining="random"``: drawn at random among other labels, the
    baseline), then takes one Adam step per ``batch_size`` tuples. ``loss``:
    ``"contrastive"`` (``margin`` 0.7 by default, the cirtorch code's;
    pairs ``(q, p)`` and ``(q, n_k)``) or ``"triplet"`` (``margin`` 0.1 by
    default; triplets ``(q, p, n_k)``), averaged over the batch
    (:mod:`coursekit.learning.losses`). ``lr`` for the head, ``10 lr`` for
    ``p``, times ``exp(-0.01 epoch)``. ``size``: the training images'
    longer side in pixels. ``queries_per_epoch`` at most one per training
    image; ``pool_size`` at most the whole training split.

    ``history``: one dict per epoch: ``epoch`` (1-based), ``loss`` (the
    mean over its tuples, before each step), ``seconds`` (mining and
    training), ``positive_similarity`` and ``negative_similarity`` (the
    mean dot product of each query with its positive, and with its mined
    negatives, before the epoch's steps), ``p`` (GeM's ``p`` after it) and
    ``lr``.

    ``checkpoint``: a file, written after every epoch (the head's and the
    optimiser's state, the epoch, the history, and ``meta``: everything
    that produced them, :func:`checkpoint_meta`). If it exists with the
    same meta, training resumes from its epoch up to ``epochs`` in all (a
    checkpoint already there is simply loaded); if its meta differ, a
    ValueError names the difference: it is never overwritten.
    ``checkpoint="auto"``: a file in the cache (``cache_root()/finetune``)
    named by a digest of the meta, so that a call with the same parameters
    trains once and then loads.

    The defaults and their alternatives (learning rate, blocks trained,
    size, margin, random negatives, triplet loss) are compared, mAP and
    training time, in notebook 08 and the course report; the untrained
    head is exactly the off-the-shelf GeM. ``lr``: their 1e-6 (5e-7 in
    their README) trains a whole ResNet-101 for 100 epochs of 2000
    queries; the last blocks, in five short epochs, need 1e-4. Five
    epochs: past them the training loss keeps falling while the test mAP
    falls, as the head learns the few training objects by heart.
    """
    margin = _check_finetune_args(ds, loss, mining, margin, epochs=epochs, queries_per_epoch=queries_per_epoch,
                                  pool_size=pool_size, n_negatives=n_negatives, batch_size=batch_size)
    net = load_backbone(backbone) if isinstance(backbone, str) else backbone
    labels = np.asarray(ds.train_labels)
    meta = checkpoint_meta(ds, net, n_trainable=int(n_trainable), size=int(size), loss=loss, margin=float(margin),
                           lr=float(lr), weight_decay=float(weight_decay), queries_per_epoch=int(queries_per_epoch),
                           pool_size=int(pool_size), n_negatives=int(n_negatives), mining=mining,
                           batch_size=int(batch_size), seed=int(seed))
    path = _checkpoint_path(checkpoint, ds, meta)
    stored = _read_checkpoint(path, meta)

    _, module = split_backbone(net, n_trainable)
    head = RetrievalHead(module, n_trainable)
    optimizer, base_lrs = _optimizer(head, lr, weight_decay)
    start, history = _resume(head, optimizer, stored, epochs, path)
    head.meta = {**meta, "epochs": start, "loaded_epochs": start}
    if start >= epochs:
        return head.eval(), history

    maps, _ = dataset_trunk_maps(ds, "train", net, n_trainable, size, progress)
    bar = tqdm(range(start, epochs), desc=f"fine-tuning {net.name} on {ds.name}", disable=not progress)
    for epoch in bar:
        history.append(_train_epoch(head, optimizer, base_lrs, maps, labels, epoch, seed, queries_per_epoch,
                                    pool_size, mining, n_negatives, batch_size, loss, margin))
        bar.set_postfix(loss=f"{history[-1]['loss']:.4f}", p=f"{history[-1]['p']:.2f}")
        head.meta = {**meta, "epochs": epoch + 1, "loaded_epochs": start}
        if path is not None:
            _save_checkpoint(path, meta, epoch + 1, history, head, optimizer)
    return head.eval(), history


def load_finetuned(path: str | Path, backbone: Backbone) -> RetrievalHead:
    """The head saved in a :func:`finetune` checkpoint, in eval mode, with its ``meta`` (and ``meta["epochs"]``,
    ``meta["history"]``). ``backbone`` must be the one it was cut from (same name and weights file)."""
    from ..cnn.extract import weights_key

    path = Path(path).expanduser()
    stored = torch.load(path, map_location="cpu", weights_only=True)
    meta = stored["meta"]
    now = json.loads(json.dumps({"backbone": backbone.name, "weights": weights_key(backbone)}))
    if now["backbone"] != meta["backbone"] or now["weights"] != meta["weights"]:
        raise ValueError(f"the checkpoint {path} was trained on {meta['backbone']} with weights {meta['weights']}, "
                         f"not {now['backbone']} with {now['weights']}: load that backbone")
    _, module = split_backbone(backbone, meta["n_trainable"])
    head = RetrievalHead(module, meta["n_trainable"])
    head.load_state_dict(stored["head"])
    head.meta = {**meta, "epochs": int(stored["epoch"]), "history": list(stored["history"])}
    return head.eval()


def finetuned_descriptors(ds, split: str, head: RetrievalHead, backbone: Backbone, size: int | None = None,
                          progress: bool = True) -> np.ndarray:
    """The fine-tuned descriptors of a split (``"db"``, ``"queries"`` cropped to their boxes, ``"train"``):
    ``(N, D) float32``, L2-normalised.

    The trunk's maps come from :func:`dataset_trunk_maps` (cached: only
    the head runs). ``size``: the
    images' longer side, by default the size ``head`` was trained at
    (``head.meta["size"]``; :data:`TRAIN_SIZE` for an untrained head).
    Testing at another size than the training one is allowed (Radenovic
    et al.'s code trains at 362 pixels and tests at 1024), but a head
    trained much smaller than it is tested gains less than one trained at
    the test size: the comparison is in notebook 08.
    """
    if head.meta and head.meta.get("backbone") not in (None, backbone.name):
        raise ValueError(f"this head was cut from {head.meta['backbone']}, not {backbone.name}")
    size = size or head.meta.get("size", TRAIN_SIZE)
    maps, _ = dataset_trunk_maps(ds, split, backbone, head.n_trainable, size, progress)
    return head_descriptors(head, maps)
