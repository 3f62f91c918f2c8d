"""Word boundaries per token for whole-word masking: the tokenizer's own words, with Chinese words found by jieba,
and the `auto` rule that turns whole-word masking on for corpora with Chinese text."""
from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence

from tuneforge.data.coverage import script_of
from tuneforge.data.tokenizer_train import is_cjk
from tuneforge.errors import UserError

# Bump when the boundaries below change: it is part of the corpus cache key, so old word-start streams rebuild.
VERSION = 2
# Han letters carry about a word's worth of meaning each: at 5% of the letters, roughly one word in seven is
# Chinese, and masking single characters of those words teaches little (the other half of the word gives it away).
HAN_SHARE = 0.05


def auto_whole_word(texts: Iterable[str]) -> tuple[bool, str]:
    """(on, reason): on when Han letters are at least HAN_SHARE of the letters and the text is not Japanese."""
    scripts = Counter(s for t in texts for ch in t if (s := script_of(ch)))
    letters = sum(scripts.values())
    han, kana = (scripts["han"] / letters, scripts["kana"] / letters) if letters else (0.0, 0.0)
    if han >= HAN_SHARE and kana < HAN_SHARE:
        return True, f"true: {han:.0%} of the corpus's letters are Han (Chinese words found by jieba are masked whole)"
    why = "Japanese (kana): jieba's dictionary is Chinese" if kana >= HAN_SHARE else f"{han:.0%} Han letters"
    return False, f"false: {why}, so single tokens are masked"


def jieba_starts(text: str) -> list[int]:
    """Sorted character offsets where jieba starts a word (spaces and punctuation are words of their own)."""
    try:
        import jieba
    except ImportError:
        raise UserError("mlm.whole_word: Chinese word boundaries need jieba: pip install jieba") from None
    jieba.setLogLevel(60)  # no "Building prefix dict..." lines on stderr; the dictionary loads on first use
    starts, pos = [], 0
    for word in jieba.cut(text):
        starts.append(pos)
        pos += len(word)
    return starts


def _anchor(text: str, start: int, end: int) -> int:
    """The token's first non-space character (a SentencePiece "▁hello" spans the space before the word)."""
    for i in range(start, min(end, len(text))):
        if not text[i].isspace():
            return i
    return start


def word_starts(offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None], text: str) -> list[int]:
    """1 where a token begins a word, for one text's tokens (no special tokens).

    Words are the tokenizer's own (WordPiece `##` pieces, a SentencePiece "▁" with the pieces after it, a
    byte-level word's bytes), except where Chinese is involved: there jieba decides, whatever the tokenizer did
    (BERT makes every Han character a word of its own; XLM-R keeps a clause without spaces, "我用iPhone下单。OK",
    as one word). jieba decides for a token that is Han or follows a Han token, and inside any tokenizer word with
    Han in it. A token starts a word when a jieba word starts after the previous token's first character and at
    or before its own: the bytes of one character, or a piece that spans two jieba words, stay whole.
    """
    flags = [1 if k == 0 or w != word_ids[k - 1] else 0 for k, w in enumerate(word_ids)]
    if not any(is_cjk(c) for c in text):
        return flags
    starts = jieba_starts(text)
    anchors = [_anchor(text, s, e) for s, e in offsets]
    han = [a < len(text) and is_cjk(text[a]) for a in anchors]
    han_words = {w for w, h in zip(word_ids, han) if h}
    for k in range(1, len(flags)):
        prev, here = anchors[k - 1], anchors[k]
        if prev < len(text) and text[prev].isspace():
            flags[k] = 0  # after a lone "▁" (a space token): the word the space opened
        elif han[k] or han[k - 1] or (not flags[k] and word_ids[k] in han_words):
            i = bisect_right(starts, here)
            flags[k] = int(i > 0 and starts[i - 1] > prev)
    return flags
