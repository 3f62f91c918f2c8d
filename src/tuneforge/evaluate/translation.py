"""Translation scores with sacreBLEU: corpus BLEU and chrF with their reproducibility signatures and 95% bootstrap
intervals, the length ratio, sentence chrF for the best/worst lists, and a quick BLEU for evaluations during training.

Why sacreBLEU and raw text: BLEU numbers are only comparable when every system tokenizes the same way, so hypotheses
are scored detokenised (what `Translator.translate` returns) against the references exactly as the data gave them,
and sacreBLEU does the one tokenization (13a, cased; "zh" for Chinese references). The signature printed with each
score says how it was computed (`sacrebleu ref.txt -i hyp.txt -m bleu chrf --confidence` gives the same numbers).
"""
from __future__ import annotations

import os
from collections import Counter
from contextlib import contextmanager

from tuneforge.data.coverage import script_of

# References whose letters are at least this share Han are Chinese: sacreBLEU's "zh" tokenizer splits every Han
# character (Chinese has no spaces, so 13a would see one "word" per clause and BLEU would be ~0 for near misses).
HAN_SHARE = 0.5
# Japanese (kana among the letters): sacreBLEU's "ja-mecab" needs MeCab, which is not a dependency, so the character
# tokenizer stands in; the signature says tok:char, so the number is not mistaken for a ja-mecab BLEU.
KANA_SHARE = 0.05
CHECK_CHARS = 200_000  # the script count reads at most this many reference characters (enough to decide)


def pick_tokenizer(references: list[str]) -> str:
    """sacreBLEU's tokenizer for these references: "zh" (mostly Han, no kana), "char" (Japanese), else "13a"."""
    scripts: Counter = Counter()
    seen = 0
    for text in references:
        scripts.update(s for s in map(script_of, text) if s)
        seen += len(text)
        if seen >= CHECK_CHARS:
            break
    letters = sum(scripts.values())
    if not letters:
        return "13a"
    if scripts["kana"] / letters >= KANA_SHARE:
        return "char"
    return "zh" if scripts["han"] / letters >= HAN_SHARE else "13a"


def _check(hyps: list[str], refs: list[str]) -> None:
    if len(hyps) != len(refs):
        raise ValueError(f"{len(hyps)} hypotheses for {len(refs)} references: they must pair up line by line")


@contextmanager
def _sacrebleu_seed(seed: int):
    """sacreBLEU seeds its bootstrap from $SACREBLEU_SEED (default 12345) and writes it into the signature; set it
    for this call only."""
    before = os.environ.get("SACREBLEU_SEED")
    os.environ["SACREBLEU_SEED"] = str(seed)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("SACREBLEU_SEED", None)
        else:
            os.environ["SACREBLEU_SEED"] = before


def _interval(score) -> list[float]:
    """sacreBLEU's own 95% interval: the bootstrap mean ± half the width between the 2.5th and 97.5th percentile
    resample (what its CLI prints as "μ = m ± ci")."""
    mean, half = float(score._mean), float(score._ci)  # numpy floats from the resampled statistics
    return [round(mean - half, 4), round(mean + half, 4)]


def bleu_chrf(hyps: list[str], refs: list[str], bootstrap: int = 1000, seed: int = 12345) -> dict:
    """Corpus BLEU and chrF of detokenised hypotheses against raw references (one reference per sentence).

    Returns {"bleu", "chrf", "bleu_signature", "chrf_signature", "tokenize", "length_ratio" (hypothesis tokens /
    reference tokens, sacreBLEU's tokens), "bp" (brevity penalty), "precisions" (1- to 4-gram, %), "sys_len",
    "ref_len", "sentences"}, plus with bootstrap > 1: "bleu_ci" and "chrf_ci" ([lo, hi], sacreBLEU's 95% bootstrap
    interval over sentences, `bootstrap` resamples seeded by `seed`; the signatures then carry bs and seed). Scores
    are on sacreBLEU's 0-100 scale. Memory: the bootstrap holds bootstrap × sentences × 18 floats at once (72 MB for
    1000 × 1000)."""
    from sacrebleu.metrics import BLEU, CHRF

    _check(hyps, refs)
    if not refs:
        raise ValueError("no sentences to score")
    tokenize = pick_tokenizer(refs)
    bleu, chrf = BLEU(tokenize=tokenize), CHRF()
    n = bootstrap if bootstrap > 1 else 1
    with _sacrebleu_seed(seed):
        b = bleu.corpus_score(hyps, [refs], n_bootstrap=n)
        c = chrf.corpus_score(hyps, [refs], n_bootstrap=n)
    out = {"bleu": round(float(b.score), 4), "chrf": round(float(c.score), 4),
           "bleu_signature": str(bleu.get_signature()), "chrf_signature": str(chrf.get_signature()),
           "tokenize": tokenize, "length_ratio": round(b.sys_len / b.ref_len, 4) if b.ref_len else 0.0,
           "bp": round(float(b.bp), 4), "precisions": [round(float(p), 4) for p in b.precisions],
           "sys_len": int(b.sys_len), "ref_len": int(b.ref_len), "sentences": len(refs)}
    if n > 1:
        out["bleu_ci"], out["chrf_ci"] = _interval(b), _interval(c)
    return out


def sentence_scores(hyps: list[str], refs: list[str]) -> list[float]:
    """Sentence chrF (0-100) per pair: character n-grams stay informative on short sentences, where sentence BLEU is
    mostly 0 or smoothing noise. Used to pick the best and worst translations for the report."""
    from sacrebleu.metrics import CHRF

    _check(hyps, refs)
    chrf = CHRF()
    return [round(float(chrf.sentence_score(h, [r]).score), 4) for h, r in zip(hyps, refs)]


def quick_bleu(hyps: list[str], refs: list[str]) -> float:
    """Corpus BLEU only (same tokenizer choice, no interval): the score of each evaluation during training."""
    from sacrebleu.metrics import BLEU

    _check(hyps, refs)
    if not refs:
        return 0.0
    return round(float(BLEU(tokenize=pick_tokenizer(refs)).corpus_score(hyps, [refs]).score), 4)


def token_counts(texts: list[str], tokenize: str) -> list[int]:
    """Tokens per text as sacreBLEU's `tokenize` tokenizer counts them (the units of the length ratio)."""
    from sacrebleu.metrics import BLEU

    tok = BLEU(tokenize=tokenize).tokenizer
    return [len(tok(t.rstrip()).split()) for t in texts]


def scored_examples(sources: list[str], refs: list[str], hyps: list[str],
                    rows: list[int] | None = None) -> list[dict]:
    """One record per sentence for the report's best/worst lists: {row, source, reference, hypothesis, score}, with
    `score` the sentence chrF and `row` the 1-based line in the data file (position + 1 when `rows` is None)."""
    _check(hyps, refs)
    _check(sources, refs)
    rows = rows if rows is not None else list(range(1, len(refs) + 1))
    return [{"row": r, "source": s, "reference": ref, "hypothesis": h, "score": score}
            for r, s, ref, h, score in zip(rows, sources, refs, hyps, sentence_scores(hyps, refs))]
