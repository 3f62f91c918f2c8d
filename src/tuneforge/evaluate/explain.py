"""Integrated gradients for a sequence classifier: each word piece's share of the target logit, and word merging.

Attributions explain the target class's *logit*, not its probability: the logit is the usual choice, it is not
squashed by the softmax (a confident p = 0.999 still has attributions to share), and a stored softmax temperature
(`tuneforge_temperature`) only rescales probabilities, so it changes nothing here.
"""
from __future__ import annotations

from dataclasses import dataclass

from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError, closest

PATH_BATCH = 16  # interpolation points per forward+backward pass


@dataclass
class Explanation:
    """One text explained. `tokens` are word pieces without [CLS]/[SEP] (whose attribution is 0 by construction:
    the baseline keeps them)."""

    text: str
    tokens: list[str]
    attributions: list[float]
    word_ids: list[int]  # the word each piece belongs to (pieces of one word share an id)
    spans: list[tuple[int, int]] | None  # character span of each piece in `text` (None for slow tokenizers)
    label: str  # predicted label (argmax of the logits)
    probability: float  # its probability, as `tuneforge predict` reports it
    target: str  # the label whose logit is explained
    target_probability: float
    delta: float  # f(x) - f(baseline): target logit on the text minus on the all-[PAD] baseline
    completeness_gap: float  # sum(attributions) - delta; near 0 when `steps` is enough
    steps: int
    truncated: bool  # the text was longer than max_length tokens; the tail was not explained

    def words(self) -> list[tuple[str, float]]:
        """(word, summed attribution of its pieces), in order: the view users read."""
        return merge_pieces(self.tokens, self.attributions, self.word_ids, self.text, self.spans)

    def converged(self, tolerance: float = 0.05) -> bool:
        """The gap is within `tolerance` of |f(x) - f(baseline)| (absolute 0.01 when that difference is ~0)."""
        return abs(self.completeness_gap) <= max(tolerance * abs(self.delta), 0.01)


def merge_pieces(tokens: list[str], scores: list[float], word_ids: list[int], text: str | None = None,
                 spans: list[tuple[int, int]] | None = None) -> list[tuple[str, float]]:
    """Sum the scores of consecutive pieces with the same word id. A word's string is its span of `text` when spans
    are known (original case), else its pieces joined without the '##' continuation marks."""
    words: list[tuple[str, float]] = []
    start = 0
    for i in range(1, len(tokens) + 1):
        if i < len(tokens) and word_ids[i] == word_ids[start]:
            continue
        if spans is not None and text is not None:
            word = text[spans[start][0]:spans[i - 1][1]]
        else:
            pieces = tokens[start:i]
            word = pieces[0] + "".join(t[2:] if t.startswith("##") else t for t in pieces[1:])
        words.append((word, float(sum(scores[start:i]))))
        start = i
    return words


def _gauss_legendre(steps: int):
    """Nodes in [0, 1] and weights summing to 1: exact for polynomials of degree < 2*steps along the path."""
    import numpy as np

    nodes, weights = np.polynomial.legendre.leggauss(steps)
    return (nodes + 1) / 2, weights / 2


def _encode(tokenizer, text: str, max_length: int):
    """(tensors, word id of every position, whether the text was cut at max_length)."""
    enc = tokenizer(text, truncation=True, max_length=max_length, return_special_tokens_mask=True,
                    return_offsets_mapping=tokenizer.is_fast, return_tensors="pt")
    truncated = len(tokenizer(text, truncation=False)["input_ids"]) > enc["input_ids"].shape[1]
    if tokenizer.is_fast:
        return enc, enc.word_ids(0), truncated
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0].tolist())
    word_ids, current = [], -1  # slow tokenizer: a '##' piece continues the previous word
    for token in tokens:
        current += 0 if token.startswith("##") and current >= 0 else 1
        word_ids.append(current)
    return enc, word_ids, truncated


def _target_index(labels: LabelSpace, target: str | None, logits) -> int:
    if target is None:
        return int(logits.argmax())
    if target not in labels.names:
        raise UserError(f"--target '{target}': not a label of this model. Labels: {', '.join(labels.names)}."
                        f"{closest(target, labels.names)}")
    return labels.names.index(target)


