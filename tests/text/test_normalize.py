import math

import pytest

from reclm_dagster.text.normalize import (
    chinese_stopwords,
    detect_language,
    english_stopwords,
    normalize,
    segment,
)


def test_normalize_full_width_case_and_spaces():
    # Full-width letters, digits, ideographic space and punctuation → ASCII.
    assert normalize("ＡＢＣ１２３\u3000Ｈｅｌｌｏ，ｗｏｒｌｄ！") == "abc123 hello,world!"
    assert normalize("  Mixed\tCASE \n text  ") == "mixed case text"


@pytest.mark.parametrize("missing", [None, float("nan"), ""])
def test_normalize_missing_values(missing):
    assert normalize(missing) == ""


def test_detect_language():
    assert detect_language("这款手机电池续航能力强") == "zh"
    assert detect_language("A funny space adventure") == "en"
    assert detect_language("") == "en"
    assert detect_language("12345 !!") == "en"
    # A Chinese description with an English brand name is still Chinese ...
    assert detect_language("这款iPhone手机的电池很耐用") == "zh"
    # ... and an English sentence quoting one ideograph is still English.
    assert detect_language("the character 好 means good in chinese") == "en"


def test_segment_chinese_keeps_content_words_drops_stopwords_and_punctuation():
    tokens = segment("这款手机电池续航能力强，拍照效果好")
    for word in ("手机", "电池", "续航", "拍照"):
        assert word in tokens
    assert not set(tokens) & chinese_stopwords()
    assert not {"这", "款", "这款", "，", ","} & set(tokens)
    assert all(t.strip() for t in tokens)


def test_segment_precise_mode_keeps_compounds_whole():
    search = segment("这款手机电池续航能力强", mode="search")
    precise = segment("这款手机电池续航能力强", mode="precise")
    # Search mode adds sub-words; precise mode is a strict partition of the text.
    assert set(precise) <= set(search)
    assert "".join(precise) in "这款手机电池续航能力强"


def test_segment_english_drops_stop_words_keeps_apostrophes():
    tokens = segment("This is the BEST phone I have ever had, really! Rock'n'roll.")
    assert "best" in tokens and "phone" in tokens
    assert "rock'n'roll" in tokens
    assert not set(tokens) & english_stopwords()
    assert not any(ch in t for t in tokens for ch in ",.!")


def test_segment_without_stopword_removal_keeps_everything_but_punctuation():
    assert segment("The cat, the hat.", drop_stopwords=False) == ["the", "cat", "the", "hat"]


def test_segment_mixed_text():
    tokens = segment("这款iPhone的battery很耐用, don't worry")
    assert "iphone" in tokens and "battery" in tokens
    assert "耐用" in tokens
    assert "的" not in tokens and "很" not in tokens
    assert "worry" in tokens


def test_segment_empty_and_missing():
    assert segment("") == []
    assert segment(None) == []
    assert segment(math.nan) == []
    assert segment("，。！") == []


def test_chinese_stopword_list_is_modest_and_clean():
    words = chinese_stopwords()
    assert {"的", "了", "是", "这", "这个", "这款", "很", "也", "都", "和", "就"} <= words
    # Negations change meaning ("不好听"), so they must not be dropped.
    assert not {"不", "没有"} & words
    assert all(w == w.strip() and "#" not in w for w in words)


def test_segment_language_en_keeps_chinese_function_words():
    text = "great phone 的 battery"
    assert "的" not in segment(text)
    assert "的" in segment(text, language="en")
    with pytest.raises(ValueError):
        segment(text, language="fr")
