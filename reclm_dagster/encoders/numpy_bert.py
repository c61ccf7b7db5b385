"""A BERT sentence encoder's forward pass in numpy, for answering one request without torch.

A free-text request needs one short text encoded. Importing torch and transformers and
building the model cost most of a cold `reclm recommend --query` (28.6 s of 51.8 s on a
loaded machine, README "Speed and scale"). This reads the same local folder as
:class:`~reclm_dagster.encoders.transformer.TransformerEncoder` — ``config.json``,
``model.safetensors`` (safetensors' numpy reader) and ``tokenizer.json`` (the Rust
``tokenizers`` library that transformers' fast tokenizer wraps) — and runs BertModel's
forward in float32 with the same mean pooling, under the same identity (name + weights
hash), so its vectors sit in the same space as the stored item vectors
(tests/encoders/test_numpy_bert.py: cosine ≥ 0.99999, same token ids).

Only plain BERT checkpoints qualify (``supports``): the packaged MiniLM and the folders
``reclm finetune`` writes from it. Anything else is encoded by the torch encoder.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from reclm_dagster.encoders.clean import clean_texts
from reclm_dagster.encoders.identity import FolderIdentity, resolve_model_folder

_ACTIVATIONS = ("gelu", "relu")


def _config(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def supports(folder: str | Path) -> bool:
    """Whether ``folder`` holds a BERT this module can run (weights as safetensors, a tokenizer.json)."""
    folder = Path(folder)
    cfg = _config(folder)
    return (cfg is not None and cfg.get("model_type") == "bert"
            and cfg.get("position_embedding_type", "absolute") == "absolute"
            and cfg.get("hidden_act", "gelu") in _ACTIVATIONS
            and (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file())


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, -1, keepdims=True)
    return centred / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU."""
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x * np.float32(1 / np.sqrt(2.0))))


class NumpyBertEncoder(FolderIdentity):
    """Unit-length float32 sentence vectors from a local BERT folder, torch-free (module docstring)."""

    precision = "fp32"

    def __init__(self, model_name_or_path: str | None = None, max_length: int = 256, batch_size: int = 32):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder, self._hub_id = resolve_model_folder(model_name_or_path)
        if not supports(self.folder):
            raise ValueError(f"{self.folder} is not a plain BERT checkpoint with model.safetensors and tokenizer.json")
        cfg = _config(self.folder)
        self.max_length = min(max_length, int(cfg.get("max_position_embeddings", 512)))
        self.batch_size = batch_size
        self._heads = int(cfg["num_attention_heads"])
        self._eps = float(cfg.get("layer_norm_eps", 1e-12))
        self._act = _gelu if cfg.get("hidden_act", "gelu") == "gelu" else (lambda x: np.maximum(x, 0))
        self._pad = int(cfg.get("pad_token_id", 0) or 0)
        weights = load_file(str(self.folder / "model.safetensors"))
        # save_pretrained of a BertModel writes bare names; a BertFor* head prefixes them with "bert."
        w = {k.removeprefix("bert."): v for k, v in weights.items()}
        self._dim = int(cfg["hidden_size"])
        emb = "embeddings."
        self._word = w[emb + "word_embeddings.weight"]
        self._pos = w[emb + "position_embeddings.weight"]
        self._type0 = w[emb + "token_type_embeddings.weight"][0]
        self._emb_ln = (w[emb + "LayerNorm.weight"], w[emb + "LayerNorm.bias"])
        self._layers = []
        for i in range(int(cfg["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            # one (hidden, 3·hidden) matrix for query, key and value: one matmul instead of three
            qkv = np.concatenate([w[p + f"attention.self.{n}.weight"] for n in ("query", "key", "value")]).T
            qkv_b = np.concatenate([w[p + f"attention.self.{n}.bias"] for n in ("query", "key", "value")])
            self._layers.append((
                np.ascontiguousarray(qkv), qkv_b,
                np.ascontiguousarray(w[p + "attention.output.dense.weight"].T), w[p + "attention.output.dense.bias"],
                (w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                np.ascontiguousarray(w[p + "intermediate.dense.weight"].T), w[p + "intermediate.dense.bias"],
                np.ascontiguousarray(w[p + "output.dense.weight"].T), w[p + "output.dense.bias"],
                (w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
            ))
        self.tokenizer = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self._unk = self.tokenizer.token_to_id("[UNK]")

    # ----- identity: FolderIdentity's, the same as TransformerEncoder's for this folder
    @property
    def dim(self) -> int:
        return self._dim

    def __repr__(self) -> str:
        return f"NumpyBertEncoder({self.name!r}, dim={self.dim})"

    # ----- tokens ----------------------------------------------------------------
    def _ids(self, texts: list[str], special: bool = True, truncate: bool = True) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(texts, add_special_tokens=special)
        ids = [e.ids for e in encodings]
        if truncate and special:  # keep [CLS] … [SEP] within max_length, as transformers truncates
            ids = [x if len(x) <= self.max_length else x[: self.max_length - 1] + x[-1:] for x in ids]
        return ids

    def tokenize_stats(self, texts) -> pd.DataFrame:
        """Per text: ``token_ids`` (with special tokens, truncated), ``n_tokens`` (full, without
        them), ``truncated``, ``n_unknown`` — as TransformerEncoder.tokenize_stats."""
        texts = clean_texts(texts)
        columns = ["token_ids", "n_tokens", "truncated", "n_unknown"]
        if not texts:
            return pd.DataFrame(columns=columns)
        full = self._ids(texts, special=False, truncate=False)
        kept = self._ids(texts)
        return pd.DataFrame({"token_ids": kept, "n_tokens": [len(x) for x in full],
                             "truncated": [len(x) + 2 > self.max_length for x in full],
                             "n_unknown": [sum(1 for t in x if t == self._unk) for x in full]}, columns=columns)

    # ----- encoding --------------------------------------------------------------
    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last hidden states ``(batch, width, hidden)`` of BertModel (inference: no dropout)."""
        b, t = ids.shape
        heads, d = self._heads, self._dim // self._heads
        h = _layer_norm(self._word[ids] + self._pos[:t] + self._type0, *self._emb_ln, self._eps)
        # padding keys get the most negative float, as transformers' extended attention mask
        key_bias = np.where(mask[:, None, None, :] > 0, 0.0, np.finfo(np.float32).min).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(d))
        for qkv, qkv_b, wo, bo, ln1, wi, bi, wout, bout, ln2 in self._layers:
            x = (h @ qkv + qkv_b).reshape(b, t, 3, heads, d)
            q, k, v = (x[:, :, j].transpose(0, 2, 1, 3) for j in range(3))  # (b, heads, t, d)
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + key_bias
            scores -= scores.max(-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(b, t, heads * d)
            h = _layer_norm(context @ wo + bo + h, *ln1, self._eps)
            h = _layer_norm(self._act(h @ wi + bi) @ wout + bout + h, *ln2, self._eps)
        return h

    def encode(self, texts, progress: bool = False, desc: str = "encoding") -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised, in input order (``progress`` is ignored)."""
        texts = clean_texts(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        ids = self._ids(texts) if texts else []
        order = np.argsort([-len(x) for x in ids], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in idx)
            batch = np.full((len(idx), width), self._pad, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.float32)
            for r, i in enumerate(idx):
                batch[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1.0
            hidden = self._forward(batch, mask)
            pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1.0)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out
