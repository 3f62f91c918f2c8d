"""The `generate` command: text from a causal LM, streamed to the terminal, for a file of prompts, or as a chat.
Registered on the main app by cli.py."""
from __future__ import annotations

from typing import Optional

import typer


def generate(
    model: str = typer.Option(..., "--model", help="Causal LM: smollm2-135m, a GPT-2/GPT-Neo/Llama/Qwen folder, an SFT or `pretrain --objective clm` run's final/, or a LoRA adapter folder."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Text to continue (or, with --chat, the first message). With a chat model the chat template is applied; --raw continues the text as it is."),
    input: Optional[str] = typer.Option(None, "--input", help="JSONL prompts: one {\"prompt\": ...} or {\"messages\": [...]} object per line; other fields are copied to the output."),
    output: Optional[str] = typer.Option(None, "--output", "-o", help="JSONL out for --input: each row plus completion, prompt_tokens, completion_tokens, finish_reason (written atomically)."),
    chat: bool = typer.Option(False, "--chat", help="Interactive conversation that keeps the history (needs a chat template). /reset clears it, /exit or Ctrl-D ends."),
    raw: bool = typer.Option(False, "--raw", help="Do not apply the chat template to --prompt / \"prompt\" rows."),
    system: Optional[str] = typer.Option(None, "--system", help="System message for --chat."),
    max_new_tokens: int = typer.Option(128, "--max-new-tokens", help="Most tokens to generate per prompt."),
    temperature: float = typer.Option(0.0, "--temperature", help="0 = greedy (deterministic); 0.7 is a common sampling value."),
    top_p: float = typer.Option(1.0, "--top-p", help="Sample from the smallest set of tokens whose probability reaches this (1 = all)."),
    top_k: int = typer.Option(0, "--top-k", help="Sample from the k most likely tokens (0 = all)."),
    repetition_penalty: float = typer.Option(1.0, "--repetition-penalty", help="> 1 discourages tokens already in the prompt or output (1.1-1.3); 1 = off."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for sampling: the same seed, prompt and settings give the same text."),
    stop: list[str] = typer.Option([], "--stop", help="End the output at this text (repeatable); the stop text is not included. \\n and \\t mean newline and tab."),
    batch_size: int = typer.Option(16, "--batch-size", help="Prompts decoded together for --input (continuous batching)."),
    precision: str = typer.Option("fp32", "--precision", help="fp32 | bf16 (bf16 only pays off on CPUs with native bf16 or on a GPU)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch intra-op threads (default: torch's)."),
) -> None:
    """Generate text with a causal LM: stream one prompt, complete a JSONL file, or chat."""
    from tuneforge.errors import UserError
    from tuneforge.generate.settings import make_settings
    from tuneforge.recipes import generate as recipe

    stop = [s.replace("\\n", "\n").replace("\\t", "\t") for s in stop]  # a shell passes '\n' as two characters
    if (input is not None and (chat or prompt is not None)) or (not chat and prompt is None and input is None):
        raise UserError("give one of --prompt TEXT, --input FILE (with --output) or --chat (--prompt may open it).")
    if input is not None and not output:
        raise UserError("--input needs --output FILE for the completions.")
    if output and input is None:
        raise UserError("--output goes with --input FILE; --prompt prints to the terminal.")
    make_settings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k,
                  repetition_penalty=repetition_penalty, seed=seed, stop=tuple(stop))  # bad flags: before loading
    generator = recipe.open_generator(model, precision, threads, batch_size)
    settings = generator.settings_for(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                      top_k=top_k, repetition_penalty=repetition_penalty, seed=seed, stop=tuple(stop))
    if chat:
        replies = recipe.chat_loop(generator, settings, system, prompt, input_line, recipe.echo)
        typer.echo(f"{replies} replies", err=True)
    elif input is not None:
        _run_file(recipe, generator, input, output, settings, raw)
    else:
        result = recipe.stream_prompt(generator, prompt, settings, raw, recipe.echo)
        typer.echo("")
        typer.echo(f"[{result['prompt_tokens']} prompt tokens · finish: {result['finish_reason']} · "
                   f"{result['seconds']:.2f} s]", err=True)
        if stop and result["finish_reason"] == "length":
            typer.echo(f"note: no stop string ({', '.join(map(repr, stop))}) came within --max-new-tokens "
                       f"{max_new_tokens}.", err=True)


def input_line(prompt: str) -> str:
    return input(prompt)


def _run_file(recipe, generator, input: str, output: str, settings, raw: bool) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("generating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("generate", total=None)
        summary = recipe.generate_file(generator, input, output, settings, raw,
                                       progress=lambda done, total: bar.update(task, completed=done, total=total))
    typer.echo(f"wrote {summary['rows']} completions ({summary['completion_tokens']:,} tokens, "
               f"{summary['tokens_per_s']} tokens/s) to {summary['output']}")


def register(app: typer.Typer) -> None:
    """Attach `generate` to the main `tuneforge` app."""
    app.command("generate")(generate)
