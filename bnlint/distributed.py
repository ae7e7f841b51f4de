"""``torchrun [torchrun options] -m bnlint.distributed PATH... [bnlint options]``: lint with the
probe across the ranks torchrun started, on one node or many (each rank builds the models on the
meta device and holds an FSDP2 shard of each; see ``bnlint/isolation/ranks.py``). Rank 0
writes the report; every rank exits with bnlint's exit code. ``bnlint --nproc N`` starts the
ranks on this host itself."""

from .cli import main

if __name__ == "__main__":
    main(obj={"in_ranks": True}, prog_name="python -m bnlint.distributed")
