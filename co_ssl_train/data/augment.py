"""SSL augmentations run on a whole batch on the device, with independent parameters per image.

`augment_batch(images_uint8, view, generator)` turns uint8 `(B, 3, H, W)` images into one float
view `(B, 3, S, S)` in [0, 1]: random resized crop and horizontal flip (one `grid_sample` with a
per-image affine grid), colour jitter, grayscale, Gaussian blur and solarization. Every random
number is drawn per image from a CPU `torch.Generator`, so a run is reproducible and resumable on
any device.

Where we differ from torchvision (ours, recorded in the config): the crop box is clamped into the
image instead of re-sampled up to 10 times; colour jitter is applied in the fixed order brightness,
contrast, saturation, hue; hue is rotated in YIQ space; the crop resize is bilinear without
antialiasing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

_GREY = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as torchvision's rgb_to_grayscale


@dataclass(frozen=True)
class ViewAugment:
    """Parameters of one view's augmentation pipeline (BYOL's defaults)."""

    size: int
    scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the crop; scale[0] is c_min
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grey_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0


def byol_views(size: int, min_scale: float = 0.08, blur: bool = True) -> tuple[ViewAugment, ViewAugment]:
    """BYOL's asymmetric pair: view 1 always blurred, view 2 rarely blurred and sometimes solarized.

    `blur=False` (our default for images of 64 px and less, as solo-learn's CIFAR recipes) turns
    blur off in both views.
    """
    scale = (min_scale, 1.0)
    return (ViewAugment(size, scale=scale, blur_p=1.0 if blur else 0.0, solarize_p=0.0),
            ViewAugment(size, scale=scale, blur_p=0.1 if blur else 0.0, solarize_p=0.2))


def _uniform(g: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(n, generator=g)


def _coin(g: torch.Generator, n: int, p: float) -> torch.Tensor:
    return torch.rand(n, generator=g) < p


def crop_flip_grids(n: int, view: ViewAugment, g: torch.Generator) -> torch.Tensor:
    """Per-image affine matrices `(n, 2, 3)` for `F.affine_grid`: a random crop box, maybe mirrored."""
    area = _uniform(g, n, *view.scale)
    log_ratio = _uniform(g, n, math.log(view.ratio[0]), math.log(view.ratio[1]))
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(area * ratio).clamp(max=1.0)  # fractions of the image side
    h = torch.sqrt(area / ratio).clamp(max=1.0)
    cx = (torch.rand(n, generator=g) * 2 - 1) * (1 - w)  # centre in [-1, 1] keeping the box inside
    cy = (torch.rand(n, generator=g) * 2 - 1) * (1 - h)
    flip = torch.where(_coin(g, n, view.flip_p), -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    return theta


def _grey(x: torch.Tensor) -> torch.Tensor:
    w = torch.tensor(_GREY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _hue_rotation(angle: torch.Tensor) -> torch.Tensor:
    """RGB->RGB matrices `(n, 3, 3)` rotating hue by `angle` radians in YIQ space."""
    to_yiq = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])
    to_rgb = torch.linalg.inv(to_yiq)
    c, s = torch.cos(angle), torch.sin(angle)
    rot = torch.zeros(angle.shape[0], 3, 3)
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = c, -s, s, c
    return to_rgb @ rot @ to_yiq


def _blur_kernels(sigma: torch.Tensor, size: int) -> torch.Tensor:
    """Normalized 1-D Gaussian kernels `(n, k)`, k about 10% of the image side and odd."""
    radius = max(1, round(0.05 * size))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t[None] / sigma[:, None]) ** 2)
    return k / k.sum(1, keepdim=True)


def augment_batch(images: torch.Tensor, view: ViewAugment, g: torch.Generator) -> torch.Tensor:
    """uint8 `(B, 3, H, W)` on any device -> one augmented float view `(B, 3, S, S)` in [0, 1]."""
    n, device = images.shape[0], images.device
    x = images.float().div_(255)
    # crop + flip: one resampling per image
    theta = crop_flip_grids(n, view, g).to(device)
    grid = F.affine_grid(theta, [n, 3, view.size, view.size], align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # colour jitter: identity factors for the images it is not applied to
    jit = _coin(g, n, view.jitter_p)
    b = torch.where(jit, _uniform(g, n, 1 - view.brightness, 1 + view.brightness), torch.ones(n))
    c = torch.where(jit, _uniform(g, n, 1 - view.contrast, 1 + view.contrast), torch.ones(n))
    s = torch.where(jit, _uniform(g, n, 1 - view.saturation, 1 + view.saturation), torch.ones(n))
    h = torch.where(jit, _uniform(g, n, -view.hue, view.hue), torch.zeros(n))
    b, c, s = (v.to(device).view(n, 1, 1, 1) for v in (b, c, s))
    x = (x * b).clamp_(0, 1)
    x = ((x - _grey(x).mean(dim=(2, 3), keepdim=True)) * c + _grey(x).mean(dim=(2, 3), keepdim=True)).clamp_(0, 1)
    grey = _grey(x)
    x = (grey + (x - grey) * s).clamp_(0, 1)
    rot = _hue_rotation(h * 2 * math.pi).to(device)
    x = torch.einsum("nij,njhw->nihw", rot, x).clamp_(0, 1)

    # grayscale
    to_grey = _coin(g, n, view.grey_p).to(device).view(n, 1, 1, 1)
    x = torch.where(to_grey, _grey(x).expand_as(x), x)

    # Gaussian blur: separable, one kernel per image (grouped convolution)
    blur = _coin(g, n, view.blur_p)
    sigma = _uniform(g, n, *view.blur_sigma)
    if blur.any():
        kernels = _blur_kernels(sigma, view.size).to(device)
        kernels[~blur.to(device)] = 0
        kernels[~blur.to(device), kernels.shape[1] // 2] = 1  # identity kernel
        k = kernels.shape[1]
        weight = kernels.repeat_interleave(3, dim=0)
        flat = x.reshape(1, n * 3, view.size, view.size)
        flat = F.conv2d(F.pad(flat, (k // 2, k // 2, 0, 0), mode="reflect"), weight.view(n * 3, 1, 1, k), groups=n * 3)
        flat = F.conv2d(F.pad(flat, (0, 0, k // 2, k // 2), mode="reflect"), weight.view(n * 3, 1, k, 1), groups=n * 3)
        x = flat.view(n, 3, view.size, view.size)

    # solarization at threshold 0.5
    sol = _coin(g, n, view.solarize_p).to(device).view(n, 1, 1, 1)
    x = torch.where(sol & (x >= 0.5), 1 - x, x)
    return x
