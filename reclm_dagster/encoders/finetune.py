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

import json
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
Mask = Sequence[bool] | np.ndarray | pd.Series | None
TRAINED_ON = "reclm_trained_on.json"  # which rows of which dataset the weights have seen


# ----------------------------------------------------------------------------- pairs

def _allowed(frame: pd.DataFrame, mask: Mask) -> np.ndarray:
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
    interactions_allowed: Mask = None,
    descriptions_allowed: Mask = None,
    seed: int = 0,
    min_rating: float = 3.0,
    min_tag_users: int = 2,
    max_items_per_text: int = 20,
    items_per_general_text: int = 3,
    neighbours: int = 3,
    min_co_users: int = 2,
    max_pairs_per_kind: int = 50_000,
) -> pd.DataFrame:
    """Positive pairs ``PAIR_COLUMNS`` from the rows allowed (default: every row, as the production fit).

    kind 'words': what users said about an item ↔ that item's catalogue document (a tag only when
    ``min_tag_users`` users gave it to that item; one text keeps its ``max_items_per_text`` most
    agreed items, so 'seen live' cannot pull every artist together); a description about no item
    (a profile, a request) ↔ up to ``items_per_general_text`` items its user consumed.
    kind 'co_consumed': item ↔ its ``neighbours`` most co-consumed items (shrunk cosine, at least
    ``min_co_users`` users in common). Item documents are catalogue text only
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
    rng = np.random.default_rng(seed)

    desc = descriptions[_allowed(descriptions, descriptions_allowed)]
    frame = pd.DataFrame({
        "description_id": desc["description_id"].astype(str).to_numpy(),
        "user_id": desc["user_id"].astype(str).to_numpy(),
        "item_id": [None if pd.isna(i) else str(i) for i in desc["item_id"]],
        "kind": desc["kind"].astype(str).to_numpy() if "kind" in desc else "tag",
        "text": [t.strip() for t in clean_texts(desc["text"])],
        "rating": pd.to_numeric(desc["rating"], errors="coerce").to_numpy() if "rating" in desc else np.nan,
    })
    frame = frame[(frame["text"] != "") & ~(frame["rating"] < min_rating)]
    frame = frame[[(u, i) not in held for u, i in zip(frame["user_id"], frame["item_id"])]]
    rows = [*_item_words(frame[frame["item_id"].isin(docs.index)], docs, min_tag_users, max_items_per_text),
            *_general_words(frame[frame["item_id"].isna()], history, docs, items_per_general_text, rng),
            *_co_consumed(history, docs, neighbours, min_co_users)]

    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    pairs = pairs[pairs["anchor"] != pairs["positive"]].drop_duplicates(["anchor", "positive"])
    capped = [g.sample(max_pairs_per_kind, random_state=seed) if len(g) > max_pairs_per_kind else g
              for _, g in pairs.groupby("kind", sort=True)]
    return pd.concat(capped, ignore_index=True) if capped else pairs.reset_index(drop=True)


def _item_words(frame: pd.DataFrame, docs: pd.Series, min_tag_users: int, max_items_per_text: int) -> list[tuple]:
    """(description ↔ the item it is about): tags need agreement, longer words (reviews) stand alone."""
    frame = frame.assign(key=frame["text"].str.casefold())
    agree = frame.groupby(["key", "item_id"])["user_id"].transform("nunique")
    frame = frame[(frame["kind"] != "tag") | (agree >= min_tag_users)].assign(agree=agree)
    frame = frame.sort_values(["agree", "description_id"], ascending=[False, True]).drop_duplicates(["key", "item_id"])
    frame = frame.groupby("key", sort=False).head(max_items_per_text)
    return [("words", t, docs[i], u, d, i)
            for t, i, u, d in zip(frame["text"], frame["item_id"], frame["user_id"], frame["description_id"])]


def _general_words(frame: pd.DataFrame, history: pd.DataFrame, docs: pd.Series, per_text: int,
                   rng: np.random.Generator) -> list[tuple]:
    """(a profile or request ↔ items its user consumed): the user's own history, sampled."""
    by_user = history.groupby("user_id", sort=True)["item_id"].agg(list)
    rows = []
    for did, user, words in zip(frame["description_id"], frame["user_id"], frame["text"]):
        consumed = by_user.get(user, [])
        for j in rng.permutation(len(consumed))[:per_text]:
            rows.append(("words", words, docs[consumed[j]], user, did, consumed[j]))
    return rows


