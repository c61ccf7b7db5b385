"""Text clean-up, language detection and word segmentation for Chinese and English.

Chinese runs go through jieba, Latin runs through a regex word tokenizer, so mixed
descriptions ("这款iPhone续航很强") segment sensibly. Stop words come from
scikit-learn (English) and ``assets/stopwords/zh.txt`` (Chinese).
"""

from __future__ import annotations

import logging
import math
import re
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Literal


from reclm_dagster.settings import ASSETS_DIR

Language = Literal["zh", "en"]

# CJK Unified Ideographs (+ extension A, compatibility ideographs, extensions B–F).
_CJK_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_CJK_RUN = re.compile(f"([{_CJK_CLASS}]+)")
_CJK_CHAR = re.compile(f"[{_CJK_CLASS}]")
# A word is letters/digits (any script except CJK, which is handled above), with
# apostrophes allowed inside ("don't", "rock'n'roll") but not at the edges.
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_WHITESPACE = re.compile(r"\s+")

# A text is Chinese when at least this share of its letters are CJK ideographs.
# One ideograph carries roughly a word, so a lower bar than 0.5 is deliberate.
ZH_SHARE_THRESHOLD = 0.3

_jieba_lock = threading.Lock()
_jieba = None


def normalize(text) -> str:
    """NFKC (full-width → half-width), lower-case, single spaces; None/NaN → ""."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return _WHITESPACE.sub(" ", text).strip()


def detect_language(text) -> Language:
    """'zh' when CJK ideographs make up a large enough share of the letters, else 'en'."""
    text = normalize(text)
    n_cjk = len(_CJK_CHAR.findall(text))
    if n_cjk == 0:
        return "en"
    n_letters = sum(1 for ch in text if ch.isalpha())  # ideographs count as alpha too
    return "zh" if n_cjk / n_letters >= ZH_SHARE_THRESHOLD else "en"


# A description with at most this many tokens reads as a tag ("space opera", "overrated"),
# not a review: side information keeps it whole, the sentiment lexicon may judge it.
SHORT_TEXT_TOKENS = 4


@lru_cache(maxsize=1)
def english_stopwords() -> frozenset[str]:
    """scikit-learn's English list, read from its own module file: importing the sklearn package
    (and the scipy.stats it pulls in) would cost a cold request more than a second."""
    import importlib.util
    import runpy

    spec = importlib.util.find_spec("sklearn")  # locates the package without importing it
    path = Path(spec.origin).parent / "feature_extraction" / "_stop_words.py" if spec and spec.origin else None
    if path is not None and path.is_file():
        return frozenset(runpy.run_path(str(path))["ENGLISH_STOP_WORDS"])
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return frozenset(ENGLISH_STOP_WORDS)


@lru_cache(maxsize=1)
def chinese_stopwords() -> frozenset[str]:
    """Read assets/stopwords/zh.txt (one word per line, '#' comments)."""
    path = ASSETS_DIR / "stopwords" / "zh.txt"
    words = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            words.add(normalize(word))
    return frozenset(words)


def _get_jieba():
    """Import and initialise jieba once, without its start-up chatter on stderr."""
    global _jieba
    if _jieba is None:
        with _jieba_lock:
            if _jieba is None:
                import jieba

                jieba.setLogLevel(logging.WARNING)
                jieba.initialize()  # builds/loads the dict cache in the temp dir
                _jieba = jieba
    return _jieba


def _cut_chinese(run: str, mode: str) -> list[str]:
    jieba = _get_jieba()
    if mode == "search":
        return jieba.lcut_for_search(run)
    return jieba.lcut(run)


def segment(
    text,
    language: Language | None = None,
    drop_stopwords: bool = True,
    mode: Literal["search", "precise"] = "search",
) -> list[str]:
    """Split normalised text into words, dropping punctuation (and stop words).

    language: None (default) and 'zh' drop both English and Chinese stop words, since
    descriptions mix scripts and the two lists cannot collide; 'en' drops English
    stop words only. Segmentation itself always handles both scripts.
    mode: jieba's 'search' mode also emits the parts of long compounds
    (手机电池 → 手机, 电池, 手机电池) so keyword matching finds them; 'precise'
    keeps jieba's single best segmentation.
    """
    text = normalize(text)
    if not text:
        return []
    if language not in (None, "zh", "en"):
        raise ValueError(f"language must be None, 'zh' or 'en', got {language!r}")
    if mode not in ("search", "precise"):
        raise ValueError(f"mode must be 'search' or 'precise', got {mode!r}")

    tokens: list[str] = []
    # re.split with a capturing group alternates non-CJK / CJK pieces.
    for i, piece in enumerate(_CJK_RUN.split(text)):
        if not piece:
            continue
        if i % 2 == 1:
            tokens.extend(t for t in _cut_chinese(piece, mode) if t.strip())
        else:
            tokens.extend(_WORD.findall(piece))

    if drop_stopwords:
        stop = english_stopwords()
        if language != "en":
            stop = stop | chinese_stopwords()
        tokens = [t for t in tokens if t not in stop]
    return tokens
