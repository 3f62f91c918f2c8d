"""The speed levers by name: what each does, and the `runtime.levers` setting that turns them on and off.

Every lever leaves the science alone: the same model, data, loss and optimizer, computed faster (or, for
fast_dropout and fast_attention, the same dropout distribution from a cheaper random source; for compact_vocab,
embedding rows no text of the run uses keep their loaded values instead of AdamW's weight decay). `none` is the stock
transformers + PyTorch computation, for anyone who doubts a lever. benchmarks/probes/probe_levers.py measures
what each one is worth by switching it off alone.
"""
from __future__ import annotations

LEVERS: dict[str, str] = {
    "embedding_rows": "CPU, one process: the word embedding trains as the rows the training texts use (no dense "
                      "vocabulary-sized gradient); exact up to rounding. Its optimizer is fused AdamW, so it "
                      "needs fused_adamw on.",
    "compact_vocab": "Text classification: a word embedding of 64 MB or more (multilingual-e5-small's 250,002 rows) "
                     "is swapped for the rows the run's texts use while training; final/ gets the full table back "
                     "(rows no text uses come back as loaded, without AdamW's weight decay).",
    "first_token": "A sequence classifier's last layer is computed at the first token only, the one its head reads "
                   "(training, evaluation, prediction and export); exact up to rounding.",
    "fast_dropout": "CPU dropout masks from numpy's SFC64 bits instead of torch's bernoulli_ (same distribution).",
    "fast_attention": "CPU training: attention-probability dropout from the same cheap masks, in TuneForge's attention "
                      "function instead of SDPA's math path.",
    "fused_adamw": "AdamW as one fused kernel per parameter group instead of PyTorch's per-parameter loop.",
    "reuse_memory": "glibc: freed memory stays in the process for the next step instead of being unmapped and "
                    "page-faulted back (about 12,000 page faults per step of the default model).",
    "trim_memory": "glibc: the freed heap pages go back to the system after each evaluation, and after a step that "
                   "left RSS 1 GB above the last trim (malloc_trim), so blocks freed in other shapes stop counting "
                   "in RSS; with reuse_memory alone a one-hour translation run of a 7.7M model reached 6-8 GB.",
    "kernel_cache": "CPU: oneDNN keeps its 64 most recent compiled kernels instead of 1,024 "
                    "(ONEDNN_PRIMITIVE_CACHE_CAPACITY, unless set in the environment). Every new batch shape compiles "
                    "new ones (~0.25 MB each): multilingual-e5-small on length-varying batches held ~0.25 GB more.",
    "split_long_batches": "CPU text classification: a training batch whose share per process is over 1,024 padded "
                          "tokens (rows × longest row; 1,024 × 6 / layers for an encoder deeper than 6 layers: 512 "
                          "for multilingual-e5-small) runs as micro-batches whose gradients sum to the batch's "
                          "(weighted by class weights when set; dropout draws other masks); 32 rows of 128 tokens "
                          "held ~1.4 GB of activations on multilingual-e5-small.",
    "length_grouping": "Training batches of similar length (shuffled mega-batches sorted by length), so less padding "
                       "is computed; off: plain shuffled batches.",
    "label_logits": "Causal-LM fine-tuning (sft): the LM head and its softmax run only at the positions whose next "
                    "token is a target (the answers), not at prompt tokens; exact up to rounding.",
}


def parse_levers(spec: str) -> frozenset[str]:
    """`all`, `none`, a comma list of levers to turn on (`first_token,fused_adamw`), or `all,-x,-y` to turn some off.
    Raises ValueError naming the unknown lever."""
    on: set[str] = set()
    for raw in str(spec).split(","):
        item = raw.strip()
        if not item:
            continue
        name = item.lstrip("-+")
        if name == "all" and not item.startswith("-"):
            on |= set(LEVERS)
        elif name == "none" and not item.startswith("-"):
            on.clear()
        elif name in LEVERS:
            (on.discard if item.startswith("-") else on.add)(name)
        else:
            raise ValueError(f"unknown lever '{name}': use all, none, or a comma list of {', '.join(LEVERS)} "
                             "(prefix one with - to switch it off, e.g. all,-fused_adamw)")
    return frozenset(on)
