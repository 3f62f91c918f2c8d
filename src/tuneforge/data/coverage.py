"""How well a tokenizer covers a data set: [UNK] rate, script mix, tokens per character, missing pieces."""
from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field

# The embedded multilingual model's names (model/resolve.py owns them; data/ sits left of model/, so spelled here).
MULTILINGUAL = ("multilingual-e5-small", "me5-small")


def script_of(ch: str) -> str | None:
    """Coarse script of one character (None for spaces, digits and punctuation)."""
    if not ch.isalpha():
        return None
    cp = ord(ch)
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0xF900 <= cp <= 0xFAFF:
        return "han"
    if 0x3040 <= cp <= 0x30FF:
        return "kana"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF:
        return "hangul"
    name = unicodedata.name(ch, "")
    for script in ("LATIN", "CYRILLIC", "ARABIC", "GREEK", "HEBREW", "DEVANAGARI", "THAI"):
        if name.startswith(script):
            return script.lower()
    return "other"


@dataclass
class Coverage:
    tokens: int
    unk_tokens: int
    chars: int
    script_share: dict[str, float]
    missing: Counter = field(default_factory=Counter)  # pre-tokenized words that became [UNK]

    @property
    def unk_rate(self) -> float:
        return self.unk_tokens / max(1, self.tokens)

    @property
    def tokens_per_char(self) -> float:
        return self.tokens / max(1, self.chars)

    def summary(self) -> dict:
        return {"unk_rate": round(self.unk_rate, 4), "tokens_per_char": round(self.tokens_per_char, 4),
                "script_share": {k: round(v, 4) for k, v in self.script_share.items()},
                "distinct_unknown_pieces": len(self.missing)}

    def warning(self, model_name: str, threshold: float) -> str | None:
        """Plain words for the user when the tokenizer does not fit the data."""
        if self.unk_rate <= threshold:
            return None
        main = max((s for s in self.script_share if s != "latin"), key=self.script_share.get, default="other")
        if model_name in MULTILINGUAL:
            suggestion = "a model pretrained on this script (--model)"
        else:
            chinese = " or a Chinese encoder (e.g. bert-base-chinese)" if main == "han" else ""
            suggestion = (f"the embedded multilingual-e5-small (~100 languages; leave --model out and the automatic "
                          f"choice picks it){chinese}")
        return (f"{model_name} was not pretrained for this text: {self.unk_rate:.0%} of tokens are [UNK] "
                f"({self.script_share.get(main, 0):.0%} of letters are {main}). Prefer {suggestion}; "
                "meanwhile TuneForge can add the missing pieces to the vocabulary (model.extend_vocab).")


def measure_coverage(tokenizer, texts: list[str]) -> Coverage:
    """Tokenize without special tokens and count [UNK]s; collect the words that produced them."""
    unk_id = tokenizer.unk_token_id
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    tokens = sum(len(x) for x in enc)
    unk = sum(1 for x in enc for t in x if t == unk_id) if unk_id is not None else 0
    scripts = Counter(s for t in texts for ch in t if (s := script_of(ch)))
    letters = sum(scripts.values()) or 1
    missing: Counter = Counter()
    if unk:
        missing = _unknown_pieces(tokenizer, [t for t, ids in zip(texts, enc) if unk_id in ids])
    return Coverage(tokens, unk, sum(len(t) for t in texts),
                    {k: v / letters for k, v in scripts.most_common()}, missing)


def _unknown_pieces(tokenizer, texts: list[str]) -> Counter:
    """Words (after the tokenizer's own normalisation and pre-tokenisation) that encode to [UNK]."""
    backend = tokenizer.backend_tokenizer
    words = Counter()
    for text in texts:
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer else text
        for word, _ in backend.pre_tokenizer.pre_tokenize_str(normalized):
            words[word] += 1
    unk_id = tokenizer.unk_token_id
    missing = Counter()
    for word, count in words.items():
        ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(word))
        if unk_id in ids:
            missing[word] = count
    return missing
