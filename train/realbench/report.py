"""Tables of a ``run_suite`` result: rich tables for the terminal, Markdown for the README, JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .suite import GROUPS

COLUMNS = (  # metric, header, format
    ("psnr_y", "PSNR-Y", "{:.2f}"),
    ("ssim_y", "SSIM-Y", "{:.4f}"),
    ("niqe", "NIQE ↓", "{:.2f}"),
    ("sharpness", "sharpness", "{:.2f}"),
    ("grid", "grid", "{:.1f}"),
    ("gain", "gain", "{:.2f}"),
    ("flicker", "flicker", "{:+.2f}"),
)

LEGEND = ("PSNR-Y/SSIM-Y: against the HR frames (border = scale cropped). NIQE: no-reference naturalness, "
          "lower = more natural. sharpness: mean |Laplacian| of Y over the HR's (1 = as detailed as the truth). "
          "grid: pixel-shuffle checkerboard score (photos ~2). gain: the change the condition makes to the output, "
          "RMS, over bicubic's (>1 amplifies the damage). flicker: warped frame-to-frame residual of Y (code "
          "values) minus the HR's (0 = as stable as the truth). 'all' = mean of the clip and image means.")


def _fmt(value: float | None, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _label(name: str) -> str:
    return name if name == "bicubic" else Path(name).stem


def print_tables(result: dict, console: Console | None = None) -> None:
    if console is None:
        console = Console()
        if not console.is_terminal:  # a pipe or a file: rich would squeeze the columns into 80
            console = Console(width=140)
    for cond in result["conditions"]:
        table = Table(title=f"{cond}: x{result['scale']}{', quick subset' if result['quick'] else ''}")
        table.add_column("model")
        table.add_column("group")
        for _, header, _ in COLUMNS:
            table.add_column(header, justify="right")
        for i, row in enumerate(result["rows"]):
            cell = result["metrics"][row["name"]][cond]
            for group in ("all", *GROUPS):
                if group not in cell:
                    continue
                style = None if group == "all" else "dim"
                table.add_row(_label(row["name"]) if group == "all" else "", group,
                              *(_fmt(cell[group][m], f) for m, _, f in COLUMNS), style=style,
                              end_section=group == GROUPS[-1] and i < len(result["rows"]) - 1)
        console.print(table)
    console.print(LEGEND, style="dim")
    seconds = ", ".join(f"{_label(r['name'])} {r['model_seconds']:.0f} s ({r['frames']} frames)"
                        for r in result["rows"])
    console.print(f"upscaling: {seconds}; whole run {result['seconds']:.0f} s", style="dim")


def markdown(result: dict, group: str = "all") -> str:
    """One Markdown table, a line per condition and row (the README's form)."""
    head = "| condition | model | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 2)]
    for cond in result["conditions"]:
        for row in result["rows"]:
            cell = result["metrics"][row["name"]][cond].get(group)
            if cell is None:
                continue
            lines.append(f"| {cond} | {_label(row['name'])} | "
                         + " | ".join(_fmt(cell[m], f) for m, _, f in COLUMNS) + " |")
    return "\n".join(lines)


def write_json(result: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
