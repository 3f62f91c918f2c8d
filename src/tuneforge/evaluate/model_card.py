"""The model card: a Hugging Face-format README.md (YAML front matter + sections) for a fine-tuned model folder.

Built from the folder's manifest (tuneforge.json) and the final evaluation, so it states what was measured,
on which data (with file hashes), and what the model should not be used for.
"""
from __future__ import annotations

from pathlib import Path

from tuneforge.model.manifest import Manifest

# Packaged aliases → the hub id the weights came from, for `base_model` in the front matter.
HUB_IDS = {"minilm-l6": "sentence-transformers/all-MiniLM-L6-v2"}
SMALL_TRAIN_ROWS = 1000
SMALL_EVAL_ROWS = 200
IMBALANCE_RATIO = 3.0


def hub_id(base_model: str | None) -> str | None:
    """The base model as a hub id, or None for a local folder (a path is not a valid `base_model`)."""
    if not base_model:
        return None
    name = HUB_IDS.get(base_model, base_model)
    looks_like_path = name.startswith((".", "/", "~")) or "\\" in name or Path(name).exists()
    return None if looks_like_path or name.count("/") > 1 else name


def front_matter(manifest: Manifest, metrics: dict, split: str, title: str) -> str:
    import yaml

    data = manifest.data.get(split, {})
    dataset = Path(str(data.get("source", split))).name or split
    results = [{"type": "accuracy", "value": round(float(metrics["accuracy"]), 4), "name": "Accuracy"},
               {"type": "f1", "value": round(float(metrics["macro_f1"]), 4), "name": "Macro F1",
                "args": {"average": "macro"}}]
    body: dict = {"library_name": "transformers", "pipeline_tag": "text-classification"}
    base = hub_id(manifest.base_model)
    if base:
        body["base_model"] = base
    body["tags"] = ["tuneforge", "text-classification"]
    body["model-index"] = [{"name": title, "results": [{
        "task": {"type": "text-classification", "name": "Text Classification"},
        "dataset": {"name": dataset, "type": dataset, "split": split}, "metrics": results}]}]
    return "---\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True) + "---\n"


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _description(manifest: Manifest, title: str) -> list[str]:
    labels = manifest.labels
    kind = "multi-label" if manifest.multi_label else ("binary" if len(labels) == 2 else "multi-class")
    train = manifest.data.get("train", {})
    lines = [f"# {title}", "",
             (f"A {kind} text classifier ({len(labels)} labels: {', '.join(f'`{n}`' for n in labels)}) fine-tuned "
              f"with TuneForge from `{manifest.base_model or 'unknown'}` on "
              f"`{Path(str(train.get('source', '?'))).name}` ({train.get('rows', '?')} rows)."), "",
             "## Model description", "",
             f"- **Base model:** `{manifest.base_model or 'unknown'}`",
             (f"- **Task:** {kind} sequence classification "
              f"({'sigmoid per label' if manifest.multi_label else 'softmax over labels'})"),
             f"- **Max input length:** {manifest.max_length} tokens (longer texts are truncated)"]
    if manifest.vocab_added:
        lines.append(f"- **Vocabulary:** {manifest.vocab_added} tokens were added to the base tokenizer for this data.")
    if manifest.temperature is not None:
        lines.append(f"- **Temperature:** {manifest.temperature:.4f} (stored as `tuneforge_temperature` in config.json)")
    return lines


def _intended_use(manifest: Manifest) -> list[str]:
    labels = ", ".join(f"`{n}`" for n in manifest.labels)
    return ["", "## Intended use", "",
            (f"Classifying short texts like those in the training data into {labels}, e.g. to sort, route or "
             "count them, with a person checking decisions that matter."), "",
            "### Out-of-scope use", "",
            ("- Texts from another domain, language or period than the training data: accuracy will be lower "
             "than reported, and the probabilities will be over-confident."),
            "- Labels outside the list above: the model always answers with one of its labels.",
            "- Automated decisions about people (hiring, credit, moderation of individuals) without human review.",
            "- Texts much longer than the max input length: only the beginning is read."]


def _training_data(manifest: Manifest) -> list[str]:
    lines = ["", "## Training data", "", "| split | file | rows | sha256 |", "|---|---|---|---|"]
    for split, d in manifest.data.items():
        lines.append(f"| {split} | `{Path(str(d.get('source', '?'))).name}` | {d.get('rows', '?')} | "
                     f"`{d.get('sha256') or 'carved from train (see split.json)'}` |")
    counts = manifest.label_counts.get("train")
    if counts:
        total = max(sum(counts.values()), 1)
        lines += ["", "Label distribution (train):", "", "| label | rows | share |", "|---|---|---|"]
        lines += [f"| {n} | {c} | {c / total:.1%} |" for n, c in counts.items()]
    return lines


def _evaluation(metrics: dict, split: str, ci: dict | None, calibration: dict | None, baseline: dict | None,
                train_seconds: float | None) -> list[str]:
    from tuneforge.evaluate.report import baseline_view, calibration_sentence

    ci = ci or {}
    where = f"On the {split} set ({metrics.get('samples')} rows); 95% bootstrap intervals where shown."
    lines = ["", "## Metrics", "", where, "", "| metric | value | 95% CI |", "|---|---|---|"]
    for key in ("accuracy", "macro_f1", "micro_f1", "macro_precision", "macro_recall"):
        if key in metrics:
            interval = f"{ci[key][0]:.4f}–{ci[key][1]:.4f}" if key in ci else ""
            lines.append(f"| {key} | {metrics[key]:.4f} | {interval} |")
    per = metrics.get("per_class", {})
    if per:
        lines += ["", "| label | precision | recall | f1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {n} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |"
                  for n, c in per.items()]
    if calibration:
        lines += ["", "## Calibration", "", calibration_sentence(calibration, f"the {split} set")]
    if baseline:
        view = baseline_view(baseline, metrics, train_seconds)
        lines += ["", "## Baseline comparison", ""]
        if view["rows"]:
            lines += ["| model | accuracy | macro F1 | train time |", "|---|---|---|---|"]
            lines += [f"| {' | '.join(r)} |" for r in view["rows"]] + [""]
        lines.append(view["sentence"])
    return lines


