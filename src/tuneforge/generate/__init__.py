"""Text generation for causal LMs (and later seq2seq): settings, sampling, stop rules, streaming, chat prompts and
the step-level batched engine that `generate`, evaluation and `serve` share."""
