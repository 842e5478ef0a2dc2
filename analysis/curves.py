#!/usr/bin/python3
"""Training curves of an rlkv run.

    analysis/curves.py SOURCE [--output OUT.png] [--title T]

SOURCE is a run directory (train.output_dir: metrics.jsonl and/or ckpt-<step>.h5), a metrics.jsonl
file, or a checkpoint ckpt-<step>.h5.

Top panels: reward mean, correctness, expected sparsity 1 - mean(p) (with the run's
policy.target_sparsity when the checkpoint's config names one), the sparsity penalty's weight,
length ratio (mean length / reference length) and truncation rate, against the learner step; the
raw per-step values are drawn thin, a centred moving average thick.
Bottom panel (when a checkpoint is available: SOURCE itself, or the newest readable ckpt-<step>.h5
of the directory): the keep probability sigmoid(theta) of every KV head after each step, from
/history/logits, coloured by layer.

For a directory the metrics come from metrics.jsonl (every step, also those after the last
checkpoint), else from the checkpoint's /history. Bad input: one line on stderr starting with
"curves.py:" and exit status 2.
"""

import json
import math
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import head_mask  # noqa: E402
import plot_io  # noqa: E402
from head_mask import SourceError  # noqa: E402

PROG = "curves.py"
DPI = plot_io.DPI
PANELS = {  # for each of head_mask.HISTORY_METRICS: (panel title, y-limits or None)
    "reward_mean": ("reward (mean)", None),
    "correct_mean": ("correctness (mean)", (-0.02, 1.02)),
    "sparsity_expected": ("expected sparsity 1 - mean(p)", (-0.02, 1.02)),
    "penalty_weight": ("penalty weight β'", None),
    "length_ratio": ("length / reference length", None),
    "truncated_rate": ("truncation rate", (-0.02, 1.02)),
}
METRICS = tuple((key,) + PANELS[key] for key in head_mask.HISTORY_METRICS)  # (key, title, y-limits)
MAX_LINE = 1 << 20
MAX_STEP = 1 << 53  # every integer up to 2^53 is a distinct float64, as the plotted steps must be


def figure_pixels(with_trajectories):
    """(width, height) of the image in pixels."""
    return (1200, 1000) if with_trajectories else (1200, 600)


class Metrics:
    def __init__(self, source, steps, columns):
        self.source = source    # file the metrics came from
        self.steps = steps      # float64 [N], strictly increasing
        self.columns = columns  # key -> float64 [N] (NaN where not recorded)


def _warn(msg):
    sys.stderr.write(f"{PROG}: warning: {msg}\n")


def read_metrics_jsonl(path):
    """metrics.jsonl -> Metrics. Blank lines are skipped; a torn last line (a killed run: no newline
    after it, and not JSON) is dropped with a warning; when a step appears twice (an older file from a
    resumed run) the later line wins. Every number must be finite (NaN is written as null)."""
    import numpy as np
    data = head_mask._read_bytes(path, "metrics.jsonl")
    if data[:8] in (b"RLKVCKPT", head_mask.HDF5_SIGNATURE):
        raise SourceError(f"{path}: an HDF5 file, not a metrics.jsonl")
    text = head_mask._decode_text(data, path)
    lines = text.split("\n")
    rows = {}
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        last = lineno == len(lines) and not text.endswith("\n")
        try:
            obj = json.loads(line, parse_constant=head_mask._reject_constant)
        except (ValueError, RecursionError):
            if _complete_with_constant(line):  # whole, but holds NaN or Infinity: bad, not torn
                raise SourceError(f"{path}:{lineno}: holds NaN or Infinity, which JSON does not allow "
                                  "(a missing value is null)") from None
            if last and rows:
                _warn(f"{path}:{lineno}: ignoring an incomplete last line (run killed while writing?)")
                continue
            raise SourceError(f"{path}:{lineno}: not a JSON object (expected one metrics object per line)") from None
        if not isinstance(obj, dict):
            raise SourceError(f"{path}:{lineno}: not a JSON object (expected one metrics object per line)")
        step = obj.get("step")
        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise SourceError(f"{path}:{lineno}: no non-negative integer 'step'")
        if step > MAX_STEP:
            raise SourceError(f"{path}:{lineno}: 'step' is {json.dumps(step)[:40]}, more than 2^53")
        row = {}
        for key, _, _ in METRICS:
            v = obj.get(key)
            if v is None:  # missing, or NaN written as null
                row[key] = math.nan
                continue
            row[key] = head_mask.finite_number(v)
            if row[key] is None:
                raise SourceError(f"{path}:{lineno}: '{key}' is {json.dumps(v)[:40]}, expected a finite number")
        rows[step] = row
    if not rows:
        raise SourceError(f"{path}: no metrics (empty file)")
    steps = sorted(rows)
    cols = {key: np.array([rows[s][key] for s in steps], dtype=np.float64) for key, _, _ in METRICS}
    return Metrics(path, np.array(steps, dtype=np.float64), cols)


