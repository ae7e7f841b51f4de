"""Zoo: lint every torchvision classification model and a spread of timm architectures at their
defaults (random init, as built for training from scratch) and print what bnlint says.

    PYTHONPATH=<this tree> /work/zoo-venv/bin/python -m bench.studies.zoo [--probe] [--quick]
        [--only NAME,...] [--source torchvision|timm] [--batch 4]
        [--probe-steps N] [--probe-budget SECONDS]

Needs torchvision and timm (the zoo venv; never the test venv). Each model is built on the CPU
with ``weights=None`` (torchvision) or ``pretrained=False`` (timm) and linted through the Python
API with example inputs at its native resolution (torchvision: the crop size of its default
weights' transforms; timm: ``pretrained_cfg["input_size"]``): standard-normal images, which is
what normalised ImageNet pixels look like to the first layer (no dataset can be downloaded
here). ``--probe`` runs the probe too (slow: use ``--quick`` or ``--only``). Prints a markdown
table: model, resolution, findings at warning or error (codes), infos, the probe's training
steps out of its plan's (", cut" when its clock stopped it short), seconds; then totals.
Under each probed row, an HTML comment gives the first/last gradient ratio at each step the
probe measured and the notes of measured rules that were not judged (``BNL9...``).
Every model here trains well from scratch with its library's recipe, so a warning or an
error is a false alarm unless the notes under the table in bench/RESULTS.md say otherwise.
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import traceback
import warnings

import torch

import bnlint
from bnlint.config import Config

# timm architectures: the families of timm's model list, one or two small members each, and the
# ones issue 12 named (SE-ResNeXt, Xception, LeViT, NF-ResNet, MobileNetV3).
TIMM = """resnet18 resnet50 resnet50d resnet26t seresnext26d_32x4d seresnext50_32x4d
legacy_seresnet18 xception41 xception65 legacy_xception levit_128s levit_conv_128s nf_resnet26
nf_resnet50 nf_regnet_b0 dm_nfnet_f0 nfnet_l0 efficientnet_b0 efficientnetv2_rw_t
tf_efficientnet_b0 mobilenetv3_large_100 mobilenetv3_small_100 tf_mobilenetv3_small_100
mobilenetv2_100 mixnet_s ghostnet_100 ghostnetv2_100 regnetx_002 regnety_002 regnetz_b16
densenet121 dla34 dpn68 hrnet_w18_small inception_v3 inception_v4 inception_resnet_v2
vit_tiny_patch16_224 deit_tiny_patch16_224 swin_tiny_patch4_window7_224 convnext_atto
convnextv2_atto coat_lite_tiny cait_xxs24_224 crossvit_tiny_240 pit_ti_224 tnt_s_patch16_224
twins_svt_small poolformer_s12 mixer_s16_224 resmlp_12_224 gmlp_ti16_224 cspresnet50
cspdarknet53 darknet17 rexnet_100 res2net50_26w_4s resnest14d skresnet18 selecsls42b tresnet_m
vgg11 vgg11_bn repvgg_a0 hardcorenas_a lcnet_050 tinynet_e mnasnet_100 fbnetc_100 spnasnet_100
efficientformer_l1 efficientformerv2_s0 edgenext_xx_small mobilevit_xxs mobilevitv2_050
coatnet_nano_rw_224 maxvit_nano_rw_256 davit_tiny focalnet_tiny_srf gcvit_xxtiny hgnet_tiny
hgnetv2_b0 fastvit_t8 efficientvit_b0 efficientvit_m0 repvit_m1 tiny_vit_5m_224
xcit_nano_12_p16_224 volo_d1_224 sequencer2d_s visformer_tiny nest_tiny eva02_tiny_patch14_224
dla46_c bat_resnext26ts botnet26t_256 halonet26t lambda_resnet26t gernet_s ecaresnet26t
skresnext50_32x4d inception_next_tiny pvt_v2_b0 mvitv2_tiny hiera_tiny_224 resnetv2_50
resnetv2_50x1_bit convmixer_768_32 mobileone_s0 fastvit_sa12 rdnet_tiny starnet_s1
mambaout_femto vitamin_small_224 nextvit_small""".split()  # noqa: SIM905 - names read as words
QUICK = {"torchvision": ["resnet18", "vgg11", "squeezenet1_0", "mobilenet_v3_small",
                         "efficientnet_b0", "shufflenet_v2_x0_5", "vit_b_32"],
         "timm": ["seresnext26d_32x4d", "xception41", "levit_128s", "nf_resnet26",
                  "mobilenetv3_small_100", "convnext_atto", "deit_tiny_patch16_224"]}


def torchvision_models() -> list[tuple[str, callable, int]]:
    """Each classification model with the crop size of its default weights, except where the
    architecture built without weights fixes another (vit_h_14's default weights are 518 px,
    the model built with weights=None takes 224)."""
    from torchvision import models
    out = []
    for name in models.list_models(module=models):
        size = models.get_model_weights(name).DEFAULT.transforms().crop_size[0]
        out.append((name, lambda n=name: models.get_model(n, weights=None), size))
    return out


def native_size(model, size: int) -> int:
    fixed = getattr(model, "image_size", None)
    return fixed if isinstance(fixed, int) else size


def timm_models() -> list[tuple[str, callable, int]]:
    import timm
    out = []
    for name in TIMM:
        size = timm.get_pretrained_cfg(name).input_size[-1]
        out.append((name, lambda n=name: timm.create_model(n, pretrained=False), size))
    return out


def probe_cell(report) -> str:
    """What the probe ran: its training steps out of the plan's, and "cut" when the clock
    stopped it short of the plan; "-" without a probe."""
    p = report.probe
    if p is None:
        return "-"
    planned = p.plan.steps if p.plan is not None else p.steps
    return f"{p.steps}/{planned} steps" + (", cut" if p.cut is not None else "")


def probe_lines(name: str, report) -> list[str]:
    """The probe's first/last gradient ratio per measured step and the measured rules' notes,
    as HTML comments under the model's row."""
    if report.probe is None:
        return []
    ratios = " -> ".join(f"{h.grad_ratio:.3g} (step {h.step})" for h in report.probe.history
                         if h.grad_ratio is not None)
    return [f"<!-- {name} ratio: {ratios or 'n/a'} -->"] + \
        [f"<!-- {name} note: {n[:400]} -->" for n in report.notes if n.startswith("BNL9")]


