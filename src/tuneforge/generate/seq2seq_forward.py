"""One decoder step of an encoder-decoder model, for `beam.translate_ids`: `start` runs the encoder once per batch
and returns the batch's state (`LeanState`, `HFState`); `step(state, ids)` feeds each row's newest token and
returns next-token logits; `state.reorder(rows)` follows the beams (row i continues old row rows[i]) and
`state.keep(items)` drops finished sentences. Rows are sentence-major: sentence b's beams are rows b·beams ..
b·beams + beams-1.

`LeanDecoder` is the MBart/BART/Marian decoder layer math on the model's own weights (no conversion, no export):
query/key/value one matmul, the self-attention keys/values in one preallocated tensor (a beam reorder is one
`index_select`), every layer's cross-attention keys/values computed once per batch (one matmul) and shared by a
sentence's beams (their queries are folded into one SDPA call against the sentence's keys), no masks except the
source padding. What it saves over `model.generate` is per-step work that is not the model's arithmetic:
transformers' cache objects and mask builders, the cross keys/values reordered with every beam step, the layers'
generic attention code. Its matrices are transposed copies (in, out), which MKL multiplies faster at a few rows
on this class of CPU (measured: the mini preset's LM head at 4 rows ~1.1 vs ~2.1 ms; the whole beam-4 decode
~1.2x). On a frozen model (loaded for inference) they are kept (`PACK`) until its weights change; a trainable
model gets fresh copies for every decode, since a fused optimizer step changes weights unseen (`packs.py`). They
double the decoder's memory. A model that is not MBart/BART/Marian, or whose layers are
wrapped (LoRA, quantized), runs `HFSeq2SeqForward`: the model's own forward with its own cache (T5, mT5,
Pegasus, ...)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.generate.packs import current, fingerprint

LEAN_TYPES = ("mbart", "bart", "marian")
PRE_NORM = ("mbart",)  # MBart normalises before each sublayer (and once after the last layer); BART/Marian after


def pick_seq2seq_forward(model, fast: bool = True, dtype: torch.dtype | None = None):
    """`LeanDecoder` for MBart/BART/Marian models when `fast` (and the model qualifies), else `HFSeq2SeqForward`.
    `dtype` bf16 decodes with bf16 weights (None: the model's own dtype)."""
    if fast and LeanDecoder.supports(model):
        return LeanDecoder(model, dtype)
    return HFSeq2SeqForward(model, dtype)


def _expand(rows: torch.Tensor, beams: int) -> torch.Tensor:
    """Row index of each (sentence, beam) row when each sentence has `beams` rows: 0,0,..,1,1,.."""
    return torch.arange(rows, device=torch.device("cpu")).repeat_interleave(beams)


# --------------------------------------------------------------------------------------------- the lean decoder

class LeanState:
    """One batch's decoder state for `LeanDecoder`: cross keys/values (layers, 2, sentences, heads, source, dim), the
    source padding mask (sentences, 1, 1, source) or None, and the self-attention keys/values (rows, layers, 2,
    heads, capacity, dim) of the `length` tokens fed so far."""

    def __init__(self, cross: torch.Tensor, mask: torch.Tensor | None, capacity: int, layers: int, heads: int,
                 dim: int):
        self.cross, self.mask = cross, mask
        self.sentences = cross.shape[2]
        self.beams = 1
        self.length = 0
        self.kv = cross.new_empty(self.sentences, layers, 2, heads, capacity, dim)

    @property
    def rows(self) -> int:
        return self.sentences * self.beams

    def reorder(self, rows: torch.Tensor) -> None:
        """Row i continues old row `rows[i]`, always a row of the same sentence; len(rows) may be a multiple of the
        rows now (the first step runs one row per sentence, then its beams branch off it)."""
        if rows.numel() == self.rows and torch.equal(rows, torch.arange(self.rows, device=rows.device)):
            return  # no beam moved (greedy rows, or beams that all continue themselves)
        self.kv = self.kv.index_select(0, rows.to(self.kv.device))
        self.beams = rows.numel() // self.sentences

    def keep(self, sentences: torch.Tensor) -> None:
        """Only these sentences (indices into the current ones) go on, with all their beams."""
        index = sentences.to(self.kv.device)
        self.cross = self.cross.index_select(2, index)
        self.mask = None if self.mask is None else self.mask.index_select(0, index)
        rows = (index[:, None] * self.beams + torch.arange(self.beams, device=index.device)).reshape(-1)
        self.kv = self.kv.index_select(0, rows)
        self.sentences = index.numel()


class LeanDecoder:
    name = "lean-seq2seq"

    @staticmethod
    def supports(model) -> bool:
        """MBart, BART and Marian encoder-decoders whose decoder projections are plain nn.Linear (LoRA-wrapped or
        quantized layers compute something else) and whose layer norms are nn.LayerNorm."""
        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) not in LEAN_TYPES or not getattr(config, "is_encoder_decoder", False):
            return False
        try:
            decoder = model.get_decoder()
            layers = list(decoder.layers)
            linears = [model.lm_head] + [m for layer in layers for m in (
                layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.out_proj,
                layer.encoder_attn.q_proj, layer.encoder_attn.k_proj, layer.encoder_attn.v_proj,
                layer.encoder_attn.out_proj, layer.fc1, layer.fc2)]
            norms = [m for layer in layers for m in (layer.self_attn_layer_norm, layer.encoder_attn_layer_norm,
                                                     layer.final_layer_norm)]
            _ = decoder.embed_tokens.weight, decoder.embed_positions.weight
        except (AttributeError, TypeError):
            return False
        extra = [getattr(decoder, n, None) for n in ("layernorm_embedding", "layer_norm")]
        norms += [m for m in extra if m is not None]
        return (bool(layers) and all(type(m) is torch.nn.Linear for m in linears)
                and all(type(m) is torch.nn.LayerNorm for m in norms))

    def __init__(self, model, dtype: torch.dtype | None = None):
        self.model = model
        decoder = model.get_decoder()
        self.dtype = dtype or model.lm_head.weight.dtype
        self.encoder = model.get_encoder()
        config = model.config
        self.pre_norm = config.model_type in PRE_NORM
        self.count = len(decoder.layers)
        self.heads = config.decoder_attention_heads
        self.width = config.d_model
        self.dim = self.width // self.heads
        self.scale = self.dim ** -0.5
        self.embed = decoder.embed_tokens.weight
        embed_scale = getattr(decoder.embed_tokens, "embed_scale", None)
        self.embed_scale = float(embed_scale if embed_scale is not None else getattr(decoder, "embed_scale", 1.0))
        self.positions = decoder.embed_positions.weight
        self.position_offset = getattr(decoder.embed_positions, "offset", 0)
        self.norm_embedding = _ln(getattr(decoder, "layernorm_embedding", None))
        self.norm_final = _ln(getattr(decoder, "layer_norm", None))
        self.act = decoder.layers[0].activation_fn
        self.max_positions = self.positions.shape[0] - self.position_offset
        pack = getattr(model, PACK, None)
        if not current(pack, _fingerprint(model)) or pack["transposed"] != TRANSPOSED or pack["dtype"] != self.dtype:
            pack = _pack(model, self.dtype)
            if pack["source"] is not None:  # a trainable model's pack is used once, not kept beside its weights
                object.__setattr__(model, PACK, pack)  # not a submodule or parameter: state_dict, .to() ignore it
        self.layers, self.head, self.cross_kv = pack["layers"], pack["head"], pack["cross_kv"]

    @torch.no_grad()
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, capacity: int) -> LeanState:
        """Encode the (sentences, source) batch (right-padded; `attention_mask` 1 on tokens) and compute every
        layer's cross-attention keys/values; one decoder row per sentence until `reorder` branches beams off."""
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        b, s, _ = hidden.shape
        cross = _mm(hidden.to(self.dtype), *self.cross_kv).view(b, s, self.count, 2, self.heads, self.dim)
        cross = cross.permute(2, 3, 0, 4, 1, 5).contiguous()  # (layers, 2, sentences, heads, source, dim)
        mask = None if bool(attention_mask.all()) else attention_mask[:, None, None, :].bool()
        return LeanState(cross, mask, capacity, self.count, self.heads, self.dim)

    @torch.no_grad()
    def step(self, state: LeanState, ids: torch.Tensor) -> torch.Tensor:
        """Next-token logits (rows, vocab) in fp32 after feeding `ids` (rows,) at position `state.length`."""
        rows, t = ids.shape[0], state.length
        x = F.embedding(ids, self.embed) * self.embed_scale + self.positions[t + self.position_offset]
        if self.norm_embedding is not None:
            x = F.layer_norm(x, *self.norm_embedding)
        sentences, beams, heads, dim, width, pre = state.sentences, rows // state.sentences, self.heads, self.dim, \
            self.width, self.pre_norm
        dt = self.dtype  # of the matrices; the residual stream and the layer norms stay in the model's dtype
        for i, w in enumerate(self.layers):
            # self-attention over the tokens fed so far (no mask: every row has fed the same number of tokens)
            h = (F.layer_norm(x, *w["ln1"]) if pre else x).to(dt)
            qkv = _mm(h, *w["qkv"]).view(rows, 3, heads, 1, dim)
            kv = state.kv[:, i]
            kv[:, :, :, t] = qkv[:, 1:, :, 0]
            a = F.scaled_dot_product_attention(qkv[:, 0], kv[:, 0, :, :t + 1], kv[:, 1, :, :t + 1], scale=self.scale)
            x = x + _mm(a.view(rows, width), *w["o"])
            x = x if pre else F.layer_norm(x, *w["ln1"])
            # cross-attention: a sentence's beams are that sentence's queries against its keys/values
            h = (F.layer_norm(x, *w["ln2"]) if pre else x).to(dt)
            q = _mm(h, *w["cq"]).view(sentences, beams, heads, dim).transpose(1, 2)
            a = F.scaled_dot_product_attention(q, state.cross[i, 0], state.cross[i, 1], attn_mask=state.mask,
                                               scale=self.scale)
            x = x + _mm(a.transpose(1, 2).reshape(rows, width), *w["co"])
            x = x if pre else F.layer_norm(x, *w["ln2"])
            # feed-forward
            h = (F.layer_norm(x, *w["ln3"]) if pre else x).to(dt)
            x = x + _mm(self.act(_mm(h, *w["fc1"])), *w["fc2"])
            x = x if pre else F.layer_norm(x, *w["ln3"])
        if self.norm_final is not None:
            x = F.layer_norm(x, *self.norm_final)
        state.length = t + 1
        return _mm(x.to(dt), *self.head).float()


