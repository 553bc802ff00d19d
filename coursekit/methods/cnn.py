"""The CNN methods: poolings of a pretrained network's last map (notebook 07) and GeM fine-tuned (notebook 08)."""

from __future__ import annotations

import numpy as np

from ..datasets import Dataset
from ..whitening import fit_pca_whitening, fit_shrunk_whitening, l2_normalize
from .features import Retrieval

__all__ = ["CNN_SIZE", "MULTI_SCALE", "fc", "mac", "spoc", "rmac", "crow", "gem", "gem_ms", "gem_finetuned"]


def _cnn(ds: Dataset, pooling: str, backbone: str, weights, size: int, scales: tuple[float, ...], with_train: bool,
         progress: bool) -> Retrieval:
    """L2-normalised CNN vectors of one pooling for the database, the (cropped) queries and, with
    ``with_train``, the training split (:func:`coursekit.cnn.extract.dataset_descriptors`, or
    :func:`~coursekit.cnn.extract.dataset_fc_codes` for ``"fc"``; cached).
    ``backbone``, ``weights``: as :func:`coursekit.cnn.backbones.load_backbone`."""
    from ..cnn.backbones import load_backbone
    from ..cnn.extract import dataset_descriptors, dataset_fc_codes

    net = load_backbone(backbone, weights)
    splits = ["db", "queries"] + (["train"] if with_train and ds.train else [])
    X, saved = {}, 0.0
    for split in splits:
        if pooling == "fc":
            V, s = dataset_fc_codes(ds, split, net, progress=progress)
        else:
            arrays, s = dataset_descriptors(ds, split, net, size, scales, progress=progress)
            V = arrays[pooling]
        X[split], saved = l2_normalize(V), saved + s
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=saved, X_train=X.get("train"))


CNN_SIZE = 480                                   # pixels on the longer side
MULTI_SCALE = (1.0, 1.0 / np.sqrt(2.0), 0.5)     # Radenovic, Tolias and Chum, TPAMI 2018


def fc(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, progress: bool = True,
       with_train: bool = False) -> Retrieval:
    """"Neural codes" (Babenko, Slesarev, Chigorin and Lempitsky, ECCV 2014; Razavian et al., CVPRW 2014):
    the network's own global vector of the image squashed to 224 x 224 (VGG16's fc7; the pooled input of
    the classifier for EfficientNet-Lite and ResNet), L2-normalised."""
    return _cnn(ds, "fc", backbone, weights, CNN_SIZE, (1.0,), with_train, progress)


def mac(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
        with_train: bool = False) -> Retrieval:
    """MAC: the maximum of each channel of the last convolutional map (Tolias, Sicre and Jegou, ICLR 2016), L2."""
    return _cnn(ds, "mac", backbone, weights, size, (1.0,), with_train, progress)


def spoc(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False) -> Retrieval:
    """SPoC: sum pooling with a Gaussian centring prior (Babenko and Lempitsky, ICCV 2015), L2."""
    return _cnn(ds, "spoc", backbone, weights, size, (1.0,), with_train, progress)


