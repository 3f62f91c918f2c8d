"""The automatic encoder choice (`model.name: auto`): minilm-l6 for English-like text, multilingual-e5-small for
text in other scripts or that the English tokenizer cannot read; docs/models.md gives the rule and its numbers."""
from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from tuneforge.data.coverage import measure_coverage, script_of
from tuneforge.errors import UserError

AUTO = "auto"
ENGLISH = "minilm-l6"
MULTILINGUAL = "multilingual-e5-small"
# Non-Latin letters above this share of all letters → multilingual. A mostly-English set with names or short
# quotes in another script stays far below it (docs/models.md has the measured mixes).
NON_LATIN_SHARE = 0.05
# Latin-script text is English-like when at least this share of its words are common English function words:
# English sets measure 17-29% (SST-2, Multi30k captions, CoNLL news, WikiText), German/French/Spanish/Portuguese/
# Vietnamese/Indonesian ~0% (docs/models.md). Judged only from MIN_WORDS Latin words on.
ENGLISH_WORD_SHARE, MIN_WORDS = 0.05, 50
FUNCTION_WORDS = frozenset(
    "the and of to is it that this with for are but not you he she they we my his her have has had be been were "
    "at by from or what there their which would can very just all if about your our its than them these those who "
    "when how".split())  # not a/in/on/an/no/so/was/will/die: words of other languages too
_WORD = re.compile(r"[^\W\d_]+")
# The multilingual tokenizer's [UNK] rate above which no model we ship can read the text: a user error. An
# unknown word costs XLM-R two tokens ("▁" + <unk>), so text all in an unknown script measures about 50%.
UNREADABLE_UNK = 0.30
SCRIPT_NAMES = {"han": "Han (Chinese)", "kana": "Kana (Japanese)", "hangul": "Hangul (Korean)"}


@dataclass(frozen=True)
class ModelChoice:
    name: str  # alias picked
    reason: str  # one line, printed and written to the run's resolved config ("why")
    script_share: dict[str, float]  # share of letters per script (coverage.script_of) in the sample
    unk_rate: float | None  # the English tokenizer's [UNK] rate on the sample (None when not needed)


def is_auto(name: str | None) -> bool:
    """Whether a model name asks for the automatic choice (unset counts as auto)."""
    return name is None or name.strip().lower() == AUTO


def evenly_spaced(texts: Sequence[str], sample: int) -> list[str]:
    """At most `sample` texts spread evenly over the whole list (deterministic: no seed to carry around)."""
    n = len(texts)
    if n <= sample:
        return list(texts)
    return [texts[i * n // sample] for i in range(sample)]


def script_shares(texts: Sequence[str]) -> dict[str, float]:
    """Share of letters per script, largest first ({} when there are no letters)."""
    counts = Counter(s for t in texts for ch in t if (s := script_of(ch)))
    total = sum(counts.values())
    return {k: v / total for k, v in counts.most_common()} if total else {}


def script_name(script: str, texts: Sequence[str] = ()) -> str:
    """A readable name; for `other`, the Unicode name's first word of its most common letters (e.g. Tibetan)."""
    if script != "other":
        return SCRIPT_NAMES.get(script, script.capitalize())
    words = Counter(unicodedata.name(ch, "OTHER").split()[0] for t in texts for ch in t if script_of(ch) == "other")
    return words.most_common(1)[0][0].capitalize() if words else "Other"


def english_word_share(texts: Sequence[str]) -> tuple[float, int]:
    """Share of Latin-script words that are common English function words, and the number of Latin words."""
    words = [w.lower() for t in texts for w in _WORD.findall(t) if script_of(w[0]) == "latin"]
    return sum(w in FUNCTION_WORDS for w in words) / max(1, len(words)), len(words)


def choose_encoder(texts: Sequence[str], unk_threshold: float = 0.02, sample: int = 2000,
                   source: str = "the text") -> ModelChoice:
    """Pick the encoder for `texts` by script mix, the English tokenizer's [UNK] rate, then English function words.

    Loads minilm-l6's tokenizer, and the multilingual tokenizer's file (no model conversion) when that is picked,
    to check it reads the text; `source` names the texts in the error raised when it does not."""
    picked = evenly_spaced([t for t in texts if isinstance(t, str)], sample)
    shares = script_shares(picked)
    if not shares:
        return ModelChoice(ENGLISH, "the text has no letters; the English model is the smaller one", shares, None)
    non_latin = 1.0 - shares.get("latin", 0.0)
    main = max((s for s in shares if s != "latin"), key=shares.get, default="latin")
    unk = measure_coverage(_tokenizer(ENGLISH), picked).unk_rate
    english, words = english_word_share(picked)
    if non_latin > NON_LATIN_SHARE:
        also = f", {non_latin:.0%} not Latin in all" if shares[main] < non_latin - 0.005 else ""
        reason = (f"{shares[main]:.0%} of letters are {script_name(main, picked)}{also}: more than "
                  f"{NON_LATIN_SHARE:.0%} non-Latin; {ENGLISH}'s [UNK] rate {unk:.0%}")
    elif unk > unk_threshold:
        reason = f"{ENGLISH}'s tokenizer maps {unk:.1%} of tokens to [UNK] (above {unk_threshold:.0%})"
    elif words >= MIN_WORDS and english < ENGLISH_WORD_SHARE:
        reason = (f"the text is Latin-script but not English-like: {english:.1%} of its words are common English "
                  f"function words (below {ENGLISH_WORD_SHARE:.0%})")
    else:
        function_words = f", {english:.0%} of words are English function words" if words >= MIN_WORDS else ""
        reason = (f"{shares.get('latin', 0.0):.0%} of letters are Latin{function_words} and {ENGLISH}'s [UNK] rate "
                  f"is {unk:.1%} (at most {unk_threshold:.0%})")
        return ModelChoice(ENGLISH, reason, shares, unk)
    multi_unk = measure_coverage(_tokenizer(MULTILINGUAL), picked).unk_rate
    if multi_unk > UNREADABLE_UNK:
        raise UserError(
            f"{source} is {shares[main]:.0%} {script_name(main, picked)} letters, which neither {ENGLISH} (English; "
            f"[UNK] {unk:.0%}) nor {MULTILINGUAL} ([UNK] {multi_unk:.0%}) covers; pass --model with a model "
            "pretrained on that script.")
    return ModelChoice(MULTILINGUAL, reason, shares, unk)


@lru_cache(maxsize=2)
def _tokenizer(alias: str):
    """minilm-l6's packaged tokenizer; for the multilingual model the tokenizer.json its conversion copies byte for
    byte, read straight from its package so that choosing never waits for the model conversion."""
    if alias != MULTILINGUAL:
        from tuneforge.model.build import load_tokenizer

        return load_tokenizer(alias)
    from transformers import PreTrainedTokenizerFast

    from tuneforge.model.convert_e5 import tokenizer_file

    return PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file()), unk_token="<unk>", pad_token="<pad>")


def release_tokenizers() -> None:
    """Drop the tokenizers the choice loaded: XLM-R's 250k-piece tokenizer holds about 360 MB, and the run loads its
    own copy from the model folder next."""
    _tokenizer.cache_clear()
