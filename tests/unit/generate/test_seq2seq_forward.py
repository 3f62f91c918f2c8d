"""The decoder step behind translation against the model's own forward: the lean MBart/BART/Marian step and the
transformers fallback (also T5) give the full forward's next-token logits (to 1e-5) for padded sources, beams that
branch and move, and sentences that leave the batch; the lean step follows weights changed after its first use;
`pick_seq2seq_forward` takes the lean step only where it computes the same thing."""
from __future__ import annotations

import pytest
import torch

from tuneforge.generate.seq2seq_forward import PACK, HFSeq2SeqForward, LeanDecoder, pick_seq2seq_forward

VOCAB = 300


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def build(kind: str, seed: int = 0):
    """A tiny random encoder-decoder of `kind` (pad 0, EOS 1 = decoder start), in eval mode."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
                  pad_token_id=0, eos_token_id=1, bos_token_id=3, decoder_start_token_id=1, dropout=0.0,
                  attention_dropout=0.0, init_std=0.2)
    if kind == "mbart":
        model = tf.MBartForConditionalGeneration(tf.MBartConfig(**common, scale_embedding=True,
                                                                forced_eos_token_id=None))
    elif kind == "bart":
        model = tf.BartForConditionalGeneration(tf.BartConfig(**common, forced_eos_token_id=None,
                                                              forced_bos_token_id=None))
    elif kind == "marian":
        model = tf.MarianMTModel(tf.MarianConfig(**common, scale_embedding=True, decoder_vocab_size=VOCAB,
                                                 share_encoder_decoder_embeddings=True))
    else:  # t5: relative positions, no learned position table; the fallback's family
        model = tf.T5ForConditionalGeneration(tf.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                                                          num_heads=4, pad_token_id=0, eos_token_id=1,
                                                          decoder_start_token_id=0, dropout_rate=0.0))
    with torch.no_grad():  # a bias, so the folded LM-head bias is exercised (BART/MBart/Marian have one)
        if hasattr(model, "final_logits_bias"):
            model.final_logits_bias.normal_(0, 0.5)
    return model.eval()


def sources() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    lengths = [5, 9, 2]
    ids = torch.zeros(3, 9, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(4, VOCAB, (n,), generator=g)
        ids[i, n - 1] = 1
    return ids, (ids != 0).long()


def reference(model, ids, mask, prefixes: torch.Tensor) -> torch.Tensor:
    """Next-token logits of the full forward (no cache) for each row's decoder prefix."""
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, decoder_input_ids=prefixes).logits[:, -1].float()


def drive(forward, model, ids, mask) -> float:
    """Decode 7 steps with branching beams, reorders and a sentence leaving; the largest logit difference from
    the full forward."""
    g = torch.Generator().manual_seed(5)
    state = forward.start(ids, mask, capacity=16)
    start = model.generation_config.decoder_start_token_id
    prefixes = torch.full((3, 1), start)  # one row per sentence at first
    src_rows = torch.arange(3)
    worst = 0.0
    for step in range(7):
        logits = forward.step(state, prefixes[:, -1])
        want = reference(model, ids[src_rows], mask[src_rows], prefixes)
        worst = max(worst, (logits - want).abs().max().item())
        beams = state.beams
        if step == 0:  # branch: 2 beams per sentence, both from its single row
            rows = torch.arange(3).repeat_interleave(2)
        elif step == 3:  # the middle sentence leaves; then the others' beams swap
            state.keep(torch.tensor([0, 2]))
            keep = torch.tensor([0, 1, 4, 5])
            prefixes, src_rows = prefixes[keep], src_rows[keep]
            rows = torch.tensor([1, 0, 2, 3])
        else:  # beams move: row 0 continues from beam 1 of its sentence, and so on
            rows = torch.arange(state.sentences).repeat_interleave(beams) * beams + \
                torch.tensor([beams - 1, 0] if beams == 2 else [0]).repeat(state.sentences)
        state.reorder(rows)
        new = torch.randint(4, VOCAB, (rows.numel(), 1), generator=g)
        prefixes = torch.cat([prefixes[rows], new], 1)
        src_rows = src_rows[rows]
    return worst


@pytest.mark.parametrize("kind", ["mbart", "bart", "marian"])
def test_lean_step_equals_the_full_forward(kind):
    model = build(kind)
    forward = pick_seq2seq_forward(model)
    assert isinstance(forward, LeanDecoder)
    assert drive(forward, model, *sources()) < 1e-5


@pytest.mark.parametrize("kind", ["mbart", "t5"])
def test_transformers_fallback_equals_the_full_forward(kind):
    model = build(kind)
    forward = pick_seq2seq_forward(model, fast=kind == "t5")  # t5 has no lean step: the fallback either way
    assert isinstance(forward, HFSeq2SeqForward)
    assert drive(forward, model, *sources()) < 1e-5


