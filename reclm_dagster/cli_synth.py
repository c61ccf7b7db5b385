"""`reclm synth`: write a deterministic synthetic catalogue under RECLM_DATA_DIR (issue 13.4).

    reclm synth --items 100000 --users 200000 --interactions 10000000 [--seed 0] [--name NAME]

Then `reclm run --dataset NAME` reads it like any catalogue in reclm's folder format.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time

from reclm_dagster import cli_args, settings

MARKER = "SOURCE.md"  # every synth folder has it; --force only replaces such a folder


def cmd_synth(args: argparse.Namespace) -> int:
    from reclm_dagster.datasets.synth import SynthSpec, write
    from reclm_dagster.serving import ReclmError

    try:
        spec = SynthSpec(items=args.items, users=args.users, interactions=args.interactions, seed=args.seed)
    except ValueError as exc:
        raise ReclmError(str(exc)) from None
    name = args.name or spec.name()
    if name == settings.DEFAULT_DATASET or name.startswith("."):
        raise ReclmError(f"--name {name!r} is reserved: choose another name")
    folder = settings.data_dir() / name
    if folder.exists():
        if not args.force:
            raise ReclmError(f"{folder} already exists: pass --force to replace a catalogue `reclm synth` wrote, or choose --name")
        if not (folder / MARKER).is_file() or "reclm synth" not in (folder / MARKER).read_text(encoding="utf-8", errors="replace"):
            raise ReclmError(f"{folder} was not written by `reclm synth`: it is left as it is; choose another --name")
    staging = folder.with_name(f".{name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    start = time.perf_counter()
    counts = write(spec, staging)
    if folder.exists():
        shutil.rmtree(folder)
    staging.rename(folder)  # a half-written catalogue never carries the dataset's name
    print(f"synthetic catalogue '{name}' in {time.perf_counter() - start:.1f}s: "
          + ", ".join(f"{v:,} {k}" for k, v in counts.items()))
    print(f"  folder  {folder}")
    print(f"next: reclm run --dataset {shlex.quote(name)}")
    return 0


def add_synth_parser(subparsers) -> argparse.ArgumentParser:
    """Add `synth` to reclm's sub-commands."""
    p = subparsers.add_parser("synth", help="write a deterministic synthetic catalogue of any size (power-law popularity, genres, tags, facts)")
    p.add_argument("--items", type=cli_args.int_in(1, 100_000_000), default=10_000, help="items (default 10,000)")
    p.add_argument("--users", type=cli_args.int_in(1, 100_000_000), default=20_000, help="users (default 20,000)")
    p.add_argument("--interactions", type=cli_args.int_in(1, 2_000_000_000), default=500_000, help="interactions (default 500,000)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same arguments give the same files (default 0)")
    p.add_argument("--name", type=cli_args.dataset_arg, help="dataset name (default synth-<items>i-<users>u-<interactions>x-s<seed>)")
    p.add_argument("--force", action="store_true", help="replace a catalogue of that name that `reclm synth` wrote")
    p.set_defaults(fn=cmd_synth)
    return p