def _limitations(manifest: Manifest, metrics: dict, ci: dict | None, notes: list[str]) -> list[str]:
    lines = ["", "## Limitations and bias", "",
             ("- The model learns whatever patterns (and biases) the training labels contain, including "
              "annotator mistakes; it was not audited for fairness across groups of people."),
             "- Reported metrics hold for data like the evaluation set only."]
    if manifest.temperature and not manifest.multi_label:
        lines.append("- Probabilities are calibrated (temperature scaling) on in-distribution validation data; on "
                     "shifted data they tend to be over-confident again.")
    else:
        lines.append("- Probabilities are not calibrated: treat them as scores, not as chances.")
    rows = manifest.data.get("train", {}).get("rows") or 0
    if rows and rows < SMALL_TRAIN_ROWS:
        lines.append(f"- Small training set: {rows} rows. Expect the model to miss phrasings it has not seen.")
    n = metrics.get("samples") or 0
    if n and n < SMALL_EVAL_ROWS:
        width = f" (accuracy interval {ci['accuracy'][0]:.1%}–{ci['accuracy'][1]:.1%})" if ci and "accuracy" in ci else ""
        lines.append(f"- Small evaluation set: {n} rows, so the metrics are uncertain{width}.")
    counts = list(manifest.label_counts.get("train", {}).values())
    if counts and min(counts) > 0 and max(counts) / min(counts) > IMBALANCE_RATIO:
        lines.append(f"- Imbalanced labels (largest/smallest class {max(counts) / min(counts):.1f}×): "
                     "check the per-class recall of the rare labels.")
    coverage = manifest.coverage or {}
    if coverage.get("unk_rate", 0) > 0.02:
        lines.append(f"- Tokenizer coverage: {coverage['unk_rate']:.1%} of training tokens were unknown to the base "
                     "tokenizer; the base model was likely not pretrained on this language or script.")
    scripts = {k: v for k, v in (coverage.get("script_share") or {}).items() if v >= 0.05}
    if scripts:
        lines.append("- Scripts in the training text: " + ", ".join(f"{k} {v:.0%}" for k, v in scripts.items())
                     + ". Other languages and scripts are out of scope.")
    lines += [f"- {n}" for n in notes]
    return lines


def _config(config_yaml: str | None, manifest: Manifest) -> list[str]:
    lines = ["", "## Training configuration", ""]
    training = manifest.training
    if training:
        lines += [f"- {k.replace('_', ' ')}: {v}" for k, v in training.items()] + [""]
    versions = manifest.versions
    if versions:
        lines += ["- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    if config_yaml:
        lines += ["```yaml", config_yaml.rstrip(), "```"]
    return lines


def _how_to_use(manifest: Manifest) -> list[str]:
    multi = manifest.multi_label
    probs = "torch.sigmoid(logits)" if multi else 'torch.softmax(logits / T, dim=-1)'
    temp = "" if multi else ('T = getattr(model.config, "tuneforge_temperature", 1.0)  '
                             "# plain transformers does not apply it: do it by hand\n")
    return ["", "## How to use", "", "With TuneForge (applies the stored temperature and the same text cleaning):", "",
            "```python", "import tuneforge", "", 'model = tuneforge.load("path/to/this/folder")',
            'print(model.predict(["an example text"]))', "```", "",
            "With plain transformers:", "", "```python", "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
            'path = "path/to/this/folder"', "tokenizer = AutoTokenizer.from_pretrained(path)",
            "model = AutoModelForSequenceClassification.from_pretrained(path).eval()",
            (f"{temp}batch = tokenizer([\"an example text\"], padding=True, truncation=True, "
             f"max_length={manifest.max_length}, return_tensors=\"pt\")"),
            "with torch.no_grad():", "    logits = model(**batch).logits", f"probs = {probs}",
            "labels = [model.config.id2label[i] for i in "
            + ("(probs >= 0.5).nonzero()[:, 1].tolist()]" if multi else "probs.argmax(-1).tolist()]"), "```"]


def model_card(manifest: Manifest, metrics: dict, *, split: str = "test", config_yaml: str | None = None,
               ci: dict | None = None, calibration: dict | None = None, baseline: dict | None = None,
               train_seconds: float | None = None, notes: list[str] | None = None, title: str | None = None) -> str:
    """README.md text for a model folder: front matter (library, pipeline tag, base model, tags, model-index)
    then description, intended use, training data, metrics, calibration, baseline, limitations, config, usage."""
    title = title or f"{Path(str(manifest.base_model or 'model')).name}-tuneforge-classifier"
    lines = _description(manifest, title) + _intended_use(manifest) + _training_data(manifest)
    lines += _evaluation(metrics, split, ci, calibration, baseline, train_seconds)
    lines += _limitations(manifest, metrics, ci, notes or [])
    lines += _config(config_yaml, manifest) + _how_to_use(manifest)
    return front_matter(manifest, metrics, split, title) + "\n" + "\n".join(lines) + "\n"
