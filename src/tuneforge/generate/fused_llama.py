"""A lean forward for Llama-family decoders (Llama, SmolLM2, Qwen2): the same math as transformers' modules with
fewer, larger operations per layer. Query, key and value projections are one matmul, gate and up one matmul, the
rotary tables are computed once per step, attention is one `scaled_dot_product_attention` call on the KV store's
views (grouped queries folded onto their key head at decode time, so keys and values are never copied), and no
mask is built when no row is padded. Matrices are stored transposed and, with several threads, in column blocks
(see `_fuse`, `_chunks`). They are copies taken when the engine is built (a model trained further afterwards needs a
new engine), or the pack `share_weights` left on a frozen model when its weights have not changed since."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from tuneforge.generate.kv import KVStore
from tuneforge.generate.packs import current, fingerprint

MODEL_TYPES = ("llama", "qwen2")
BLOCK_MIN = 1 << 20  # elements; see _blocks
PACK = "_tuneforge_fused"  # on a model after share_weights: its fused matrices, reused by every engine on it


class FusedLlama:
    name = "fused-llama"

    @staticmethod
    def supports(model) -> bool:
        """Plain Llama/Qwen2 decoders: SiLU MLP, full (not sliding-window) attention, plain linear layers."""
        config = getattr(model, "config", None)  # None: a wrapper (DDP, FSDP), which runs its own forward
        if getattr(config, "model_type", None) not in MODEL_TYPES or getattr(config, "hidden_act", None) != "silu":
            return False
        if getattr(config, "use_sliding_window", False) or getattr(config, "pretraining_tp", 1) != 1:
            return False
        try:
            layers = model.model.layers
            linears = [model.lm_head] + [m for layer in layers for m in (
                layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
                layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)]
            heads = layers[0].self_attn.head_dim
        except (AttributeError, IndexError, TypeError):
            return False
        # Exactly nn.Linear: a LoRA-wrapped or quantized projection computes something these copies would not.
        return isinstance(heads, int) and all(type(m) is torch.nn.Linear for m in linears)

    def __init__(self, model):
        inner, config = model.model, model.config
        self.embed, self.rotary, self.final_norm, self.head = inner.embed_tokens, inner.rotary_emb, inner.norm, \
            model.lm_head
        attn = inner.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.inter = config.intermediate_size
        pack = getattr(model, PACK, None)
        if pack is None or not _current(model, pack):
            pack = _pack(model)
        self.layers, self.head_t = pack["layers"], pack["head_t"]

    @torch.no_grad()
    def __call__(self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor | None,
                 store: KVStore) -> torch.Tensor:
        rows, q = ids.shape
        x = self.embed(ids)
        cos, sin = self.rotary(x, positions)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        attn_mask = _attention_mask(mask, store.length, q)
        for i, w in enumerate(self.layers):
            h = _rms(x, w["norm1"], w["eps1"])
            qkv = _mm(h, w["qkv"], w["qkv_bias"]).view(rows, q, self.heads + 2 * self.kv_heads, self.head_dim)
            query_key, value = qkv.transpose(1, 2).split([self.heads + self.kv_heads, self.kv_heads], 1)
            query, key = _rope(query_key, cos, sin).split([self.heads, self.kv_heads], 1)  # one rotation for both
            keys, values = store.write(i, key, value)
            x = x + _mm(self._attend(query, keys, values, attn_mask), w["o"], w["o_bias"])
            h = _rms(x, w["norm2"], w["eps2"])
            gate, up = _mm(h, w["gate_up"], w["gate_up_bias"]).split([self.inter, self.inter], -1)
            x = x + _mm(F.silu(gate) * up, w["down"], w["down_bias"])
        store.advance(q)
        x = self.final_norm(x[:, -1])
        return _mm(x, self.head_t, self.head.bias)

    def _attend(self, query, keys, values, attn_mask) -> torch.Tensor:
        rows, _, q, d = query.shape
        groups = self.heads // self.kv_heads
        if q == 1 and groups > 1:
            # One query per head at decode: the heads sharing a key head become that head's queries, so keys and
            # values are read as they are (transformers' pack_gqa).
            out = F.scaled_dot_product_attention(query.reshape(rows, self.kv_heads, groups, d), keys, values,
                                                 attn_mask=attn_mask)
            return out.reshape(rows, 1, self.heads * d)
        if groups > 1:
            keys, values = keys.repeat_interleave(groups, 1), values.repeat_interleave(groups, 1)
        out = F.scaled_dot_product_attention(query, keys, values, attn_mask=attn_mask,
                                             is_causal=attn_mask is None and q > 1)
        return out.transpose(1, 2).reshape(rows, q, self.heads * d)


def share_weights(model) -> None:
    """Fuse the model's matrices once and keep them on the model, so every engine built on it reuses them. The
    model's own linear weights become views of the fused (in, out) matrices, so they are held once in memory; a
    matrix split into column blocks (`_blocks`, with several threads) is a layout no view of transformers' weights
    can express and stays a second copy. For models this process owns and has frozen (`tuneforge.load`, the
    server): an engine reuses the pack only while the weights are frozen and unchanged (`_current`), else fuses
    them afresh."""
    if not FusedLlama.supports(model):
        return
    pack = _pack(model)
    for layer, w in zip(model.model.layers, pack["layers"]):
        attn, mlp = layer.self_attn, layer.mlp
        for mods, name in (((attn.q_proj, attn.k_proj, attn.v_proj), "qkv"), ((attn.o_proj,), "o"),
                           ((mlp.gate_proj, mlp.up_proj), "gate_up"), ((mlp.down_proj,), "down")):
            if w[name].dim() == 2:
                _rebind(mods, w[name], w[f"{name}_bias"])
    if pack["head_t"].dim() == 2:
        embed = model.model.embed_tokens
        tied = model.lm_head.weight is embed.weight
        grad = model.lm_head.weight.requires_grad
        model.lm_head.weight = torch.nn.Parameter(pack["head_t"].t(), requires_grad=grad)
        if tied:
            embed.weight = model.lm_head.weight
    pack["source"] = _fingerprint(model)
    setattr(model, PACK, pack)


def _rebind(mods, fused_t: torch.Tensor, fused_bias: torch.Tensor | None) -> None:
    rows, start = fused_t.t(), 0  # (out, in) view of the (in, out) matrix: what nn.Linear expects
    for m in mods:
        n = m.weight.shape[0]
        m.weight = torch.nn.Parameter(rows[start:start + n], requires_grad=m.weight.requires_grad)
        if m.bias is not None:
            m.bias = torch.nn.Parameter(fused_bias[start:start + n], requires_grad=m.bias.requires_grad)
        start += n


def _fingerprint(model) -> list[tuple[int, int]] | None:
    """The pack's source weights as `packs.fingerprint` identifies them (None: trainable, never reused)."""
    return fingerprint([model.lm_head.weight] + [p for layer in model.model.layers for p in layer.parameters()])


