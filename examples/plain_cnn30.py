"""A plain (no skip connections) stack of 30 conv -> BatchNorm -> ReLU blocks, VGG-style head.

Clean in layer order; too deep for a plain BN-ReLU chain: gradients grow block by block from
the output back to the input at initialisation (Paik & Choi, arXiv:2304.11692), so the first
conv's weight gradient is about 80x the last one's (bnlint predicts it; the probe measures it):
past the explosion trigger of 70 used by AUTOTRAINER. The classifier reads the flattened
feature map, as VGG's does; behind a global average pool instead, the gradient reaching the
last blocks is the same at every position and their weight gradients come out larger, which
halves the ratio (bench/RESULTS.md).
"""

import torch
import torch.nn as nn


class PlainCNN30(nn.Module):
    def __init__(self, width=16, depth=30, size=16, num_classes=10):
        super().__init__()
        blocks, in_ch = [], 3
        for _ in range(depth):
            blocks += [nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]
            in_ch = width
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width * size * size, num_classes)

    def forward(self, x):
        return self.head(self.body(x).flatten(1))


EXAMPLE_INPUTS = torch.randn(32, 3, 16, 16)