PACK = "_tuneforge_lean_seq2seq"  # on a model: its decoder matrices as LeanDecoder reads them, and their source
TRANSPOSED = True  # (in, out) copies; False reads the model's (out, in) weights as they are (the A/B switch)


def _fingerprint(model) -> list[tuple[int, int]] | None:
    """The pack's source weights as `packs.fingerprint` identifies them (None: trainable, never reused)."""
    tensors = [model.lm_head.weight, *model.get_decoder().parameters()]
    bias = getattr(model, "final_logits_bias", None)
    if bias is not None:
        tensors.append(bias)
    return fingerprint(tensors)


def _pack(model, dtype: torch.dtype) -> dict:
    """Every decoder matrix as `_mm` reads it, with its bias: query/key/value of a layer's self-attention as one
    matrix, every layer's cross-attention keys/values as one (computed once per batch); the LM head with
    final_logits_bias folded into its bias; matrices and biases in `dtype`, layer norms as the model has them."""
    with torch.inference_mode(False), torch.no_grad():
        def lin(*mods):
            weight = torch.cat([m.weight for m in mods]) if len(mods) > 1 else mods[0].weight
            weight = weight.t().contiguous() if TRANSPOSED else weight.detach()
            bias = _cat_bias(*mods)
            return weight.to(dtype), None if bias is None else bias.to(dtype)

        layers = []
        for layer in model.get_decoder().layers:
            sa, ca = layer.self_attn, layer.encoder_attn
            layers.append({"qkv": lin(sa.q_proj, sa.k_proj, sa.v_proj), "o": lin(sa.out_proj),
                           "cq": lin(ca.q_proj), "co": lin(ca.out_proj), "fc1": lin(layer.fc1), "fc2": lin(layer.fc2),
                           "ln1": _ln(layer.self_attn_layer_norm), "ln2": _ln(layer.encoder_attn_layer_norm),
                           "ln3": _ln(layer.final_layer_norm)})
        cross = [m for layer in model.get_decoder().layers for m in (layer.encoder_attn.k_proj,
                                                                      layer.encoder_attn.v_proj)]
        head, head_bias = lin(model.lm_head)
        extra = getattr(model, "final_logits_bias", None)
        if extra is not None and bool(extra.any()):
            extra = extra[0].to(dtype)
            head_bias = extra.clone() if head_bias is None else head_bias + extra
        return {"layers": layers, "cross_kv": lin(*cross), "head": (head, head_bias), "transposed": TRANSPOSED,
                "dtype": dtype, "source": _fingerprint(model)}


