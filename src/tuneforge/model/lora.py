"""LoRA adapters on causal LMs (peft): attach with per-architecture default targets, check the targets exist,
save an adapter folder (adapter_config.json + adapter_model.safetensors), reload it, and merge into a plain model."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path

from tuneforge.errors import UserError

# Every linear layer of each block, not peft's attention-only default (q_proj, v_proj): QLoRA (Dettmers et al.,
# 2023) found adapters on all linear layers are what matches full fine-tuning; the extra rank-8 matmuls cost
# ~1% of a 135M model's FLOPs. Unknown model types fall back to peft's "all-linear" (every Linear but the LM head).
LORA_TARGETS: dict[str, list[str]] = {
    **{t: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
       for t in ("llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "smollm3", "olmo", "olmo2")},
    "gpt2": ["c_attn", "c_proj", "c_fc"],  # GPT-2's Conv1D layers (attention qkv, both projections, MLP in)
    "gpt_neo": ["q_proj", "k_proj", "v_proj", "out_proj", "c_fc", "c_proj"],
}
ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def linear_module_names(model) -> list[str]:
    """Leaf names of the layers LoRA can wrap (nn.Linear and GPT-2's Conv1D), without the LM head."""
    import torch

    names = set()
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf != "lm_head" and (isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"):
            names.add(leaf)
    return sorted(names)


def default_targets(model) -> list[str] | str:
    return LORA_TARGETS.get(getattr(model.config, "model_type", ""), "all-linear")


def check_targets(model, targets: list[str]) -> None:
    """UserError naming the targets the model lacks and the linear layers it has."""
    available = linear_module_names(model)
    missing = [t for t in targets if t not in available]
    if missing:
        kind = getattr(model.config, "model_type", type(model).__name__)
        raise UserError(f"lora.target_modules: {', '.join(missing)} not in this {kind} model; its linear layers "
                        f"are {', '.join(available)}. Pass some of those, or leave target_modules empty for the "
                        "default.")


def apply_lora(model, rank: int = 8, alpha: float = 16.0, dropout: float = 0.05,
               target_modules: list[str] | None = None):
    """The model wrapped in a peft LoRA adapter: base weights frozen, only the adapter trains."""
    from peft import LoraConfig, get_peft_model

    targets = list(target_modules) if target_modules else default_targets(model)
    if isinstance(targets, list):
        check_targets(model, targets)
    config = LoraConfig(task_type="CAUSAL_LM", r=rank, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=targets, fan_in_fan_out=model.config.model_type == "gpt2")
    with warnings.catch_warnings():  # peft reads transformers' deprecated is_gradient_checkpointing: noise for users
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def merge_lora(model):
    """A plain transformers model with the adapter folded into the weights (saves and loads without peft)."""
    if not hasattr(model, "merge_and_unload"):
        return model
    return model.merge_and_unload()


def is_adapter_folder(path) -> bool:
    folder = Path(path)
    return (folder / ADAPTER_CONFIG).is_file() and any((folder / w).is_file() for w in ADAPTER_WEIGHTS)


def save_adapter(model, out: Path, base_model: str | None = None) -> Path:
    """Write only the adapter into `out` atomically (temp sibling + rename); `base_model` (an alias or folder) is
    recorded as base_model_name_or_path so the adapter says what it applies to."""
    import json

    from tuneforge.model.artifact import replace_dir

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    (tmp / "README.md").unlink(missing_ok=True)  # peft's placeholder card; TuneForge writes its own model card
    if base_model is not None:  # patched after saving: peft would look an alias up on the hub while saving
        config = json.loads((tmp / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base_model
        (tmp / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    replace_dir(tmp, out)
    return out


def load_adapter(base, folder, trainable: bool = False):
    """`base` (a loaded causal LM) with the adapter in `folder` attached (peft's PeftModel.from_pretrained)."""
    from peft import PeftModel

    if not is_adapter_folder(folder):
        raise UserError(f"{folder}: not a LoRA adapter folder (needs {ADAPTER_CONFIG} and adapter_model.safetensors).")
    return PeftModel.from_pretrained(base, str(folder), is_trainable=trainable)
