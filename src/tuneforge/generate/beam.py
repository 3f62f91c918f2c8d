"""Translation decoding for encoder-decoder models: batched greedy and beam search over `seq2seq_forward`'s decoder
step. Sentences are sorted by length into batches (so padding is small) and come back in input order; the encoder
runs once per batch; a sentence leaves its batch as soon as its result is final, so a batch's cost follows its
sentences, not its longest one.

The beam search is transformers' own (`GenerationMixin._beam_search`, transformers 5) step for step, with
`early_stopping=True`: each step keeps the 2·beams best continuations of all beams, the best `beams` of them that
did not just end go on, the ones among the top `beams` that ended (EOS or the length cap) become finished
hypotheses scored log-probability / length ** length_penalty, and a sentence is done when `beams` hypotheses are
finished or the best running beam cannot beat the worst finished one. The same tensor operations in the same
order make the same choices, so `model.generate(num_beams=k, length_penalty=..., early_stopping=True,
max_new_tokens=..., no_repeat_ngram_size=...)` gives the same tokens (tests/unit/generate/test_beam.py). Logits
processors are transformers' own classes: no-repeat n-grams, and from the model's generation config the forced
first/last token, bad words, suppressed tokens and minimum length, as `generate` would apply them."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from tuneforge.errors import UserError
from tuneforge.generate.seq2seq_forward import pick_seq2seq_forward

NEG = -1.0e9  # transformers' "never pick this" score in beam search


@dataclass(frozen=True)
class BeamSettings:
    """How a translation is decoded. beams 1 is greedy; the beam score is log-probability / length **
    length_penalty (> 1 favours longer outputs, < 1 shorter, 0 is the plain sum); max_new_tokens None is, per
    sentence, min(the model's positions, 1.5 × its source length + 10); no_repeat_ngram n > 0 forbids any n-gram from
    appearing twice in an output."""

    beams: int = 4
    length_penalty: float = 1.0
    max_new_tokens: int | None = None
    no_repeat_ngram: int = 0

    def __post_init__(self):
        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not whole(self.beams) or not 1 <= self.beams <= 64:
            raise UserError(f"beams={self.beams!r} (--beams): use a whole number from 1 (greedy) to 64; 4 or 5 is "
                            "usual.")
        if not isinstance(self.length_penalty, (int, float)) or isinstance(self.length_penalty, bool) \
                or not math.isfinite(self.length_penalty):
            raise UserError(f"length_penalty={self.length_penalty!r} (--length-penalty): use a number such as 1.0 "
                            "(> 1 favours longer translations, < 1 shorter).")
        if self.max_new_tokens is not None and (not whole(self.max_new_tokens) or self.max_new_tokens < 1):
            raise UserError(f"max_new_tokens={self.max_new_tokens!r} (--max-length): use a whole number of at least 1, "
                            "or leave it unset (1.5 × the source length + 10).")
        if not whole(self.no_repeat_ngram) or self.no_repeat_ngram < 0:
            raise UserError(f"no_repeat_ngram={self.no_repeat_ngram!r} (--no-repeat-ngram): use a whole number >= 0 "
                            "(0 = off; 3 or 4 stops loops).")


def decode_length(settings: BeamSettings, longest_source: int, max_positions: int | None) -> int:
    """New tokens allowed for a sentence: the setting, or 1.5 × its source length + 10; never more than the decoder's
    positions (the start token is fed at position 0 and the last new token is never fed, so a decoder with P
    positions can make P new tokens)."""
    wanted = settings.max_new_tokens or int(1.5 * longest_source + 10)
    return min(wanted, max_positions) if max_positions else wanted


@torch.inference_mode()
def translate_ids(model, source_ids: list[list[int]], settings: BeamSettings, pad_id: int, batch_size: int = 32,
                  fast: bool = True, progress: Callable[[int], None] | None = None,
                  dtype: torch.dtype | None = None, forward=None) -> list[list[int]]:
    """Output token ids (without the start token, EOS and padding) for each source (token ids with the
    tokenizer's own special tokens, e.g. a closing </s>), in input order. `fast` picks the lean MBart/BART/Marian
    decoder step where the model qualifies (else the model's own forward); `progress(n)` is called with the number
    of sentences each finished batch held; `dtype` torch.bfloat16 decodes with bf16 matrices (None: the model's
    dtype); `forward` a ready decoder step to use instead (`seq2seq_onnx.OnnxDecoder`). The model runs in eval mode
    and is put back in the mode it was in."""
    if not isinstance(settings, BeamSettings):
        raise TypeError("settings must be a BeamSettings")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(f"batch_size={batch_size!r} (--batch-size): use a whole number of at least 1.")
    forward = forward or pick_seq2seq_forward(model, fast, dtype)
    spec = _Spec(model, settings, pad_id)
    limit = getattr(model.config, "max_position_embeddings", None) if forward.max_positions else None
    for i, ids in enumerate(source_ids):
        if limit and len(ids) > limit:
            raise UserError(f"source {i + 1} is {len(ids)} tokens; the model reads at most {limit}: shorten or "
                            "truncate it (Translator cuts sources at max_source_length).")
    out: list[list[int] | None] = [None] * len(source_ids)
    for i, ids in enumerate(source_ids):
        if not ids:
            out[i] = []  # nothing to translate
    order = sorted((i for i, ids in enumerate(source_ids) if ids), key=lambda i: len(source_ids[i]), reverse=True)
    device = next(model.parameters()).device
    training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            rows = [source_ids[i] for i in chunk]
            width = max(map(len, rows))
            ids = torch.tensor([r + [pad_id] * (width - len(r)) for r in rows], device=device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
            # Each sentence's own cap (from its own length), so its output never depends on what it is batched with.
            caps = torch.tensor([decode_length(settings, len(r), forward.max_positions) for r in rows], device=device)
            new = int(caps.max())
            state = forward.start(ids, mask, capacity=new)
            search = _greedy if settings.beams == 1 else _beam_search
            for i, result in zip(chunk, search(forward, state, spec, new, device, caps)):
                out[i] = result
            if progress:
                progress(len(chunk))
    finally:
        model.train(training)
    return out  # type: ignore[return-value]


class _Spec:
    """What decoding needs from the model and the settings: start/EOS/pad ids and the logits processors."""

    def __init__(self, model, settings: BeamSettings, pad_id: int):
        gen = getattr(model, "generation_config", None)
        config = model.config

        def pick(name):
            value = getattr(gen, name, None) if gen is not None else None
            return value if value is not None else getattr(config, name, None)

        self.start = pick("decoder_start_token_id")
        if self.start is None:
            raise UserError(f"{getattr(config, '_name_or_path', '') or 'the model'}: its config has no "
                            "decoder_start_token_id, so decoding cannot start; set it in config.json "
                            "(BART/MBart/Marian use the EOS id, T5 the pad id).")
        eos = pick("eos_token_id")
        self.eos = [eos] if isinstance(eos, int) else list(eos or [])
        self.pad = pad_id
        self.settings = settings
        self.gen = gen
        self.removed = {self.pad, *self.eos}

    def processors(self, max_length: int, device):
        """transformers' logits processors for this decode, in `generate`'s order."""
        from transformers.generation.logits_process import (
            ForcedBOSTokenLogitsProcessor,
            ForcedEOSTokenLogitsProcessor,
            LogitsProcessorList,
            MinLengthLogitsProcessor,
            NoBadWordsLogitsProcessor,
            NoRepeatNGramLogitsProcessor,
            SuppressTokensLogitsProcessor,
        )

        gen, eos = self.gen, torch.tensor(self.eos, device=device) if self.eos else None
        found = LogitsProcessorList()
        if self.settings.no_repeat_ngram:
            found.append(NoRepeatNGramLogitsProcessor(self.settings.no_repeat_ngram))
        if getattr(gen, "bad_words_ids", None) is not None:
            found.append(NoBadWordsLogitsProcessor(gen.bad_words_ids, eos))
        if (getattr(gen, "min_length", 0) or 0) > 0 and eos is not None:
            found.append(MinLengthLogitsProcessor(gen.min_length, eos, device=device))
        if getattr(gen, "forced_bos_token_id", None) is not None:
            found.append(ForcedBOSTokenLogitsProcessor(gen.forced_bos_token_id))
        if getattr(gen, "forced_eos_token_id", None) is not None:
            found.append(ForcedEOSTokenLogitsProcessor(max_length, gen.forced_eos_token_id, device=device))
        if getattr(gen, "suppress_tokens", None) is not None:
            found.append(SuppressTokensLogitsProcessor(gen.suppress_tokens, device=device))
        return found

    def result(self, seq: torch.Tensor, length: int) -> list[int]:
        """Ids after the start token, up to the first EOS, without padding."""
        ids = seq[1:length].tolist()
        for j, t in enumerate(ids):
            if t in self.eos:
                ids = ids[:j]
                break
        return [t for t in ids if t != self.pad]


def _greedy(forward, state, spec: _Spec, new: int, device, caps: torch.Tensor) -> list[list[int]]:
    """Argmax decoding, as `generate(num_beams=1, do_sample=False)`; a sentence leaves the batch at its EOS or at its
    own cap of new tokens (`caps`, per sentence; `new` is the largest)."""
    b = state.sentences
    max_length = new + 1
    processors = spec.processors(max_length, device)
    seqs = torch.full((b, max_length), spec.pad, dtype=torch.long, device=device)
    seqs[:, 0] = spec.start
    eos = torch.tensor(spec.eos or [-1], device=device)
    alive = torch.arange(b, device=device)  # input position of each row
    results: list[list[int] | None] = [None] * b
    for cur in range(1, max_length):
        logits = forward.step(state, seqs[:, cur - 1])
        scores = processors(seqs[:, :cur], logits.float())
        tokens = scores.argmax(-1)
        seqs[:, cur] = tokens
        done = torch.isin(tokens, eos) | (cur >= caps)
        if bool(done.any()):
            for row in done.nonzero()[:, 0].tolist():
                results[int(alive[row])] = spec.result(seqs[row], cur + 1)
            going = (~done).nonzero()[:, 0]
            if going.numel() == 0:
                break
            alive, seqs, caps = alive[going], seqs[going], caps[going]
            state.keep(going)
    return results  # type: ignore[return-value]


def _beam_search(forward, state, spec: _Spec, new: int, device, caps: torch.Tensor) -> list[list[int]]:
    """transformers' beam search with early_stopping=True (see the module docstring), per sentence; the names follow
    `GenerationMixin._beam_search`. A sentence whose result can no longer change leaves the batch; at its own cap of
    new tokens (`caps`; `new` is the largest) every hypothesis of it ends, as at generate's max_length."""
    k, lp = spec.settings.beams, spec.settings.length_penalty
    b, max_length = state.sentences, new + 1
    processors = spec.processors(max_length, device)
    eos = torch.tensor(spec.eos or [-1], device=device)
    keep = max(2, 1 + len(spec.eos)) * k
    top_num_beam_mask = torch.cat((torch.ones(k, dtype=torch.bool), torch.zeros(keep - k, dtype=torch.bool))).to(device)
    running = torch.full((b, k, max_length), spec.pad, dtype=torch.long, device=device)
    running[:, :, 0] = spec.start
    sequences = running.clone()
    lengths = torch.zeros((b, k), dtype=torch.long, device=device)  # of each finished hypothesis, start token included
    running_scores = torch.zeros((b, k), dtype=torch.float, device=device)
    running_scores[:, 1:] = NEG
    beam_scores = torch.full((b, k), NEG, dtype=torch.float, device=device)
    finished = torch.zeros((b, k), dtype=torch.bool, device=device)
    improvable = torch.ones((b, 1), dtype=torch.bool, device=device)  # is_early_stop_heuristic_unsatisfied
    alive = torch.arange(b, device=device)
    results: list[list[int] | None] = [None] * b

    cur = 1
    while True:
        if state.beams == 1:  # first step: a sentence's beams are all the start token; run it once, branch after
            logits = forward.step(state, running[:, 0, cur - 1])
            log_probs = processors(running[:, 0, :cur], F.log_softmax(logits.float(), -1))
            log_probs = log_probs[:, None].expand(-1, k, -1)
        else:
            logits = forward.step(state, running[:, :, cur - 1].reshape(-1))
            flat = running.view(-1, max_length)[:, :cur]
            log_probs = processors(flat, F.log_softmax(logits.float(), -1)).view(running.shape[0], k, -1)
        rows_b, vocab = log_probs.shape[0], log_probs.shape[-1]
        log_probs = (log_probs + running_scores[:, :, None]).reshape(rows_b, -1)

        # c. the top 2k continuations of all beams
        topk_log_probs, topk_indices = torch.topk(log_probs, k=keep)
        topk_beams = topk_indices // vocab
        topk_running = torch.take_along_dim(running, topk_beams[:, :, None], dim=1)
        topk_running[:, :, cur] = topk_indices % vocab
        # d. which of them end here
        hits = torch.isin(topk_running[:, :, cur], eos) | (cur >= caps)[:, None]
        # e. the best k that go on
        topk_running_log_probs = topk_log_probs + hits.to(torch.float32) * NEG
        next_indices = torch.topk(topk_running_log_probs, k=k)[1]
        running = torch.take_along_dim(topk_running, next_indices[:, :, None], dim=1)
        running_scores = torch.take_along_dim(topk_running_log_probs, next_indices, dim=1)
        parents = torch.take_along_dim(topk_beams, next_indices, dim=1)
        # f. finished hypotheses: the ones among the top k that ended, if they beat the ones kept so far
        just_finished = hits & top_num_beam_mask[None, :]
        scores = topk_log_probs / ((cur + 1 - 1) ** lp)
        full = torch.all(finished, dim=-1, keepdim=True)
        scores += full.to(torch.float32) * NEG
        scores += (~improvable).to(torch.float32) * NEG
        scores += (~just_finished) * NEG
        merged = torch.topk(torch.cat((beam_scores, scores), dim=1), k=k)[1]
        sequences = torch.take_along_dim(torch.cat((sequences, topk_running), dim=1), merged[:, :, None], dim=1)
        beam_scores = torch.take_along_dim(torch.cat((beam_scores, scores), dim=1), merged, dim=1)
        new_lengths = torch.full_like(hits, cur + 1, dtype=torch.long)
        lengths = torch.take_along_dim(torch.cat((lengths, new_lengths), dim=1), merged, dim=1)
        finished = torch.take_along_dim(torch.cat((finished, just_finished), dim=1), merged, dim=1)
        # g. the cache follows the beams; can a sentence still improve?
        beams_now = state.beams
        sentence = torch.arange(rows_b, device=device)[:, None] * beams_now
        state.reorder((sentence + (parents if beams_now > 1 else torch.zeros_like(parents))).reshape(-1))
        cur += 1
        best_running = running_scores[:, :1] / ((cur - 1) ** lp)
        worst_finished = torch.where(finished, torch.min(beam_scores, dim=1, keepdim=True)[0], NEG)
        improvable = improvable & torch.any(best_running > worst_finished, dim=-1, keepdim=True)

        last = bool(hits.all())
        done = torch.ones(rows_b, dtype=torch.bool, device=device) if last else \
            ~improvable[:, 0] | finished.all(-1)
        if bool(done.any()):
            for row in done.nonzero()[:, 0].tolist():
                results[int(alive[row])] = spec.result(sequences[row, 0], int(lengths[row, 0]))
            going = (~done).nonzero()[:, 0]
            if going.numel() == 0:
                break
            alive = alive[going]
            running, running_scores, sequences = running[going], running_scores[going], sequences[going]
            beam_scores, lengths, finished, improvable = beam_scores[going], lengths[going], finished[going], \
                improvable[going]
            caps = caps[going]
            state.keep(going)
    return results  # type: ignore[return-value]
