"""Sparse CF fits reused within one process, keyed by what they were fitted on.

One `reclm run` fits the same restricted EASE more than once on identical rows: model selection
fits the hybrid at the chosen g, the cold-user split's hybrid and the EASE baseline at the
chosen λ, and the offline evaluation of the same split (same fingerprint) fits each of them
again. On a 100k-item catalogue each fit takes minutes; its result is ~20 MB.

The key is the content, never a name: the model's class and whole config, and a hash of every
stored index and value of the matrices it is fitted on (interactions and side rows). A fit on
other rows — another split, one more or one fewer word in the side rows — hashes differently
and is a miss: the cache cannot hand one split's fit to another. At most ``MAX_BYTES`` of
results are kept (least recently used dropped first); ``clear()`` empties it.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import scipy.sparse as sp

MAX_BYTES = 512 * 2**20

_lock = threading.Lock()
_entries: OrderedDict[str, tuple[dict, int]] = OrderedDict()
stats = {"hits": 0, "misses": 0}  # since the last clear(): how often a fit was served


def data_key(*matrices: sp.spmatrix | np.ndarray | None) -> str:
    """A digest of the matrices' shapes, stored indices and values (None counts as absent)."""
    h = hashlib.sha256()
    for M in matrices:
        if M is None:
            h.update(b"none;")
            continue
        if sp.issparse(M):
            M = sp.csr_matrix(M)
            if not M.has_canonical_format:  # one form: the same matrix hashes the same however it was built
                M = M.copy()
                M.sum_duplicates()
            parts = (M.indptr, M.indices, M.data)
        else:
            parts = (np.ascontiguousarray(M),)
        h.update(f"{type(M).__name__}{M.shape}".encode())
        for a in parts:
            h.update(str(a.dtype).encode())
            h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()


def fit_key(kind: str, config: object, data: str) -> str:
    """The key of a fit: the model's kind, its whole config (``repr``) and its ``data_key``."""
    return hashlib.sha256(f"{kind}\x1f{config!r}\x1f{data}".encode()).hexdigest()


def get(key: str) -> dict | None:
    with _lock:
        if key not in _entries:
            stats["misses"] += 1
            return None
        stats["hits"] += 1
        _entries.move_to_end(key)
        return _entries[key][0]


def put(key: str, fitted: dict, nbytes: int) -> None:
    """Keep ``fitted`` (the attributes a fit sets) under ``key``; too large for the budget: not kept."""
    if nbytes > MAX_BYTES:
        return
    with _lock:
        _entries.pop(key, None)
        _entries[key] = (fitted, nbytes)
        while sum(n for _, n in _entries.values()) > MAX_BYTES:
            _entries.popitem(last=False)


def clear() -> None:
    with _lock:
        _entries.clear()
        stats.update(hits=0, misses=0)


def nbytes_of(*arrays: sp.csr_matrix | np.ndarray) -> int:
    """Bytes held by csr matrices and arrays (what a cached fit keeps)."""
    return sum(a.data.nbytes + a.indices.nbytes + a.indptr.nbytes if sp.issparse(a) else np.asarray(a).nbytes
               for a in arrays)