def _mm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    if not TRANSPOSED:
        return F.linear(x, weight, bias)
    if bias is None:
        return x @ weight
    return torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[1])


def _ln(module) -> tuple | None:
    """F.layer_norm's arguments after the input, for a LayerNorm module (None for none)."""
    return None if module is None else (module.normalized_shape, module.weight, module.bias, module.eps)


def _cat_bias(*mods) -> torch.Tensor | None:
    if all(m.bias is None for m in mods):
        return None
    return torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.weight.shape[0]) for m in mods])


# ------------------------------------------------------------------------------------- any other encoder-decoder

class HFState:
    """One batch's state for `HFSeq2SeqForward`: the encoder output and source mask per sentence, the model's own
    cache (`EncoderDecoderCache`) with one row per (sentence, beam), and which sentence each row belongs to."""

    def __init__(self, hidden: torch.Tensor, mask: torch.Tensor, cache):
        self.hidden, self.mask, self.cache = hidden, mask, cache
        self.sentences = hidden.shape[0]
        self.beams = 1
        self.length = 0

    @property
    def rows(self) -> int:
        return self.sentences * self.beams

    def reorder(self, rows: torch.Tensor) -> None:
        if rows.numel() == self.rows and torch.equal(rows, torch.arange(self.rows, device=rows.device)):
            return
        if self.length:
            self.cache.reorder_cache(rows.to(self.hidden.device))
        self.beams = rows.numel() // self.sentences

    def keep(self, sentences: torch.Tensor) -> None:
        index = sentences.to(self.hidden.device)
        rows = (index[:, None] * self.beams + torch.arange(self.beams, device=index.device)).reshape(-1)
        if self.length:
            self.cache.reorder_cache(rows)  # index_select on every layer: with fewer indices, a selection
        self.hidden, self.mask = self.hidden.index_select(0, index), self.mask.index_select(0, index)
        self.sentences = index.numel()


