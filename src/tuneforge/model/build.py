"""Load a tokenizer and a sequence-classification model with the right head for a label space."""
from __future__ import annotations

from tuneforge.data.labels import LabelSpace
from tuneforge.errors import UserError
from tuneforge.model.resolve import resolve_model


def quiet_transformers() -> None:
    """Hide load reports and hub warnings: TuneForge prints its own one-line messages."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()


def load_tokenizer(name: str):
    from transformers import AutoTokenizer

    quiet_transformers()
    path = resolve_model(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise UserError(f"model '{name}': cannot load its tokenizer ({str(exc).splitlines()[0]}).") from None


def load_classifier(name: str, labels: LabelSpace):
    """A pretrained encoder with a fresh (or matching) classification head for `labels`."""
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    path = resolve_model(name)
    problem = "multi_label_classification" if labels.multi_label else "single_label_classification"
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels.names), id2label=labels.id2label, label2id=labels.label2id,
            problem_type=problem, ignore_mismatched_sizes=True)
    except OSError as exc:
        raise UserError(f"model '{name}': cannot load ({str(exc).splitlines()[0]}).") from None


def load_trained(path: str):
    """A fine-tuned classifier and its tokenizer, for evaluate/predict."""
    from transformers import AutoModelForSequenceClassification

    quiet_transformers()
    folder = resolve_model(path)
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot load a classification model ({str(exc).splitlines()[0]}).") from None
    return model.eval(), load_tokenizer(path)


def count_parameters(model) -> int:
    return sum(p.numel() for p in model.parameters())


def load_encoder(name: str):
    """A bare encoder (no head) for embeddings."""
    from transformers import AutoModel

    quiet_transformers()
    try:
        return AutoModel.from_pretrained(resolve_model(name)).eval()
    except (OSError, ValueError) as exc:
        raise UserError(f"model '{name}': cannot load ({str(exc).splitlines()[0]}).") from None