def _co_consumed(history: pd.DataFrame, docs: pd.Series, neighbours: int, min_co_users: int,
                 shrink: float = 10.0) -> list[tuple]:
    """(item ↔ its most co-consumed items): co-counts / (sqrt(n_i n_j) + shrink), as ItemKNN scores them.

    A random pair from one history is mostly noise (people like many unrelated things): trained
    on it, the encoder learned to call everything similar.
    """
    if history.empty or neighbours < 1:
        return []
    from scipy import sparse

    u, _ = pd.factorize(history["user_id"])
    i, item_ids = pd.factorize(history["item_id"])
    x = sparse.csr_matrix((np.ones(len(u), dtype=np.float32), (u, i)), shape=(u.max() + 1, len(item_ids)))
    co = sparse.triu(x.T @ x, k=1).tocoo()
    keep = co.data >= min_co_users
    a, b, c = co.row[keep], co.col[keep], co.data[keep]
    n = np.asarray(x.sum(axis=0)).ravel()
    score = c / (np.sqrt(n[a] * n[b]) + shrink)
    both = pd.DataFrame({"i": np.r_[a, b], "j": np.r_[b, a], "s": np.r_[score, score]})
    top = both.sort_values(["s", "i", "j"], ascending=[False, True, True]).groupby("i", sort=False).head(neighbours)
    top = top.assign(lo=np.minimum(top["i"], top["j"]), hi=np.maximum(top["i"], top["j"])).drop_duplicates(["lo", "hi"])
    return [("co_consumed", docs[item_ids[x_]], docs[item_ids[y_]], None, item_ids[x_], item_ids[y_])
            for x_, y_ in zip(top["i"], top["j"])]


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
    # ``in_batch_metrics`` on pairs never trained on, before and after; empty when too few pairs
    heldout_before: dict[str, float]
    heldout_after: dict[str, float]
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

    def heldout(self) -> dict[str, float]:
        """Flat held-out metrics: 'heldout_accuracy_before', 'heldout_accuracy_after', …"""
        return {f"heldout_{k}_{when}": v for when, m in (("before", self.heldout_before), ("after", self.heldout_after))
                for k, v in m.items()}