def test_lean_step_follows_changed_weights():
    """On a frozen model (as Translator.load leaves it) the packed matrices are reused while the weights are
    unchanged and rebuilt after an in-place update (a load_state_dict, a checkpoint average)."""
    model = build("mbart").requires_grad_(False)
    first = LeanDecoder(model)
    assert LeanDecoder(model).layers is first.layers  # same weights: the pack is reused
    with torch.no_grad():
        model.get_decoder().layers[0].fc1.weight.mul_(1.5)
        model.lm_head.weight.add_(0.01)  # tied: the shared embedding moves too
    forward = LeanDecoder(model)
    assert forward.layers is not first.layers
    assert drive(forward, model, *sources()) < 1e-5


def test_a_trainable_model_decodes_with_the_weights_after_a_fused_optimizer_step():
    """torch's fused AdamW (the training default) updates weights without bumping their in-place version, so a
    pack of a trainable model must never be reused: the recipe's validation BLEU once decoded 6 epochs with the
    first evaluation's decoder (BLEU 0.8 throughout while the loss fell from 5.4 to 2.2)."""
    model = build("mbart")
    first = LeanDecoder(model)
    assert not hasattr(model, PACK)  # a trainable model's copies are not kept beside its weights
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    src, mask = sources()
    labels = torch.full((src.shape[0], 4), 5)
    model(input_ids=src, attention_mask=mask, labels=labels).loss.backward()
    versions = [p._version for p in model.parameters()]  # noqa: SLF001
    optimizer.step()
    assert [p._version for p in model.parameters()] == versions  # the reason: the fused step bumps no version
    forward = LeanDecoder(model)
    assert forward.layers is not first.layers
    assert drive(forward, model, *sources()) < 1e-5  # the logits of the updated weights


def test_lean_step_only_where_it_computes_the_same():
    model = build("mbart")
    assert isinstance(pick_seq2seq_forward(model, fast=False), HFSeq2SeqForward)

    class Wrapped(torch.nn.Linear):  # a LoRA-style wrapper computes more than its weight
        pass

    fc1 = model.get_decoder().layers[1].fc1
    wrapped = Wrapped(fc1.in_features, fc1.out_features)
    model.get_decoder().layers[1].fc1 = wrapped
    assert not LeanDecoder.supports(model)
    assert isinstance(pick_seq2seq_forward(model), HFSeq2SeqForward)
    assert not LeanDecoder.supports(build("t5"))


def drive_logits(forward, model, ids, mask) -> list[torch.Tensor]:
    """Logits of 5 greedy-shaped steps (one row per sentence, the same fed tokens for any forward)."""
    state = forward.start(ids, mask, capacity=8)
    fed = torch.full((ids.shape[0],), model.generation_config.decoder_start_token_id)
    out = []
    for step in range(5):
        out.append(forward.step(state, fed))
        fed = torch.full_like(fed, 4 + step)
    return out


@pytest.mark.parametrize("kind", ["mbart", "marian", "t5"])
def test_bf16_decoding_stays_near_fp32_and_really_runs_bf16(kind):
    """`dtype=torch.bfloat16` (`--precision bf16`): the lean step packs bf16 matrices (the fallback autocasts);
    its fp32 logits stay within bf16's rounding of the fp32 step's and pick the same next tokens, but are not equal
    to them (they would be if fp32 still ran)."""
    model = build(kind).requires_grad_(False)
    ids, mask = sources()
    full = drive_logits(pick_seq2seq_forward(model), model, ids, mask)
    forward = pick_seq2seq_forward(model, dtype=torch.bfloat16)
    half = drive_logits(forward, model, ids, mask)
    if kind != "t5":
        assert isinstance(forward, LeanDecoder) and forward.head[0].dtype == torch.bfloat16
        assert forward.layers[0]["fc1"][0].dtype == torch.bfloat16
    else:
        assert isinstance(forward, HFSeq2SeqForward) and forward.autocast
    assert next(model.parameters()).dtype == torch.float32  # the model's own weights are untouched
    for a, b in zip(full, half):
        assert b.dtype == torch.float32
        scale = a.abs().max().item()
        assert (a - b).abs().max().item() < 0.05 * scale
        assert torch.equal(a.argmax(-1), b.argmax(-1))
    assert any((a - b).abs().max().item() > 0 for a, b in zip(full, half))
    # the fp32 pack and the bf16 pack are separate: asking for fp32 again gives fp32 matrices
    if kind != "t5":
        assert LeanDecoder(model).head[0].dtype == torch.float32
