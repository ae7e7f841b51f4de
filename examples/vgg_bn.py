"""A VGG-style CNN with BatchNorm, written the way many tutorials write it.

Broken: every conv keeps its default bias although BatchNorm follows (BNL102, fixable), and the
classifier puts Dropout before a Linear -> BatchNorm1d pair, so BatchNorm learns its running
variance with dropout on and uses it with dropout off (BNL101).
"""

import torch.nn as nn


def conv_block(in_ch, out_ch):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class VGG11BN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            conv_block(3, 64), nn.MaxPool2d(2),
            conv_block(64, 128), nn.MaxPool2d(2),
            conv_block(128, 256), conv_block(256, 256), nn.MaxPool2d(2),
            conv_block(256, 512), conv_block(512, 512), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(512 * 2 * 2, 512),
            nn.ReLU(inplace=True),
            nn.Dropout(0.5),
            nn.Linear(512, 512),
            nn.BatchNorm1d(512),
            nn.ReLU(inplace=True),
            nn.Linear(512, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
