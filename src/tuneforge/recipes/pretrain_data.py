"""Pretraining data: the tokenizer (the model's own, a given one, or one trained on the corpus) and the corpus
cleaned, tokenized once into a content-hash-keyed cache and packed into blocks."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tuneforge.config import PretrainConfig
from tuneforge.data.corpus import CleanStats, iter_clean_texts
from tuneforge.data.pack import PackedCorpus, build_token_stream, cache_key, cached_token_stream, default_cache_dir
from tuneforge.data.sources import file_sha256
from tuneforge.errors import UserError
from tuneforge.model.build import load_tokenizer
from tuneforge.model.causal import load_causal_tokenizer
from tuneforge.recipes.tokenizer import train_tokenizer_folder
from tuneforge.train.progress import make_progress


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


def packed_corpus(cfg: PretrainConfig, sources, tokenizer, session, end_id: int,
                  cls_id: int | None) -> tuple[PackedCorpus, dict]:
    """Tokenize once per (corpus content, cleaning, tokenizer, end token): the main process builds, the others
    wait. Each text ends with `end_id`; blocks start with `cls_id` (None: plain slices, causal LM)."""
    d = cfg.data
    params = {"text_column": d.text_column, "normalize": d.normalize, "dedup": d.dedup, "min_chars": d.min_chars,
              "max_chars": d.max_chars, "whole_word": cfg.mlm.whole_word,
              # whole-word streams differ with and without jieba (Chinese words vs single characters)
              "jieba": cfg.mlm.whole_word and importlib.util.find_spec("jieba") is not None,
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
            meta = build_token_stream(texts, tokenizer, folder, cfg.mlm.whole_word,
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