def _complete_with_constant(line):
    """Whether a line that strict JSON refused parses once NaN, Infinity and -Infinity are allowed."""
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return False
    return True


def target_sparsity(ck):
    """policy.target_sparsity from the checkpoint's INI text, or None."""
    cfg = ck.attrs.get("config") if ck is not None else None
    if not isinstance(cfg, str):
        return None
    section = ""
    for raw in cfg.splitlines():
        line = raw.split("#", 1)[0].strip()
        m = re.match(r"^\[([^\]]+)\]$", line)
        if m:
            section = m.group(1).strip()
            continue
        m = re.match(r"^([A-Za-z0-9_.]+)\s*=\s*(.*)$", line)
        if m:
            key = m.group(1) if "." in m.group(1) else f"{section}.{m.group(1)}"
            if key == "policy.target_sparsity":
                try:
                    v = float(m.group(2))
                except ValueError:
                    return None
                return v if 0 < v <= 1 else None
    return None


def load(source):
    """-> (Metrics, checkpoint or None). Raises SourceError."""
    if not os.path.exists(source):
        raise SourceError(f"{source}: no such file or directory")
    if not os.path.isdir(source) and not os.path.isfile(source):
        raise SourceError(f"{source}: not a regular file or directory (a FIFO or a device?)")
    if os.path.isdir(source):
        ck = None
        for path in head_mask.newest_checkpoint(source):
            try:
                ck = head_mask.read_checkpoint(path, history=True)
                break
            except SourceError as e:
                _warn(f"skipping {e}")
        mpath = os.path.join(source, "metrics.jsonl")
        if os.path.isfile(mpath):
            return read_metrics_jsonl(mpath), ck
        if ck is None:
            raise SourceError(f"{source}: no metrics.jsonl and no readable ckpt-<step>.h5 in the directory")
        return _checkpoint_metrics(ck), ck
    if head_mask.is_checkpoint_file(source) or source.endswith(".h5"):
        ck = head_mask.read_checkpoint(source, history=True)
        return _checkpoint_metrics(ck), ck
    return read_metrics_jsonl(source), None


def _checkpoint_metrics(ck):
    import numpy as np
    h = ck.history
    if h["step"].shape[0] == 0:
        raise SourceError(f"{ck.path}: the checkpoint's history is empty (saved before the first step)")
    return Metrics(ck.path, h["step"].astype(np.float64), {key: h[key] for key, _, _ in METRICS})


def _smooth(y, window):
    """Centred moving average ignoring NaN; NaN where the window holds no value."""
    import numpy as np
    ok = np.isfinite(y)
    v = np.where(ok, y, 0.0)
    k = np.ones(window)
    s = np.convolve(v, k, mode="same")
    c = np.convolve(ok.astype(np.float64), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, s / np.maximum(c, 1), np.nan)


