"""Pretraining data: the tokenizer (the model's own, a given one, or one trained on the corpus) and the corpus
cleaned, tokenized once into a content-hash-keyed cache and packed into blocks."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

from tuneforge.config import PretrainConfig
from tuneforge.data import words
from tuneforge.data.corpus import CleanStats, clean_line, iter_clean_texts, stream_source
from tuneforge.data.pack import PackedCorpus, build_token_stream, cache_key, cached_token_stream, default_cache_dir
from tuneforge.data.sources import file_sha256
from tuneforge.errors import UserError
from tuneforge.model.build import load_tokenizer
from tuneforge.model.causal import load_causal_tokenizer
from tuneforge.recipes.tokenizer import train_tokenizer_folder
from tuneforge.train.progress import make_progress

SAMPLE_TEXTS = 1000  # texts read from the start of each source to decide mlm.whole_word: auto


def pretrain_tokenizer(cfg: PretrainConfig, session):
    """The model's tokenizer (continued), a given one, or one trained on the corpus into run_dir/tokenizer."""
    load = load_causal_tokenizer if cfg.objective == "clm" else load_tokenizer  # clm: pad = EOS when missing
    if cfg.model.name:
        return load(cfg.model.name)
    if cfg.tokenizer.path:
        return load(cfg.tokenizer.path)
    folder = session.run_dir / "tokenizer"
    if session.is_main and not folder.is_dir():
        session.say(f"training a {cfg.tokenizer.type} tokenizer (vocabulary {cfg.tokenizer.vocab_size}) on the corpus")
        train_tokenizer_folder(cfg.data, cfg.tokenizer, folder, model_max_length=cfg.model.max_position)
    session.accelerator.wait_for_everyone()
    return load(str(folder))


def resolve_whole_word(cfg: PretrainConfig, sources: list[Path]) -> tuple[PretrainConfig, dict[str, str]]:
    """mlm.whole_word "auto" → true or false from the script mix of the first texts of every source (so a corpus of
    an English file and a Chinese one is seen as both). A resumed run reads the choice from its config.yaml."""
    if cfg.objective != "mlm" or cfg.mlm.whole_word != "auto":
        return cfg, {}
    sample = [clean_line(t, cfg.data.normalize) for p in sources
              for t in itertools.islice(stream_source(p, cfg.data.text_column), SAMPLE_TEXTS)]
    on, reason = words.auto_whole_word(sample)
    cfg = cfg.model_copy(deep=True)
    cfg.mlm.whole_word = on
    return cfg, {"mlm.whole_word": reason}


def packed_corpus(cfg: PretrainConfig, sources, tokenizer, session, end_id: int,
                  cls_id: int | None) -> tuple[PackedCorpus, dict]:
    """Tokenize once per (corpus content, cleaning, tokenizer, end token): the main process builds, the others
    wait. Each text ends with `end_id`; blocks start with `cls_id` (None: plain slices, causal LM)."""
    d = cfg.data
    whole_word = cfg.mlm.whole_word is True  # "auto" is resolved for mlm before this; clm keeps it unused
    params = {"text_column": d.text_column, "normalize": d.normalize, "dedup": d.dedup, "min_chars": d.min_chars,
              "max_chars": d.max_chars, "whole_word": whole_word,
              # the word-boundary rules' version: a change rebuilds whole-word streams (false: keys as before)
              "jieba": whole_word and words.VERSION,
              # only when on, so caches built before the option existed keep their keys
              **({"redact_pii": True} if d.redact_pii else {}),
              # the text separator when it is not [SEP] (causal LMs end texts with EOS)
              **({"end_id": end_id} if end_id != tokenizer.sep_token_id else {})}
    hashes = [file_sha256(p) for p in sources]  # read once: the cache key and the manifest both use them
    key = cache_key(hashes, params, tokenizer)
    root = Path(d.cache_dir) if d.cache_dir else default_cache_dir()
    stats = CleanStats()

    def build(folder: Path) -> dict:
        progress = make_progress(cfg.runtime.progress)
        with progress:
            task = progress.add_task("tokenize", total=None, info="texts")
            texts = iter_clean_texts(sources, d.text_column, d.normalize, d.dedup, d.min_chars, d.max_chars, stats,
                                     redact_pii=d.redact_pii)
            meta = build_token_stream(texts, tokenizer, folder, whole_word,
                                      on_chunk=lambda n: progress.advance(task, n), end_id=end_id)
        meta["clean"] = {k: v for k, v in vars(stats).items()}
        (folder / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
        return meta

    if session.is_main:
        folder = cached_token_stream(key, root, build)
    session.accelerator.wait_for_everyone()
    folder = root / "corpus" / key
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    if meta["tokens"] < 2 * d.block_size:
        raise UserError(f"the corpus has {meta['tokens']} tokens after cleaning: not enough for two blocks of "
                        f"{d.block_size}. Add text or lower data.block_size / data.min_chars.")
    corpus = PackedCorpus.open(folder, d.block_size, cls_id)
    if corpus.n_blocks < 2:
        raise UserError(f"the corpus has {meta['tokens']} tokens after cleaning: not enough for two blocks of "
                        f"{d.block_size}. Add text or lower data.block_size / data.min_chars.")
    return corpus, {"cache": str(folder), "sources": [{"source": str(p), "sha256": h} for p, h in zip(sources, hashes)],
                    **meta}
