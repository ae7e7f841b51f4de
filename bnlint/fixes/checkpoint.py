"""How to load a checkpoint saved before ``--fix`` changed a model's state_dict keys: per model,
Python that maps the old keys to the new ones (from the fixes' :class:`KeyChange`), which the
CLI prints once the fixes are written. Imports neither torch nor libcst."""

from __future__ import annotations

import json

from .. import findings
from .plan import FilePatch

CHECKPOINT = "checkpoint.pt"  # what the snippet loads: the user's own path goes there


def snippet(changes: list[findings.KeyChange]) -> list[str]:
    """Lines that load an old checkpoint into ``model``, the fixed model: each folded bias
    moved into its BatchNorm's running mean, each other removed key dropped, and the keys
    the fixes added checked to be the only ones missing."""
    removed = list(dict.fromkeys(k for c in changes for k in c.removed))
    added = list(dict.fromkeys(k for c in changes for k in c.added))
    folded: dict[str, list[str]] = {}
    for c in changes:
        for bias, mean in c.folded:
            folded.setdefault(bias, []).append(mean)
    lines = [f'state = torch.load("{CHECKPOINT}")']
    if folded:
        lines.append("# A bias before a BatchNorm moves into its running mean (outputs unchanged).")
    for bias, means in folded.items():
        if len(means) == 1:
            lines.append(f'state["{means[0]}"] -= state.pop("{bias}")')
        else:
            lines.append(f'bias = state.pop("{bias}")')
            lines += [f'state["{mean}"] -= bias' for mean in means]
    dropped = [k for k in removed if k not in folded]
    if dropped:
        lines.append("# The modules the fixes removed take their keys with them.")
        if len(dropped) <= 2:
            lines.append(f"for key in {json.dumps(dropped)}:")
        else:
            lines += ["for key in [", *(f'    "{k}",' for k in dropped), "]:"]
        lines.append("    del state[key]")
    if added:
        lines += ["# The keys the fixes added keep their initial values.",
                  "missing = model.load_state_dict(state, strict=False).missing_keys",
                  f"assert sorted(missing) == {json.dumps(sorted(added))}"]
    else:
        lines.append("model.load_state_dict(state)")
    return lines


def advice(patches: list[FilePatch], report: findings.Report) -> list[str]:
    """One message per model whose state_dict keys the written patches change: what to run to
    load a checkpoint saved before them."""
    model_of = {id(f): m for m in report.models for f in m.findings}
    changed: dict[int, tuple[findings.ModelReport, list[findings.KeyChange]]] = {}
    for patch in patches:
        for fix in patch.fixes:
            for f in fix.findings:
                if f.fix and f.fix.state_dict and id(f) in model_of:
                    model = model_of[id(f)]
                    changed.setdefault(id(model), (model, []))[1].append(f.fix.state_dict)
    return [f"the fixes change the state_dict keys of {model.name} ({model.path}). To load a "
            f"checkpoint saved before them into the fixed model, as `model`:\n"
            + "".join(f"    {line}\n" for line in snippet(changes))
            for model, changes in changed.values()]
