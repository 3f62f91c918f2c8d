"""Model-free checks of labelled splits: exact and near duplicates (MinHash/LSH), label conflicts, leakage into
train, empty rows, encoding problems, script mix and label balance. `check_splits` runs them all."""
from __future__ import annotations

import re
import time
import unicodedata
import zlib
from collections import Counter, defaultdict

from tuneforge.data.coverage import script_of
from tuneforge.data.tokenizer_train import is_cjk

MAX_EXAMPLES = 10  # per finding, so data_summary.json stays small on any data set
NUM_PERM = 64
CHAR_NGRAM, WORD_SHINGLE = 5, 3
# Word 3-shingles are too coarse for short texts: one changed word in a 10-word sentence removes 3 of its 8
# shingles (Jaccard ≈ 0.45). Character 5-grams degrade gently, so they are used unless texts are long.
WORD_MODE_MEDIAN_WORDS = 20
ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff"))

# cp1252/latin-1 characters that stand for the bytes 0x80-0xFF: what UTF-8 decoded with the wrong codec becomes.
_BYTE_OF = {chr(b): b for b in range(0x80, 0x100)}
_BYTE_OF.update({bytes([b]).decode("cp1252"): b for b in range(0x80, 0xA0) if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D)})
_CONT = "".join(re.escape(c) for c, b in _BYTE_OF.items() if b < 0xC0)
_MOJIBAKE = re.compile(f"[\u00c2-\u00f4][{_CONT}]+")


def normalize_for_dedup(text: str) -> str:
    """NFKC, casefold, collapsed whitespace and punctuation stripped at both ends ("Great film!" == "great film")."""
    t = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    start, end = 0, len(t)
    while start < end and (t[start].isspace() or unicodedata.category(t[start]).startswith("P")):
        start += 1
    while end > start and (t[end - 1].isspace() or unicodedata.category(t[end - 1]).startswith("P")):
        end -= 1
    return t[start:end]


def is_empty(text) -> bool:
    """No text at all: missing, whitespace-only or zero-width characters only."""
    return not isinstance(text, str) or not text.translate(ZERO_WIDTH).strip()


def _is_mojibake(run: str) -> bool:
    """True when `run` is UTF-8 bytes that were decoded as cp1252/latin-1 (e.g. 'Ã©' for 'é', 'â€™' for '’')."""
    lead = _BYTE_OF[run[0]]
    size = 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    if len(run) < size:
        return False
    try:
        bytes(_BYTE_OF[c] for c in run[:size]).decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def encoding_problems(text: str) -> list[str]:
    """Names of the encoding problems in one text (empty when clean)."""
    found = []
    if "\ufffd" in text:
        found.append("replacement character U+FFFD")
    if any(_is_mojibake(m.group()) for m in _MOJIBAKE.finditer(text)):
        found.append("mojibake (UTF-8 read as Latin-1/cp1252)")
    if any((ord(c) < 32 and c not in "\t\n\r") or 0x7F <= ord(c) <= 0x9F for c in text):
        found.append("control character")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        found.append("lone surrogate")
    return found


def dominant_script(text: str) -> tuple[str, int]:
    """(the script most letters are in, or 'none'; how many scripts the text's letters use)."""
    scripts = Counter(s for ch in text if (s := script_of(ch)))
    return (scripts.most_common(1)[0][0] if scripts else "none"), len(scripts)


def label_key(label):
    """A hashable, printable label: multi-label lists become 'a|b' (sorted)."""
    return "|".join(sorted(map(str, label))) if isinstance(label, (list, tuple)) else str(label)


def label_counts(labels: list) -> dict[str, int]:
    flat = Counter(str(n) for x in labels for n in (x if isinstance(x, (list, tuple)) else [x]))
    return dict(sorted(flat.items(), key=lambda kv: (-kv[1], kv[0])))


