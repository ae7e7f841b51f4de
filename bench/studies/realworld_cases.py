"""What bench/studies/realworld.py lints, each file presented to bnlint as its user would:

- corpus files (``--corpus DIR``): the files marked ``"role": "target"`` in ``DIR/MANIFEST.json``
  (without a manifest, every .py file that mentions torch), linted in a copy of the corpus from
  the top folder of their repository, as ``bnlint models/vgg.py`` typed there;
- torchvision's model files (``--zoo``): every file of the installed torchvision that defines
  a classification model (``torchvision.models.list_models``), linted in place as a file inside
  its installed package, from an empty project folder, so findings point into those files;
- user files (``--zoo``): the few lines a user writes to lint a library model, a factory that
  returns ``timm.create_model(NAME)`` (a sample across timm's families) or
  ``torchvision.models.NAME()``, written into a folder of their own.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

# One or two architectures per timm family, the smallest variant where there is a choice.
TIMM_SAMPLE = (
    "resnet18", "resnet50", "resnetv2_50", "resnext50_32x4d", "seresnet50", "res2net50_26w_4s",
    "resnest14d", "skresnet18", "regnetx_002", "regnety_008", "regnetz_b16", "efficientnet_b0",
    "efficientnetv2_rw_t", "mobilenetv3_large_100", "mobilenetv4_conv_small", "mnasnet_100",
    "ghostnet_100", "lcnet_050", "rexnet_100", "densenet121", "dpn68", "vgg11_bn",
    "inception_v3", "xception41", "dla34", "cspdarknet53", "hrnet_w18_small", "dm_nfnet_f0",
    "repvgg_a0", "convnext_atto", "convnextv2_atto", "vit_tiny_patch16_224",
    "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224", "cait_xxs24_224", "convit_tiny",
    "levit_128s", "mixer_s16_224", "resmlp_12_224", "poolformer_s12", "mobilevit_xxs",
    "edgenext_xx_small", "maxvit_tiny_rw_224", "coatnet_nano_rw_224", "fastvit_t8",
    "eva02_tiny_patch14_224", "pvt_v2_b0", "efficientvit_b0", "botnet26t_256",
    "tiny_vit_5m_224",
)
TORCHVISION_USER_SAMPLE = ("resnet50", "vgg16_bn", "mobilenet_v3_small", "vit_b_16",
                           "inception_v3")
QUICK_ZOO = {"torchvision": ("squeezenet", "mobilenetv3"), "timm": ("resnet18", "lcnet_050"),
             "torchvision-user": ("resnet50",)}


@dataclass
class Case:
    label: str           # how the tables name it
    kind: str            # model-file, script, tutorial, library-file, user-file
    source: str          # corpus, torchvision, timm
    path: Path           # the file linted
    cwd: Path            # where bnlint runs (the user's project folder)
    watch: Path          # the folder whose files must not change (snapshotted)
    roots: list[Path]    # folders whose code is the user's (for the call tracer)
    expected: list[str] = field(default_factory=list)  # architectures the file should yield

    @property
    def arg(self) -> str:
        """The path as the user types it: relative to where they stand, when it is below."""
        try:
            return str(self.path.relative_to(self.cwd))
        except ValueError:
            return str(self.path)

    @property
    def module(self) -> tuple[Path, str]:
        """(folder to stand in, dotted name) that imports the file as Python would: the
        package root found by walking up ``__init__.py`` files, and the module's name in it."""
        parts, folder = [self.path.stem], self.path.parent
        while (folder / "__init__.py").exists():
            parts.insert(0, folder.name)
            folder = folder.parent
        return folder, ".".join(parts)


def pick(cases: list[Case], only: str | None, sample: int | None) -> list[Case]:
    """Cases whose label matches ``only`` (a glob, or a substring), then ``sample`` of them
    spread evenly over the list."""
    if only:
        glob = only if any(c in only for c in "*?[") else f"*{only}*"
        cases = [c for c in cases if fnmatch.fnmatch(c.label, glob)]
    if sample and sample < len(cases):
        step = len(cases) / sample
        cases = [cases[int(i * step)] for i in range(sample)]
    return cases


def corpus_cases(corpus: Path, copy: Path, quick: bool) -> list[Case]:
    """The corpus's target files, in ``copy`` (a fresh copy of ``corpus``)."""
    shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("__pycache__"))
    manifest = corpus / "MANIFEST.json"
    if manifest.exists():
        files = json.loads(manifest.read_text())["files"]
        targets = [(rel, e.get("kind") or "model-file") for rel, e in files.items()
                   if e.get("role") == "target"]
    else:
        targets = [(str(p.relative_to(corpus)), "model-file") for p in sorted(corpus.rglob("*.py"))
                   if "__pycache__" not in p.parts and _mentions_torch(p)]
    cases, repos_seen = [], set()
    for rel, kind in targets:
        top = Path(rel).parts[0] if len(Path(rel).parts) > 1 else "."
        if quick and top in repos_seen:
            continue
        repos_seen.add(top)
        repo = copy / top  # relative paths in a script may reach beyond it: watch all
        cases.append(Case(rel, kind, "corpus", copy / rel, repo, copy, [repo]))
    return cases


def _mentions_torch(path: Path) -> bool:
    try:
        return re.search(rb"\btorch\b", path.read_bytes()) is not None
    except OSError:
        return False


def zoo_missing() -> list[str]:
    return [name for name in ("torchvision", "timm") if importlib.util.find_spec(name) is None]


def zoo_cases(work: Path, quick: bool) -> list[Case]:
    """torchvision's classification model files in place, and user files for timm and
    torchvision models written under ``work``."""
    import timm
    import torchvision
    from torchvision import models

    by_file: dict[Path, list[str]] = {}
    for name in models.list_models(module=models):
        module = models.get_model_builder(name).__module__
        by_file.setdefault(Path(importlib.util.find_spec(module).origin), []).append(name)
    package = Path(torchvision.__file__).parent
    project = work / "project"  # the empty folder a user lints library files from
    project.mkdir()
    cases = [Case(f"torchvision/models/{path.name}", "library-file", "torchvision", path, project,
                  path.parent, [package], sorted(names))
             for path, names in sorted(by_file.items())
             if not quick or path.stem in QUICK_ZOO["torchvision"]]

    users = work / "users"
    users.mkdir()
    available = set(timm.list_models())
    timm_names = QUICK_ZOO["timm"] if quick else TIMM_SAMPLE
    tv_names = QUICK_ZOO["torchvision-user"] if quick else TORCHVISION_USER_SAMPLE
    for name in [n for n in timm_names if n not in available]:
        print(f"note: timm {timm.__version__} has no model {name}; left out")
    specs = [("timm", n, "import timm", f'timm.create_model("{n}")')
             for n in timm_names if n in available]
    specs += [("torchvision", n, "import torchvision", f"torchvision.models.{n}()")
              for n in tv_names]
    for source, name, imports, call in specs:
        path = users / f"{source}_{name}.py"
        path.write_text(f'"""A user\'s model file: {source}\'s {name}."""\n{imports}\n\n\n'
                        f"def {name}():\n    return {call}\n")
        cases.append(Case(f"{source}:{name} (user file)", "user-file", source, path, users,
                          users, [users], [name]))
    return cases
