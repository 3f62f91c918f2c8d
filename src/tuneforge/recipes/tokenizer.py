"""`tuneforge tokenizer train`: cleaned corpus texts → a trained fast tokenizer folder, written atomically."""
from __future__ import annotations

from pathlib import Path

from tuneforge.config.schema import CorpusConfig, TokenizerConfig
from tuneforge.data.corpus import CleanStats, expand_sources, iter_clean_texts
from tuneforge.data.tokenizer_train import ALL_FAMILIES, BYTE_LEVEL, default_lowercase, train_tokenizer
from tuneforge.errors import UserError
from tuneforge.model.artifact import replace_dir


def train_tokenizer_folder(data: CorpusConfig, tok: TokenizerConfig, out: Path, model_max_length: int = 512) -> dict:
    """`tok.lowercase` left unset takes the family's default (seq2seq keeps case; the others lowercase)."""
    specials = len(ALL_FAMILIES[tok.type][0])
    if tok.type in BYTE_LEVEL and tok.vocab_size < 256 + specials:
        raise UserError(f"tokenizer.vocab_size {tok.vocab_size}: a byte-level BPE needs at least {256 + specials} "
                        f"(256 bytes + {specials} special token{'s' if specials > 1 else ''}).")
    sources = expand_sources(data.corpus)
    stats = CleanStats()
    texts = iter_clean_texts(sources, data.text_column, data.normalize, data.dedup, data.min_chars, data.max_chars, stats,
                             redact_pii=data.redact_pii)
    lowercase = tok.lowercase if "lowercase" in tok.model_fields_set else default_lowercase(tok.type)
    tokenizer = train_tokenizer(texts, tok.type, tok.vocab_size, lowercase, tok.strip_accents, tok.min_frequency,
                                model_max_length=model_max_length)
    if stats.kept == 0:
        raise UserError(f"{', '.join(map(str, sources))}: no text left after cleaning "
                        f"(min_chars {data.min_chars}); nothing to train a tokenizer on.")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tokenizer.save_pretrained(tmp)
    replace_dir(tmp, out)
    return {"folder": str(out), "vocab_size": len(tokenizer), "texts": stats.kept}