def rmac(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False, whiten_regions: bool = False, dim: int | None = None) -> Retrieval:
    """R-MAC: the sum of the L2-normalised MACs of regions on 3 scales (Tolias, Sicre and Jegou, ICLR 2016), L2.

    With ``whiten_regions`` (what ``--whiten`` does for this method), each
    regional vector is whitened, then L2-normalised, before the sum, as in the
    paper; the whitening is learned on the regions of the training split
    (every dimension kept, or PCA-whitening to ``dim``; see :func:`whitened`).
    That takes a pass of the network of its own (cached), since the regions
    of the other methods' pass are summed at once.
    """
    if not whiten_regions:
        if dim is not None:
            raise ValueError("dim is the dimension the regional whitening keeps: pass it with whiten_regions")
        return _cnn(ds, "rmac", backbone, weights, size, (1.0,), with_train, progress)
    from ..cnn.backbones import load_backbone
    from ..cnn.extract import dataset_regional_macs

    if not ds.train:
        raise ValueError(f"the regional whitening is learned on a training split and {ds.name!r} has none")
    net = load_backbone(backbone, weights)
    regions = {split: dataset_regional_macs(ds, split, net, size, progress=progress)
               for split in ("train", "db", "queries")}                       # (V, starts, seconds saved)
    V_train = regions["train"][0]
    W = fit_shrunk_whitening(V_train) if dim is None else fit_pca_whitening(V_train, dim)
    X = {split: l2_normalize(np.add.reduceat(W.apply(V), starts, axis=0)) for split, (V, starts, _) in regions.items()}
    saved = sum(r[2] for r in regions.values())
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=saved, X_train=X["train"])


def crow(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
         with_train: bool = False) -> Retrieval:
    """CroW: sum pooling with spatial and channel weights (Kalantidis, Mellina and Osindero, ECCVW 2016), L2."""
    return _cnn(ds, "crow", backbone, weights, size, (1.0,), with_train, progress)


def gem(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
        with_train: bool = False) -> Retrieval:
    """GeM: the generalized mean with p = 3 of each channel (Radenovic, Tolias and Chum, TPAMI 2018), L2."""
    return _cnn(ds, "gem", backbone, weights, size, (1.0,), with_train, progress)


def gem_ms(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE, progress: bool = True,
           with_train: bool = False) -> Retrieval:
    """GeM at the scales 1, 1/sqrt 2 and 1/2 of ``size``, the L2-normalised vectors summed, then L2
    (Radenovic, Tolias and Chum, TPAMI 2018)."""
    return _cnn(ds, "gem", backbone, weights, size, MULTI_SCALE, with_train, progress)


def gem_finetuned(ds: Dataset, backbone: str = "efficientnet_lite0", weights=None, size: int = CNN_SIZE,
                  progress: bool = True, with_train: bool = False, settings: dict | None = None,
                  train_on: str | None = None) -> Retrieval:
    """GeM of a CNN whose last two blocks and GeM's p were fine-tuned on the dataset's training split, L2
    (contrastive loss, hard negatives re-mined every epoch: Radenovic, Tolias and Chum, TPAMI 2018).

    Trains with :func:`coursekit.learning.finetune.finetune` (its defaults, overridden by ``settings``, e.g.
    :data:`coursekit.learning.finetune.FAST`) once per dataset, size and settings (notebook 08 says how long
    it takes). The checkpoint is kept in the cache and loaded on later calls,
    and by notebook 08, which trains with the same defaults. ``cached_seconds`` counts the loaded epochs.

    ``train_on``: the name of another dataset whose training split trains the network (``"embedded"`` for
    SMVS, which has none: a test across domains); by default ``ds``'s own.
    """
    from ..cnn.backbones import load_backbone
    from ..datasets import load_dataset
    from ..learning.finetune import finetune, finetuned_descriptors

    source = ds if train_on is None else load_dataset(train_on)
    if not source.train or source.train_labels is None:
        raise ValueError(f"gem_finetuned learns from a labelled training split, and {source.name!r} has none: "
                         "fine-tune on another dataset's (--train-on embedded, or train_on='embedded')")
    net = load_backbone(backbone, weights)
    head, history = finetune(source, net, **{"size": size, **(settings or {})}, checkpoint="auto",
                             progress=progress)
    trained = sum(h["seconds"] for h in history[:head.meta["loaded_epochs"]])   # the time of the loaded epochs
    X = {split: finetuned_descriptors(ds, split, head, net, None, progress)
         for split in ["db", "queries"] + (["train"] if with_train and ds.train else [])}
    return Retrieval(X["queries"] @ X["db"].T, X["db"], X["queries"], cached_seconds=trained,
                     X_train=X.get("train"))
