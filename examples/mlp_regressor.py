"""An MLP regressor for a 1-D signal whose targets are tiny (std about 1e-3).

Broken: the head ends in a ReLU, so predictions cannot go negative and output units can die
(BNL401, an error here since the targets are real-valued), and the targets are far from unit
variance (BNL402; Arnekvist et al., arXiv:2005.06195).
"""

import math

import torch
import torch.nn as nn


class Regressor(nn.Module):
    def __init__(self, width=32, depth=4):
        super().__init__()
        layers, in_features = [], 1
        for _ in range(depth):
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        layers += [nn.Linear(width, 1), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def example_inputs():
    return (torch.linspace(-math.pi, math.pi, 256).unsqueeze(1),)


def example_targets():
    x = example_inputs()[0]
    return 1.4e-3 * torch.sin(2 * x)
