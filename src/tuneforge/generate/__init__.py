"""Text generation: for causal LMs, settings, sampling, stop rules, streaming, chat prompts and the step-level
batched engine that `generate`, evaluation and `serve` share; for encoder-decoders, batched greedy and beam search
(`beam.py`) over a lean cached decoder step (`seq2seq_forward.py`), behind `translate.Translator`."""