def lint_one(name: str, make, size: int, batch: int, config: Config
             ) -> tuple[list, str | None, float, int, str, list[str]]:
    """(findings, error, seconds, px, probe cell, probe lines) of linting one freshly built
    model, ``name``, at ``size`` px (or the size the built model fixes)."""
    torch.manual_seed(0)
    start = time.perf_counter()
    try:
        model = make()
        size = native_size(model, size)
        x = torch.randn(batch, 3, size, size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            report = bnlint.lint(model, x, config=config)
        return (report.findings, None, time.perf_counter() - start, size, probe_cell(report),
                probe_lines(name, report))
    except Exception as exc:  # noqa: BLE001 - a bench: report it as a row and go on
        traceback.print_exc()
        return [], f"{type(exc).__name__}: {exc}"[:120], time.perf_counter() - start, size, \
            "-", []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--probe", action="store_true", help="run the probe too")
    parser.add_argument("--quick", action="store_true", help=f"only {sum(map(len, QUICK.values()))}"
                        " models")
    parser.add_argument("--only", help="comma-separated model names, run in this order")
    parser.add_argument("--source", choices=("torchvision", "timm"), help="one library only")
    parser.add_argument("--batch", type=int, default=4, help="example batch (default 4)")
    parser.add_argument("--probe-steps", type=int, help="the probe's training steps (default: "
                        "its plan's)")
    parser.add_argument("--probe-budget", type=float, help="the probe's seconds (default: "
                        "bnlint's)")
    args = parser.parse_args()
    config = Config(probe=args.probe, **{k: v for k, v in (("probe_steps", args.probe_steps),
                                                           ("probe_budget", args.probe_budget))
                                         if v is not None})
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    only = args.only.split(",") if args.only else None
    rows, flagged, failed, total_time = [], 0, 0, 0.0
    print(f"torch {torch.__version__}; example batch {args.batch}; probe {args.probe}\n")
    print("| source | model | px | warning/error | info | probe | s |")
    print("| --- | --- | ---: | --- | --- | --- | ---: |")
    for source, listing in (("torchvision", torchvision_models), ("timm", timm_models)):
        if args.source not in (None, source):
            continue
        models = listing()
        if only:  # in the order given, which may put the small ones first
            models = sorted((m for m in models if m[0] in only), key=lambda m: only.index(m[0]))
        for name, make, size in models:
            if args.quick and name not in QUICK[source]:
                continue
            batch = args.batch if size <= 384 else max(2, args.batch // 2)
            findings, error, seconds, size, ran, lines = lint_one(name, make, size, batch, config)
            gc.collect()
            loud = sorted({f"{f.code} ({f.severity})" for f in findings
                           if f.severity in ("warning", "error")})
            info = sorted({f.code for f in findings if f.severity == "info"})
            flagged += bool(loud)
            failed += error is not None
            total_time += seconds
            rows.append((source, name))
            shown = error or ", ".join(loud) or "-"
            print(f"| {source} | {name} | {size} | {shown} | {', '.join(info) or '-'} | {ran} | "
                  f"{seconds:.1f} |", flush=True)
            for f in findings:
                if f.severity in ("warning", "error"):
                    print(f"<!-- {name} {f.code} {f.module}: {f.message[:400]} -->", flush=True)
            for line in lines:
                print(line, flush=True)
    print(f"\n{len(rows)} models ({sum(s == 'torchvision' for s, _ in rows)} torchvision, "
          f"{sum(s == 'timm' for s, _ in rows)} timm): {flagged} with a warning or error, "
          f"{failed} failed to lint; {total_time:.0f} s in all.")


if __name__ == "__main__":
    main()