class HFSeq2SeqForward:
    """The model's own encoder and decoder forward (any transformers encoder-decoder whose generate uses an
    `EncoderDecoderCache`: T5, mT5, BART, MBart, Marian, Pegasus, ...), one new token per row per step."""

    name = "transformers"

    def __init__(self, model, dtype: torch.dtype | None = None):
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        self.model = model
        own = next(model.parameters()).dtype
        # another dtype than the weights': autocast (re-casts the weights at every call; the lean step keeps copies)
        self.autocast = dtype is not None and dtype != own
        self.dtype = dtype or own
        self._cache = lambda: EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
        config = model.config
        self.max_positions = None if config.model_type in ("t5", "mt5", "umt5", "longt5") else \
            getattr(config, "max_position_embeddings", None)

    def _cast(self):
        device = next(self.model.parameters()).device.type
        return torch.autocast(device, dtype=self.dtype, enabled=self.autocast)

    @torch.no_grad()
    def start(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, capacity: int) -> HFState:
        with self._cast():
            hidden = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return HFState(hidden, attention_mask, self._cache())

    @torch.no_grad()
    def step(self, state: HFState, ids: torch.Tensor) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        index = _expand(state.sentences, state.beams).to(state.hidden.device)
        hidden = state.hidden if state.beams == 1 else state.hidden.index_select(0, index)
        mask = state.mask if state.beams == 1 else state.mask.index_select(0, index)
        with self._cast():
            out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=hidden), attention_mask=mask,
                             decoder_input_ids=ids[:, None], cache=state.cache, use_cache=True)
        state.length += 1
        return out.logits[:, -1].float()
