"""The PNG plots of a search report: the optimisation history (each trial's value and the best so far), the
parameter importances, and parallel coordinates (one line per finished trial across the searched values). They draw
plain trial rows (recipes/tune_outputs.py builds them), so this module needs nothing from Optuna."""
from __future__ import annotations

import math
from pathlib import Path

from tuneforge.evaluate.fonts import with_cjk_fonts
from tuneforge.evaluate.plots import _pyplot, save_figure


def _best_of(values: list[float], direction: str) -> float:
    return min(values) if direction == "minimize" else max(values)


@with_cjk_fonts
def plot_history(rows: list[dict], metric: str, direction: str, out: Path) -> Path | None:
    """Trial number against its value: finished trials as dots, pruned ones (their best value when stopped) as
    crosses, the defaults as a star, and the best so far as a step line. None when no trial has a value."""
    done = [(r["number"], r["value"]) for r in rows if r["state"] == "complete" and r["value"] is not None]
    stopped = [(r["number"], _best_of([v for _, v in r["intermediate"]], direction)) for r in rows
               if r["state"] in ("pruned", "stopped") and r["intermediate"]]
    if not done and not stopped:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.6), dpi=110)
    if done:
        ax.plot(*zip(*done), "o", color="tab:blue", label="finished")
        best, line = None, []
        for number, value in sorted(done):
            best = value if best is None else _best_of([best, value], direction)
            line.append((number, best))
        ax.step(*zip(*line), where="post", color="tab:red", lw=1.5, label="best so far")
    if stopped:
        ax.plot(*zip(*stopped), "x", color="tab:gray", label="pruned (value when stopped)")
    defaults = [(r["number"], r["value"]) for r in rows if r["defaults"] and r["value"] is not None]
    if defaults:
        ax.plot(*zip(*defaults), "*", ms=14, color="tab:orange", label="defaults")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"validation {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out)


@with_cjk_fonts
def plot_importances(importances: dict[str, float], out: Path) -> Path | None:
    """Horizontal bars, most important at the top; None without importances."""
    if not importances:
        return None
    plt = _pyplot()
    names = sorted(importances, key=importances.get)
    fig, ax = plt.subplots(figsize=(6.5, 0.5 * len(names) + 1.4), dpi=110)
    ax.barh(names, [importances[n] for n in names], color="tab:blue")
    for i, name in enumerate(names):
        ax.text(importances[name], i, f" {importances[name]:.2f}", va="center", fontsize=8)
    ax.set_xlabel("importance (share of the value's variance, fANOVA)")
    ax.set_xlim(0, max(1.0, max(importances.values()) * 1.15))
    return save_figure(fig, out)


def _axis(values: list, log: bool) -> tuple[list[float], list[str]]:
    """Values on a 0..1 axis (log scale for log ranges, evenly spaced categories for choices) and the tick labels
    of its bottom and top."""
    if any(isinstance(v, str) or v is None or isinstance(v, bool) for v in values):
        cats = sorted({str(v) for v in values})
        scale = max(len(cats) - 1, 1)
        return [cats.index(str(v)) / scale for v in values], [cats[0], cats[-1]]
    nums = [math.log10(v) if log else float(v) for v in values]
    low, high = min(nums), max(nums)
    span = (high - low) or 1.0
    ends = [10 ** low, 10 ** high] if log else [low, high]
    return [(x - low) / span for x in nums], [f"{e:.3g}" for e in ends]


@with_cjk_fonts
def plot_parallel(rows: list[dict], params: list[tuple[str, bool]], metric: str, out: Path) -> Path | None:
    """One line per finished trial (the defaults too, at their resolved values) through an axis per searched key
    (`params`: (name, log scale)) and the metric, coloured by the metric. None with fewer than two such trials."""
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None
            and all(name in r["values"] for name, _ in params)]
    if len(done) < 2 or not params:
        return None
    plt = _pyplot()
    columns = [_axis([r["values"][name] for r in done], log) for name, log in params]
    columns.append(_axis([r["value"] for r in done], False))
    labels = [name.split(".")[-1] for name, _ in params] + [metric]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.6 * len(labels)), 3.8), dpi=110)
    colour = plt.get_cmap("viridis")
    for i, _ in enumerate(done):
        ax.plot(range(len(labels)), [col[0][i] for col in columns], color=colour(columns[-1][0][i]), alpha=0.8)
    for x, (_, ends) in enumerate(columns):
        ax.vlines(x, 0, 1, color="black", lw=0.8)
        ax.text(x, -0.05, ends[0], ha="center", va="top", fontsize=7)
        ax.text(x, 1.05, ends[1], ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    ax.tick_params(axis="x", pad=14)
    ax.set_yticks([])
    ax.set_ylim(-0.15, 1.15)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return save_figure(fig, out)
