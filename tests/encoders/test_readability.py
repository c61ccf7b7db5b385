"""Text an encoder cannot read never drives a semantic match."""

from reclm_dagster.encoders.clean import UNREADABLE_UNKNOWN_SHARE, encoder_reads
from reclm_dagster.encoders.lexical_encoder import LexicalEncoder


class _Stats:
    """An encoder stand-in whose tokenizer knows only ASCII words."""

    def tokenize_stats(self, texts):
        import pandas as pd

        tokens = [list(t) if not t.isascii() else t.split() for t in texts]
        return pd.DataFrame({"n_tokens": [len(x) for x in tokens],
                             "n_unknown": [0 if t.isascii() else len(x) for t, x in zip(texts, tokens)]})


def test_unknown_share_decides():
    assert encoder_reads(_Stats(), "dreamy female vocals") == (True, 0.0)
    readable, share = encoder_reads(_Stats(), "安静的钢琴音乐")
    assert not readable and share == 1.0 >= UNREADABLE_UNKNOWN_SHARE
    assert encoder_reads(_Stats(), "") == (True, 0.0)  # nothing unknown in nothing


def test_the_packaged_minilm_cannot_read_chinese_but_lexical_can():
    from reclm_dagster.encoders.registry import load_encoder

    minilm = load_encoder("", 64, "auto")
    assert not encoder_reads(minilm, "安静的钢琴音乐，适合下雨天")[0]
    assert encoder_reads(minilm, "dreamy female vocals trip-hop for a rainy night")[0]
    assert encoder_reads(LexicalEncoder(), "安静的钢琴音乐，适合下雨天")[0]
