"""Tiny encoders with known answers for the redundancy, ERF and BagSSL tests, and a context builder."""

from __future__ import annotations

import torch
from torch import nn

from coanalysis.analyses.context import EvalContext
from coanalysis.features.extraction import EvalData
from coanalysis.models.trainer import DatasetInfo, Encoder, ImageDataset, load_dataset
from coanalysis.probes.linear import LinearProbe


class BroadcastBackbone(nn.Module):
    """Every local vector equals the global one: conv, average, broadcast to a side x side map."""

    def __init__(self, channels: int = 16, side: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, padding=1)
        self.side = side
        self.channels = {"layer4": channels}

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        g = self.conv(x).relu().mean((2, 3), keepdim=True)
        return g.expand(-1, -1, self.side, self.side)

    def receptive_field(self, layer: str = "layer4") -> None:
        return None


class RandomLocalBackbone(nn.Module):
    """Independent standard-normal local vectors on a side x side map, seeded by each image's pixels
    (so the encoder is a function of its input and no two images share vectors)."""

    def __init__(self, channels: int = 64, side: int = 32):
        super().__init__()
        self.side = side
        self.channels = {"layer4": channels}

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        out = []
        for image in x:
            seed = int((image.double().abs().sum() * 1e4).item()) % (2 ** 31)
            g = torch.Generator().manual_seed(seed)
            out.append(torch.randn(self.channels["layer4"], self.side, self.side, generator=g))
        return torch.stack(out)

    def receptive_field(self, layer: str = "layer4") -> None:
        return None


class ConvStack(nn.Module):
    """k 3x3 convolutions, stride 1, padding 1, no non-linearity between them: RF = 2k + 1 px."""

    def __init__(self, k: int, channels: int = 8):
        super().__init__()
        layers = [nn.Conv2d(3 if i == 0 else channels, channels, 3, padding=1) for i in range(k)]
        self.net = nn.Sequential(*layers)
        self.k = k
        self.channels = {"layer4": channels}

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        return self.net(x)

    def receptive_field(self, layer: str = "layer4") -> int:
        return 2 * self.k + 1


class PixelLinear(nn.Module):
    """A 1x1 convolution: each local vector is an affine function of its pixel, so the global vector
    is an affine function of the mean pixel (linear in the input, up to the bias)."""

    def __init__(self, channels: int = 12):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 1)
        self.channels = {"layer4": channels}

    def forward_features(self, x: torch.Tensor, layer: str = "layer4") -> torch.Tensor:
        return self.conv(x)

    def receptive_field(self, layer: str = "layer4") -> int:
        return 1


class ClassTokenViT(Encoder):
    """A ViT-shaped encoder with a CLS readout and known token statistics: per image (seeded by its
    pixels, as `RandomLocalBackbone`), standard-normal patch tokens on a side x side map and a class
    token drawn from another seed (`patches="independent"`: G unrelated to every local vector), or
    every patch token equal to the class token (`patches="cls"`). `readout="avg"`: G is the mean of
    the patch tokens instead."""

    family = "vit"

    def __init__(self, patches: str, channels: int = 64, side: int = 4, readout: str = "cls"):
        super().__init__(RandomLocalBackbone(channels, side), arch=f"cls-vit-{patches}", arch_kwargs={},
                         mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
        self.patches, self.readout = patches, readout

    def forward_local_global(self, x: torch.Tensor, layer: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.backbone.forward_features(x)
        cls = self.backbone.forward_features(1 - x)[:, :, 0, 0]  # another seed: independent of `tokens`
        if self.patches == "cls":
            tokens = cls[:, :, None, None].expand_as(tokens).contiguous()
        return tokens, cls if self.readout == "cls" else self.pool_map(tokens)

    def forward_local(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        return self.forward_local_global(x)[0]

    def forward_global(self, x: torch.Tensor, layer: str | None = None) -> torch.Tensor:
        return self.forward_local_global(x)[1]

    def pool_map(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.mean(dim=(2, 3))


def wrap(backbone: nn.Module, name: str) -> Encoder:
    torch.manual_seed(0)
    for p in backbone.parameters():
        nn.init.normal_(p, std=0.5)
    return Encoder(backbone, arch=name, arch_kwargs={}, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25)).eval()


def noise_images(n: int, side: int = 16) -> EvalData:
    """`n` uniform-noise images with labels k % 4, as evaluation data."""
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)
    info = DatasetInfo(name="noise", split="test", num_classes=4, image_size=side, source="tests")
    return EvalData.from_dataset(ImageDataset(images, torch.arange(n) % 4, ("a", "b", "c", "d"), info))


def context(encoder: Encoder, *, probe: bool = True, batch_size: int = 64, data: EvalData | None = None) -> EvalContext:
    """A context over `data` (default: the synthetic test split, 256 images, 4 classes) with a random
    linear probe."""
    data = data or EvalData.from_dataset(load_dataset("synthetic", "test"))
    lin = None
    if probe:
        torch.manual_seed(1)
        lin = LinearProbe(encoder.num_features, 4).eval()
    return EvalContext(encoder=encoder, probe=lin, data=data, device=torch.device("cpu"), precision="fp32",
                       batch_size=batch_size)