def _current(model, pack: dict) -> bool:
    return current(pack, _fingerprint(model)) and pack["chunks"] == _chunks()


def _chunks() -> int:
    """Blocks of output columns per matrix: one per intra-op thread (at most 4). A single matrix-vector product
    runs on one thread in MKL, whatever torch's thread count; `bmm` over column blocks spreads them over the
    threads (measured, SmolLM2-135M decode step, 2 threads: 29 vs 36 ms; 1 thread: 1 block is faster)."""
    threads = torch.get_num_threads()
    return min(threads, 4) if threads > 1 else 1


@torch.no_grad()
def _pack(model) -> dict:
    chunks = _chunks()
    layers = []
    for layer in model.model.layers:
        w = _fuse(layer)
        layers.append({k: _blocks(v, chunks) if k in ("qkv", "o", "gate_up", "down") else v for k, v in w.items()})
    head_t = model.lm_head.weight.t().contiguous()
    return {"layers": layers, "head_t": _blocks(head_t, chunks), "chunks": chunks}


def _blocks(weight_t: torch.Tensor, chunks: int) -> torch.Tensor:
    """(in, out) → (chunks, in, out/chunks), contiguous; unchanged for one chunk, an out size it does not divide,
    or a matrix under BLOCK_MIN elements (each batched product is a parallel region: on a busy machine, waiting
    for a descheduled thread costs more than a small matrix saves)."""
    k, n = weight_t.shape
    if chunks == 1 or n % chunks or weight_t.numel() < BLOCK_MIN:
        return weight_t
    return weight_t.reshape(k, chunks, n // chunks).permute(1, 0, 2).contiguous()


def _fuse(layer) -> dict:
    """The layer's matrices transposed to (in, out), contiguous: MKL's matrix-vector product reads that layout
    ~20% faster than transformers' (out, in) on this class of CPU (measured: 31 vs 38 ms per SmolLM2-sized pass),
    with query/key/value and gate/up each concatenated into one matrix."""
    attn, mlp = layer.self_attn, layer.mlp

    def cat(*mods):
        weight = torch.cat([m.weight for m in mods]).t().contiguous()
        if all(m.bias is None for m in mods):
            return weight, None
        return weight, torch.cat([m.bias if m.bias is not None else m.weight.new_zeros(m.weight.shape[0])
                                  for m in mods])

    qkv, qkv_bias = cat(attn.q_proj, attn.k_proj, attn.v_proj)
    gate_up, gate_up_bias = cat(mlp.gate_proj, mlp.up_proj)
    o, o_bias = cat(attn.o_proj)
    down, down_bias = cat(mlp.down_proj)
    return {"qkv": qkv, "qkv_bias": qkv_bias, "o": o, "o_bias": o_bias, "gate_up": gate_up,
            "gate_up_bias": gate_up_bias, "down": down, "down_bias": down_bias,
            "norm1": layer.input_layernorm.weight, "eps1": layer.input_layernorm.variance_epsilon,
            "norm2": layer.post_attention_layernorm.weight, "eps2": layer.post_attention_layernorm.variance_epsilon}


def _mm(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ W (+ bias) for W in (in, out) layout, or in column blocks (chunks, in, out/chunks): one batched product,
    the blocks put side by side again (each output is the same dot product either way)."""
    if weight_t.dim() == 2:
        out = x @ weight_t
    else:
        chunks, k, n = weight_t.shape
        flat = x.reshape(-1, k)
        out = torch.bmm(flat.expand(chunks, *flat.shape), weight_t).transpose(0, 1).reshape(*x.shape[:-1], chunks * n)
    return out if bias is None else out + bias


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    if x.dtype == torch.float32:  # torch's fused kernel: the same numbers in fp32 (checked), one call instead of six
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    # As LlamaRMSNorm: statistics in fp32, scaled by the weight in the input dtype.
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin


def _attention_mask(mask: torch.Tensor | None, past: int, q: int) -> torch.Tensor | None:
    """(rows, 1, q, past+q) bool (True = attend) from a (rows, past+q) padding mask; None when nothing is padded."""
    if mask is None:
        return None
    allowed = mask[:, None, None, :].bool()
    if q == 1:
        return allowed
    causal = torch.ones(q, past + q, dtype=torch.bool, device=mask.device).tril(past)
    return allowed & causal
