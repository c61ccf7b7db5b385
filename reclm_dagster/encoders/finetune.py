"""A domain-adapted encoder: contrastive fine-tuning of a sentence encoder on one dataset.

Plain functions, no Dagster: ``build_training_pairs`` (what a user said ↔ the item it is about
or that they consumed; co-consumed item ↔ item) → ``finetune`` (in-batch negatives, symmetric
InfoNCE with a temperature, AdamW, warmup, clipping, seeded) → ``save_finetuned`` (a
``save_pretrained`` folder named by its weights hash: a new encoder version that
``TransformerEncoder`` / ``--encoder FOLDER`` loads as any other).

Pairs come only from the rows a fit may see: pass the evaluation's masks and nothing held out
reaches the weights (tests/encoders/test_finetune.py plants a canary to check it).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from reclm_dagster.encoders.clean import clean_texts
from reclm_dagster.encoders.identity import weights_hash
from reclm_dagster.encoders.transformer import TransformerEncoder, mean_pool
from reclm_dagster.text.documents import item_documents

PAIR_COLUMNS = ["kind", "anchor", "positive", "user_id", "anchor_id", "positive_id"]
# sentence-transformers' own files (no weights): copied so the folder also loads there.
ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "1_Pooling/config.json")


# ----------------------------------------------------------------------------- pairs

def _allowed(frame: pd.DataFrame, mask: Sequence[bool] | np.ndarray | pd.Series | None) -> np.ndarray:
    if mask is None:
        return np.ones(len(frame), dtype=bool)
    arr = np.asarray(mask, dtype=bool)
    if arr.shape != (len(frame),):
        raise ValueError(f"a mask needs one boolean per row: {arr.shape} for {len(frame)} rows")
    return arr


def build_training_pairs(
    items: pd.DataFrame,
    facts: pd.DataFrame,
    descriptions: pd.DataFrame,
    interactions: pd.DataFrame,
    *,
    interactions_allowed: Sequence[bool] | np.ndarray | pd.Series | None = None,
    descriptions_allowed: Sequence[bool] | np.ndarray | pd.Series | None = None,
    seed: int = 0,
    items_per_general_text: int = 3,
    item_pairs_per_user: int = 10,
    min_rating: float = 3.0,
    max_pairs_per_kind: int = 50_000,
) -> pd.DataFrame:
    """Positive pairs ``PAIR_COLUMNS`` from the rows allowed (default: every row, as the production fit).

    kind 'words': a user's description about an item ↔ that item's catalogue document; a
    description about no item (a profile, a request) ↔ up to ``items_per_general_text`` items
    the user consumed. kind 'co_consumed': item ↔ item from one user's history (disjoint random
    pairs, up to ``item_pairs_per_user``). Item documents are catalogue text only
    (``text.documents.item_documents``: users' words never enter them).

    Masked-out interactions also drop the user's words about that item, whatever the
    description mask says. Words with a rating below ``min_rating`` (a pan, not a taste) are skipped.
    """
    docs = item_documents(items, facts)
    docs = docs[docs.str.strip() != ""]
    inter_ok = _allowed(interactions, interactions_allowed)
    users = interactions["user_id"].astype(str).to_numpy()
    inter_items = interactions["item_id"].astype(str).to_numpy()
    held = set(zip(users[~inter_ok], inter_items[~inter_ok]))
    history = (pd.DataFrame({"user_id": users[inter_ok], "item_id": inter_items[inter_ok]})
               .drop_duplicates().query("item_id in @docs.index"))
    by_user = history.groupby("user_id", sort=True)["item_id"].agg(list)
    rng = np.random.default_rng(seed)

    desc = descriptions[_allowed(descriptions, descriptions_allowed)]
    text = np.array([t.strip() for t in clean_texts(desc["text"])], dtype=object)
    d_user = desc["user_id"].astype(str).to_numpy()
    d_item = np.array([None if pd.isna(i) else str(i) for i in desc["item_id"]], dtype=object)
    rating = pd.to_numeric(desc["rating"], errors="coerce").to_numpy() if "rating" in desc else np.full(len(desc), np.nan)
    keep = (text != "") & ~(rating < min_rating)
    keep &= np.array([(u, i) not in held for u, i in zip(d_user, d_item)], dtype=bool)

    rows: list[tuple[str, str, str, str, str, str]] = []
    d_ids = desc["description_id"].astype(str).to_numpy()
    for did, user, item, words in zip(d_ids[keep], d_user[keep], d_item[keep], text[keep]):
        if item is not None:
            if item in docs.index:
                rows.append(("words", words, docs[item], user, did, item))
            continue
        consumed = by_user.get(user, [])
        for j in rng.permutation(len(consumed))[:items_per_general_text]:
            rows.append(("words", words, docs[consumed[j]], user, did, consumed[j]))
    for user, consumed in by_user.items():
        order = rng.permutation(len(consumed))
        for a, b in list(zip(order[0::2], order[1::2]))[:item_pairs_per_user]:
            rows.append(("co_consumed", docs[consumed[a]], docs[consumed[b]], user, consumed[a], consumed[b]))

    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    pairs = pairs[pairs["anchor"] != pairs["positive"]].drop_duplicates(["anchor", "positive"])
    capped = [g.sample(max_pairs_per_kind, random_state=seed) if len(g) > max_pairs_per_kind else g
              for _, g in pairs.groupby("kind", sort=True)]
    return pd.concat(capped, ignore_index=True) if capped else pairs.reset_index(drop=True)


# ----------------------------------------------------------------------------- training

def batch_indices(anchors: Sequence[str], positives: Sequence[str], batch_size: int, seed: int) -> Iterator[list[int]]:
    """Endless seeded batches of pair indices, epoch after epoch, with no text twice in a batch.

    A repeated text (the tag 'rock' on two artists) would be a false negative for itself; such a
    pair waits for the next batch instead.
    """
    rng = np.random.default_rng(seed)
    keys_a = [t.casefold().strip() for t in anchors]
    keys_p = [t.casefold().strip() for t in positives]
    queue: deque[int] = deque()
    while True:
        batch: list[int] = []
        seen: set[str] = set()
        waiting: list[int] = []
        refilled = False
        while len(batch) < batch_size:
            if not queue:
                if refilled:  # every pair left clashes with this batch: ship it short
                    break
                queue.extend(rng.permutation(len(keys_a)).tolist())
                refilled = True
            i = queue.popleft()
            if keys_a[i] in seen or keys_p[i] in seen:
                waiting.append(i)
                continue
            batch.append(i)
            seen.update((keys_a[i], keys_p[i]))
        queue.extendleft(reversed(waiting))
        yield batch


def embed(encoder: TransformerEncoder, texts: list[str], max_length: int) -> torch.Tensor:
    """Unit vectors with gradients: the same tokenizer, right padding and ``mean_pool`` as ``encode``."""
    batch = encoder.tokenizer(clean_texts(texts), truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt")
    hidden = encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return mean_pool(hidden, batch["attention_mask"])


def info_nce(a: torch.Tensor, p: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric in-batch InfoNCE: row i's positive is column i, every other row a negative."""
    logits = a @ p.T / temperature
    target = torch.arange(len(a))
    return (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2


@dataclass
class FinetuneResult:
    losses: list[float]  # training in-batch loss, one per step
    seconds: float
    heldout_loss_before: float  # in-batch loss on pairs never trained on (eval mode); nan when too few pairs
    heldout_loss_after: float
    n_train_pairs: int
    n_heldout_pairs: int
    precision: str
    params: dict[str, object] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.losses)

    def smoothed(self, last: bool = True, n: int = 10) -> float:
        """Mean loss of the first or last n steps (one step's loss is noisy)."""
        part = self.losses[-n:] if last else self.losses[:n]
        return float(np.mean(part)) if part else float("nan")


def _heldout_loss(encoder: TransformerEncoder, anchors: list[str], positives: list[str], batch_size: int,
                  max_length: int, temperature: float, seed: int) -> float:
    if len(anchors) < 2:
        return float("nan")
    batches = batch_indices(anchors, positives, batch_size, seed)
    losses, seen = [], 0
    encoder.model.eval()
    with torch.no_grad(), _autocast(encoder):
        while seen < len(anchors):
            idx = next(batches)
            seen += len(idx)
            if len(idx) >= 2:
                a = embed(encoder, [anchors[i] for i in idx], max_length)
                p = embed(encoder, [positives[i] for i in idx], max_length)
                losses.append(float(info_nce(a, p, temperature)))
    return float(np.mean(losses)) if losses else float("nan")


def _autocast(encoder: TransformerEncoder):
    # bf16 only where the CPU has native bf16 (AMX / AVX512-BF16): the encoder already resolved it.
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=encoder.precision == "bf16")


