"""The causal-LM parts of a pretraining run (`--objective clm`): its checks, the GPT-style model (a preset from
scratch or a causal LM continued), packed blocks with document attention, held-out perplexity, and a few greedy
samples for the report. `recipes/pretrain.py` runs the one flow; `MaskedLM` there is the other objective."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tuneforge.config import PretrainConfig
from tuneforge.config.schema import MlmConfig
from tuneforge.data.pack import CausalBlocks, PackedCorpus
from tuneforge.errors import UserError
from tuneforge.model.causal import build_causal_lm, is_causal_lm, load_causal_lm

PROMPT_WORDS = 6  # at most this many words of a held-out text start a report sample


class CausalLM:
    task = "clm"

    @staticmethod
    def check(cfg: PretrainConfig) -> None:
        """Masked-LM settings mean nothing to a causal LM: one line naming the key, not a silent ignore."""
        for key, value in cfg.mlm.model_dump().items():
            if value != MlmConfig.model_fields[key].default:
                raise UserError(f"mlm.{key}: a masked-LM setting, but objective is clm; drop it (document attention "
                                "for clm is clm.document_attention).")
        if cfg.model.norm != "post":
            raise UserError("model.norm: masked-LM presets only; the clm presets are pre-norm (RMSNorm). Drop model.norm.")
        if cfg.model.preset and cfg.data.block_size > cfg.model.max_position:
            raise UserError(f"data.block_size {cfg.data.block_size} exceeds model.max_position {cfg.model.max_position}; "
                            "raise model.max_position or lower the block size.")
        if cfg.model.preset and not cfg.tokenizer.path and cfg.tokenizer.type in ("wordpiece", "unigram"):
            raise UserError(f"tokenizer.type {cfg.tokenizer.type}: has no EOS token to end each text with; use gpt "
                            "(the default for --objective clm) or bpe.")
        name = cfg.model.name
        if name and Path(name).is_dir() and (Path(name) / "config.json").is_file() and not is_causal_lm(name):
            raise UserError(f"model.name {name}: not a causal language model (an encoder?); --objective clm continues "
                            "a GPT-style folder (GPT-2, Llama, Qwen, a clm run's final/) or smollm2-135m.")

    @staticmethod
    def check_tokenizer(tokenizer) -> None:
        if tokenizer.eos_token_id is None:
            raise UserError("the tokenizer has no EOS token, so texts cannot be separated for causal-LM; use "
                            "tokenizer.type gpt (the default for --objective clm) or a causal LM's tokenizer.")

    @staticmethod
    def end_id(tokenizer) -> int:
        return tokenizer.eos_token_id

    @staticmethod
    def cls_id(tokenizer) -> None:
        return None  # causal blocks are plain slices of the stream

    @staticmethod
    def model(cfg: PretrainConfig, tokenizer):
        if cfg.model.preset:
            return build_causal_lm(cfg.model.preset, tokenizer, cfg.model.max_position, cfg.model.dropout)
        model = load_causal_lm(cfg.model.name)
        positions = getattr(model.config, "max_position_embeddings", None)
        if positions and positions < cfg.data.block_size:
            raise UserError(f"data.block_size {cfg.data.block_size} exceeds the model's {positions} positions; "
                            f"lower it, e.g. --set data.block_size={positions}.")
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            raise UserError(f"model '{cfg.model.name}': its tokenizer has {len(tokenizer)} tokens but the model "
                            f"only {model.get_input_embeddings().weight.shape[0]} embeddings.")
        return model

    @staticmethod
    def data(cfg: PretrainConfig, corpus: PackedCorpus, blocks: np.ndarray, tokenizer, seed: int) -> CausalBlocks:
        return CausalBlocks(corpus, blocks, tokenizer.eos_token_id if cfg.clm.document_attention else None)

    @staticmethod
    def flops(model, cfg: PretrainConfig) -> float:
        from tuneforge.model.inspect import clm_training_flops

        return clm_training_flops(model, cfg.data.block_size)

    @staticmethod
    def trainable(model):
        return model  # the objective calls the *ForCausalLM itself

    @staticmethod
    def saveable(model):
        return model

    @staticmethod
    def evaluate(model, data: CausalBlocks, cfg: PretrainConfig, context: dict) -> dict:
        from tuneforge.evaluate.clm import evaluate_clm

        return evaluate_clm(model, data, batch_size=cfg.eval.batch_size, **context)

    @staticmethod
    def samples(model, tokenizer, data: CausalBlocks, cfg: PretrainConfig) -> list[dict] | None:
        """Greedy continuations of the first held-out texts: [{prompt, generated, reference}], or None when the
        generation module is missing."""
        if not cfg.clm.samples:
            return []
        try:
            from tuneforge.generate.decode import generate
            from tuneforge.generate.settings import GenerationSettings
        except ImportError:
            return None
        starts = sample_prompts(data, tokenizer, cfg.clm.samples, cfg.clm.sample_tokens)
        if not starts:
            return []
        settings = GenerationSettings(max_new_tokens=cfg.clm.sample_tokens, temperature=0.0)
        was_training = model.training
        model.eval()
        try:
            done = generate(model, tokenizer, [p for p, _ in starts], settings)
        finally:
            model.train(was_training)
        return [{"prompt": p, "generated": c.text, "reference": r} for (p, r), c in zip(starts, done)]


def sample_prompts(data: CausalBlocks, tokenizer, n: int, max_reference: int) -> list[tuple[str, str]]:
    """(start, real continuation) of up to `n` held-out texts that lie whole inside a block: the first words (half
    the text, at most PROMPT_WORDS; characters for unspaced text such as Chinese), and up to `max_reference`
    tokens of what follows."""
    end_id, out = tokenizer.eos_token_id, []
    for k in range(len(data.blocks)):
        ids = data.corpus.blocks(data.blocks[k:k + 1])[0][0].tolist()
        ends = [i for i, t in enumerate(ids) if t == end_id]
        for start, stop in zip(ends, ends[1:]):  # a whole text: after one end token, up to the next
            prompt, rest = _split_text(tokenizer.decode(ids[start + 1:stop]))
            if prompt and rest:
                out.append((prompt, tokenizer.decode(tokenizer(rest)["input_ids"][:max_reference])))
                break
        if len(out) == n:
            break
    return out


def _split_text(text: str) -> tuple[str, str]:
    words = text.split()
    if len(words) >= 4:
        cut = min(PROMPT_WORDS, len(words) // 2)
        return " ".join(words[:cut]), " " + " ".join(words[cut:])
    cut = min(PROMPT_WORDS * 2, len(text) // 2)
    return text[:cut], text[cut:]
