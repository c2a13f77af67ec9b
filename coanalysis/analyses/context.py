"""`EvalContext`: one model ready for analysis (encoder + probe on the device, evaluation data).

Analyses receive it and classify images through it, so precision, batching and the handling of
undecodable files are the same everywhere. Images, local maps and their accuracies all go through
the batches of `batch_size` that the cached clean features were computed in, so an unchanged
condition (sigma = 0, p = 0, scale 1, epsilon = 0) reproduces the clean accuracy exactly.

What the analyses of one model share is held in named fields, each filled on first use and
emptied by `clear_caches()` before the next model: the evaluation images (`images`), the local
maps (`local_maps`, the one way to get them), the ERF image sets, the corruption providers (with
their look-ahead), the local maps' channel std of the feature-noise cells and a ViT's tokens
for token dropout. How the corruption sources run (worker processes, cache folder) is the command's `CorruptionSettings`.

Under torchrun a cell may be split over the ranks by images (`split`, see `coanalysis.distributed.image_split`):
the correctness helpers then classify this rank's run of whole batches and return every image's
correctness, joined in order, on every rank. `plan` says which cell this process computes after
each one, and how it is split, so the corruption look-ahead produces the right one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

from coanalysis.data.corruption.provider import CorruptionProvider
from coanalysis.data.corruption.settings import CorruptionSettings
from coanalysis.features.extraction import EvalData, FeatureCache, SubsetImages, to_input
from coanalysis.distributed.image_split import ImageSplit
from coanalysis.features.local_maps import LocalMaps, extract_local_maps, resolve_layer, subset
from coanalysis.probes.linear import LinearProbe
from coanalysis.data.sample_images import ImageSet
from coanalysis.models.trainer import Encoder, UserError, autocast

# (float images in [0, 1] (B, 3, H, W) on the device, positions (B,)) -> images of the same kind
ImageTransform = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (local maps (B, C, h, w) on the device, positions (B,)) -> global features (B, C)
MapPooling = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class EvalContext:
    encoder: Encoder  # on `device`, eval mode
    probe: LinearProbe | None  # on `device`, eval mode; None for analyses that need no probe (ERF)
    data: EvalData  # the evaluation subset
    device: torch.device
    precision: str  # "bf16" or "fp32"
    batch_size: int = 256
    workers: int = 0  # DataLoader workers of folder datasets
    probe_identity: dict = field(default_factory=dict)  # how the probe was fitted (recorded in results)
    clean_accuracy: float | None = None  # probe accuracy on `data` from cached features
    cache: FeatureCache | None = None  # on-disk feature cache (local maps); None: no caching
    progress: bool = False  # show progress bars inside long cells
    corruption: CorruptionSettings = field(default_factory=CorruptionSettings)  # how corruption sources run
    split: ImageSplit = field(default_factory=ImageSplit)  # this process's share of the cell's images (all)
    # cell key -> (the cell this process computes next, its split), set by the runner; empty: the analysis's order
    plan: dict[str, tuple[str, ImageSplit]] = field(default_factory=dict, repr=False)
    # ---- per-model caches shared between cells (emptied by `clear_caches`)
    subset_images: dict[int | None, SubsetImages] = field(default_factory=dict, repr=False)  # by n
    map_sets: dict[tuple[str, int, bool], LocalMaps] = field(default_factory=dict, repr=False)  # (layer, N, on device)
    image_sets: dict[tuple[tuple[str, ...], int, int], ImageSet] = field(default_factory=dict, repr=False)  # ERF
    corruption_providers: dict[tuple, CorruptionProvider] = field(default_factory=dict, repr=False)  # by source
    map_channel_std: torch.Tensor | None = field(default=None, repr=False)  # `(C,)` of the on-device local maps
    # a ViT's patch (and prefix) tokens that token dropout corrupts (`analyses.token_dropout.TokenState`), and
    # their per-channel std `(C,)`
    vit_tokens: object | None = field(default=None, repr=False)
    vit_token_std: torch.Tensor | None = field(default=None, repr=False)

    def clear_caches(self) -> None:
        """Forget this model's images, maps and corruption providers (before the next model)."""
        for provider in self.corruption_providers.values():
            provider.close()
        self.subset_images.clear()
        self.map_sets.clear()
        self.image_sets.clear()
        self.corruption_providers.clear()
        self.map_channel_std = None
        self.vit_tokens = self.vit_token_std = None

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1] on the device -> float32 logits `(B, K)`."""
        with autocast(self.device, self.precision):
            features = self.encoder.forward_global(x)
        return self.probe(features.float())

    @torch.no_grad()
    def accuracy(self, transform: ImageTransform | None = None) -> tuple[float, int]:
        """(top-1 accuracy, n) of the probe on `data`, after `transform` when given."""
        correct, _ = self.correctness(transform)
        return int(correct.sum()) / max(len(correct), 1), len(correct)

    @torch.no_grad()
    def correctness(self, transform: ImageTransform | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(per-image correctness `(n,)` bool, dataset indices `(n,)`) of the probe on `data`, in
        the evaluation subset's order, after `transform` when given (see `coanalysis.results.stats`)."""
        correct, ids = [torch.zeros(0, dtype=torch.bool)], [torch.zeros(0, dtype=torch.long)]
        rows = self.split.rows(len(self.data), self.batch_size)
        for images, labels, positions in self.data.batches(self.batch_size, self.workers, rows):
            x = to_input(images, self.device)
            if transform is not None:
                x = transform(x, positions)
            correct.append(self.logits(x).argmax(1).cpu() == labels)
            ids.append(self.data.indices[positions])
        return self.split.join(torch.cat(correct)), self.split.join(torch.cat(ids))

    # ---- shared by the robustness analyses: the evaluation images and local maps, kept once per context

    def images(self, n: int | None = None) -> SubsetImages:
        """The decodable images of `data` as uint8 `(N, 3, H, W)` on the CPU, with labels and positions.

        `n` < len(data) selects the images whose dataset index is among the first `n` of the
        evaluation subset's seeded permutation, so a smaller subset is nested in a larger one (and
        in the evaluation subset itself). Positions index into `data` (0..len-1), so per-image
        seeds do not depend on `n`. Kept in `subset_images` for the next cell.
        """
        if n not in self.subset_images:
            if None not in self.subset_images:
                chunks, labels, positions = [], [], []
                for x, y, pos in self.data.batches(self.batch_size, self.workers):
                    chunks.append(x)
                    labels.append(y)
                    positions.append(pos)
                if not chunks:
                    raise UserError(f"no image of the evaluation subset decoded ({len(self.data)} tried)")
                self.subset_images[None] = SubsetImages(torch.cat(chunks), torch.cat(labels), torch.cat(positions))
            full = self.subset_images[None]
            if n is not None and n < len(self.data):
                if n < 1:
                    raise UserError(f"the number of images must be at least 1, got {n}")
                g = torch.Generator().manual_seed(self.data.seed)
                chosen = torch.randperm(len(self.data.dataset), generator=g)[:n]
                keep = torch.isin(self.data.indices[full.positions], chosen)
                self.subset_images[n] = SubsetImages(full.images[keep], full.labels[keep], full.positions[keep])
            else:
                self.subset_images[n] = full
        return self.subset_images[n]

    @torch.no_grad()
    def accuracy_of_images(self, images: torch.Tensor, labels: torch.Tensor,
                           transform: ImageTransform | None = None,
                           positions: torch.Tensor | None = None) -> tuple[float, int]:
        """(top-1, n) of the probe on uint8 images `(N, 3, H, W)` (CPU) with labels `(N,)`.

        Batches of `batch_size` in order, as `accuracy` does, so the same images give the same
        count; `transform(x, positions)` is applied to each float batch when given.
        """
        correct = self.correctness_of_images(images, labels, transform, positions)
        return int(correct.sum()) / max(len(labels), 1), len(labels)

    @torch.no_grad()
    def correctness_of_images(self, images: torch.Tensor, labels: torch.Tensor,
                              transform: ImageTransform | None = None,
                              positions: torch.Tensor | None = None, *, share: bool = False) -> torch.Tensor:
        """Per-image correctness `(N,)` bool of `accuracy_of_images`, in the images' order. Split,
        this process classifies its rows of `images` (all of them when `share`: the images are
        already this process's rows) and every process's parts are joined."""
        out = [torch.zeros(0, dtype=torch.bool)]
        positions = torch.arange(len(labels)) if positions is None else positions
        if not share:
            start, end = self.split.rows(len(labels), self.batch_size)
            images, labels, positions = images[start:end], labels[start:end], positions[start:end]
        for start in range(0, len(labels), self.batch_size):
            x = to_input(images[start:start + self.batch_size], self.device)
            if transform is not None:
                x = transform(x, positions[start:start + self.batch_size])
            out.append(self.logits(x).argmax(1).cpu() == labels[start:start + self.batch_size])
        return self.split.join(torch.cat(out))

    def local_maps(self, n: int | None = None, layer: str | None = None, *, on_device: bool = False) -> LocalMaps:
        """The local maps of the first `n` images of the evaluation subset's seeded permutation (all
        of them when None) at `layer` (default: the encoder's local layer), kept for the next cell.

        `on_device=False` (the redundancy analysis): float16 maps on the CPU, read from or written
        to the feature cache (`coanalysis.features.local_maps`). `on_device=True` (the dropout analysis):
        the maps of every decodable image of `data` at the local layer, on the device in the
        inference dtype (bf16 under bf16 autocast), computed in the batches `accuracy` uses, so
        pooling them exactly as `Encoder.forward_global` does reproduces the clean features.
        """
        layer = resolve_layer(self.encoder, layer)
        data = subset(self.data, n)
        key = (layer, len(data), on_device)
        if key not in self.map_sets:
            if not on_device:
                self.map_sets[key] = extract_local_maps(self.encoder, data, device=self.device,
                                                        batch_size=self.batch_size, precision=self.precision,
                                                        layer=layer, cache=self.cache, progress=self.progress,
                                                        workers=self.workers)
            elif data is not self.data or layer != self.encoder.local_layer:
                raise UserError("local maps on the device are kept for the whole evaluation subset at the "
                                "encoder's local layer only")
            else:
                self.map_sets[key] = self._maps_on_device(layer)
        return self.map_sets[key]

    @torch.no_grad()
    def _maps_on_device(self, layer: str) -> LocalMaps:
        maps, labels, positions = [], [], []
        for images, y, pos in self.data.batches(self.batch_size, self.workers):
            with autocast(self.device, self.precision):
                maps.append(self.encoder.forward_local(to_input(images, self.device)))
            labels.append(y)
            positions.append(pos)
        positions = torch.cat(positions)
        return LocalMaps(torch.cat(maps), torch.cat(labels), self.data.indices[positions], self.data, layer,
                         positions=positions)

    @torch.no_grad()
    def accuracy_from_maps(self, pool: MapPooling) -> tuple[float, int]:
        """(top-1, n) of the probe on `pool(maps, positions) -> (B, C)` global features of the
        local maps, in chunks of `batch_size`, under the inference autocast; the probe itself
        runs in float32 as in `logits`."""
        correct = self.correctness_from_maps(pool)
        return int(correct.sum()) / max(len(correct), 1), len(correct)

    @torch.no_grad()
    def correctness_from_maps(self, pool: MapPooling) -> torch.Tensor:
        """Per-image correctness `(N,)` bool of `accuracy_from_maps`, in the maps' order."""
        local = self.local_maps(on_device=True)
        out = [torch.zeros(0, dtype=torch.bool)]
        first, end = self.split.rows(len(local.labels), self.batch_size)
        for start in range(first, end, self.batch_size):
            chunk = slice(start, start + self.batch_size)
            with autocast(self.device, self.precision):
                features = pool(local.maps[chunk], local.positions[chunk])
            out.append(self.probe(features.float()).argmax(1).cpu() == local.labels[chunk])
        return self.split.join(torch.cat(out))
