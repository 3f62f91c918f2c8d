"""LoRA on causal LMs: default targets per architecture, a clear error for absent targets, merging gives the
adapter's outputs, and a saved adapter folder reloads onto its base with peft."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import fp_tolerance

from tuneforge.errors import UserError
from tuneforge.model.causal import build_causal_lm
from tuneforge.model.lora import (
    LORA_TARGETS,
    apply_lora,
    is_adapter_folder,
    linear_module_names,
    load_adapter,
    merge_lora,
    save_adapter,
)

IDS = torch.tensor([[1, 5, 7, 9, 11, 3]])


class Vocab:
    pad_token_id, eos_token_id, bos_token_id = 0, 1, 2

    def __len__(self) -> int:
        return 300


def tiny_llama(seed: int = 0):
    torch.manual_seed(seed)
    return build_causal_lm("tiny", Vocab(), max_position=32)


def trained_adapter(seed: int = 0):
    """LoRA's B starts at zero (adapter = identity); random B stands in for a trained adapter."""
    model = apply_lora(tiny_llama(seed), rank=4, alpha=8, dropout=0.0)
    generator = torch.Generator().manual_seed(1)
    for name, param in model.named_parameters():
        if "lora_B" in name:
            param.data = torch.randn(param.shape, generator=generator) * 0.5
    return model.eval()


def wrapped(model) -> set[str]:
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


def test_llama_default_targets_every_linear_layer_and_only_adapter_trains():
    model = apply_lora(tiny_llama())
    assert wrapped(model) == set(LORA_TARGETS["llama"]) == set(linear_module_names(tiny_llama()))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_gpt2_default_targets_conv1d_layers():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=300, n_positions=32, n_embd=32, n_layer=2, n_head=2))
    model = apply_lora(gpt2, rank=4).eval()
    assert wrapped(model) == {"c_attn", "c_proj", "c_fc"}
    with torch.no_grad():
        assert model(IDS).logits.shape == (1, IDS.shape[1], 300)


def test_explicit_targets_and_missing_target_error():
    assert wrapped(apply_lora(tiny_llama(), target_modules=["q_proj", "v_proj"])) == {"q_proj", "v_proj"}
    with pytest.raises(UserError) as exc:
        apply_lora(tiny_llama(), target_modules=["q_proj", "c_attn", "query"])
    message = str(exc.value)
    assert "c_attn, query not in this llama model" in message
    assert "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj" in message


def test_merge_gives_the_adapter_outputs_as_a_plain_model():
    model = trained_adapter()
    with torch.no_grad():
        adapted = model(IDS).logits
        base = tiny_llama()(IDS).logits
    assert not torch.allclose(adapted, base)  # the adapter changes the outputs, so the comparison below means something
    merged = merge_lora(model)
    assert type(merged).__name__ == "LlamaForCausalLM" and not wrapped(merged)
    with torch.no_grad():
        out = merged(IDS).logits
    tol = fp_tolerance(torch.float32, 64) * adapted.abs().max().item()
    torch.testing.assert_close(out, adapted, atol=tol, rtol=0)


def test_adapter_folder_saves_and_reloads_on_base(tmp_path, tiny_model):
    model = trained_adapter()
    with torch.no_grad():
        expected = model(IDS).logits
    out = save_adapter(model, tmp_path / "adapter", base_model="smollm2-135m")
    assert is_adapter_folder(out) and not is_adapter_folder(tiny_model)
    assert sorted(p.name for p in out.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "smollm2-135m" and config["r"] == 4
    reloaded = load_adapter(tiny_llama(), out).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(IDS).logits, expected)
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        load_adapter(tiny_llama(), tiny_model)
