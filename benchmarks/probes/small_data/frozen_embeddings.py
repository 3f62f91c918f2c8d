"""Frozen minilm-l6 sentence vectors (mean pooling, L2-normalized, as all-MiniLM-L6-v2 was trained) + logistic
regression on SST-2 subsets (data seed 0), scored on the 872 dev rows: what the body knows before any fine-tuning.

Usage (repository root): PYTHONPATH=. python benchmarks/probes/small_data/frozen_embeddings.py [model alias or folder]
"""
from __future__ import annotations

import sys

import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from benchmarks.common import sst2_frames, sst2_subset
from tuneforge.model.resolve import resolve_model


def main() -> None:
    torch.set_num_threads(1)
    path = resolve_model(sys.argv[1] if len(sys.argv) > 1 else "minilm-l6")
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()

    @torch.no_grad()
    def embed(texts: list[str]):
        out = []
        for i in range(0, len(texts), 64):
            batch = tokenizer(texts[i:i + 64], padding=True, truncation=True, max_length=128, return_tensors="pt")
            hidden, mask = model(**batch).last_hidden_state, batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
        return torch.cat(out).numpy()

    train, dev = sst2_frames()
    dev_x, dev_y = embed(list(dev.text)), dev.label.astype(str)
    for rows in (500, 2000):
        part = sst2_subset(train, rows, 0)
        x = embed(list(part.text))
        for c in (0.3, 1, 3, 10):
            clf = LogisticRegression(C=c, max_iter=3000).fit(x, part.label.astype(str))
            print(f"rows {rows}  C {c:<4}  dev accuracy {(clf.predict(dev_x) == dev_y).mean():.4f}", flush=True)


if __name__ == "__main__":
    main()
