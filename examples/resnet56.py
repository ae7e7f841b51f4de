"""A CIFAR-style ResNet-56 (He et al. 2016) left at PyTorch's default BatchNorm init.

Clean in layer order, and residual, so no gradient explosion; but each block's last BatchNorm
starts with gamma = 1, so every block adds its branch to the stream from the first step.
bnlint suggests (BNL202, info) starting those gammas at 0, which makes each block the identity
at initialisation (Goyal et al., arXiv:1706.02677), as examples/resnet_cifar.py does.
"""

import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    def __init__(self, in_ch, out_ch, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(out_ch),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet56(nn.Module):
    def __init__(self, blocks_per_stage=9, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        stages, in_ch = [], 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(blocks_per_stage):
                stages.append(BasicBlock(in_ch, width, 2 if i > 0 and j == 0 else 1))
                in_ch = width
        self.layers = nn.Sequential(*stages)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn(self.conv(x)))
        x = self.layers(x)
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