def finetune(
    encoder: TransformerEncoder,
    pairs: pd.DataFrame,
    *,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 2e-5,
    warmup_fraction: float = 0.1,
    temperature: float = 0.05,
    max_grad_norm: float = 1.0,
    weight_decay: float = 0.01,
    max_length: int = 128,
    heldout_pairs: int = 128,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    """Train ``encoder.model`` in place on ``pairs`` (anchor, positive) for ``steps`` steps.

    Load a fresh ``TransformerEncoder`` for this: ``load_encoder``'s cached one serves embeddings.
    Up to ``heldout_pairs`` pairs (a fifth at most) are kept out to measure the loss before and after.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError("need steps >= 1 and batch_size >= 2 (in-batch negatives)")
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 training pairs, got {len(pairs)}")
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_held = min(heldout_pairs, len(pairs) // 5)
    n_held = n_held if n_held >= 2 else 0
    held, train = pairs.iloc[order[:n_held]], pairs.iloc[order[n_held:]]
    anchors, positives = train["anchor"].tolist(), train["positive"].tolist()
    h_a, h_p = held["anchor"].tolist(), held["positive"].tolist()
    params = dict(steps=steps, batch_size=batch_size, lr=lr, warmup_fraction=warmup_fraction, temperature=temperature,
                  max_grad_norm=max_grad_norm, weight_decay=weight_decay, max_length=max_length, seed=seed)

    model = encoder.model
    # No weight decay on biases and LayerNorm weights (the usual BERT recipe).
    decay = [p for n, p in model.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in model.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr)
    warmup = max(1, int(round(steps * warmup_fraction)))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))

    losses: list[float] = []
    start = time.perf_counter()
    with encoder._threads():  # the encoder's thread policy (1 thread when the machine is busy)
        before = _heldout_loss(encoder, h_a, h_p, batch_size, max_length, temperature, seed + 1)
        model.train()  # dropout on, as in sentence-transformers training
        batches = batch_indices(anchors, positives, batch_size, seed)
        while len(losses) < steps:
            idx = next(batches)
            if len(idx) < 2:
                raise ValueError("every remaining pair shares a text with another: no in-batch negatives")
            with _autocast(encoder):
                a = embed(encoder, [anchors[i] for i in idx], max_length)
                p = embed(encoder, [positives[i] for i in idx], max_length)
                loss = info_nce(a, p, temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if not math.isfinite(losses[-1]):
                raise FloatingPointError(f"loss became {losses[-1]} at step {len(losses)}: lower the learning rate")
            if on_step is not None:
                on_step(len(losses), losses[-1])
        after = _heldout_loss(encoder, h_a, h_p, batch_size, max_length, temperature, seed + 1)
    model.eval()
    return FinetuneResult(losses=losses, seconds=time.perf_counter() - start, heldout_loss_before=before,
                          heldout_loss_after=after, n_train_pairs=len(train), n_heldout_pairs=len(held),
                          precision=encoder.precision, params=params)


# ----------------------------------------------------------------------------- saving

def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-") or "dataset"


def finetuned_name(base_name: str, dataset: str) -> str:
    """'sentence-transformers/all-MiniLM-L6-v2', 'demo' -> 'reclm/all-MiniLM-L6-v2-demo'."""
    return f"reclm/{slug(base_name.rstrip('/').split('/')[-1])}-{slug(dataset)}"


def model_card(name: str, base_version: str, dataset: str, result: FinetuneResult, pairs_by_kind: dict[str, int]) -> str:
    """README.md whose '# title' plus quoted 'owner/title' is how transformer._name_from_folder names the encoder."""
    title = name.split("/")[-1]
    return "\n".join([
        f"# {title}", "",
        f"Encoder `'{name}'`: `{base_version}` fine-tuned by reclm on dataset `{dataset}`",
        "(contrastive, in-batch negatives, symmetric InfoNCE; training rows only).", "",
        f"- pairs: {pairs_by_kind} ({result.n_train_pairs} trained on, {result.n_heldout_pairs} held out)",
        f"- steps: {result.steps}, seconds: {result.seconds:.1f}, precision: {result.precision}",
        f"- loss first/last 10 steps: {result.smoothed(last=False):.4f} / {result.smoothed():.4f}",
        f"- held-out in-batch loss before/after: {result.heldout_loss_before:.4f} / {result.heldout_loss_after:.4f}",
        f"- params: {result.params}", "",
    ])


def save_finetuned(encoder: TransformerEncoder, root: Path, label: str, card: str = "") -> Path:
    """Write model + tokenizer with ``save_pretrained`` to ``root/<label>-<weights hash[:12]>``.

    Written beside the target and renamed into place, so a crash leaves no half folder under
    that name; the same weights again (same data, seed, steps) keep the existing folder.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=root))
    try:
        encoder.model.save_pretrained(tmp)
        encoder.tokenizer.save_pretrained(tmp)
        for rel in ST_FILES:
            if (encoder.folder / rel).is_file():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(encoder.folder / rel, tmp / rel)
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        final = root / f"{label}-{weights_hash(tmp)[:12]}"
        if final.is_dir():
            shutil.rmtree(tmp)
            return final
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
