"""Pooling a convolutional feature map into one vector: MAC, SPoC, GeM, R-MAC, CroW.

Every function takes the last convolutional map of a batch of images,
``x (B, C, H, W) float32`` (non-negative: after a ReLU or similar), and
returns ``(B, C) float32``, *not* normalised: the pipeline L2-normalises,
whitens and normalises again after pooling. Pure functions; the one
``nn.Module``, :class:`GeM`, exists because its ``p`` is learned
(notebook 08).

========  ==============================================================  ================================
pooling   ``f_k`` for channel ``k`` of map ``X_k`` (``H x W`` cells)        paper
========  ==============================================================  ================================
MAC       ``max_ij X_kij``                                                  Tolias, Sicre and Jegou, ICLR 2016
SPoC      ``sum_ij alpha_ij X_kij``, ``alpha`` a Gaussian centring prior    Babenko and Lempitsky, ICCV 2015
GeM       ``(mean_ij X_kij^p)^(1/p)``: mean at ``p = 1``, max as ``p -> oo``  Radenovic, Tolias and Chum, TPAMI 2018
R-MAC     ``sum_R MAC(X in region R) / ||.||``, regions on ``L`` scales     Tolias, Sicre and Jegou, ICLR 2016
CroW      ``beta_k sum_ij alpha_ij X_kij``, spatial and channel weights     Kalantidis, Mellina and Osindero, ECCVW 2016
========  ==============================================================  ================================
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["mac", "spoc", "centre_prior", "gem", "GeM", "rmac_regions", "regional_mac", "rmac",
           "crow_spatial_weights", "crow_channel_weights", "crow"]


def _check(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        raise ValueError(f"pooling takes a feature map (B, C, H, W); got {getattr(x, 'shape', type(x))}")
    return x


def mac(x: torch.Tensor) -> torch.Tensor:
    """Maximum activation of convolutions: ``(B, C, H, W) -> (B, C)``, the largest value of each channel."""
    return _check(x).amax(dim=(-2, -1))


def centre_prior(H: int, W: int, dtype=torch.float32, device=None) -> torch.Tensor:
    """SPoC's centring prior, ``(H, W)``: a Gaussian on the map's centre.

    Babenko and Lempitsky, "Aggregating deep convolutional features for
    image retrieval", ICCV 2015: ``alpha_ij = exp(-((i - c_i)^2 + (j - c_j)^2) / (2 sigma^2))``
    with ``sigma`` one third of the distance from the centre to the
    nearest border; cell ``(i, j)`` at its centre ``(i + 0.5, j + 0.5)``.
    """
    sigma = min(H, W) / 2.0 / 3.0
    i = torch.arange(H, dtype=dtype, device=device) + 0.5 - H / 2.0
    j = torch.arange(W, dtype=dtype, device=device) + 0.5 - W / 2.0
    return torch.exp(-(i[:, None] ** 2 + j[None, :] ** 2) / (2.0 * sigma ** 2))


def spoc(x: torch.Tensor, prior: bool = True) -> torch.Tensor:
    """Sum-pooled convolutional features: ``(B, C, H, W) -> (B, C)``.

    ``sum_ij alpha_ij X_kij`` with ``alpha`` = :func:`centre_prior` (objects
    of interest tend to be near the centre of a photo), or 1 everywhere
    with ``prior=False`` (plain sum pooling).
    """
    _check(x)
    if not prior:
        return x.sum(dim=(-2, -1))
    alpha = centre_prior(x.shape[-2], x.shape[-1], x.dtype, x.device)
    return (x * alpha).sum(dim=(-2, -1))


def gem(x: torch.Tensor, p: float | torch.Tensor = 3.0, eps: float = 1e-6) -> torch.Tensor:
    """Generalized mean pooling: ``(B, C, H, W) -> (B, C)``, ``(mean_ij max(X_kij, eps)^p)^(1/p)``.

    Radenovic, Tolias and Chum, "Fine-tuning CNN image retrieval with no
    human annotation", TPAMI 2018. ``p = 1`` is average pooling (SPoC
    without its prior, up to the factor ``H W``); as ``p`` grows the largest
    value dominates and GeM tends to MAC; the paper uses ``p = 3``. Values
    are clamped at ``eps`` so that the power is defined and differentiable.
    """
    _check(x)
    return x.clamp(min=eps).pow(p).mean(dim=(-2, -1)).pow(1.0 / p)


class GeM(nn.Module):
    """:func:`gem` with a learnable ``p`` (one for all channels), for fine-tuning (notebook 08)."""

    def __init__(self, p: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.tensor(float(p)))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gem(x, self.p, self.eps)

    def extra_repr(self) -> str:
        return f"p={self.p.item():.3f}, eps={self.eps}"


def rmac_regions(H: int, W: int, L: int = 3, overlap: float = 0.4) -> torch.Tensor:
    """The regions of R-MAC on an ``H x W`` map: ``(R, 4) int64`` rows ``(top, left, height, width)``.

    Tolias, Sicre and Jegou, "Particular object retrieval with integral
    max-pooling of CNN activations", ICLR 2016. Square regions on ``L``
    scales: at scale ``l`` their side is ``floor(2 min(H, W) / (l + 1))``
    (at ``l = 1`` the whole shorter side), and ``l`` of them are spread
    evenly along the shorter side and ``l + m - 1`` along the longer one,
    where the extra count ``m`` (from 1 to 6, 0 for a square map) is the one
    that makes consecutive regions of scale 1 overlap closest to
    ``overlap`` (40%). A 4:3 map gets 2 + 6 + 12 = 20 regions, a square one
    1 + 4 + 9 = 14. Region positions follow the authors' code (and
    ``cirtorch``): centres floored to whole cells.
    """
    if H < 1 or W < 1 or L < 1:
        raise ValueError(f"R-MAC needs a map of at least 1 x 1 and L >= 1; got {H} x {W}, L={L}")
    w = min(H, W)
    extra_h = extra_w = 0
    if H != W:
        steps = torch.arange(2, 8, dtype=torch.float64)                 # possible region counts on the long side
        b = (max(H, W) - w) / (steps - 1)                               # the step between their left edges
        m = int(torch.argmin(torch.abs((w * w - w * b) / (w * w) - overlap))) + 1
        extra_h, extra_w = (m, 0) if H > W else (0, m)
    regions = []
    for l in range(1, L + 1):
        side = math.floor(2 * w / (l + 1))
        if side == 0:
            continue
        half = math.floor(side / 2 - 1)

        def starts(n_extra: int, length: int) -> list[int]:
            n = l + n_extra                                              # regions along this side
            step = (length - side) / (n - 1) if n > 1 else 0.0
            return [int(math.floor(half + k * step) - half) for k in range(n)]

        regions += [(top, left, side, side) for top in starts(extra_h, H) for left in starts(extra_w, W)]
    return torch.tensor(regions, dtype=torch.int64).reshape(-1, 4)


def regional_mac(x: torch.Tensor, regions: torch.Tensor) -> torch.Tensor:
    """MAC of each region: ``x (B, C, H, W)``, ``regions (R, 4)`` -> ``(B, R, C)``.

    One max over a window per region (there are about 20; the loop is over
    regions, not cells).
    """
    _check(x)
    return torch.stack([x[:, :, t:t + h, s:s + w].amax(dim=(-2, -1)) for t, s, h, w in regions.tolist()], dim=1)


def rmac(x: torch.Tensor, L: int = 3, eps: float = 1e-6,
         whitening: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Regional MAC: ``(B, C, H, W) -> (B, C)``, the sum of the L2-normalised MACs of :func:`rmac_regions`.

    Tolias, Sicre and Jegou, ICLR 2016: each regional vector is
    L2-normalised, PCA-whitened (learned on regions of training images)
    and L2-normalised again, then the regional vectors are summed. With
    ``whitening = (mean (C,), P (D, C))`` this does all of it and returns
    ``(B, D)``; without, the whitening step is left out.
    """
    r = regional_mac(x, rmac_regions(x.shape[-2], x.shape[-1], L))             # (B, R, C)
    r = r / (r.norm(dim=-1, keepdim=True) + eps)
    if whitening is not None:
        mean, P = whitening
        r = (r - mean) @ P.T                                                   # (B, R, D)
        r = r / (r.norm(dim=-1, keepdim=True) + eps)
    return r.sum(dim=1)


