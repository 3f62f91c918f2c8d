"""The `generate` verb: one prompt streamed to the terminal, a JSONL file of prompts completed in batches (written
atomically, in input order, after every row was checked), and the interactive chat loop that keeps the history."""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tuneforge.errors import UserError

EXIT_WORDS = ("/exit", "/quit")


def open_generator(model: str, precision: str = "fp32", threads: int | None = None, batch_size: int = 16):
    """The TextGenerator for `model`; UserError when it is not a causal LM."""
    from tuneforge.model.causal import is_causal_lm
    from tuneforge.model.lora import is_adapter_folder
    from tuneforge.model.resolve import resolve_model
    from tuneforge.serve.load import load_text_generator

    if not is_adapter_folder(model):
        folder = resolve_model(model)
        if Path(folder).is_dir() and not is_causal_lm(folder):
            raise UserError(f"{model}: not a causal language model (a GPT-2, GPT-Neo, Llama or Qwen folder, an SFT "
                            "or `pretrain --objective clm` run, or smollm2-135m); `tuneforge predict` serves "
                            "classifiers.")
    return load_text_generator(model, precision, threads=threads, max_batch=batch_size)


def use_template(generator, raw: bool) -> bool:
    """Plain prompts go through the chat template when the tokenizer has one (instruction-tuned models expect
    it), unless `raw`."""
    return generator.has_chat_template and not raw


def stream_prompt(generator, prompt: str, settings, raw: bool, write: Callable[[str], None]) -> dict:
    """Stream the completion of `prompt` through `write` as it comes; returns token counts and the finish reason."""
    chat = use_template(generator, raw)
    _not_empty(prompt, "--prompt")
    message = [{"role": "user", "content": prompt}] if chat else prompt
    return _stream(generator, generator.encode(message, settings, "--prompt", chat), settings, write)


def _stream(generator, ids: list[int], settings, write: Callable[[str], None]) -> dict:
    from tuneforge.generate.decode import stream_ids

    final = {}
    start = time.perf_counter()
    text = []
    for piece in stream_ids(generator.engine, ids, settings, last=lambda e: final.update(reason=e.finish_reason)):
        text.append(piece)
        write(piece)
    return {"text": "".join(text), "prompt_tokens": len(ids), "finish_reason": final.get("reason"),
            "seconds": round(time.perf_counter() - start, 3)}


def _not_empty(prompt, where: str) -> None:
    if isinstance(prompt, str) and not prompt.strip():  # checked before a chat template wraps it in markup
        raise UserError(f"{where}: the prompt is empty; give some text to continue or answer.")


def read_prompts(path: str) -> list[tuple[str, dict]]:
    """(where, row) for each JSONL row: an object with "prompt" (text) or "messages" (a chat); other fields are
    carried to the output. UserError naming the line for anything else."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such file; give a JSONL file with one {{\"prompt\": ...}} or "
                        "{\"messages\": [...]} object per line.")
    rows = []
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{p.name} line {n}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise UserError(f"{where}: not valid JSON ({exc.msg}).") from None
            if not isinstance(row, dict) or ("prompt" in row) == ("messages" in row):
                raise UserError(f"{where}: expected an object with exactly one of \"prompt\" or \"messages\".")
            rows.append((where, row))
    if not rows:
        raise UserError(f"{path}: no prompts in the file.")
    return rows


def generate_file(generator, input_path: str, output: str, settings, raw: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> dict:
    """Complete every row of `input_path` and write `output` (JSONL: the row's fields plus completion, counts and
    finish reason). Every prompt is encoded and checked before the first token is generated."""
    from tuneforge.generate.decode import run
    from tuneforge.model.artifact import atomic_write_text

    rows = read_prompts(input_path)
    template = use_template(generator, raw)
    ids = []
    for where, row in rows:
        chat = "messages" in row
        prompt = row["messages"] if chat else row["prompt"]
        if not chat and template:
            _not_empty(prompt, where)
            prompt, chat = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt, True
        ids.append(generator.encode(prompt, settings, where, chat))
    start, done = time.perf_counter(), [0]

    def tick(i, completion):
        done[0] += 1
        if progress:
            progress(done[0], len(rows))

    completions = run(generator.engine, ids, settings, on_finish=tick)
    lines = [json.dumps({**row, "completion": c.text, "prompt_tokens": c.prompt_tokens,
                         "completion_tokens": c.completion_tokens, "finish_reason": c.finish_reason},
                        ensure_ascii=False) for (_, row), c in zip(rows, completions)]
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, "\n".join(lines) + "\n")
    seconds = time.perf_counter() - start
    tokens = sum(c.completion_tokens for c in completions)
    return {"rows": len(rows), "completion_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(tokens / seconds, 1) if seconds else None, "output": str(out)}


def chat_loop(generator, settings, system: str | None, first: str | None, read: Callable[[str], str],
              write: Callable[[str], None]) -> int:
    """Talk until EOF or /exit: each user line and each reply join the history the next reply sees. /reset
    clears it. Returns the number of replies."""
    from tuneforge.generate.chat import chat_prompt

    chat_prompt(generator.tokenizer, [{"role": "user", "content": "hi"}], where="--chat")  # no template: stop now
    history = [{"role": "system", "content": system}] if system else []
    replies = 0
    while True:
        line = first if first is not None else _read(read)
        first = None
        if line is None or line.strip() in EXIT_WORDS:
            return replies
        if line.strip() == "/reset":
            history = history[:1] if system else []
            write("(history cleared)\n")
            continue
        if not line.strip():
            continue
        history.append({"role": "user", "content": line})
        reply = _stream(generator, _fitted(generator, history, settings, bool(system)), settings, write)
        write("\n")
        history.append({"role": "assistant", "content": reply["text"]})
        replies += 1


def _fitted(generator, history: list[dict], settings, system: bool) -> list[int]:
    """The conversation's prompt ids; when it no longer fits the context, the oldest exchange (a user message and
    its reply) is dropped, the system message kept, until it does. The latest message alone too long is the user's
    error."""
    first = int(system)
    while True:
        try:
            return generator.encode(history, settings, "--chat", chat=True)
        except UserError:
            if len(history) - first <= 1:
                raise
            del history[first:first + min(2, len(history) - first - 1)]


def _read(read: Callable[[str], str]) -> str | None:
    try:
        return read("you> ")
    except EOFError:
        return None


def echo(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
