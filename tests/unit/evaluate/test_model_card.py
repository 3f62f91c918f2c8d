"""The model card README.md: Hugging Face front matter (valid YAML with the required keys) and its sections."""
from __future__ import annotations

import yaml

from tuneforge.evaluate.model_card import hub_id, model_card
from tuneforge.model.manifest import Manifest

MANIFEST = Manifest(**{
    "task": "classification", "labels": ["negative", "positive"], "multi_label": False, "max_length": 64,
    "base_model": "minilm-l6", "temperature": 1.7,
    "data": {"train": {"source": "/data/train.csv", "rows": 300, "sha256": "ab" * 32},
             "validation": {"source": "/data/train.csv[validation split]", "rows": 40, "sha256": None},
             "test": {"source": "/data/test.csv", "rows": 60, "sha256": "cd" * 32}},
    "label_counts": {"train": {"negative": 250, "positive": 50}},
    "training": {"steps": 80, "best_step": 70, "stop_reason": "max_steps", "train_seconds": 12.5},
    "coverage": {"unk_rate": 0.05, "script_share": {"latin": 0.7, "han": 0.3}},
    "versions": {"tuneforge": "0.1.0", "torch": "2.13"},
})
METRICS = {"accuracy": 0.9, "macro_f1": 0.85, "micro_f1": 0.9, "samples": 60,
           "per_class": {"negative": {"precision": 0.95, "recall": 0.9, "f1": 0.92, "support": 50},
                         "positive": {"precision": 0.6, "recall": 0.8, "f1": 0.69, "support": 10}}}
CAL = {"temperature": 1.7, "ece_before": 0.12, "ece_after": 0.03, "bins": 15, "fitted_on": "validation"}
BASE = {"accuracy": 0.895, "macro_f1": 0.84, "fit_seconds": 0.4, "analyzer": "word 1-2-grams"}
CONFIG = "train:\n  epochs: 3\n  learning_rate: 5.0e-05\n"


def _split(card: str) -> tuple[dict, str]:
    assert card.startswith("---\n")
    _, front, body = card.split("---\n", 2)
    return yaml.safe_load(front), body


def test_front_matter_is_valid_yaml_with_the_hub_keys():
    meta, _ = _split(model_card(MANIFEST, METRICS, split="test", config_yaml=CONFIG, calibration=CAL))
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the alias mapped to its hub id
    assert meta["tags"] == ["tuneforge", "text-classification"]
    result = meta["model-index"][0]["results"][0]
    assert result["task"]["type"] == "text-classification"
    assert result["dataset"]["split"] == "test" and result["dataset"]["name"] == "test.csv"
    values = {m["type"]: m["value"] for m in result["metrics"]}
    assert values == {"accuracy": 0.9, "f1": 0.85}


def test_sections_and_content():
    card = model_card(MANIFEST, METRICS, split="test", config_yaml=CONFIG, calibration=CAL, baseline=BASE,
                      ci={"accuracy": [0.82, 0.96], "macro_f1": [0.75, 0.93]}, train_seconds=12.5,
                      notes=["Personal data in train: EMAIL 3."])
    _, body = _split(card)
    for heading in ("## Model description", "## Intended use", "### Out-of-scope use", "## Training data",
                    "## Metrics", "## Calibration", "## Baseline comparison", "## Limitations and bias",
                    "## Training configuration", "## How to use"):
        assert heading in body, heading
    assert "ab" * 32 in body  # the training file's hash
    assert "| negative | 250 | 83.3% |" in body  # label distribution
    assert "| accuracy | 0.9000 | 0.8200–0.9600 |" in body
    assert "T = 1 and 0.0300" in body and "0.1200" in body  # ECE before/after
    assert "nearly as good" in body  # 0.5-point gap to the baseline
    assert "Small training set: 300 rows" in body and "Small evaluation set: 60 rows" in body
    assert "Imbalanced labels" in body and "Tokenizer coverage" in body and "han 30%" in body
    assert "Personal data in train: EMAIL 3." in body
    assert "```yaml\ntrain:\n  epochs: 3" in body
    assert "tuneforge.load(" in body and "AutoModelForSequenceClassification" in body
    assert "logits / T" in body and "tuneforge_temperature" in body


def test_local_base_model_is_left_out_and_multi_label_has_no_temperature(tmp_path):
    manifest = MANIFEST.model_copy(update={"base_model": str(tmp_path), "multi_label": True, "temperature": None})
    meta, body = _split(model_card(manifest, METRICS, split="test"))
    assert "base_model" not in meta  # a local path is not a hub id
    assert "torch.sigmoid(logits)" in body and "logits / T" not in body
    assert "## Calibration" not in body and "## Baseline comparison" not in body
    assert hub_id("bert-base-uncased") == "bert-base-uncased" and hub_id("org/model") == "org/model"
    assert hub_id("./models/x") is None and hub_id(None) is None