def crow_spatial_weights(x: torch.Tensor, a: float = 2.0, b: float = 2.0) -> torch.Tensor:
    """CroW's spatial weights: ``(B, C, H, W) -> (B, H, W)``.

    Kalantidis, Mellina and Osindero, "Cross-dimensional weighting for
    aggregated deep convolutional features", ECCVW 2016:
    ``S = sum_k X_k``; ``alpha = (S / ||S||_a)^(1/b)``, with ``a = b = 2``.
    Cells where many channels fire strongly weigh more.
    """
    S = _check(x).sum(dim=1)
    norm = S.pow(a).sum(dim=(-2, -1), keepdim=True).pow(1.0 / a)
    return (S / norm.clamp(min=1e-12)).pow(1.0 / b)


def crow_channel_weights(x: torch.Tensor) -> torch.Tensor:
    """CroW's channel weights: ``(B, C, H, W) -> (B, C)``, an idf of channels.

    ``Q_k`` = the fraction of cells where channel ``k`` is non-zero;
    ``beta_k = log(sum_h Q_h / Q_k)`` (0 for a channel that never fires):
    rare channels, like rare words, weigh more.
    """
    Q = (_check(x) > 0).to(x.dtype).mean(dim=(-2, -1))                 # (B, C)
    total = Q.sum(dim=1, keepdim=True)
    return torch.where(Q > 0, torch.log(total / Q.clamp(min=1e-12)), torch.zeros_like(Q))


def crow(x: torch.Tensor, a: float = 2.0, b: float = 2.0) -> torch.Tensor:
    """CroW pooling: ``(B, C, H, W) -> (B, C)``, ``beta_k sum_ij alpha_ij X_kij``
    (:func:`crow_spatial_weights`, :func:`crow_channel_weights`)."""
    alpha = crow_spatial_weights(x, a, b)
    return (x * alpha[:, None]).sum(dim=(-2, -1)) * crow_channel_weights(x)
