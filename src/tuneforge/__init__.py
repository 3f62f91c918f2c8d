"""TuneForge: from raw text to an evaluated, served transformer model. Heavy imports happen on first use."""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Client", "ServerError", "UserError", "evaluate", "finetune", "load", "pretrain"]

from tuneforge.errors import UserError


def load(path: str, **kwargs):
    """A Predictor for a model folder (runs/x/final, any HF folder, an alias, or a `tuneforge export` folder, served
    with onnxruntime): .predict(texts), .embed(texts). For a causal LM (GPT-2, Llama, Qwen, smollm2-135m, an SFT or
    `pretrain --objective clm` run, a LoRA adapter) a TextGenerator: .generate(prompt, **settings),
    .stream(prompt, **settings) (an iterator of text pieces), .chat(messages, **settings). For an encoder-decoder
    (a translation/seq2seq run's final/, or a local T5/BART/Marian/mT5 folder) a Translator:
    .translate(texts, beams=4, length_penalty=1.0, max_new_tokens=None, no_repeat_ngram=0)."""
    from tuneforge.serve.load import load as run

    return run(path, **kwargs)


def finetune(config=None, **overrides):
    """Fine-tune from a FinetuneConfig, a YAML path, or keyword sections (data=..., train=...)."""
    from tuneforge.config import FinetuneConfig, load_config
    from tuneforge.recipes.finetune import finetune as run

    cfg = config if isinstance(config, FinetuneConfig) else load_config(config, FinetuneConfig, base=overrides)
    return run(cfg)


def pretrain(config=None, **overrides):
    """Pretraining (masked-LM, or causal LM with objective="clm") from a PretrainConfig, a YAML path, or keyword
    sections (objective=..., data=..., model=...)."""
    from tuneforge.config import PretrainConfig, load_config
    from tuneforge.recipes.pretrain import pretrain as run

    cfg = config if isinstance(config, PretrainConfig) else load_config(config, PretrainConfig, base=overrides)
    return run(cfg)


def evaluate(model: str, data: str, output: str, **kwargs):
    """Evaluate a fine-tuned model on a labelled file; writes metrics.json and a report."""
    from tuneforge.recipes.evaluate import evaluate as run

    return run(model, data, output, **kwargs)


def __getattr__(name: str):
    # Client is imported on first use, so `import tuneforge` stays fast.
    if name in ("Client", "ServerError"):
        import importlib

        return getattr(importlib.import_module("tuneforge.client"), name)
    raise AttributeError(f"module 'tuneforge' has no attribute {name!r}")
