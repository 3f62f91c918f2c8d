"""The classical text classifier: TF-IDF n-grams + logistic regression (scikit-learn), word or character n-grams.

Used as the baseline beside the transformer (`tuneforge baseline`, the evaluation report) and as the fast,
cross-validated model behind the suspect-label check (`tuneforge data check`).
"""
from __future__ import annotations

from tuneforge.data.tokenizer_train import is_cjk

CJK_SHARE_FOR_CHARS = 0.2  # above this share of CJK characters, words are not space-separated: use char n-grams


def cjk_share(texts: list[str], sample: int = 2000) -> float:
    """Share of letters that are CJK ideographs, over (at most) the first `sample` texts."""
    letters = cjk = 0
    for text in texts[:sample]:
        for ch in text:
            if ch.isalpha():
                letters += 1
                cjk += is_cjk(ch)
    return cjk / max(letters, 1)


def build_tfidf_classifier(texts: list[str], seed: int = 0, max_iter: int = 1000):
    """An unfitted sklearn Pipeline: word 1-2-grams, or character 1-3-grams when the texts are mostly CJK.

    `texts` only decides the analyzer (pass the training texts). Sublinear TF and balanced defaults follow the
    strong linear baselines of the text-classification literature (e.g. Wang & Manning 2012)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    if cjk_share(texts) > CJK_SHARE_FOR_CHARS:
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1)
    else:
        vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                     token_pattern=r"(?u)\b\w+\b|[!?]")
    return make_pipeline(vectorizer, LogisticRegression(C=4.0, max_iter=max_iter, random_state=seed))


def analyzer_name(pipeline) -> str:
    """'word 1-2-grams' or 'char 1-3-grams' for reports."""
    vec = pipeline.steps[0][1]
    kind = "char" if vec.analyzer.startswith("char") else "word"
    lo, hi = vec.ngram_range
    return f"{kind} {lo}-{hi}-grams"