def imbalance_ratio(counts: dict[str, int]) -> float | None:
    """Largest class count / smallest class count (None with fewer than two classes)."""
    return round(max(counts.values()) / min(counts.values()), 3) if len(counts) > 1 else None


def choose_shingles(norms: list[str]) -> str:
    """'char' (5-grams) for CJK or short texts, 'word' (3-shingles) for long space-separated texts."""
    sample = norms[:5000]
    lengths = sorted(len(t.split()) for t in sample) or [0]
    cjk = sum(is_cjk(c) for t in sample for c in t)
    letters = sum(c.isalpha() for t in sample for c in t) or 1
    return "word" if cjk / letters <= 0.2 and lengths[len(lengths) // 2] >= WORD_MODE_MEDIAN_WORDS else "char"


def shingles(norm: str, mode: str) -> set[str]:
    if mode == "word":
        words = norm.split()
        return {" ".join(words[i:i + WORD_SHINGLE]) for i in range(max(1, len(words) - WORD_SHINGLE + 1))}
    return {norm[i:i + CHAR_NGRAM] for i in range(max(1, len(norm) - CHAR_NGRAM + 1))}


def lsh_params(threshold: float, num_perm: int = NUM_PERM, recall: float = 0.98) -> tuple[int, int]:
    """(bands, rows per band) that make a pair at exactly `threshold` a candidate with probability ≥ `recall`.

    datasketch's own choice balances false positives and negatives: at threshold 0.8 it finds only 40% of
    pairs at Jaccard 0.8 and 93% at 0.9. Candidates are verified exactly here, so recall is what matters."""
    for r in range(num_perm, 0, -1):
        b = num_perm // r
        if 1 - (1 - threshold ** r) ** b >= recall:
            return b, r
    return num_perm, 1


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


class NearIndex:
    """MinHash signatures of distinct normalised texts in a MinHashLSH index; candidates are verified with the
    exact Jaccard similarity of their shingle sets, so LSH only decides which pairs to compare."""

    def __init__(self, norms: list[str], mode: str, threshold: float, num_perm: int = NUM_PERM):
        from datasketch import MinHashLSH

        self.norms, self.mode, self.threshold, self.num_perm = norms, mode, threshold, num_perm
        self.lsh = MinHashLSH(num_perm=num_perm, params=lsh_params(threshold, num_perm))
        self.signatures = self.sign(norms)
        with self.lsh.insertion_session() as session:
            for i, m in enumerate(self.signatures):
                session.insert(i, m, check_duplication=False)

    def sign(self, norms: list[str]) -> list:
        from datasketch import LeanMinHash, MinHash

        sets = ([s.encode("utf-8") for s in shingles(t, self.mode)] for t in norms)
        # crc32: deterministic across runs (unlike hash()) and ~2x faster than the default sha1 on short shingles.
        return [LeanMinHash(m) for m in MinHash.generator(sets, num_perm=self.num_perm, seed=1, hashfunc=zlib.crc32)]

    def matches(self, norm: str, signature, skip: int | None = None) -> list[tuple[int, float]]:
        """Indexed texts with exact Jaccard ≥ threshold to `norm`, best first."""
        mine, out = shingles(norm, self.mode), []
        for key in self.lsh.query(signature):
            if key != skip and (sim := jaccard(mine, shingles(self.norms[key], self.mode))) >= self.threshold:
                out.append((key, round(sim, 3)))
        return sorted(out, key=lambda kv: (-kv[1], kv[0]))


class _Split:
    """One split's rows grouped by normalised text (empty rows left out)."""

    def __init__(self, texts: list, labels: list):
        self.texts, self.labels = texts, labels
        self.rows_of: dict[str, list[int]] = defaultdict(list)
        for i, t in enumerate(texts):
            if not is_empty(t):
                self.rows_of[normalize_for_dedup(t)].append(i)
        self.norms = list(self.rows_of)

    def row(self, i: int) -> dict:
        return {"row": i + 1, "text": self.texts[i], "label": label_key(self.labels[i])}


def exact_duplicates(split: _Split) -> dict:
    groups = sorted((rows for rows in split.rows_of.values() if len(rows) > 1), key=lambda r: (-len(r), r[0]))
    extra = sum(len(r) - 1 for r in groups)
    return {"count": extra, "groups": len(groups),
            "examples": [{"text": split.texts[r[0]], "rows": [i + 1 for i in r[:MAX_EXAMPLES]], "size": len(r)}
                         for r in groups[:MAX_EXAMPLES]]}


def label_conflicts(split: _Split) -> dict:
    found = []
    for rows in split.rows_of.values():
        by_label: dict[str, list[int]] = defaultdict(list)
        for i in rows:
            by_label[label_key(split.labels[i])].append(i + 1)
        if len(by_label) > 1:
            found.append((split.texts[rows[0]], dict(by_label)))
    found.sort(key=lambda f: -sum(map(len, f[1].values())))
    return {"count": len(found), "rows": sum(len(r) for _, g in found for r in g.values()),
            "examples": [{"text": t, "labels": {k: v[:MAX_EXAMPLES] for k, v in g.items()}}
                         for t, g in found[:MAX_EXAMPLES]]}


def _union_find(n: int, pairs) -> list[list[int]]:
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        groups[find(i)].append(i)
    return [g for g in groups.values() if len(g) > 1]


def near_duplicates(split: _Split, index: NearIndex) -> dict:
    """Groups of distinct normalised texts that are ≥ threshold similar (exact duplicates are counted apart)."""
    pairs = [(i, j) for i, norm in enumerate(split.norms)
             for j, _ in index.matches(norm, index.signatures[i], skip=i) if i < j]
    groups = sorted(_union_find(len(split.norms), pairs), key=lambda g: (-len(g), g[0]))
    examples, label_differs = [], 0
    for g in groups:
        members = [split.row(split.rows_of[split.norms[k]][0]) for k in g]
        label_differs += len({m["label"] for m in members}) > 1
        if len(examples) < MAX_EXAMPLES:
            # Groups are connected components, so a member may match the first one only through others.
            first = shingles(split.norms[g[0]], index.mode)
            for k, m in zip(g[1:MAX_EXAMPLES], members[1:]):
                m["similarity_to_first"] = round(jaccard(first, shingles(split.norms[k], index.mode)), 3)
            examples.append({"members": members[:MAX_EXAMPLES], "size": len(g)})
    return {"count": sum(len(g) - 1 for g in groups), "groups": len(groups), "label_differs": label_differs,
            "examples": examples}


def leakage(train: _Split, other: _Split, index: NearIndex | None) -> dict:
    """Rows of `other` whose text is in train exactly (after normalisation) or nearly (LSH on train)."""
    train_pos = {n: k for k, n in enumerate(train.norms)}
    exact = near = differs = 0
    examples = []
    rest = [n for n in other.norms if n not in train_pos]
    signatures = dict(zip(rest, index.sign(rest))) if index is not None else {}
    for norm in other.norms:
        k = train_pos.get(norm)
        sim, kind = 1.0, "exact"
        if k is None and norm in signatures:
            hits = index.matches(norm, signatures[norm])
            k, sim, kind = (hits[0][0], hits[0][1], "near") if hits else (None, 0.0, "")
        if k is None:
            continue
        rows, t = other.rows_of[norm], train.rows_of[train.norms[k]][0]
        exact, near = exact + len(rows) * (kind == "exact"), near + len(rows) * (kind == "near")
        mine = other.row(rows[0])
        differs += len(rows) * (mine["label"] != label_key(train.labels[t]))
        if len(examples) < MAX_EXAMPLES:
            examples.append({"kind": kind, "similarity": sim, "rows": len(rows), **mine,
                             "train_row": t + 1, "train_text": train.texts[t], "train_label": label_key(train.labels[t])})
    return {"count": exact + near, "exact": exact, "near": near, "label_differs": differs, "examples": examples}


def _split_basics(split: _Split) -> dict:
    empty = [i + 1 for i, t in enumerate(split.texts) if is_empty(t)]
    bad = [(i, p) for i, t in enumerate(split.texts) if isinstance(t, str) and (p := encoding_problems(t))]
    kinds = Counter(k for _, p in bad for k in p)
    scripts, mixed = Counter(), 0
    for t in split.texts:
        if not is_empty(t):
            main, n = dominant_script(t)
            scripts[main] += 1
            mixed += n > 1
    total = sum(scripts.values()) or 1
    counts = label_counts(split.labels)
    return {"rows": len(split.texts), "distinct_texts": len(split.norms),
            "labels": {"counts": counts, "imbalance_ratio": imbalance_ratio(counts)},
            "scripts": {"share": {k: round(v / total, 4) for k, v in scripts.most_common()}, "mixed_rows": mixed},
            "empty": {"count": len(empty), "rows": empty[:MAX_EXAMPLES]},
            "encoding": {"count": len(bad), "kinds": dict(kinds),
                         "examples": [{**split.row(i), "problems": p} for i, p in bad[:MAX_EXAMPLES]]}}


def check_splits(splits: dict[str, tuple[list[str], list]], near_threshold: float = 0.8, near: bool = True) -> dict:
    """Every model-free check on {split: (texts, labels)}; 'train' (or the first split) is the reference for
    leakage. Returns a JSON-ready dict with per-split findings, leakage, `problems` {kind: count} and timings."""
    if not 0 < near_threshold <= 1:
        from tuneforge.errors import UserError

        raise UserError(f"near-duplicate threshold {near_threshold}: use a number in (0, 1], e.g. 0.8.")
    clock, timings = time.perf_counter(), {}
    parsed = {name: _Split(list(texts), list(labels)) for name, (texts, labels) in splits.items()}
    ref = "train" if "train" in parsed else next(iter(parsed))
    mode = choose_shingles(parsed[ref].norms)
    out = {"reference_split": ref, "near": {"enabled": near, "threshold": near_threshold, "num_perm": NUM_PERM,
                                             "bands_rows": list(lsh_params(near_threshold)),
                                             "shingles": f"char {CHAR_NGRAM}-grams" if mode == "char" else f"word {WORD_SHINGLE}-shingles"},
           "splits": {}, "leakage": {}}
    indexes = {}
    for name, split in parsed.items():
        t0 = time.perf_counter()
        report = _split_basics(split)
        report["duplicates"], report["conflicts"] = exact_duplicates(split), label_conflicts(split)
        if near:
            indexes[name] = NearIndex(split.norms, mode, near_threshold)
            report["near_duplicates"] = near_duplicates(split, indexes[name])
        out["splits"][name] = report
        timings[f"{name}_seconds"] = round(time.perf_counter() - t0, 3)
    for name, split in parsed.items():
        if name != ref:
            t0 = time.perf_counter()
            out["leakage"][name] = leakage(parsed[ref], split, indexes.get(ref))
            timings[f"leakage_{name}_seconds"] = round(time.perf_counter() - t0, 3)
    out["problems"] = count_problems(out)
    out["timings"] = {**timings, "total_seconds": round(time.perf_counter() - clock, 3)}
    return out


def count_problems(result: dict) -> dict[str, int]:
    """{kind: count} summed over splits: the numbers `--fail-on` and the report's header look at."""
    splits = result["splits"].values()
    return {"duplicates": sum(s["duplicates"]["count"] for s in splits),
            "near_duplicates": sum(s.get("near_duplicates", {}).get("count", 0) for s in splits),
            "conflicts": sum(s["conflicts"]["count"] for s in splits),
            "leakage": sum(x["count"] for x in result["leakage"].values()),
            "empty": sum(s["empty"]["count"] for s in splits),
            "encoding": sum(s["encoding"]["count"] for s in splits)}