def _probabilities(model, labels: LabelSpace, logits, temperature: float | None):
    import torch

    if labels.multi_label:
        return torch.sigmoid(logits)
    if temperature is None:
        temperature = float(getattr(model.config, "tuneforge_temperature", None) or 1.0)
    return torch.softmax(logits / temperature, -1)


def _path_gradient(model, word, base, extra: dict, target: int, steps: int):
    """The Gauss-Legendre average of d logit[target] / d embedding along base → word, shape (L, H)."""
    import torch

    alphas, weights = _gauss_legendre(steps)
    total = torch.zeros_like(word)
    for start in range(0, steps, PATH_BATCH):
        a = torch.tensor(alphas[start:start + PATH_BATCH], dtype=word.dtype, device=word.device)[:, None, None]
        w = torch.tensor(weights[start:start + PATH_BATCH], dtype=word.dtype, device=word.device)[:, None, None]
        points = (base + a * (word - base)).detach().requires_grad_(True)
        batch = {k: v.expand(len(a), -1) for k, v in extra.items()}
        logits = model(inputs_embeds=points, **batch).logits[:, target]
        (grad,) = torch.autograd.grad(logits.sum(), points)
        total += (w * grad).sum(0)
    return total


def integrated_gradients(model, tokenizer, text: str, target: str | None = None, steps: int = 50,
                         max_length: int = 128, baseline: str = "pad",
                         temperature: float | None = None) -> Explanation:
    """Explain `model`'s logit for `target` (default: the predicted label) on `text` by integrated gradients.

    The path runs on the word-embedding output from a baseline to the text; position and token-type embeddings are
    added by the model as usual. Baseline "pad": every non-special token replaced by [PAD] with the same attention
    mask; "zero": all-zero word embeddings for the non-special tokens. `temperature` (default: the model config's
    `tuneforge_temperature`, else 1) only shapes the reported probabilities, as in `tuneforge predict`.
    """
    import torch

    if steps < 1:
        raise UserError(f"--steps {steps}: use at least 1 (50 is the usual choice).")
    if baseline not in ("pad", "zero"):
        raise ValueError(f"baseline must be 'pad' or 'zero', not {baseline!r}")
    labels = LabelSpace.from_model_config(model.config)
    model.eval()
    device = next(model.parameters()).device
    enc, word_ids, truncated = _encode(tokenizer, text, max_length)
    ids = enc["input_ids"].to(device)
    special = enc["special_tokens_mask"][0].bool().to(device)
    extra = {k: enc[k].to(device) for k in ("attention_mask", "token_type_ids") if k in enc}
    embed = model.get_input_embeddings()
    with torch.no_grad():
        word = embed(ids)
        if baseline == "pad":
            base = embed(torch.where(special, ids, torch.full_like(ids, tokenizer.pad_token_id or 0)))
        else:
            base = torch.where(special[None, :, None], word, torch.zeros_like(word))
        ends = model(inputs_embeds=torch.cat([word, base]), **{k: v.expand(2, -1) for k, v in extra.items()}).logits
    index = _target_index(labels, target, ends[0])
    with torch.enable_grad():
        grad = _path_gradient(model, word[0], base[0], extra, index, steps)
    scores = ((word[0] - base[0]) * grad).sum(-1)
    probs = _probabilities(model, labels, ends[0], temperature)
    predicted = int(ends[0].argmax())
    delta = float(ends[0, index] - ends[1, index])
    keep = [i for i in range(ids.shape[1]) if not special[i]]
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    spans = [tuple(enc["offset_mapping"][0, i].tolist()) for i in keep] if "offset_mapping" in enc else None
    return Explanation(text=text, tokens=[tokens[i] for i in keep], attributions=[float(scores[i]) for i in keep],
                       word_ids=[word_ids[i] for i in keep], spans=spans, label=labels.names[predicted],
                       probability=float(probs[predicted]), target=labels.names[index],
                       target_probability=float(probs[index]), delta=delta,
                       completeness_gap=float(scores.sum()) - delta, steps=steps, truncated=truncated)