def in_batch_metrics(encoder: TransformerEncoder, anchors: list[str], positives: list[str], batch_size: int = 32,
                     max_length: int = 128, temperature: float = 0.2, seed: int = 0) -> dict[str, float]:
    """One pass over the pairs in eval mode (no dropout), batched as in training; means over batches.

    loss (InfoNCE), accuracy (the positive ranks first among the batch), mrr, cos_gap (positive
    minus negative cosine). The loss alone can mislead: an encoder that calls everything alike
    scores ln(batch size), lower than a pretrained model's confident mistakes, while accuracy
    and cos_gap fall.
    """
    if len(anchors) < 2:
        return {}
    batches = batch_indices(anchors, positives, batch_size, seed)
    rows, seen = [], 0
    was_training = encoder.model.training
    encoder.model.eval()
    with torch.no_grad(), _autocast(encoder):
        while seen < len(anchors):
            idx = next(batches)
            seen += len(idx)
            if len(idx) < 2:
                continue
            a = embed(encoder, [anchors[i] for i in idx], max_length)
            p = embed(encoder, [positives[i] for i in idx], max_length)
            sim = (a @ p.T).float()
            pos = sim.diagonal()
            rank = (sim > pos[:, None]).sum(dim=1).float()  # rows: anchor → every positive in the batch
            neg = (sim.sum() - pos.sum()) / (len(idx) * (len(idx) - 1))
            rows.append((float(info_nce(a, p, temperature)), float((rank == 0).float().mean()),
                         float((1.0 / (rank + 1)).mean()), float(pos.mean() - neg)))
    encoder.model.train(was_training)
    if not rows:
        return {}
    return dict(zip(("loss", "accuracy", "mrr", "cos_gap"), np.mean(rows, axis=0).round(6).tolist()))


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
    temperature: float = 0.2,
    max_grad_norm: float = 1.0,
    weight_decay: float = 0.01,
    max_length: int = 128,
    heldout_pairs: int = 128,
    seed: int = 0,
    on_step: Callable[[int, float], None] | None = None,
) -> FinetuneResult:
    """Train ``encoder.model`` in place on ``pairs`` (anchor, positive) for ``steps`` steps.

    Load a fresh ``TransformerEncoder`` for this: ``load_encoder``'s cached one serves embeddings.
    temperature 0.2, not sentence-transformers' 0.05: on Last.fm at 0.05 the loss fell while every
    cosine rose towards 0.7 and held-out accuracy fell (the encoder learned to call everything
    alike); at 0.2 the positive-negative cosine gap doubled (encoders/README.md, "Fine-tuning").
    Up to ``heldout_pairs`` pairs (a fifth at most, four batches at most) are kept out to measure
    the metrics before and after (``in_batch_metrics``).
    """
    if steps < 1 or batch_size < 2:
        raise ValueError("need steps >= 1 and batch_size >= 2 (in-batch negatives)")
    if len(pairs) < 2:
        raise ValueError(f"need at least 2 training pairs, got {len(pairs)}")
    torch.manual_seed(seed)
    order = np.random.default_rng(seed).permutation(len(pairs))
    n_held = min(heldout_pairs, 4 * batch_size, len(pairs) // 5)
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
        before = in_batch_metrics(encoder, h_a, h_p, batch_size, max_length, temperature, seed + 1)
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
        after = in_batch_metrics(encoder, h_a, h_p, batch_size, max_length, temperature, seed + 1)
    model.eval()
    return FinetuneResult(losses=losses, seconds=time.perf_counter() - start, heldout_before=before,
                          heldout_after=after, n_train_pairs=len(train), n_heldout_pairs=len(held),
                          precision=encoder.precision, params=params)


def finetune_to_folder(pairs: pd.DataFrame, root: Path, dataset: str, trained_on: dict, *, base_model: str | None = None,
                       on_step: Callable[[int, float], None] | None = None, **train) -> tuple[Path, FinetuneResult, str]:
    """Fine-tune a fresh copy of ``base_model`` (None: the packaged MiniLM) on ``pairs`` and save it.

    Returns ``(folder, result, base encoder version)``; ``train`` goes to ``finetune`` (steps,
    batch_size, lr, temperature, max_length, seed). The one path of ``reclm finetune`` (every
    row) and of the evaluation's ``hybrid@finetuned`` (the split's train rows).
    """
    base = TransformerEncoder(base_model or None)  # a fresh copy: a cached encoder keeps serving the base model
    base_version = base.version
    result = finetune(base, pairs, on_step=on_step, **train)
    by_kind = {str(k): int(v) for k, v in pairs["kind"].value_counts().sort_index().items()}
    rows = "every row" if trained_on.get("rows") == "all" else f"the train rows of split {trained_on.get('protocol')}"
    label = f"{slug(dataset)}-finetuned" if trained_on.get("rows") == "all" else f"{slug(dataset)}-train-finetuned"
    card = model_card(finetuned_name(base.name, dataset), base_version, dataset, result, by_kind, rows)
    record = {"dataset": dataset, **trained_on, "base_model": base_model or "", "params": result.params}
    folder = save_finetuned(base, root, label, card, trained_on=record)
    return folder, result, base_version


# ----------------------------------------------------------------------------- saving

def slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-") or "dataset"


def finetuned_name(base_name: str, dataset: str) -> str:
    """'sentence-transformers/all-MiniLM-L6-v2', 'demo' -> 'reclm/all-MiniLM-L6-v2-demo'."""
    return f"reclm/{slug(base_name.rstrip('/').split('/')[-1])}-{slug(dataset)}"


def model_card(name: str, base_version: str, dataset: str, result: FinetuneResult, pairs_by_kind: dict[str, int],
               rows: str = "every row") -> str:
    """README.md whose '# title' plus quoted 'owner/title' is how transformer.name_from_folder names the encoder."""
    title = name.split("/")[-1]
    return "\n".join([
        f"# {title}", "",
        f"Encoder `'{name}'`: `{base_version}` fine-tuned by reclm on dataset `{dataset}`",
        f"(contrastive, in-batch negatives, symmetric InfoNCE) on {rows} of the dataset.", "",
        f"- pairs: {pairs_by_kind} ({result.n_train_pairs} trained on, {result.n_heldout_pairs} held out)",
        f"- steps: {result.steps}, seconds: {result.seconds:.1f}, precision: {result.precision}",
        f"- loss first/last 10 steps: {result.smoothed(last=False):.4f} / {result.smoothed():.4f}",
        f"- held-out pairs, before → after: {result.heldout_before} → {result.heldout_after}",
        f"- params: {result.params}", "",
    ])


def save_finetuned(encoder: TransformerEncoder, root: Path, label: str, card: str = "",
                   trained_on: dict | None = None) -> Path:
    """Write model + tokenizer with ``save_pretrained`` to ``root/<label>-<weights hash[:12]>``.

    Written beside the target and renamed into place, so a crash leaves no half folder under
    that name; the same weights again (same data, seed, steps) keep the existing folder.
    ``trained_on`` (``{"dataset", "rows": "all" | "train", "protocol"}``) is written as
    ``TRAINED_ON``, so an evaluation can refuse an encoder that has seen its test rows.
    """
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{label}-", dir=root))
    try:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the model from other local readers
        encoder.model.save_pretrained(tmp)
        encoder.tokenizer.save_pretrained(tmp)
        for rel in ST_FILES:
            if (encoder.folder / rel).is_file():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(encoder.folder / rel, tmp / rel)
        if card:
            (tmp / "README.md").write_text(card, encoding="utf-8")
        if trained_on is not None:
            (tmp / TRAINED_ON).write_text(json.dumps(trained_on, sort_keys=True), encoding="utf-8")
        final = root / f"{label}-{weights_hash(tmp)[:12]}"
        if final.is_dir():
            shutil.rmtree(tmp)
            return final
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def trained_on(folder: str | Path) -> dict | None:
    """The ``TRAINED_ON`` record of an encoder folder (None: not fine-tuned by reclm, or unreadable)."""
    path = Path(folder) / TRAINED_ON
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def evaluation_conflict(folder: str | Path, dataset: str, protocol_params: dict) -> str | None:
    """Why an encoder may not be evaluated on this dataset and split (None: it may).

    An encoder fine-tuned on every row of the dataset (``reclm finetune``) has seen the test
    pairs; one fine-tuned on the train rows of another split has seen some of this split's.
    """
    info = trained_on(folder)
    if info is None or info.get("dataset") != dataset:
        return None
    split = info.get("protocol")
    if info.get("rows") == "train" and isinstance(split, dict) and split and all(
            k in protocol_params and protocol_params[k] == v for k, v in split.items()):
        return None
    seen = "every row" if info.get("rows") != "train" else f"the train rows of another split ({info.get('protocol')})"
    return (f"encoder {folder} was fine-tuned on {seen} of {dataset}, so it has seen this evaluation's held-out "
            f"pairs; measure fine-tuning with `reclm eval --dataset {dataset} --finetune-steps N` (trained on this "
            "split's train rows only)")
