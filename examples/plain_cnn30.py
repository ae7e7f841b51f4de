"""A plain (no skip connections) stack of 30 conv -> BatchNorm -> ReLU blocks.

Clean in layer order; too deep for a plain BN-ReLU chain: gradients grow layer by layer from
the output back to the input at initialisation (Paik & Choi, arXiv:2304.11692).
"""

import torch
import torch.nn as nn


class PlainCNN30(nn.Module):
    def __init__(self, width=16, depth=30, num_classes=10):
        super().__init__()
        blocks, in_ch = [], 3
        for _ in range(depth):
            blocks += [nn.Conv2d(in_ch, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width), nn.ReLU()]
            in_ch = width
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))


EXAMPLE_INPUTS = torch.randn(32, 3, 16, 16)
