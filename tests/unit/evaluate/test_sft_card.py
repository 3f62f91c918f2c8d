"""The SFT model card: hub front matter for a text-generation model, what was tuned how, and its limits."""
from __future__ import annotations

import yaml

from tuneforge.evaluate.sft_card import sft_model_card
from tuneforge.model.manifest import Manifest

METRICS = {"loss": 0.2, "perplexity": 1.22, "exact_match": 0.9, "accuracy": 0.91, "off_label": 0.0, "rouge_l": 0.93,
           "generated": 50, "tokens": 400}


def _manifest(adapter: dict | None) -> Manifest:
    return Manifest(task="sft", base_model="smollm2-135m", max_length=512, chat_format="template", adapter=adapter,
                    data={"train": {"source": "data/sst2_train.jsonl", "rows": 2000, "sha256": "ab12"}},
                    training={"steps": 500})


def test_adapter_card_front_matter_and_limits():
    adapter = {"rank": 8, "alpha": 16, "targets": ["q_proj", "v_proj"], "merged": False}
    card = sft_model_card(_manifest(adapter), METRICS, "test", "task: sft\n", ["a note"])
    front = yaml.safe_load(card.split("---\n")[1])
    assert front["library_name"] == "peft" and front["pipeline_tag"] == "text-generation"
    assert front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and "lora" in front["tags"]
    names = {m["type"] for m in front["model-index"][0]["results"][0]["metrics"]}
    assert names == {"perplexity", "exact_match", "accuracy", "rouge_l"}
    assert "LoRA (rank 8, alpha 16, on q_proj, v_proj); this folder holds the adapter only" in card
    assert "rounded to 4 bits" in card and "- a note" in card and "AutoPeftModelForCausalLM" in card


def test_full_or_merged_card_is_a_transformers_model():
    for adapter in (None, {"rank": 8, "alpha": 16, "targets": ["q_proj"], "merged": True}):
        card = sft_model_card(_manifest(adapter), METRICS, "test", "task: sft\n", [])
        assert yaml.safe_load(card.split("---\n")[1])["library_name"] == "transformers"
        assert "AutoPeftModelForCausalLM" not in card
