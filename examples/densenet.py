"""A small DenseNet-BC-style network: each layer's output is concatenated onto its input.

Clean: pre-activation BN -> ReLU -> conv layers, bias-free convs, concatenation merges.
"""

import torch
import torch.nn as nn


class DenseLayer(nn.Module):
    def __init__(self, in_ch, growth):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.conv1 = nn.Conv2d(in_ch, 4 * growth, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(4 * growth)
        self.conv2 = nn.Conv2d(4 * growth, growth, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        return torch.cat([x, out], dim=1)


class Transition(nn.Sequential):
    def __init__(self, in_ch, out_ch):
        super().__init__(nn.BatchNorm2d(in_ch), nn.ReLU(inplace=True),
                         nn.Conv2d(in_ch, out_ch, 1, bias=False), nn.AvgPool2d(2))


class DenseNet(nn.Module):
    def __init__(self, growth=12, layers_per_block=4, num_classes=10):
        super().__init__()
        ch = 2 * growth
        parts = [nn.Conv2d(3, ch, 3, padding=1, bias=False)]
        for block in range(3):
            for _ in range(layers_per_block):
                parts.append(DenseLayer(ch, growth))
                ch += growth
            if block < 2:
                parts.append(Transition(ch, ch // 2))
                ch //= 2
        parts += [nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                  nn.Flatten()]
        self.features = nn.Sequential(*parts)
        self.classifier = nn.Linear(ch, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x))
