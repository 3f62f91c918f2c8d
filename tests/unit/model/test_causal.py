"""Causal-LM presets (Llama architecture like SmolLM2), a tiny model's forward pass, loading a folder and its
tokenizer, telling a causal LM from an encoder folder, and the causal training-FLOPs count."""
from __future__ import annotations

import json

import pytest
import torch

from tuneforge.errors import UserError
from tuneforge.model.causal import (
    CAUSAL_PRESETS,
    build_causal_lm,
    causal_config,
    is_causal_lm,
    load_causal_lm,
    load_causal_tokenizer,
)
from tuneforge.model.inspect import clm_training_flops, non_embedding_params


def gpt_tokenizer(with_pad: bool = False):
    """A tiny byte-free word-level tokenizer with an EOS token and, like GPT-2's, no pad token."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "</s>", "<s>", "<pad>"] + [f"w{i}" for i in range(60)]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    extra = {"pad_token": "<pad>"} if with_pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", bos_token="<s>", unk_token="<unk>",
                                   **extra)


@pytest.fixture(scope="module")
def tiny_causal_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-causal") / "tiny-llama"
    tokenizer = gpt_tokenizer()
    torch.manual_seed(0)
    build_causal_lm("tiny", tokenizer, max_position=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_presets_are_llama_shapes_growing_to_smollm2():
    tok = gpt_tokenizer()
    configs = {name: causal_config(name, tok) for name in CAUSAL_PRESETS}
    assert list(configs) == ["tiny", "mini", "small", "medium", "base"]
    tiny, base = configs["tiny"], configs["base"]
    assert (tiny.hidden_size, tiny.num_hidden_layers) == (64, 2)
    # SmolLM2-135M's shape, so `base` can continue from it
    assert (base.hidden_size, base.num_hidden_layers, base.num_attention_heads, base.num_key_value_heads,
            base.intermediate_size) == (576, 30, 9, 3, 1536)
    for cfg in configs.values():
        assert cfg.model_type == "llama" and cfg.tie_word_embeddings and cfg.hidden_act == "silu"
        assert cfg.hidden_size % cfg.num_attention_heads == 0
        assert cfg.eos_token_id == tok.eos_token_id and cfg.pad_token_id == tok.eos_token_id  # no pad -> eos
    with pytest.raises(UserError, match="unknown causal preset 'huge'"):
        causal_config("huge", tok)


def test_tiny_forward_is_causal_and_tied():
    tok = gpt_tokenizer(with_pad=True)
    torch.manual_seed(0)
    model = build_causal_lm("tiny", tok, max_position=32, dropout=0.0).eval()
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert model.config.pad_token_id == tok.pad_token_id and model.config.vocab_size == len(tok)
    ids = torch.tensor([[2, 5, 6, 7, 8]])
    changed = ids.clone()
    changed[0, -1] = 9
    with torch.no_grad():
        out, out2 = model(ids, labels=ids), model(changed)
    assert out.logits.shape == (1, 5, len(tok)) and torch.isfinite(out.loss)
    torch.testing.assert_close(out.logits[:, :-1], out2.logits[:, :-1])  # earlier positions never see later ones
    assert not torch.allclose(out.logits[:, -1], out2.logits[:, -1])


def test_is_causal_lm_reads_config_only(tiny_model, tiny_causal_dir, tmp_path):
    assert is_causal_lm(tiny_causal_dir)
    assert not is_causal_lm(tiny_model)  # BERT encoder folder
    assert not is_causal_lm(tmp_path)  # no config.json
    gpt2 = tmp_path / "gpt2"
    gpt2.mkdir()
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    assert is_causal_lm(gpt2)
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertLMHeadModel"]}))
    assert not is_causal_lm(gpt2)  # an encoder class named LMHead is not a decoder
    (gpt2 / "config.json").write_text(json.dumps({"model_type": "qwen2"}))  # no architectures: by model type
    assert is_causal_lm(gpt2)


def test_load_bert_folder_as_causal_lm_is_a_user_error(tiny_model):
    with pytest.raises(UserError) as exc:
        load_causal_lm(str(tiny_model))
    message = str(exc.value)
    assert str(tiny_model) in message and "not a causal language model" in message and "smollm2-135m" in message


def test_load_folder_and_tokenizer_pad_falls_back_to_eos(tiny_causal_dir):
    model = load_causal_lm(str(tiny_causal_dir))
    tokenizer = load_causal_tokenizer(str(tiny_causal_dir))
    assert type(model).__name__ == "LlamaForCausalLM" and not model.training
    assert next(model.parameters()).dtype == torch.float32
    assert tokenizer.pad_token == "</s>" and tokenizer.pad_token_id == tokenizer.eos_token_id


def test_clm_training_flops_counts_the_tied_head_once():
    tok = gpt_tokenizer()
    torch.manual_seed(0)
    tied = build_causal_lm("tiny", tok)
    cfg = tied.config
    d, layers, vocab, seq = cfg.hidden_size, cfg.num_hidden_layers, cfg.vocab_size, 128
    expected = 3 * (2 * (non_embedding_params(tied) + vocab * d) + 4 * layers * seq * d)
    assert clm_training_flops(tied, seq) == expected
    untied_cfg = causal_config("tiny", tok)
    untied_cfg.tie_word_embeddings = False
    from transformers import LlamaForCausalLM

    untied = LlamaForCausalLM(untied_cfg)
    assert untied.lm_head.weight is not untied.model.embed_tokens.weight
    assert clm_training_flops(untied, seq) == expected  # same matmuls run, whether or not the weights are shared


def test_inspect_shows_gpt_presets():
    from rich.console import Console

    from tuneforge.recipes.inspect import describe

    console = Console(record=True, width=200)
    console.print(describe("gpt-tiny", seq_len=64, vocab_size=300))
    text = console.export_text()
    assert "causal preset tiny" in text and "LlamaForCausalLM" in text and "gate_proj" in text


def test_inspect_loads_a_causal_folder_with_its_lm_head(tiny_causal_dir):
    from rich.console import Console

    from tuneforge.recipes.inspect import describe

    console = Console(record=True, width=200)
    console.print(describe(str(tiny_causal_dir), seq_len=16))
    text = console.export_text()
    assert "LlamaForCausalLM" in text and "lm_head" in text