def render(metrics, ck, output, title=None, source=None):
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    traj = ck is not None and ck.history["step"].shape[0] > 0
    wpx, hpx = figure_pixels(traj)
    fig = plt.figure(figsize=(wpx / DPI, hpx / DPI), dpi=DPI, layout="constrained")
    grid = fig.add_gridspec(3 if traj else 2, 3, height_ratios=[1, 1, 1.9] if traj else [1, 1])

    x = metrics.steps
    n = len(x)
    window = max(1, min(51, n // 25)) | 1  # odd
    target = target_sparsity(ck)
    for i, (key, label, ylim) in enumerate(METRICS):
        ax = fig.add_subplot(grid[i // 3, i % 3])
        y = metrics.columns[key]
        if not np.any(np.isfinite(y)):
            ax.text(0.5, 0.5, "not recorded", transform=ax.transAxes, ha="center", va="center", color="0.4")
        else:
            color = f"C{i}"
            if window > 1:
                ax.plot(x, y, color=color, alpha=0.3, linewidth=0.8)
                ax.plot(x, _smooth(y, window), color=color, linewidth=2.0)
            else:
                ax.plot(x, y, color=color, linewidth=1.5, marker="o" if n <= 30 else None, markersize=3)
            if key == "sparsity_expected" and target is not None:
                ax.axhline(target, color="0.3", linestyle="--", linewidth=1.0)
                ax.text(0.02, target, f" target {target:g}", transform=ax.get_yaxis_transform(),
                        va="bottom", ha="left", fontsize=8, color="0.3")
            if key == "penalty_weight" and np.nanmin(y) < 0 < np.nanmax(y):
                ax.axhline(0.0, color="0.3", linewidth=0.8)
            if ylim is not None:
                ax.set_ylim(*ylim)
        ax.set_title(label, fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if n:
            ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1)
        if i // 3 == 1:
            ax.set_xlabel("step", fontsize=9)

    if traj:
        ax = fig.add_subplot(grid[2, :])
        steps = ck.history["step"]
        p = head_mask.sigmoid(ck.history["logits"])  # [N, L, H]
        N, L, H = p.shape
        few_layers = L <= 10
        cmap = plt.get_cmap("tab10") if few_layers else plt.get_cmap("viridis")
        styles = ["-", "--", ":", "-."]
        for l in range(L):
            color = cmap(l) if few_layers else cmap(l / max(1, L - 1))
            for h in range(H):
                ax.plot(steps, p[:, l, h], color=color, linewidth=1.4 if L * H <= 64 else 0.7,
                        alpha=0.95 if L * H <= 64 else 0.6,
                        linestyle=styles[h % 4] if H <= 4 else "-")
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlim(steps[0], steps[-1] if steps[-1] > steps[0] else steps[0] + 1)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel("keep probability sigmoid(θ)", fontsize=9)
        ax.set_title(f"per-head keep probability, {L} layers x {H} KV heads "
                     f"({os.path.basename(ck.path)}, /history/logits)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        if few_layers:
            handles = [Line2D([], [], color=cmap(l), linewidth=2, label=f"layer {l}") for l in range(L)]
            leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.005, 1.0), fontsize=8,
                            title="colour", title_fontsize=8, frameon=False)
            if H <= 4:
                ax.add_artist(leg)
                hh = [Line2D([], [], color="0.2", linestyle=styles[h], linewidth=1.5, label=f"KV head {h}")
                      for h in range(H)]
                ax.legend(handles=hh, loc="lower left", bbox_to_anchor=(1.005, 0.0), fontsize=8,
                          title="line", title_fontsize=8, frameon=False, handlelength=2.5)
        else:
            sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, L - 1))
            fig.colorbar(sm, ax=ax, pad=0.01, fraction=0.03).set_label("layer", fontsize=9)

    head = title or f"rlkv training curves: {source or metrics.source}"
    info = []
    if ck is not None:
        for key, fmt in (("model", "{}"), ("run_id", "run {}"), ("step", "step {}")):
            v = ck.attrs.get(key)
            if v is not None:
                info.append(fmt.format(v))
    info.append(f"{n} steps from {os.path.basename(metrics.source)}")
    fig.suptitle(head + "\n" + ", ".join(info), fontsize=11)
    plot_io.save_png(fig, output)
    plt.close(fig)
    return traj



def main(argv=None):
    p = plot_io.image_parser(PROG, __doc__, "run directory, metrics.jsonl or ckpt-<step>.h5", "curves.png")
    a = plot_io.parse_image_args(p, sys.argv[1:] if argv is None else argv)
    try:
        metrics, ck = load(a.source)
    except SourceError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    status, traj = plot_io.write_image(PROG, a.output, lambda: render(metrics, ck, a.output, a.title, a.source))
    if status:
        return status
    print(f"wrote {a.output}: {len(metrics.steps)} steps from {metrics.source}"
          + (f", head trajectories from {ck.path}" if traj else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
