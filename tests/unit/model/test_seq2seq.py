"""Encoder-decoder presets (pre-norm MBart), the seq2seq objective (the model's own loss at label smoothing 0, a copy
task learnt by the tiny preset, T5's shift too), a saved folder loading with the Auto class, telling encoder-decoder
folders from others, the training-FLOPs count, and CTranslate2 converting a saved model to the same scores."""
from __future__ import annotations

import json

import pytest
import torch

from tuneforge.errors import UserError
from tuneforge.model.seq2seq import (
    SEQ2SEQ_PRESETS,
    build_seq2seq,
    is_seq2seq,
    load_seq2seq,
    load_seq2seq_tokenizer,
    seq2seq_config,
    seq2seq_flops_per_token,
)
from tuneforge.train.objectives import OBJECTIVES, make_objective, seq2seq_step

IGNORE = -100


def word_tokenizer(words: int = 60):
    """Word-level, with the seq2seq family's specials in id order (<pad>=0, </s>=1, <unk>=2, <s>=3) and `</s>`
    appended to every text, as T5/Marian tokenizers do."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = ["<pad>", "</s>", "<unk>", "<s>"] + [f"w{i}" for i in range(words)]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(vocab)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", pair="$A </s> $B </s>",
                                                           special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                                   bos_token="<s>")


def encode(tokenizer, sources: list[str], targets: list[str]) -> dict:
    batch = tokenizer(sources, text_target=targets, padding=True, return_tensors="pt")
    batch["labels"] = batch["labels"].masked_fill(batch["labels"] == tokenizer.pad_token_id, IGNORE)
    return {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}


@pytest.fixture(scope="module")
def tiny_seq2seq_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-seq2seq") / "tiny-mbart"
    tokenizer = word_tokenizer()
    torch.manual_seed(0)
    build_seq2seq("tiny", tokenizer, max_position=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_presets_are_pre_norm_mbart_with_ids_from_the_tokenizer():
    tok = word_tokenizer()
    assert list(SEQ2SEQ_PRESETS) == ["tiny", "mini", "small", "base"]
    assert tuple(SEQ2SEQ_PRESETS["base"]) == (512, 6, 6, 8, 2048)  # transformer base
    for name, shape in SEQ2SEQ_PRESETS.items():
        cfg = seq2seq_config(name, tok)
        assert cfg.model_type == "mbart" and cfg.is_encoder_decoder and cfg.tie_word_embeddings
        assert cfg.scale_embedding and cfg.normalize_before and cfg.activation_function == "gelu"
        assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.encoder_attention_heads,
                cfg.encoder_ffn_dim) == tuple(shape)
        assert cfg.d_model % cfg.encoder_attention_heads == 0
        assert (cfg.pad_token_id, cfg.eos_token_id, cfg.bos_token_id, cfg.decoder_start_token_id) == (0, 1, 3, 1)
        assert cfg.forced_eos_token_id is None and cfg.vocab_size == len(tok) and cfg.max_position_embeddings == 256
    with pytest.raises(UserError, match="unknown encoder-decoder preset 'huge'"):
        seq2seq_config("huge", tok)


def test_tiny_model_is_tied_and_carries_its_generation_config():
    tok = word_tokenizer()
    torch.manual_seed(0)
    model = build_seq2seq("tiny", tok, max_position=32, dropout=0.0)
    shared = model.model.shared.weight
    assert model.lm_head.weight is shared and model.model.encoder.embed_tokens.weight is shared
    assert model.model.decoder.embed_tokens.weight is shared
    assert model.config._attn_implementation == "eager"  # trains faster than sdpa on CPU (module docstring)
    gen = model.generation_config
    assert (gen.decoder_start_token_id, gen.eos_token_id, gen.pad_token_id, gen.num_beams, gen.max_length) == (
        1, 1, 0, 4, 32)
    assert gen.forced_bos_token_id is None and gen.forced_eos_token_id is None


def test_step_without_smoothing_is_the_models_own_loss():
    tok = word_tokenizer()
    torch.manual_seed(0)
    model = build_seq2seq("tiny", tok, max_position=32, dropout=0.0).eval()
    batch = encode(tok, ["w1 w2 w3 w4", "w5 w6"], ["w7 w8", "w9 w10 w11 w12 w13"])
    assert (batch["labels"] == IGNORE).any()  # the short target is padded
    with torch.no_grad():
        loss, logits = seq2seq_step(model, batch, label_smoothing=0.0)
        own = model(**batch)
        smoothed, _ = seq2seq_step(model, batch, label_smoothing=0.1)
    torch.testing.assert_close(loss, own.loss)
    torch.testing.assert_close(logits, own.logits)
    assert not torch.isclose(smoothed, loss)
    assert OBJECTIVES["translation"] is seq2seq_step and OBJECTIVES["seq2seq"] is seq2seq_step

    class Wrapper(torch.nn.Module):  # what DDP looks like to the objective: the model under `.module`
        def __init__(self, inner):
            super().__init__()
            self.module = inner

        def forward(self, **kwargs):
            return self.module(**kwargs)

    with torch.no_grad():
        wrapped, _ = make_objective("translation", label_smoothing=0.0)(Wrapper(model), batch)
    torch.testing.assert_close(wrapped, loss)


def test_step_uses_each_familys_own_shift_t5():
    from transformers import T5Config, T5ForConditionalGeneration

    tok = word_tokenizer()
    torch.manual_seed(0)
    t5 = T5ForConditionalGeneration(T5Config(vocab_size=len(tok), d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                             num_heads=4, pad_token_id=0, eos_token_id=1,
                                             decoder_start_token_id=0)).eval()
    batch = encode(tok, ["w1 w2 w3", "w4"], ["w5", "w6 w7 w8"])
    with torch.no_grad():
        loss, _ = seq2seq_step(t5, batch)
        torch.testing.assert_close(loss, t5(**batch).loss)


def test_tiny_preset_learns_a_copy_task_in_30_steps():
    # 16 copy pairs learnt by heart; then greedy `generate` (starting from EOS, as the training shift does) copies.
    tok = word_tokenizer(20)
    torch.manual_seed(0)
    model = build_seq2seq("tiny", tok, max_position=32, dropout=0.0).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(1)
    texts = [" ".join(f"w{int(i)}" for i in torch.randint(0, 20, (n,), generator=g))
             for n in torch.randint(2, 6, (16,), generator=g).tolist()]
    batch = encode(tok, texts, texts)
    losses = []
    for _ in range(30):
        loss, _ = seq2seq_step(model, batch, label_smoothing=0.0)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], losses
    model.eval()
    with torch.no_grad():
        out = model.generate(input_ids=batch["input_ids"][:4], attention_mask=batch["attention_mask"][:4],
                             num_beams=1, max_new_tokens=8)
    assert (out[:, 0] == tok.eos_token_id).all()
    assert tok.batch_decode(out, skip_special_tokens=True) == texts[:4]


def test_saved_folder_loads_with_the_auto_class_and_gives_the_same_logits(tiny_seq2seq_dir):
    from transformers import AutoModelForSeq2SeqLM

    files = {p.name for p in tiny_seq2seq_dir.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= files
    gen = json.loads((tiny_seq2seq_dir / "generation_config.json").read_text(encoding="utf-8"))
    assert (gen["decoder_start_token_id"], gen["eos_token_id"], gen["pad_token_id"], gen["num_beams"]) == (1, 1, 0, 4)
    plain = AutoModelForSeq2SeqLM.from_pretrained(tiny_seq2seq_dir).eval()
    ours = load_seq2seq(str(tiny_seq2seq_dir))
    tokenizer = load_seq2seq_tokenizer(str(tiny_seq2seq_dir))
    assert type(ours).__name__ == "MBartForConditionalGeneration" and not ours.training
    assert next(ours.parameters()).dtype == torch.float32
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.bos_token_id) == (
        0, 1, 2, 3)
    batch = encode(tokenizer, ["w1 w2 w3", "w4 w5"], ["w6 w7", "w8"])
    with torch.no_grad():
        a, b = plain(**batch).logits, ours(**batch).logits
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert plain.lm_head.weight is plain.model.shared.weight  # still tied after loading


def test_is_seq2seq_reads_config_only(tiny_model, tiny_seq2seq_dir, tmp_path):
    assert is_seq2seq(tiny_seq2seq_dir)
    assert not is_seq2seq(tiny_model)  # BERT encoder folder
    assert not is_seq2seq(tmp_path)  # no config.json
    other = tmp_path / "other"
    other.mkdir()
    cases = {
        ("t5", True): True,
        ("marian", None): True,  # known seq2seq model type, no flag written
        ("llama", None): False,
        ("bert", False): False,
        ("whisper", True): False,  # speech in, text out
        ("vision-encoder-decoder", True): False,  # image in
        ("encoder-decoder", True): True,
    }
    for (model_type, flag), expected in cases.items():
        cfg = {"model_type": model_type} | ({"is_encoder_decoder": flag} if flag is not None else {})
        (other / "config.json").write_text(json.dumps(cfg), encoding="utf-8")
        assert is_seq2seq(other) is expected, model_type


def test_loading_an_encoder_folder_as_seq2seq_is_a_user_error(tiny_model):
    with pytest.raises(UserError) as exc:
        load_seq2seq(str(tiny_model))
    message = str(exc.value)
    assert str(tiny_model) in message and "a bert model is not an encoder-decoder" in message
    assert "--task translation" in message and "from scratch" in message


def test_flops_per_token_counts_linear_layers_and_the_head():
    tok = word_tokenizer()
    model = build_seq2seq("tiny", tok)
    d, ffn, vocab, layers, length = 64, 256, len(tok), 2, 20
    enc_layer = 4 * d * d + 2 * d * ffn
    dec_layer = 8 * d * d + 2 * d * ffn  # self + cross attention
    source = 2 * layers * enc_layer + 4 * layers * length * d
    target = 2 * (layers * dec_layer + vocab * d) + 8 * layers * length * d
    assert seq2seq_flops_per_token(model) == 3 * (source + target) / 2
    assert seq2seq_flops_per_token(model, source_share=1.0) == 3 * source


def test_ctranslate2_converts_a_saved_model_to_the_same_scores(tmp_path):
    ctranslate2 = pytest.importorskip("ctranslate2")
    from transformers import AutoModelForSeq2SeqLM

    from tuneforge.data.tokenizer_train import train_tokenizer

    texts = ["A man rides a bike.", "Ein Mann fährt Fahrrad.", "Two dogs play in the snow.",
             "Zwei Hunde spielen im Schnee.", "A child eats an apple.", "Ein Kind isst einen Apfel."] * 5
    tokenizer = train_tokenizer(texts, kind="seq2seq", vocab_size=80)
    assert [tokenizer.convert_ids_to_tokens(i) for i in range(4)] == ["<pad>", "</s>", "<unk>", "<s>"]
    torch.manual_seed(0)
    folder, out = tmp_path / "hf", tmp_path / "ct2"
    build_seq2seq("tiny", tokenizer, max_position=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    ctranslate2.converters.TransformersConverter(str(folder)).convert(str(out))
    converted = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert converted["decoder_start_token"] == "</s>" and converted["eos_token"] == "</s>"
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    translator = ctranslate2.Translator(str(out), inter_threads=1, intra_threads=1)
    source, target = "Two dogs eat an apple.", "Zwei Hunde spielen."
    src_ids = tokenizer(source)["input_ids"]
    tgt_ids = tokenizer(text_target=target)["input_ids"]
    scored = translator.score_batch([tokenizer.convert_ids_to_tokens(src_ids)],
                                    [tokenizer.convert_ids_to_tokens(tgt_ids[:-1])])[0]  # CTranslate2 adds </s>
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([src_ids]), labels=torch.tensor([tgt_ids])).logits.log_softmax(-1)[0]
    ours = logp.gather(1, torch.tensor(tgt_ids)[:, None]).squeeze(1)
    torch.testing.assert_close(torch.tensor(scored.log_probs), ours, rtol=0, atol=1e-4)
