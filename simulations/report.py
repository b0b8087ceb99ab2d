"""``report.md`` and its PNG plots for a simulation result (matplotlib, Agg backend).

Three plots a person would rather look at than read: cumulative regret per policy (lower is
better), mean expected reward over rounds with the oracle's as a ceiling, and per-group mean
reward bars (one panel per group attribute).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from simulations.extras import require
from simulations.logs import atomic_write_text
from simulations.runner import SimulationResult

# One colour per policy, stable across plots and runs.
COLORS = {
    "uniform": "#9e9e9e",
    "best-global": "#795548",
    "egreedy": "#ff9800",
    "linucb": "#2196f3",
    "lints": "#e91e63",
    "lints-cf": "#9c27b0",
    "oracle": "#212121",
}


def write_report(result: SimulationResult, out_dir: str | Path) -> Path:
    """Write ``report.md``, ``regret.png``, ``reward.png`` and ``groups.png`` into ``out_dir``.

    Returns the path of ``report.md``.
    """
    require("matplotlib").use("Agg")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _plot_curves(
        result.rounds,
        "cumulative_regret",
        "cumulative regret (expected)",
        out / "regret.png",
        skip=("oracle",),
    )
    _plot_curves(
        result.rounds, "mean_reward", "mean expected reward per turn", out / "reward.png", skip=()
    )
    has_groups = _plot_groups(result.summary["policies"], out / "groups.png")
    path = out / "report.md"
    atomic_write_text(path, render_markdown(result.summary, has_groups))
    return path


def render_markdown(summary: dict[str, Any], has_groups: bool = True) -> str:
    """The report's Markdown text (tables, verdict, plot links)."""
    meta, policies = summary["meta"], summary["policies"]
    lines = [
        f"# Simulation: {meta['scenario']}",
        "",
        f"{meta['users']} users x {meta['rounds']} rounds, catalog `{meta['catalog']}` "
        f"({meta['arms']} strategies), seed {meta['seed']}, {meta['seconds']:.1f} s. "
        "Rewards are expected rewards (the true probability of the chosen strategy), so the "
        "comparison carries no reward-noise variance; every policy saw the same users, requests "
        "and random draws.",
        "",
    ]
    if meta.get("best_global"):
        bg = meta["best_global"]
        lines += [
            f"`best-global` serves `{bg['strategy_id']}` to everyone (the best single "
            f"strategy for the population under the {bg['source']}).",
            "",
        ]
    lines += [
        table(policies),
        "",
        *verdict(policies),
        "",
        "## Cumulative regret",
        "",
        "![cumulative regret](regret.png)",
        "",
        "## Reward over time",
        "",
        "![reward over time](reward.png)",
        "",
    ]
    if has_groups:
        lines += [
            "## Per-group reward",
            "",
            "![per-group reward](groups.png)",
            "",
            *group_tables(policies),
        ]
    return "\n".join(lines) + "\n"


def table(policies: dict[str, Any]) -> str:
    """Markdown table, one row per policy, best (lowest) cumulative regret first."""
    head = (
        "| policy | cumulative regret | regret/turn | mean reward | time to personalize "
        "(median turns) | personalized | effective strategies/user |"
    )
    rows = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, m in sorted(policies.items(), key=lambda kv: kv[1]["cumulative_regret"]):
        ttp = m["time_to_personalize"]
        rows.append(
            f"| {name} | {m['cumulative_regret']:,.0f} | {m['regret_per_turn']:.3f} | "
            f"{m['mean_reward']:.3f} | {'never' if ttp is None else f'{ttp:.0f}'} | "
            f"{m['personalized_share']:.0%} | {m['diversity']:.1f} |"
        )
    return "\n".join(rows)


def verdict(policies: dict[str, Any]) -> list[str]:
    """One sentence per personalized policy: does it beat the non-personalized baselines?"""
    out = []
    baselines = [b for b in ("best-global", "uniform") if b in policies]
    for name in ("lints", "linucb", "lints-cf", "egreedy"):
        if name not in policies or not baselines:
            continue
        mine = policies[name]["cumulative_regret"]
        beaten = [b for b in baselines if mine < policies[b]["cumulative_regret"]]
        lost = [b for b in baselines if b not in beaten]
        word = "beats" if not lost else "does **not** beat"
        against = ", ".join(lost or beaten)
        out.append(
            f"- **{name}** {word} {against} on cumulative regret "
            f"({mine:,.0f} vs "
            + ", ".join(f"{b} {policies[b]['cumulative_regret']:,.0f}" for b in baselines)
            + ")."
        )
    return out


def group_tables(policies: dict[str, Any]) -> list[str]:
    first = next(iter(policies.values()))
    lines: list[str] = []
    for attr in first["groups"]:
        levels = list(first["groups"][attr])
        lines += [
            f"### {attr}",
            "",
            "| policy | " + " | ".join(levels) + " | max gap |",
            "|---|" + "---:|" * (len(levels) + 1),
        ]
        for name, m in policies.items():
            vals = [m["groups"][attr][lv]["mean_reward"] for lv in levels]
            lines.append(
                f"| {name} | "
                + " | ".join(f"{v:.3f}" for v in vals)
                + f" | {max(vals) - min(vals):.3f} |"
            )
        lines.append("")
    return lines


def _plot_curves(
    rounds: pl.DataFrame, column: str, ylabel: str, path: Path, skip: tuple[str, ...]
) -> None:
    plt = require("matplotlib.pyplot")

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for name in rounds["policy"].unique(maintain_order=True).to_list():
        if name in skip:
            continue
        r = rounds.filter(pl.col("policy") == name)
        ax.plot(
            r["round"].to_numpy(),
            r[column].to_numpy(),
            label=name,
            color=COLORS.get(name),
            lw=2.2 if name.startswith("lin") else 1.5,
            ls="--" if name in ("oracle", "best-global", "uniform") else "-",
        )
    ax.set_xlabel("round (turns per user)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, ncol=2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _plot_groups(policies: dict[str, Any], path: Path) -> bool:
    plt = require("matplotlib.pyplot")
    import numpy as np

    first = next(iter(policies.values()))
    attrs = list(first["groups"])
    if not attrs:
        return False
    fig, axes = plt.subplots(1, len(attrs), figsize=(5.5 * len(attrs), 4.2), dpi=110, squeeze=False)
    names = list(policies)
    width = 0.8 / len(names)
    for ax, attr in zip(axes[0], attrs, strict=True):
        levels = list(first["groups"][attr])
        x = np.arange(len(levels))
        for k, name in enumerate(names):
            vals = [policies[name]["groups"][attr][lv]["mean_reward"] for lv in levels]
            ax.bar(
                x + (k - (len(names) - 1) / 2) * width,
                vals,
                width,
                label=name,
                color=COLORS.get(name),
            )
        ax.set_xticks(x, levels)
        ax.set_title(attr)
        ax.set_ylabel("mean expected reward")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(names), frameon=False, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 1))  # room for the legend under the panels
    fig.savefig(path)
    plt.close(fig)
    return True
