"""The text-out commands, registered on the main app by cli.py: `generate` (text from a causal LM, streamed to the
terminal, for a file of prompts, or as a chat) and `translate` (a file of sentences through an encoder-decoder);
also how `finetune` prints a translation run's scores."""
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


def translate(
    model: str = typer.Option(..., "--model", help="Encoder-decoder folder: a `tuneforge finetune --task translation` (or seq2seq) run's final/, or a local T5, mT5, BART, MBart or Marian folder."),
    input: str = typer.Option(..., "--input", help="Source text, UTF-8, one sentence per line."),
    output: str = typer.Option(..., "--output", "-o", help="Translations, one per line: the same number of lines as --input (an empty line stays empty); written atomically."),
    beams: int = typer.Option(4, "--beams", help="Beam size; 1 is greedy decoding (fastest)."),
    length_penalty: float = typer.Option(1.0, "--length-penalty", help="Beam search: a hypothesis scores its log-probability / length ** this; > 1 favours longer outputs."),
    max_length: Optional[int] = typer.Option(None, "--max-length", help="Most target tokens per sentence. Default: about 1.5 × the source length + 10, at most the model's positions."),
    no_repeat_ngram: int = typer.Option(0, "--no-repeat-ngram", help="Forbid repeating any n-gram of this size in an output (0 = off; 3 curbs loops)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Sentences decoded together (sorted by length first, so a batch pads little)."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Torch intra-op threads (default: torch's)."),
    decoder: str = typer.Option("auto", "--decoder", help="auto | torch | onnx. onnx runs the decoder step on ONNX Runtime (exported once per model, cached under ~/.cache/tuneforge/onnx; fp32, so --precision does not apply); auto picks it for MBart/BART/Marian models (every TuneForge translation model) on the CPU when onnxruntime is installed, else torch."),
    precision: str = typer.Option("auto", "--precision", help="auto | fp32 | bf16. bf16 decodes with bf16 copies of the decoder's matrices (layer norms and the residual stream stay fp32); auto picks it on CPUs with native bf16 (avx512_bf16/AMX), else fp32. See docs/commands/translate.md for its speed and BLEU."),
) -> None:
    """Translate a text file, one sentence per line, with an encoder-decoder (beam search or greedy)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tuneforge.recipes import translate as recipe

    recipe.check_options(beams, max_length, no_repeat_ngram, batch_size, threads)
    lines = recipe.read_lines(input)  # a missing or broken file fails before the model loads
    translator = recipe.open_translator(model, threads, batch_size, precision, decoder)
    with Progress(TextColumn("translating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("translate", total=len(lines))
        summary = recipe.translate_file(translator, input, output, beams, length_penalty, max_length, no_repeat_ngram,
                                        lambda done, total: bar.update(task, completed=done, total=total),
                                        lines=lines)
    empty = f", {summary['empty']:,} empty kept empty" if summary["empty"] else ""
    speed = f", {summary['sentences_per_s']:,} sentences/s" if summary["sentences_per_s"] else ""
    typer.echo(f"wrote {summary['lines']:,} lines to {summary['output']} ({summary['translated']:,} translated with "
               f"beam {beams} on {recipe.engine(translator, summary['translated'])}{empty}{speed})")


def print_translation_summary(summary) -> None:
    """`finetune --task translation|seq2seq`: BLEU and chrF per split, then the run facts."""
    parts = []
    for split, m in summary.metrics.items():
        if m.get("bleu") is not None:
            chrf = f" (chrF {m['chrf']:.2f})" if m.get("chrf") is not None else ""
            parts.append(f"{split}: BLEU {m['bleu']:.2f}{chrf}")
        elif m.get("loss") is not None:
            parts.append(f"{split}: loss {m['loss']:.4f}")
    if parts:
        typer.echo(" · ".join(parts))
    typer.echo(f"{summary.steps} steps, {summary.tokens:,} tokens, {summary.tokens_per_s:,.0f} tokens/s · stopped by "
               f"{summary.stop_reason}\nmodel:  {summary.final}\nreport: {summary.report}")


def register(app: typer.Typer) -> None:
    """Attach `generate` and `translate` to the main `tuneforge` app."""
    app.command("generate")(generate)
    app.command("translate")(translate)
