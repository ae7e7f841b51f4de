"""A 1-D CNN keyword spotter on raw audio features, written with functional activations.

Broken: a copy-paste slip normalises twice (BNL103), a tanh sits between a conv and its
BatchNorm (BNL104), and the logits go through F.relu (BNL401).
"""

import torch.nn as nn
import torch.nn.functional as F


class KeywordCNN(nn.Module):
    def __init__(self, n_mels=40, num_keywords=12):
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, 64, kernel_size=5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm1d(64)
        self.bn1b = nn.BatchNorm1d(64)
        self.conv2 = nn.Conv1d(64, 64, kernel_size=5, padding=2)
        self.bn2 = nn.BatchNorm1d(64)
        self.out = nn.Linear(64, num_keywords)

    def forward(self, x):
        x = F.relu(self.bn1b(self.bn1(self.conv1(x))))
        x = self.bn2(F.tanh(self.conv2(x)))
        x = x.mean(dim=2)
        return F.relu(self.out(x))
