"""What exactly is the encoder: a content hash of its weights, and what the CPU can do."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin")
_CHUNK = 1 << 20


def weight_files(folder: str | Path) -> list[Path]:
    """Weight files under folder (recursively, so sentence-transformers extra
    modules such as 2_Dense/ count), in sorted relative-path order."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def weights_hash(folder: str | Path) -> str:
    """sha256 hex digest over the weight files' relative paths and bytes.

    Streams in 1 MiB chunks so large checkpoints never sit in memory. Paths are
    hashed too, so moving weights between files changes the identity.
    """
    folder = Path(folder)
    files = weight_files(folder)
    if not files:
        raise FileNotFoundError(f"no *.safetensors or *.bin weight files under {folder}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode("utf-8") + b"\0")
        with path.open("rb") as fh:  # follows HF-cache symlinks to the blobs
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 maths (AMX or AVX-512 BF16).

    Without them bf16 autocast is emulated and slower than fp32, so callers fall back.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"amx_bf16", "avx512_bf16"})
    except OSError:
        pass
    return False  # not Linux, or no flags line: stay on the safe fp32 path
