"""What runs on each rank of the probe across ranks: ``bnlint model.py --nproc N`` (ranks on this
host, started by :mod:`.launch`) and ``torchrun ... -m bnlint.distributed model.py`` (the ranks
torchrun gives, any number of nodes). Every rank imports the model file with its parameters on
the meta device (:mod:`bnlint.model.meta`) and lints each model: the static pass on the meta
model, the probe sharded across all ranks (:mod:`bnlint.probing.ranks`). Every rank ends with
the same reports; only rank 0 hands them on.

A rank that raises cannot tell the others, which are then waiting in a collective: it records
its error on the :class:`Board` and exits, and whoever started the ranks (the launcher's
monitoring, or torchrun's) ends the rest.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import dataclasses
import datetime
import faulthandler
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from ..config import Config
from ..discover import load, models
from ..discover.inputs import example_inputs
from ..discover.targets import example_targets
from ..engine import first_that_builds, lint
from ..errors import FORWARD_FAILED, NOT_LINTED, InputError, UserCodeError
from ..files import write_atomic
from ..findings import ModelReport, Report
from ..model import meta
from ..probing import ranks as sharded
from ..rules import catalog, problems

BUILD_SEED = 0  # as in the worker: each file is imported, and its models built, from seed 0
COLLECTIVE_GRACE = 60.0  # a collective waits this much longer than --timeout before it fails
# glibc allocates blocks of at least this many bytes with their own mmap, so that a freed one
# leaves the process at once (mallopt's M_MMAP_THRESHOLD, -3; a fixed value also stops glibc
# raising the threshold to 32 MiB once a large block is freed). Without it the gathered FSDP
# units and the shard-sized gradients and Hessian vectors, allocated and freed on every pass
# by the ranks' threads, fragment the heap: on 4 ranks of a 4-block Linear(2048) stack a
# rank's peak RSS grew to 1.05-1.11 GiB over 10 Hessian-vector products, with it to 0.49 GiB.
# The price is page faults on each such block (1 GiB of 16 MiB blocks allocated and written:
# 4.1 s, against 0.8 s from the heap, on a loaded 2-core machine); blocks over 32 MiB (a
# gathered Linear(4096) unit) were mmapped anyway.
MMAP_THRESHOLD = 1 << 20
_ON_META = ("Across ranks the model is traced on the meta device, where tensors have shapes but "
            "no values, so a forward that reads values (.item(), if on a tensor) cannot run "
            "there; probe it without --nproc, or make that code independent of the values.")
_PROBE_FAILED = ("Every rank runs the probe, so an error on one ends the run (without --nproc "
                 "the probe would be skipped with a note).")


class Board:
    """Where a rank leaves its progress: ``rank<r>.json`` (pid, phase, error) and, for rank 0,
    the worker protocol's events in ``events.jsonl``, in a folder the launcher watches; the
    stack dump a SIGUSR1 asks for goes to ``rank<r>.stack``. Without a folder (under
    torchrun) only the phase timer runs: a rank still in one phase after ``timeout`` seconds
    prints its stack and exits."""

    def __init__(self, folder: Path | None, rank: int, timeout: float):
        self.folder, self.rank, self.timeout = folder, rank, timeout
        self.state: dict[str, Any] = {"pid": os.getpid(), "what": "starting", "path": None}
        if folder is not None:
            self._stack = open(folder / f"rank{rank}.stack", "w")  # noqa: SIM115 - kept open
            faulthandler.register(signal.SIGUSR1, file=self._stack, all_threads=False)

    def phase(self, path: str, what: str) -> None:
        self.state.update(what=what, path=path, since=time.time())
        if self.folder is None:
            faulthandler.dump_traceback_later(self.timeout, exit=True)
            return
        write_atomic(str(self.folder / f"rank{self.rank}.json"), json.dumps(self.state))
        self.event("phase", path=path, what=what)

    def event(self, kind: str, **data: Any) -> None:
        """A worker-protocol event, from rank 0 only."""
        if self.folder is not None and self.rank == 0:
            with open(self.folder / "events.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"event": kind, **data}) + "\n")

    def fail(self, error: dict[str, Any]) -> None:
        self.state.update(error=error, failed=time.time())
        if self.folder is not None:
            write_atomic(str(self.folder / f"rank{self.rank}.json"), json.dumps(self.state))

    def done(self) -> None:
        if self.folder is None:
            faulthandler.cancel_dump_traceback_later()


def _return_freed_memory() -> None:
    """Make glibc give large freed blocks back to the system (:data:`MMAP_THRESHOLD`); a
    no-op with other C libraries."""
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is not None:
        mallopt(-3, MMAP_THRESHOLD)


def join(config: Config) -> sharded.Ranks:
    """Join the default process group that the launcher (or torchrun) set up in the
    environment: NCCL on this rank's GPU, else gloo on the CPU."""
    _return_freed_memory()
    cuda = config.device in ("auto", "cuda") and torch.cuda.is_available()
    if config.device == "mps" or (config.device == "cuda" and not cuda):
        raise InputError(f"--device {config.device} cannot run the probe across ranks here.",
                         hint="Use --device cuda on a machine with GPUs (NCCL), or --device cpu "
                              "(gloo).")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda \
        else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(
            seconds=config.timeout + COLLECTIVE_GRACE))
    return sharded.Ranks.joined(device)


