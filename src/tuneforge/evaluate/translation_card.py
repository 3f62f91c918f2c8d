"""The model card (README.md, Hugging Face format) of a translation / seq2seq model folder: front matter with the
language pair and the sacreBLEU scores, what it was trained from and on, the scores with their signatures and
intervals (so the numbers can be reproduced), its limits, the config, and how to use it."""
from __future__ import annotations

from pathlib import Path

from tuneforge.evaluate.model_card import _config, _training_data, hub_id
from tuneforge.evaluate.translation_report import (averaging_sentence, decoding_sentence, headline_split,
                                                   signatures)
from tuneforge.model.manifest import Manifest

SMALL_TRAIN_PAIRS = 100_000  # below this a from-scratch model knows little beyond its training domain


def _languages(manifest: Manifest, source_lang: str | None, target_lang: str | None) -> tuple[str | None, str | None]:
    # a manifest extra when the recipe stored the pair there, else what the caller passed
    return (source_lang or getattr(manifest, "source_lang", None),
            target_lang or getattr(manifest, "target_lang", None))


def _pair(src: str | None, tgt: str | None) -> str:
    return f"{src} → {tgt}" if src and tgt else "source → target"


def _front_matter(manifest: Manifest, scores: dict, split: str, title: str, src, tgt) -> str:
    import yaml

    body: dict = {"library_name": "transformers", "pipeline_tag": "translation"}
    langs = [x for x in (src, tgt) if x]
    if langs:
        body["language"] = langs
    base = hub_id(manifest.base_model)
    if base:
        body["base_model"] = base
    body["tags"] = ["tuneforge", "translation" if manifest.task != "seq2seq" else "text2text-generation"]
    m = scores[split]
    data = manifest.data.get(split, {})
    dataset = Path(str(data.get("source", split))).name or split
    results = [{"type": "bleu", "value": round(float(m["bleu"]), 2), "name": "BLEU (sacreBLEU)"},
               {"type": "chrf", "value": round(float(m["chrf"]), 2), "name": "chrF (sacreBLEU)"}]
    body["model-index"] = [{"name": title, "results": [{"task": {"type": "translation", "name": "Translation"},
                                                        "dataset": {"name": dataset, "type": dataset, "split": split},
                                                        "metrics": results}]}]
    return "---\n" + yaml.safe_dump(body, sort_keys=False, allow_unicode=True) + "---\n"


def _description(manifest: Manifest, title: str, src, tgt, preset: str | None) -> list[str]:
    train = manifest.data.get("train", {})
    rows = train.get("rows", "?")
    rows = f"{rows:,}" if isinstance(rows, int) else rows
    origin = (f"fine-tuned from `{manifest.base_model}`" if manifest.base_model
              else f"trained from scratch ({f'preset `{preset}`, ' if preset else ''}with its own joint tokenizer)")
    lines = [f"# {title}", "",
             (f"An encoder-decoder model that translates {_pair(src, tgt)}, {origin} with TuneForge on "
              f"`{Path(str(train.get('source', '?'))).name}` ({rows} sentence pairs)."), "",
             "## Model description", "",
             f"- **Base model:** `{manifest.base_model}`" if manifest.base_model else
             f"- **Base model:** none (random initialisation{f', preset {preset}' if preset else ''})",
             "- **Loss:** label-smoothed cross-entropy on the target tokens",
             f"- **Max source length:** {manifest.max_length} tokens (longer sources are cut)"]
    return lines


