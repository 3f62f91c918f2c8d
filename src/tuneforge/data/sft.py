"""Instruction-tuning data: prompt/response rows or chat `messages` lists → token ids with labels on the response
tokens only (every assistant turn), rendered with the tokenizer's chat template, or with a plain
"prompt\\nresponse<eos>" template when the tokenizer has none (then installed on the tokenizer, so the saved model
renders prompts the way it was trained).

The text is cut into pieces at the turn boundaries the template itself produces (the conversation up to a turn with
the generation prompt, then with the turn), and each piece is tokenized on its own: a prompt is tokenized exactly as
it will be when the model answers it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from tuneforge.config import DataConfig
from tuneforge.data.sources import read_table
from tuneforge.errors import UserError

ROLES = ("system", "user", "assistant")
IGNORE = -100  # label of a token the loss skips (prompt, padding)
# Every turn's text on its own line; an answer ends with the end-of-sequence token the model must learn to emit.
PLAIN_TEMPLATE = ("{%- for m in messages -%}{%- if m['role'] == 'assistant' -%}{{ m['content'] + eos_token }}"
                  "{%- else -%}{{ m['content'] + '\\n' }}{%- endif -%}{%- endfor -%}")


@dataclass
class Chat:
    messages: list[dict[str, str]]
    row: int  # 1-based data row in the source file


@dataclass
class SftSplit:
    name: str
    chats: list[Chat]
    source: str  # file path, or "train[validation split]" when carved out of train


def _messages(value, where: str) -> list[dict[str, str]]:
    """One row's `messages` cell (a list; a JSON string in CSV), checked: roles known, contents text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where}: the messages cell is not valid JSON ({exc.msg}).") from None
    if isinstance(value, np.ndarray):  # Parquet gives arrays
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or not value:
        raise UserError(f"{where}: messages must be a non-empty list of {{\"role\": ..., \"content\": ...}}.")
    out = []
    for k, m in enumerate(value, 1):
        if not isinstance(m, dict) or "role" not in m or not isinstance(m.get("content"), str):
            raise UserError(f"{where}: message {k} needs a role and a text content, like "
                            "{\"role\": \"user\", \"content\": \"...\"}.")
        if m["role"] not in ROLES:
            raise UserError(f"{where}: message {k} has role '{m['role']}'; roles are system, user and assistant.")
        out.append({"role": m["role"], "content": m["content"]})
    if out[0]["role"] == "assistant":
        raise UserError(f"{where}: the chat starts with an assistant message; start with a user (or system) one.")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in out):
        raise UserError(f"{where}: no assistant message with text, so there is nothing to learn from this row.")
    return out


def read_chats(path: str, cfg: DataConfig) -> list[Chat]:
    """The chats of one file: a `messages` column, else `prompt` + `response` columns (names from `cfg`)."""
    df = read_table(path)
    if len(df) == 0:
        raise UserError(f"{path}: no data rows.")
    chats = []
    if cfg.messages_column in df.columns:
        for i, value in enumerate(df[cfg.messages_column].tolist()):
            chats.append(Chat(_messages(value, f"{path}: row {i + 1}"), i + 1))
        return chats
    missing = [c for c in (cfg.prompt_column, cfg.response_column) if c not in df.columns]
    if missing:
        raise UserError(f"{path}: no '{cfg.messages_column}' column and no '{missing[0]}' column. Columns are: "
                        f"{', '.join(map(str, df.columns))}. Pass --messages-column, or --prompt-column and "
                        "--response-column.")
    for i, (prompt, response) in enumerate(zip(df[cfg.prompt_column], df[cfg.response_column])):
        for name, value in ((cfg.prompt_column, prompt), (cfg.response_column, response)):
            if not isinstance(value, str) or not value.strip():
                raise UserError(f"{path}: row {i + 1} has no text in column '{name}'. Fill it in or remove the row.")
        chats.append(Chat([{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], i + 1))
    return chats


def _carve(split: SftSplit, fraction: float, seed: int, name: str) -> tuple[SftSplit, SftSplit]:
    n = len(split.chats)
    held = int(round(fraction * n))
    if held < 1 or n - held < 2:
        raise UserError(f"{split.source}: only {n} rows; too few to hold out a {name} split. Add rows or pass "
                        f"--{name} FILE.")
    order = np.random.default_rng(seed).permutation(n)
    keep, out = sorted(order[held:].tolist()), sorted(order[:held].tolist())
    return (SftSplit(split.name, [split.chats[i] for i in keep], split.source),
            SftSplit(name, [split.chats[i] for i in out], f"{split.source}[{name} split]"))


def load_sft_splits(cfg: DataConfig) -> dict[str, SftSplit]:
    """train / validation / (test): files when given, else carved from train (seeded, as for classification)."""
    if not cfg.train:
        raise UserError("no training data: pass --train FILE or set data.train in the config.")
    train = SftSplit("train", read_chats(cfg.train, cfg), cfg.train)
    splits: dict[str, SftSplit] = {}
    if cfg.test:
        splits["test"] = SftSplit("test", read_chats(cfg.test, cfg), cfg.test)
    elif cfg.test_fraction > 0:
        train, splits["test"] = _carve(train, cfg.test_fraction, cfg.split_seed, "test")
    if cfg.validation:
        splits["validation"] = SftSplit("validation", read_chats(cfg.validation, cfg), cfg.validation)
    else:
        frac = cfg.validation_fraction / max(1e-9, 1 - (0 if cfg.test else cfg.test_fraction))
        train, splits["validation"] = _carve(train, frac, cfg.split_seed + 1, "validation")
    return {"train": train, **splits}


def chat_format(tokenizer) -> str:
    """'template' when the tokenizer has a chat template; else installs the plain template and returns 'plain'."""
    if getattr(tokenizer, "chat_template", None):
        return "template"
    if tokenizer.eos_token is None:
        raise UserError("the tokenizer has no chat template and no end-of-sequence token, so an answer cannot be "
                        "taught to end; use a model whose tokenizer has either.")
    starts_with_bos = tokenizer.bos_token_id is not None and \
        tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]
    tokenizer.chat_template = ("{{ bos_token }}" if starts_with_bos else "") + PLAIN_TEMPLATE
    return "plain"