def lint_file(path: Path, cli_shapes: list[list[int]] | None, config: Config,
              rules: dict[str, catalog.Rule], ranks: sharded.Ranks, board: Board,
              may_be_empty: bool = False) -> tuple[list[dict[str, Any]], list[UserCodeError]]:
    """The reports of the file's models (as dicts), built on the meta device and probed
    across the ranks, and the problems in the file's code (reported as the worker reports
    them): every rank meets the same ones, before any collective, so each goes on to the
    file's next model or file. A failure of the probe itself ends the rank. A file with no
    model is a note, or nothing when ``may_be_empty`` (found in a folder) or allowed."""
    torch.manual_seed(BUILD_SEED)
    board.phase(str(path), "importing the file")
    try:
        with meta.parameters_on_meta(ranks.rank, ranks.world) as built:
            module = load.load_module(path)
            board.phase(str(path), "building the models")
            discovery = models.find_models(module, path, config.model)
    except UserCodeError as exc:
        return [], [exc]
    except models.NoModelError as exc:
        return [], [] if may_be_empty or config.allow_no_models else [exc.note()]
    found_models, unbuilt = discovery.models, list(discovery.problems)
    reports = []
    for found in found_models:
        board.phase(str(path), f"linting model {found.name}")
        buffers = meta.take_buffers(found.model)
        mine = meta.Build(
            rows={id(p): built.rows.pop(id(p)) for p in found.model.parameters()
                  if id(p) in built.rows},
            unreproduced={id(p): built.unreproduced[id(p)] for p in found.model.parameters()
                          if id(p) in built.unreproduced})
        torch.manual_seed(BUILD_SEED)
        try:
            examples = example_inputs(module, found, path, cli_shapes, config.input_shape,
                                      config.batch_size, device=torch.device("cpu"))
        except UserCodeError as exc:
            unbuilt.append(exc)
            continue
        try:
            inputs, graph = first_that_builds(found.model, examples, rules, config, _on_meta)
        except UserCodeError as exc:
            if exc.code != NOT_LINTED:  # the forward raised on inputs given to bnlint
                _hint_meta(exc)
                raise
            unbuilt.append(exc)  # none of the shapes bnlint inferred runs
            continue
        on_meta = dataclasses.replace(inputs, tensors=_on_meta(inputs.tensors))
        try:
            targets = example_targets(module, found, path, config.targets, config.target_std,
                                      on_meta)
        except UserCodeError as exc:
            unbuilt.append(exc)
            continue

        def prober(graph, _, targets, options, inputs=inputs, mine=mine, buffers=buffers):
            try:
                return sharded.probe(graph, inputs.tensors, targets, options, ranks, mine,
                                     buffers, BUILD_SEED)
            except InputError:
                raise
            except Exception as exc:  # noqa: BLE001 - not a note: the other ranks wait for it
                raise load.user_error(exc, path, "the probe", _PROBE_FAILED,
                                      FORWARD_FAILED) from None

        try:
            report = lint(found.model, on_meta.tensors, targets, config, name=found.name,
                          path=str(path), line=found.line, rules=rules,
                          synthetic_inputs=inputs.synthetic,
                          inferred_inputs=inputs.inferred, consumable=True,
                          inputs_how=inputs.how, prober=prober, built=graph)
        except InputError as exc:
            _hint_meta(exc)
            raise
        reports.append(report.to_dict())
    return reports, unbuilt


def _on_meta(tensors: tuple) -> tuple:
    return tuple(t.to("meta") for t in tensors)


def _hint_meta(exc: InputError) -> None:
    """Say what to do when the meta device is why the forward failed."""
    if "meta" in exc.message:  # e.g. "Tensor.item() cannot be called on meta tensors"
        exc.hint = _ON_META


def _failed(board: Board, exc: BaseException) -> None:
    """Record the error on the board and end this rank at once (the others are waiting)."""
    if isinstance(exc, InputError):
        board.fail({"input": exc.to_dict()})
    else:
        board.fail({"crash": traceback.format_exc()})
    sys.stderr.flush()
    os._exit(2)


def run_ranks(request: dict[str, Any], folder: str) -> None:
    """The launcher's entry point on each rank: lint ``request["files"]`` (the worker's
    request), rank 0 writing the events on the board in ``folder``."""
    config = Config.from_dict(request["config"])
    board = Board(Path(folder), int(os.environ.get("RANK", 0)), config.timeout)
    try:
        ranks = join(config)
        rules = {r["code"]: catalog.Rule.from_dict(r) for r in request["rules"]}
        for path in request["files"]:
            board.event("file", path=path)
            reports, unbuilt = lint_file(Path(path), request.get("cli_input_shape"), config,
                                         rules, ranks, board,
                                         path in request.get("may_be_empty", ()))
            board.event("result", path=path, models=reports,
                        problems=[p.to_dict() for p in unbuilt])
    except BaseException as exc:  # noqa: BLE001 - recorded for the launcher, which reports it
        _failed(board, exc)
    board.done()
    dist.destroy_process_group()


def lint_here(files: list[str], config: Config, rules: dict[str, catalog.Rule],
              cli_shapes: list[list[int]] | None) -> tuple[Report, int]:
    """Lint ``files`` on the ranks torchrun started (this process is one of them): the
    report (the same on every rank) and this rank. A failure on this rank prints its error
    and ends the process with exit code 2."""
    board = Board(None, int(os.environ.get("RANK", 0)), config.timeout)
    report = Report(files=len(files))
    try:
        ranks = join(config)
        for path in files:
            reports, unbuilt = lint_file(Path(path), cli_shapes, config, rules, ranks, board)
            report.models.extend(ModelReport.from_dict(m) for m in reports)
            for problem in unbuilt:
                problems.add(report, problem, path, rules, config)
    except InputError as exc:
        print(f"bnlint: error: rank {board.rank}: {exc.render()}", file=sys.stderr)
        sys.stderr.flush()
        os._exit(2)
    board.done()
    rank = ranks.rank
    dist.destroy_process_group()
    return report, rank