def _scores(scores: dict, split: str, decoding: dict | None, averaging: dict | None) -> list[str]:
    lines = ["", "## Evaluation", "",
             "Corpus BLEU and chrF by sacreBLEU on detokenised output against the raw references (one reference per "
             "sentence), 95% bootstrap intervals over sentences where shown.", "",
             "| split | sentences | BLEU | 95% CI | chrF | 95% CI | length ratio |", "|---|---|---|---|---|---|---|"]
    for name, m in scores.items():
        ci = {k: f"{m[k + '_ci'][0]:.1f}–{m[k + '_ci'][1]:.1f}" if f"{k}_ci" in m else "" for k in ("bleu", "chrf")}
        lines.append(f"| {name} | {m['sentences']:,} | {m['bleu']:.2f} | {ci['bleu']} | {m['chrf']:.2f} | "
                     f"{ci['chrf']} | {m['length_ratio']:.3f} |")
    lines += [""] + [f"- {name} signature: `{sig}`" for name, sig in signatures(scores)]
    sentence = decoding_sentence(decoding)
    if sentence:
        lines += ["", f"Translations: {sentence[0].lower()}{sentence[1:]}"]
    return lines + ["", averaging_sentence(averaging)]


def _limitations(manifest: Manifest, scores: dict, split: str, notes: list[str]) -> list[str]:
    lines = ["", "## Limitations and bias", "",
             "- It translates text like its training pairs (domain, sentence length, vocabulary); on other text "
             "expect much lower quality, and fluent output that says something else than the source.",
             "- BLEU and chrF count overlap with a single reference translation: a correct translation worded "
             "differently scores low. Read the outputs for decisions that matter.",
             "- It learned whatever the training translations contain, including their errors and biases (e.g. "
             "gender of professions); it was not audited for them."]
    rows = manifest.data.get("train", {}).get("rows") or 0
    if not manifest.base_model and rows and rows < SMALL_TRAIN_PAIRS:
        lines.append(f"- Trained from scratch on {rows:,} pairs: a small corpus by translation standards; rare words "
                     "and long sentences are its weak spots.")
    ratio = scores[split]["length_ratio"]
    if abs(ratio - 1) > 0.1:
        lines.append(f"- Its {split} translations are {ratio:.2f}× as long as the references (in sacreBLEU tokens): "
                     + ("it tends to leave things out." if ratio < 1 else "it tends to add or repeat words."))
    return lines + [f"- {n}" for n in notes]


def _how_to_use(decoding: dict | None) -> list[str]:
    beams = (decoding or {}).get("beams", 4)
    return ["", "## How to use", "", "```python", "import tuneforge", "",
            'model = tuneforge.load("path/to/this/folder")', f'print(model.translate(["A sentence."], beams={beams}))',
            "```", "",
            "From the command line (one sentence per line): `tuneforge translate --model path/to/this/folder "
            f"--input source.txt --output translations.txt --beams {beams}`.", "", "With plain transformers:", "",
            "```python", "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer", "",
            'path = "path/to/this/folder"', "tokenizer = AutoTokenizer.from_pretrained(path)",
            "model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()",
            'batch = tokenizer(["A sentence."], return_tensors="pt", padding=True)',
            f"out = model.generate(**batch, num_beams={beams})",
            "print(tokenizer.batch_decode(out, skip_special_tokens=True))", "```"]


def translation_model_card(manifest: Manifest, scores: dict, *, config_yaml: str | None = None,
                           source_lang: str | None = None, target_lang: str | None = None, preset: str | None = None,
                           decoding: dict | None = None, averaging: dict | None = None,
                           notes: list[str] | None = None, title: str | None = None) -> str:
    """README.md text for a translation model folder. `scores`: split → `translation.bleu_chrf` output (the
    model-index reports test, else validation); `decoding` and `averaging` as in the report view
    (`translation_report.write_translation_report`); languages from the arguments or the manifest's extra keys
    source_lang/target_lang."""
    src, tgt = _languages(manifest, source_lang, target_lang)
    split = headline_split(scores)
    name = Path(str(manifest.base_model)).name if manifest.base_model else f"{preset or 'seq2seq'}"
    title = title or f"{name}-tuneforge-{src or 'src'}-{tgt or 'tgt'}"
    lines = _description(manifest, title, src, tgt, preset) + _training_data(manifest)
    lines += _scores(scores, split, decoding, averaging) + _limitations(manifest, scores, split, notes or [])
    lines += _config(config_yaml, manifest) + _how_to_use(decoding)
    return _front_matter(manifest, scores, split, title, src, tgt) + "\n" + "\n".join(lines) + "\n"
