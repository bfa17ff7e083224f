"""PNG plots of each metric against each swept parameter (matplotlib, Agg backend)."""
from __future__ import annotations

import math
from pathlib import Path

NUMERIC_TYPES = (int, float)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def metric_vs_param(rows: list[dict], metrics: list[str], params: list[str], folder: Path) -> list[Path]:
    """One PNG per (metric, parameter): every output as a point, the mean per value as a line.
    rows: [{"params": {...}, "values": {metric: float|None}}]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    # One figure, cleared between plots: creating a figure and laying it out costs more than drawing.
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=90)
    fig.subplots_adjust(left=0.16, right=0.97, top=0.9, bottom=0.22)
    try:
        for metric in metrics:
            for param in params:
                pairs = [(r["params"].get(param), r["values"].get(metric)) for r in rows]
                pairs = [(x, y) for x, y in pairs if x is not None and y is not None and math.isfinite(y)]
                if not pairs:
                    continue
                ax.clear()
                _draw(ax, pairs, metric, param)
                path = folder / f"{_safe(metric)}__vs__{_safe(param)}.png"
                fig.savefig(path, bbox_inches="tight", pad_inches=0.15)  # long labels are not cropped
                out.append(path)
    finally:
        plt.close(fig)
    return out


def _draw(ax, pairs: list[tuple], metric: str, param: str) -> None:
    """Every output as a point; the mean per parameter value as a line."""
    numeric = all(isinstance(x, NUMERIC_TYPES) and not isinstance(x, bool) for x, _ in pairs)
    labels = sorted({x for x, _ in pairs}) if numeric else sorted({str(x) for x, _ in pairs})
    pos = {v: (v if numeric else i) for i, v in enumerate(labels)}
    xs = [pos[x if numeric else str(x)] for x, _ in pairs]
    ys = [y for _, y in pairs]
    ax.scatter(xs, ys, s=14, alpha=0.6)
    means = []
    for v in labels:
        at = [y for x, y in zip(xs, ys) if x == pos[v]]
        means.append(sum(at) / len(at))
    ax.plot([pos[v] for v in labels], means, color="C1", marker="o", label="mean")
    if not numeric:
        ax.set_xticks(range(len(labels)), [str(v)[:18] for v in labels], rotation=20, ha="right")
    ax.set_xlabel(param)
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} vs {param}", fontsize=10)
    ax.legend(fontsize=8)


def waveform_and_spectrogram(audio_path: Path, target: Path) -> Path:
    """One PNG with the waveform above the log spectrogram, for the gallery."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import soundfile as sf

    wave, sr = sf.read(str(audio_path), dtype="float32", always_2d=True)
    wave = wave.mean(axis=1)  # (n,)
    t = np.arange(len(wave)) / sr
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(6, 3.6), dpi=100, sharex=True)
    a1.plot(t, wave, linewidth=0.5)
    a1.set_ylim(-1, 1)
    a1.set_ylabel("amplitude")
    a2.specgram(wave + 1e-9, NFFT=512, Fs=sr, noverlap=384, cmap="magma")
    a2.set_ylabel("Hz")
    a2.set_xlabel("seconds")
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target)
    plt.close(fig)
    return target
