"""What finders share: the Context they read, the Hit they yield, and the registry of
code-based finders (:func:`check`)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from ..config import Config
from ..discover.loss import Loss, loss_for
from ..discover.targets import Targets
from ..measurement import ProbeResult
from ..model.graph import Layer, ModelGraph
from ..model.sites import Site
from ..predict.flow import Branch, ModelParams, Prediction, predict, residual_branches
from .catalog import Rule


@dataclass
class Context:
    graph: ModelGraph
    model: nn.Module
    inputs: tuple
    targets: Targets | None
    config: Config
    probe: ProbeResult | None = None   # the measurement, when the probe ran
    batch: int = 64                    # the training batch predictions assume (the probe's)
    synthetic_inputs: bool = False     # the example inputs are random, not the user's data
    catalog: dict[str, Rule] = field(default_factory=dict)  # every rule loaded, by code
    notes: list[str] = field(default_factory=list)  # what a rule could not judge, for the report
    source: str | None = None          # the model's file, when known (the loss is read there)

    def threshold(self, rule: Rule, name: str) -> float:
        return rule.threshold(name, self.config.thresholds)

    @functools.cached_property
    def prediction(self) -> Prediction:
        """The predicted gradient flow at the training batch (computed once, shared by the
        rules)."""
        return self.predict()

    @functools.cached_property
    def _weights(self) -> ModelParams:
        return ModelParams.of(self.model)

    def predict(self, overrides: dict[str, dict[str, float]] | None = None) -> Prediction:
        """The gradient flow predicted at the training batch with ``overrides`` in place of the
        weights' moments (see :func:`bnlint.predict.flow.predict`); the weights are read once,
        for every prediction."""
        return predict(self.graph, self.batch, self.inputs, overrides, self._weights)

    @functools.cached_property
    def tensors(self) -> list[torch.Tensor]:
        """The model's parameters, then its buffers (each once), listed once for the rules."""
        return [*self.model.parameters(), *self.model.buffers()]

    @functools.cached_property
    def weights_readable(self) -> bool:
        """Whether the model's parameters and buffers hold values (not meta or lazy)."""
        return not any(t.is_meta or isinstance(t, nn.parameter.UninitializedTensorMixin)
                       for t in self.tensors)

    @functools.cached_property
    def loss(self) -> Loss | None:
        """The training loss: the config's ``loss``, else inferred from the model's file."""
        return loss_for(self.config.loss, self.source)

    @functools.cached_property
    def branches(self) -> list[Branch]:
        """The model's residual branches (found once, shared by the rules)."""
        return residual_branches(self.graph)


@dataclass
class Hit:
    layer: Layer | None                # locates the finding (its construction site)
    fields: dict[str, Any] = field(default_factory=dict)    # for the rule's message template
    evidence: dict[str, Any] = field(default_factory=dict)
    severity: str | None = None        # overrides the rule's default when the effect is larger
    fix_description: str | None = None
    site: Site | None = None           # where to locate it when there is no layer


Finder = Callable[[Context, Rule], Iterable[Hit]]
REGISTRY: dict[str, Finder] = {}


def check(code: str) -> Callable[[Finder], Finder]:
    """Register the finder of rule ``code``."""
    def register(fn: Finder) -> Finder:
        REGISTRY[code] = fn
        return fn
    return register


def heads_after_affine(graph: ModelGraph, spec: str) -> Iterator[tuple[Layer, Layer]]:
    """(head, layer) for each model output of kind ``spec`` applied right after an affine
    layer (Linear/Conv): a head that ends in it, as opposed to a feature map that does."""
    for head in graph.heads():
        if head.is_(spec):
            feeding = [p for p in graph.prev(head) if p.is_("@affine")]
            if feeding:
                yield head, feeding[0]
