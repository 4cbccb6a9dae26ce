"""Markdown table rows (the README's Speed tables) from `upscale bench --json` reports.

    python scripts/bench_table.py bench-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("device", "model", "input → output", "frames", "precision", "YUV↔RGB", "codec", "bare fps",
           "end-to-end fps", "ratio", "CPU ceiling", "sequential fps", "speed-up", "bound by", "GPU peak MB")


def row(r: dict) -> list[str]:
    seq = r.get("sequential")
    model = r["model"].split(" (")[0] + (" compiled" if r.get("compile") else "")
    size = f"{r['input'][0]}×{r['input'][1]} → {r['output'][0]}×{r['output'][1]}"
    gpu = r["memory"].get("gpu_peak_mb")

    def f(v: float | None, spec: str = "{:.2f}") -> str:
        return "-" if v is None else spec.format(v)

    return [r["device"], model, size, str(r["end_to_end"]["frames"]), r["precision"],
            r.get("colour_convert", "swscale"), r["codec"], f(r["bare"]["fps"]), f(r["end_to_end"]["fps"]),
            f(r["ratio"]), f(r.get("cpu_ceiling")), f(seq and seq["fps"]), f(r.get("speedup"), "{:.2f}×"),
            r["bound_by"], f(gpu, "{:.0f}")]


def main(paths: list[str]) -> None:
    print("| " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            print(f"<!-- {path}: {exc} -->")
            continue
        print("| " + " | ".join(row(report)) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
