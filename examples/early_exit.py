"""A CNN with an input-dependent early exit: forward() branches on a tensor value.

torch.fx cannot trace that branch, so bnlint lints this model from one hooked forward pass
(BNL001, info) and reports how much of the model the pass covered.
"""

import torch
import torch.nn as nn


class EarlyExitCNN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(32), nn.ReLU())
        self.exit1 = nn.Linear(32, num_classes)
        self.deep = nn.Sequential(nn.Conv2d(32, 64, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(64), nn.ReLU())
        self.exit2 = nn.Linear(64, num_classes)

    def forward(self, x):
        h = self.stem(x)
        early = self.exit1(h.mean(dim=(2, 3)))
        if early.softmax(dim=1).max() > 0.9:  # confident enough: stop here
            return early
        return self.exit2(self.deep(h).mean(dim=(2, 3)))


def example_inputs():
    torch.manual_seed(0)
    return torch.randn(16, 3, 32, 32)
