"""A deep MLP without normalisation, left at PyTorch's default initialisation.

Clean in layer order; its ReLU activations shrink layer by layer at initialisation, because
the default init (kaiming_uniform with a = sqrt(5)) gives Var(w) = 1/(3 fan_in), a third of
what He init keeps stable through a ReLU (BNL302). The biases soon dominate what is left, and
about half the deep layers' units never fire on the example batch (BNL403).
"""

import torch.nn as nn


def deep_mlp(depth=20, width=256, in_features=64, num_classes=10):
    layers, n = [], in_features
    for _ in range(depth):
        layers += [nn.Linear(n, width), nn.ReLU()]
        n = width
    layers.append(nn.Linear(width, num_classes))
    return nn.Sequential(*layers)


model = deep_mlp()