def _render(tokenizer, messages: list[dict], generation: bool) -> str:
    if not messages:
        return ""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def render_pieces(tokenizer, messages: list[dict]) -> list[tuple[str, bool]]:
    """The rendered chat as (text, is_target) pieces: everything before an assistant turn's answer (its generation
    prompt included) is context; the answer as the template writes it (end-of-turn token included) is a target."""
    pieces, done = [], ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt, full = _render(tokenizer, messages[:i], True), _render(tokenizer, messages[:i + 1], False)
        if not prompt.startswith(done) or not full.startswith(prompt):
            raise UserError("the tokenizer's chat template does not render a chat turn by turn (a shorter chat is not "
                            "the start of a longer one), so answers cannot be told apart from prompts; use "
                            "prompt/response rows, one answer each.")
        pieces += [(prompt[len(done):], False), (full[len(prompt):], True)]
        done = full
    return pieces


def prompt_and_reference(tokenizer, messages: list[dict]) -> tuple[str, str]:
    """The prompt for the last assistant turn (rendered, with the generation prompt) and that turn's text."""
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    return _render(tokenizer, messages[:last], True), messages[last]["content"]


@dataclass
class SftEncoded:
    input_ids: list[list[int]]
    labels: list[list[int]]  # the token id where the loss applies, IGNORE elsewhere
    rows: list[int]  # source row of each example
    truncated: int = 0  # examples cut at max_length (they keep their start)
    dropped: int = 0  # examples left out: no answer token before max_length

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        return np.fromiter((len(x) for x in self.input_ids), dtype=np.int64, count=len(self.input_ids))


def encode_chats(tokenizer, chats: list[Chat], max_length: int) -> SftEncoded:
    """Token ids and labels per chat, cut at `max_length` tokens (counted, never silent)."""
    rendered = [render_pieces(tokenizer, c.messages) for c in chats]
    flat = [text for pieces in rendered for text, _ in pieces]
    ids = iter(tokenizer(flat, add_special_tokens=False)["input_ids"]) if flat else iter(())
    out = SftEncoded([], [], [])
    for chat, pieces in zip(chats, rendered):
        tokens, labels = [], []
        for _, target in pieces:
            piece = next(ids)
            tokens += piece
            labels += piece if target else [IGNORE] * len(piece)
        if len(tokens) > max_length:
            out.truncated += 1
            tokens, labels = tokens[:max_length], labels[:max_length]
        if all(x == IGNORE for x in labels[1:]):  # the first token is never predicted
            out.dropped += 1
            continue
        labels[0] = IGNORE
        out.input_ids.append(tokens)
        out.labels.append(labels)
        out.rows.append(chat.row)
    return out


def response_lengths(tokenizer, chats: list[Chat]) -> list[int]:
    """Tokens of each chat's last answer (for the generation length)."""
    texts = [prompt_and_reference(tokenizer, c.messages)[1] for c in chats]
    return [len(x) for x in tokenizer(texts, add_special_tokens=False)["input_ids"]] if texts else []
