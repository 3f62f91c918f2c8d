"""Train a fast Hugging Face tokenizer (WordPiece, byte-level BPE or Unigram) with the `tokenizers` library.

Each family gets the special tokens and post-processor its models expect (BERT, RoBERTa, ALBERT, GPT; and, for
encoder-decoders, T5/Marian's `seq2seq`), and CJK ideographs are split into single characters before the model sees
them, as BERT's basic tokenizer does.
"""
from __future__ import annotations

from collections.abc import Iterable

# BERT's _is_chinese_char ranges (CJK Unified Ideographs, extensions A-E, compatibility ideographs).
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
CJK_PATTERN = "[" + "".join(f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in CJK_RANGES) + "]"

FAMILIES = {
    # type: (special tokens in id order, roles)
    "wordpiece": (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                  {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}),
    "bpe": (["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
            {"bos_token": "<s>", "cls_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "sep_token": "</s>",
             "unk_token": "<unk>", "mask_token": "<mask>"}),
    "unigram": (["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"],
                {"pad_token": "<pad>", "unk_token": "<unk>", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"}),
    # GPT-2's one special: <|endoftext|> ends every text (and starts, pads and stands in for unknowns). Byte-level,
    # so nothing is ever unknown; pad = EOS so batched generation needs no extra token.
    "gpt": (["<|endoftext|>"],
            {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
             "pad_token": "<|endoftext|>"}),
}
BYTE_LEVEL = ("bpe", "gpt")
# The encoder-decoder family, kept apart from FAMILIES (the pretraining families): SentencePiece-style Unigram, cased,
# accents kept (a translation is scored cased, and decode() must give the text back), `</s>` appended to every text as
# T5 and Marian do; <s> exists for models that start the decoder with it. Ids: <pad>=0, </s>=1, <unk>=2, <s>=3.
SEQ2SEQ_FAMILIES = {
    "seq2seq": (["<pad>", "</s>", "<unk>", "<s>"],
                {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "bos_token": "<s>"}),
}
ALL_FAMILIES = {**FAMILIES, **SEQ2SEQ_FAMILIES}
CASED = ("seq2seq",)  # families whose lowercase default is False


def default_lowercase(kind: str) -> bool:
    """What `lowercase=None` means for a family: encoders lowercase (as BERT), seq2seq keeps case."""
    return kind not in CASED


def is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return any(a <= cp <= b for a, b in CJK_RANGES)


def _normalizer(kind: str, lowercase: bool, strip_accents: bool):
    from tokenizers import normalizers

    if kind == "wordpiece":
        return normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=strip_accents,
                                          lowercase=lowercase)
    steps = [normalizers.NFKC()]
    if strip_accents:
        steps += [normalizers.NFD(), normalizers.StripAccents(), normalizers.NFC()]
    if lowercase:
        steps.append(normalizers.Lowercase())
    return normalizers.Sequence(steps)


def _build(kind: str, lowercase: bool, strip_accents: bool):
    """(tokenizer, trainer factory, decoder) for one family, before training."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    specials, roles = ALL_FAMILIES[kind]
    split_cjk = pre_tokenizers.Split(Regex(CJK_PATTERN), behavior="isolated")
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token=roles["unk_token"], continuing_subword_prefix="##"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()  # CJK already spaced out by BertNormalizer
        tok.decoder = decoders.WordPiece(prefix="##")
        trainer = trainers.WordPieceTrainer
    elif kind in BYTE_LEVEL:
        tok = Tokenizer(models.BPE(unk_token=None))
        tok.pre_tokenizer = pre_tokenizers.Sequence([split_cjk, pre_tokenizers.ByteLevel(add_prefix_space=False)])
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer
    elif kind in SEQ2SEQ_FAMILIES:
        # SentencePiece-style BPE on ▁-marked words, so decode() gives ordinary text back exactly. BPE, not Unigram:
        # the Unigram trainer's output varies from run to run (scores summed over hash maps reorder pieces, so the
        # ids change and one config trains two different models); BPE's merges are deterministic.
        tok = Tokenizer(models.BPE(unk_token=roles["unk_token"]))
        tok.pre_tokenizer = pre_tokenizers.Sequence([split_cjk, pre_tokenizers.Metaspace(prepend_scheme="first")])
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
        trainer = trainers.BpeTrainer
    else:  # unigram: SentencePiece-style, so decode() gives ordinary text back exactly
        tok = Tokenizer(models.Unigram())
        tok.pre_tokenizer = pre_tokenizers.Sequence([split_cjk, pre_tokenizers.Metaspace(prepend_scheme="first")])
        tok.decoder = decoders.Metaspace(prepend_scheme="first")
        trainer = trainers.UnigramTrainer
    tok.normalizer = _normalizer(kind, lowercase, strip_accents)
    return tok, trainer, specials, roles


def _post_processor(kind: str, tok, roles: dict):
    from tokenizers import processors

    if kind == "gpt":  # no tokens added around a text: the data pipeline appends EOS where a text ends
        return processors.ByteLevel(trim_offsets=False)
    if kind in SEQ2SEQ_FAMILIES:  # T5/Marian: text </s> (a pair: a </s> b </s>)
        eos = roles["eos_token"]
        return processors.TemplateProcessing(single=f"$A {eos}", pair=f"$A {eos} $B:1 {eos}:1",
                                             special_tokens=[(eos, tok.token_to_id(eos))])
    cls, sep = roles["cls_token"], roles["sep_token"]
    ids = {t: tok.token_to_id(t) for t in (cls, sep)}
    if kind == "bpe":
        return processors.RobertaProcessing((sep, ids[sep]), (cls, ids[cls]), add_prefix_space=False)
    return processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
                                         special_tokens=[(cls, ids[cls]), (sep, ids[sep])])


def train_tokenizer(texts: Iterable[str], kind: str = "wordpiece", vocab_size: int = 8000, lowercase: bool | None = None,
                    strip_accents: bool | None = None, min_frequency: int = 2, model_max_length: int = 512):
    """Train on an iterator of texts; returns a `PreTrainedTokenizerFast` ready for `save_pretrained`.

    `lowercase=None` takes the family's default (`default_lowercase`); `strip_accents=None` follows `lowercase`."""
    from tokenizers import pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    lowercase = default_lowercase(kind) if lowercase is None else lowercase
    strip = lowercase if strip_accents is None else strip_accents
    tok, trainer_cls, specials, roles = _build(kind, lowercase, strip)
    kwargs = {"vocab_size": vocab_size, "special_tokens": specials, "show_progress": False}
    if kind == "unigram":
        kwargs["unk_token"] = roles["unk_token"]
    else:
        kwargs["min_frequency"] = min_frequency
    if kind in BYTE_LEVEL:
        kwargs["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    tok.train_from_iterator(texts, trainer=trainer_cls(**kwargs))
    tok.post_processor = _post_processor(kind, tok, roles)
    extra = {"clean_up_tokenization_spaces": False} if kind in SEQ2SEQ_FAMILIES else {}  # "a ." stays "a ."
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, model_max_length=model_max_length, **roles, **extra)
    fast.init_kwargs["tuneforge_tokenizer"] = {"type": kind, "lowercase": lowercase, "strip_accents": strip}
    return fast
