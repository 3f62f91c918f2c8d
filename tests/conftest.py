"""Shared fixtures: a tiny BERT built from config (hidden 32, 2 layers, ~300-token vocab), toy data, shared data."""
from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POSITIVE = ["good", "great", "excellent", "lovely", "superb", "fine", "happy", "nice"]
NEGATIVE = ["bad", "awful", "terrible", "poor", "broken", "sad", "ugly", "slow"]
FILLER = ["the", "a", "movie", "food", "service", "was", "really", "very", "and", "it", "this", "phone", "hotel",
          "staff", "quite", "is", "overall", "room", "delivery", "app"]


def _vocab() -> list[str]:
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    digits = [str(d) for d in range(10)]
    punct = list(".,!?'\"-:;()")
    words = sorted(set(POSITIVE + NEGATIVE + FILLER + ["neutral", "okay", "average"]))
    # dict.fromkeys: "a" is both a letter and a word; a duplicate would leave a hole in the ids.
    return list(dict.fromkeys(specials + letters + [f"##{c}" for c in letters] + digits + punct + words))


def build_tiny_model(folder: Path) -> Path:
    """A deterministic tiny BERT encoder + WordPiece tokenizer saved as a Hugging Face folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = _vocab()
    tokenizer = BertTokenizer(vocab={tok: i for i, tok in enumerate(vocab)}, do_lower_case=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def fp_tolerance(dtype, reduction: int, factor: float = 4.0) -> float:
    """Relative rounding-error bound for a result accumulated over `reduction` terms in `dtype`: `factor` ulps (of
    `torch.finfo(dtype).eps`) per summed term. Kernels differ by CPU (blocking, vector width, AVX-512/AMX), so two
    computations of the same math may each sit anywhere within this of the exact value. For an absolute tolerance,
    scale it by the magnitude of the values compared, e.g. `fp_tolerance(torch.float32, n) * ref.abs().max()`.
    `dtype` is a torch dtype or a NumPy one (np.float32)."""
    import numpy as np
    import torch

    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else float(np.finfo(dtype).eps)
    return factor * reduction * eps


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Each test starts without Accelerate's process-wide state, as a fresh `tuneforge` process does: a test that
    built an fp32 accelerator must not make the next one (bf16 by default on a CPU with native bf16) fail."""
    yield
    import sys

    if "accelerate.state" in sys.modules:
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory) -> Path:
    """Tokenized-corpus caches go to a temp folder (CLI runs in process and in subprocesses see the variable),
    never ~/.cache."""
    folder = tmp_path_factory.mktemp("tuneforge-cache")
    os.environ["TUNEFORGE_CACHE"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-bert")


# ONNX exports take ~8 s each (torch.export tracing), so each graph is exported once per session and shared,
# read-only, by the tests that need one.


@pytest.fixture(scope="session")
def tiny_classifier_dir(tmp_path_factory, tiny_model) -> Path:
    """serve_helpers.build_classifier: the tiny encoder with a seeded, untrained 3-class head and a tuneforge.json."""
    from serve_helpers import build_classifier

    return build_classifier(tmp_path_factory.mktemp("tiny-clf") / "clf", tiny_model)


@pytest.fixture(scope="session")
def tiny_classifier_onnx(tmp_path_factory, tiny_classifier_dir) -> tuple[Path, dict]:
    """`tuneforge export` (the recipe) of tiny_classifier_dir: (folder, the recipe's result). Do not write into it."""
    from tuneforge.recipes.export import export

    out = tmp_path_factory.mktemp("tiny-clf-onnx") / "exported"
    return out, export(str(tiny_classifier_dir), str(out))


@pytest.fixture(scope="session")
def tiny_encoder_onnx(tmp_path_factory, tiny_model) -> tuple[Path, dict]:
    """`tuneforge export` (the recipe) of the bare tiny encoder: (folder, the recipe's result). Do not write into it."""
    from tuneforge.recipes.export import export

    out = tmp_path_factory.mktemp("tiny-enc-onnx") / "exported"
    return out, export(str(tiny_model), str(out))


def make_rows(n: int, seed: int = 0, neutral: bool = False) -> list[tuple[str, str]]:
    """A learnable sentiment task: the label follows the sentiment words in the sentence."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kind = ["positive", "negative", "neutral"][i % (3 if neutral else 2)]
        words = rng.sample(FILLER, 4)
        if kind == "positive":
            words += rng.sample(POSITIVE, 2)
        elif kind == "negative":
            words += rng.sample(NEGATIVE, 2)
        else:
            words += ["okay", "average"]
        rng.shuffle(words)
        rows.append((" ".join(words), kind))
    return rows


def write_csv(path: Path, rows, header=("text", "label")) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def toy_csv(tmp_path) -> dict[str, Path]:
    return {"train": write_csv(tmp_path / "train.csv", make_rows(160, 1)),
            "validation": write_csv(tmp_path / "val.csv", make_rows(40, 2)),
            "test": write_csv(tmp_path / "test.csv", make_rows(40, 3))}


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs ../shared/data (looked in {SHARED_DATA}); CI always has it")
    return SHARED_DATA


# ---------------------------------------------------------------------------------------------- a tiny causal LM

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CAUSAL_CORPUS = [
    "the movie was really good and the food was great.", "this phone is slow and the app is broken.",
    "hello world! how are you today? I am fine, thank you.", "translate to German: the house is small.",
    "今天天气很好，我们去公园散步吧。", "这家餐厅的菜很好吃，服务也很好。", "外卖送得很快，味道不错。",
]


def build_tiny_causal(folder: Path, init_range: float = 0.1) -> Path:
    """A deterministic tiny Llama (SmolLM2's architecture: hidden 32, 2 layers, 4 query / 2 key-value heads, tied
    embeddings, 256 positions) with a byte-level BPE tokenizer (~400 pieces, so most Chinese characters are several
    byte tokens), ChatML chat template, eos = pad = <|im_end|>. `init_range` 0.1 (transformers' default is 0.02)
    spreads the logits, so greedy choices are not near-ties that rounding could flip."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CAUSAL_CORPUS * 4, trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|im_end|>",
                                        pad_token="<|im_end|>", unk_token="<|endoftext|>", model_max_length=256)
    tokenizer.chat_template = CHATML
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=256,
                         tie_word_embeddings=True, initializer_range=init_range, bos_token_id=0, eos_token_id=eos,
                         pad_token_id=eos)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=eos, pad_token_id=eos)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_causal_dir(tmp_path_factory) -> Path:
    """build_tiny_causal: a tiny Llama causal-LM folder with a ChatML tokenizer. Do not write into it."""
    return build_tiny_causal(tmp_path_factory.mktemp("tiny-causal") / "tiny-llama")
