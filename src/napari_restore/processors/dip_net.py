"""The Deep Image Prior "skip" encoder–decoder (Ulyanov, Vedaldi & Lempitsky, 2018).

A faithful, compact re-implementation of ``models/skip.py`` of the official repository
(DmitryUlyanov/deep-image-prior): at every scale a strided 3×3 convolution halves the size,
a second 3×3 convolution follows, the deeper part is upsampled bilinearly by 2, concatenated
with a 1×1 "skip" branch, and mixed by a 3×3 and a 1×1 convolution. Every convolution uses
reflection padding and is followed by BatchNorm and LeakyReLU(0.2); the output goes through a
sigmoid. The paper's denoising net has 5 scales of 128 channels and 4 skip channels.

torch is imported by :func:`build_skip_net` only, so importing this module costs nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class NetPreset:
    """Width and depth of the skip net."""

    channels: int
    depth: int
    skip_channels: int


#: The paper's denoising configuration (GPU default).
PAPER = NetPreset(channels=128, depth=5, skip_channels=4)
#: CPU default: same architecture, a quarter of the width (about 16x fewer multiply-adds in
#: the 3x3 convolutions; benchmarks/bench_dip.py measures speed and PSNR against PAPER).
CPU = NetPreset(channels=32, depth=5, skip_channels=4)


def build_skip_net(
    in_channels: int, out_channels: int, preset: NetPreset
) -> Any:  # -> torch.nn.Module
    """Return the skip encoder–decoder as a ``torch.nn.Module`` (float32, on the CPU)."""
    import torch
    from torch import nn

    def conv(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
        layers: list[nn.Module] = []
        pad = (k - 1) // 2
        if pad:
            layers.append(nn.ReflectionPad2d(pad))
        layers.append(nn.Conv2d(cin, cout, k, stride=stride, padding=0, bias=True))
        return layers

    def cba(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
        return [*conv(cin, cout, k, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2, inplace=True)]

    class Level(nn.Module):
        """One scale: ``cat(skip(x), up(deeper(down(x))))`` followed by the up convolutions."""

        def __init__(self, cin: int, ch: int, skip: int, inner: nn.Module | None, inner_out: int):
            super().__init__()
            self.skip = nn.Sequential(*cba(cin, skip, 1)) if skip else None
            down = [*cba(cin, ch, 3, stride=2), *cba(ch, ch, 3)]
            if inner is not None:
                down.append(inner)
            self.deeper = nn.Sequential(
                *down, nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
            )
            k = inner_out if inner is not None else ch
            self.cat_bn = nn.BatchNorm2d(skip + k)
            self.up = nn.Sequential(*cba(skip + k, ch, 3), *cba(ch, ch, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            deep = self.deeper(x)
            if self.skip is not None:
                deep = torch.cat([self.skip(x), deep], dim=1)
            return self.up(self.cat_bn(deep))

    ch, depth, skip = preset.channels, preset.depth, preset.skip_channels
    inner: nn.Module | None = None
    for level in reversed(range(depth)):
        cin = in_channels if level == 0 else ch
        inner = Level(cin, ch, skip, inner, ch)
    assert inner is not None
    return nn.Sequential(inner, *conv(ch, out_channels, 1), nn.Sigmoid())
