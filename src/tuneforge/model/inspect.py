"""What a model is made of: the block tree (embedding → encoder layers → attention / feed-forward → head),
parameter counts per block, and FLOPs per token."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())


def embedding_params(model) -> int:
    """Parameters of the embedding tables (word, position, token type); they cost no matmul FLOPs."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Embedding))


def non_embedding_params(model) -> int:
    return count(model) - embedding_params(model)


@dataclass
class Block:
    name: str
    kind: str
    params: int
    repeat: int = 1
    children: list[Block] = field(default_factory=list)


def _kind(name: str, module: torch.nn.Module) -> str:
    low = name.lower()
    for key, kind in (("norm", "normalisation"), ("embed", "embedding"), ("attention", "attention"), ("intermediate", "feed-forward"),
                      ("output", "projection"), ("encoder", "encoder"), ("pooler", "pooler"), ("classifier", "head"),
                      ("cls", "decoder (MLM head)"), ("lm_head", "decoder (MLM head)"), ("layer", "layer")):
        if key in low:
            return kind
    return type(module).__name__


def blocks(module: torch.nn.Module, depth: int = 4) -> list[Block]:
    """Child blocks to `depth` levels; a ModuleList of identical layers shows as one block × N."""
    out = []
    for child_name, child in module.named_children():
        if isinstance(child, torch.nn.ModuleList) and len(child):
            first = child[0]
            out.append(Block(f"{child_name}[0..{len(child) - 1}]", "encoder layer", count(first), len(child),
                             blocks(first, depth - 1) if depth > 1 else []))
            continue
        if count(child) == 0:
            continue
        kids = blocks(child, depth - 1) if depth > 1 else []
        kind = _kind(child_name, child)
        if child_name == "decoder" or isinstance(child, torch.nn.Linear) and child.out_features > 4 * child.in_features:
            kind = "decoder → vocabulary logits"
        out.append(Block(child_name, kind, count(child), 1, kids))
    return out


def flops_per_token(model, seq_len: int = 128) -> dict[str, float]:
    """Forward FLOPs per token: 2 per matmul weight, plus attention scores and mixing (4 × T × d per layer).

    `training_6n` is the usual 6 × non-embedding parameters estimate (`mlm_training_flops` is what MFU uses).
    """
    cfg = model.config
    layers, hidden = getattr(cfg, "num_hidden_layers", 0), getattr(cfg, "hidden_size", 0)
    matmul = non_embedding_params(model)
    out_emb = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out_emb is not None and out_emb.weight is model.get_input_embeddings().weight:
        matmul += out_emb.weight.numel()  # a tied decoder still multiplies by the vocabulary matrix
    attention = 4 * layers * seq_len * hidden
    forward = 2 * matmul + attention
    return {"forward": float(forward), "training": float(3 * forward), "attention": float(attention),
            "training_6n": float(6 * non_embedding_params(model)), "seq_len": seq_len}


def mlm_training_flops(model, seq_len: int, mask_rate: float) -> float:
    """Training FLOPs per token that masked-LM on `SparseMLM` actually executes: forward + backward (3 × the
    forward) of the encoder's matmuls and attention on every token, and of the MLM head (transform and the
    vocabulary projection) on the masked share of tokens only. The MFU numerator; `training_6n` above counts
    the head on every token and the vocabulary projection on none."""
    cfg = model.config
    layers, hidden = getattr(cfg, "num_hidden_layers", 0), getattr(cfg, "hidden_size", 0)
    head = next((getattr(model, a) for a in ("cls", "lm_head") if isinstance(getattr(model, a, None), torch.nn.Module)),
                None)
    head_params = count(head) if head is not None else 0  # a tied decoder's weight counts here: it is multiplied
    base = getattr(model, model.base_model_prefix, model)
    encoder = non_embedding_params(base)
    attention = 4 * layers * seq_len * hidden
    return float(3 * (2 * encoder + attention + mask_rate * 2 * head_params))


def clm_training_flops(model, seq_len: int) -> float:
    """Training FLOPs per token of a causal LM (forward + backward = 3 × forward): 2 per weight of every matmul
    that runs on every token — the blocks and the vocabulary projection, a tied embedding counted once, as the
    LM head it is — plus attention scores and mixing (4 × T × d per layer; PaLM's 6N + 12·L·d·T). The MFU
    numerator."""
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    matmul = non_embedding_params(model)
    out_emb = model.get_output_embeddings()
    if out_emb is not None and out_emb.weight is model.get_input_embeddings().weight:
        matmul += out_emb.weight.numel()  # tied: the embedding table is also the head's weight matrix
    return float(3 * (2 * matmul + 4 * layers * seq_len * hidden))


def _fmt(n: float) -> str:
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def render_tree(model, title: str, seq_len: int = 128):
    """A rich Tree of the blocks, with totals and FLOPs per token in the title lines."""
    from rich.tree import Tree

    total = count(model)
    flops = flops_per_token(model, seq_len)
    tree = Tree(f"[bold]{title}[/] — {type(model).__name__}: {_fmt(total)} parameters "
                f"({_fmt(embedding_params(model))} in embeddings, {_fmt(non_embedding_params(model))} other)")

    def add(node, block: Block) -> None:
        times = f" × {block.repeat} = {_fmt(block.params * block.repeat)}" if block.repeat > 1 else ""
        branch = node.add(f"[cyan]{block.name}[/] [dim]{block.kind}[/]  {_fmt(block.params)}{times}")
        for child in block.children:
            add(branch, child)

    for block in blocks(model):
        add(tree, block)
    tree.add(f"[bold]FLOPs per token[/] (sequence {seq_len}): forward {_fmt(flops['forward'])} "
             f"(attention {_fmt(flops['attention'])}), training ≈ {_fmt(flops['training'])}, "
             f"6 × non-embedding params = {_fmt(flops['training_6n'])}")
    return tree
