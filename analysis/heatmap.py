#!/usr/bin/python3
"""Layers x KV-heads heatmap of head scores, optionally outlining the heads a mask keeps full.

    analysis/heatmap.py SOURCE [--sparsity S] [--output OUT.png] [--title T] [--value prob|score]

SOURCE is an rlkv checkpoint (ckpt-<step>.h5; cells = keep probability sigmoid(theta)), a run
directory (its newest ckpt-<step>.h5), an export/import directory holding adapter_weights.tsv
(RLKV-SGLang) or full_attention_heads.tsv (DuoAttention), such a .tsv file, or an rlkv-head-mask/v1
JSON export (cells = the scores).

--value prob   (default) keep probability sigmoid(theta) for a checkpoint; for score tables and JSON,
               the scores clipped to [0, 1] (what the mask rule ranks).
--value score  the stored value: the logit theta for a checkpoint (diverging colour scale around 0),
               the raw, unclipped score for tables and JSON.
--sparsity S   outline the heads kept FULL by the mask at sparsity S (fraction of KV heads
               compressed; analysis/head_mask.py, the same rule as `rlkv eval --mask ... --sparsity S`).
               Without it, a JSON export's stored `full_attention` mask is outlined.

Rows are layers, columns KV heads; cells carry their values when the grid is small enough to read.
The image is written at 100 dpi with a size that depends only on the grid (see `figure_pixels`).
Bad input: one line on stderr starting with "heatmap.py:" and exit status 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import head_mask  # noqa: E402
import plot_io  # noqa: E402

PROG = "heatmap.py"
DPI = plot_io.DPI
OUTLINE = "#e8112d"
GRID_MAX_HEADS = 1024  # white lines between the cells up to this many heads; none above


def figure_pixels(num_layers, num_kv_heads):
    """(width, height) in pixels of the heatmap of an L x H grid: grows with the grid, capped."""
    width = min(1400, max(560, 250 + 62 * num_kv_heads))
    height = min(1300, max(420, 150 + 30 * num_layers))
    return width, height


def annotate_cells(num_layers, num_kv_heads):
    """Whether cells carry their value as text (small grids only)."""
    return num_layers <= 40 and num_kv_heads <= 16



def outlines(mask, inset, color, linewidth):
    """The outline of every kept head (mask == 1) as one PolyCollection: one closed square per head,
    inset by `inset` on each side of its cell, drawn as one Rectangle patch per head would be (one
    artist instead of one per head: a 1024 x 1024 grid at sparsity 0.5 keeps 524,288)."""
    import numpy as np
    from matplotlib.collections import PolyCollection
    rows, cols = np.nonzero(mask)
    lo, hi = -0.5 + inset, 0.5 - inset
    corners = np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]])
    verts = np.stack([cols, rows], axis=1)[:, None, :].astype(np.float64) + corners[None, :, :]
    return PolyCollection(verts, closed=True, facecolors="none", edgecolors=color, linewidths=linewidth,
                          joinstyle="miter")


def _parse_args(argv):
    p = plot_io.image_parser(PROG, __doc__, "checkpoint, run directory, .tsv file or directory, or JSON export",
                             "heatmap.png")
    p.add_argument("--sparsity", type=float, metavar="S",
                   help="outline the heads kept full at sparsity S (fraction of KV heads compressed)")
    p.add_argument("--value", choices=("prob", "score"), default="prob",
                   help="prob (default): keep probability / clipped score; score: logit / raw score")
    a = plot_io.parse_image_args(p, argv)
    if a.sparsity is not None and not (0.0 <= a.sparsity <= 1.0):
        p.error(f"--sparsity must be in [0, 1], got {a.sparsity}")
    return a


def _short(path, parts=3):
    comps = os.path.normpath(path).split(os.sep)
    return os.sep.join(comps[-parts:])


def describe(src):
    """One line naming the source."""
    kinds = {"checkpoint": "rlkv checkpoint", "rlkv-sglang": "RLKV-SGLang scores",
             "duo": "DuoAttention pattern", "json": "rlkv-head-mask/v1"}
    text = f"{_short(src.path)} ({kinds[src.kind]}"
    if src.kind == "checkpoint":
        if src.model:
            text += f", {src.model}"
        if src.step is not None:
            text += f", step {src.step}"
    elif src.model:
        text += f", {src.model}"
    return text + ")"


def cell_values(src, value):
    """(values [L, H], colour-scale limits, colormap name, colorbar label)."""
    import numpy as np
    if src.kind == "checkpoint":
        if value == "prob":
            return src.values, (0.0, 1.0), "viridis", "keep probability sigmoid(θ)"
        lim = max(1e-9, float(np.max(np.abs(src.logits))))
        return src.logits.astype(np.float64), (-lim, lim), "RdBu_r", "logit θ"
    if value == "prob":
        return np.clip(src.values, 0.0, 1.0), (0.0, 1.0), "viridis", "score (clipped to [0, 1])"
    v = src.values
    return v, (min(0.0, float(v.min())), max(1.0, float(v.max()))), "viridis", "score (as stored)"


def render(src, output, sparsity=None, title=None, value="prob"):
    """Draws the heatmap of `src` (head_mask.HeadScores) into `output`. Returns (mask, caption)."""
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    L, H = src.num_layers, src.num_kv_heads
    vals, (vmin, vmax), cmap_name, cbar_label = cell_values(src, value)

    mask, caption = None, None
    n = L * H
    if sparsity is not None:
        mask = head_mask.mask_at_sparsity(src.values, sparsity)
        compressed = int(n - mask.sum())
        caption = f"sparsity {sparsity:g}: {compressed} of {n} KV heads compressed ({compressed / n:.1%})"
    elif src.mask is not None:
        mask = src.mask
        compressed = int(n - mask.sum())
        stored = f" at sparsity {src.sparsity:g}" if src.sparsity is not None else ""
        caption = f"mask stored in the file{stored}: {compressed} of {n} KV heads compressed"

    wpx, hpx = figure_pixels(L, H)
    fig = plt.figure(figsize=(wpx / DPI, hpx / DPI), dpi=DPI, layout="constrained")
    ax = fig.add_subplot()
    cmap = plt.get_cmap(cmap_name, 64)  # 64 levels: smooth to the eye, and the palette PNG stays exact
    im = ax.imshow(vals, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto", interpolation="nearest")
    cb = fig.colorbar(im, ax=ax, fraction=0.08 if H > 2 else 0.15, pad=0.02)
    cb.set_label(cbar_label)

    ax.set_xlabel("KV head")
    ax.set_ylabel("layer")
    xstep = 1 if H <= 32 else int(np.ceil(H / 32))
    ystep = 1 if L <= 48 else int(np.ceil(L / 48))
    ax.set_xticks(range(0, H, xstep))
    ax.set_yticks(range(0, L, ystep))
    ax.tick_params(labelsize=8 if L > 24 else 9)
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    if n <= GRID_MAX_HEADS:  # one minor tick and grid line per cell: only where the lines are drawn
        ax.set_xticks(np.arange(-0.5, H, 1), minor=True)
        ax.set_yticks(np.arange(-0.5, L, 1), minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)

    if annotate_cells(L, H):
        cell_h_pt = 72.0 * ax.get_position().height * hpx / DPI / L
        size = max(5.0, min(12.0, cell_h_pt * 0.55))
        fmt = "{:.2f}" if value == "prob" or src.kind != "checkpoint" else "{:+.1f}"
        norm = im.norm
        for l in range(L):
            for h in range(H):
                r, g, b, _ = cmap(norm(vals[l, h]))
                dark = 0.299 * r + 0.587 * g + 0.114 * b < 0.5
                ax.text(h, l, fmt.format(vals[l, h]), ha="center", va="center", fontsize=size,
                        color="white" if dark else "black",
                        fontweight="bold" if mask is not None and mask[l, h] else "normal")

    if mask is not None:
        lw = 2.6 if n <= 256 else 1.8
        outline = "black" if cmap_name == "RdBu_r" else OUTLINE  # red vanishes on a red-blue scale
        inset = 0.07 if max(L, H) <= 48 else 0.0  # neighbouring outlines stay apart
        ax.add_collection(outlines(mask, inset, outline, lw), autolim=False)
        ax.legend(handles=[Patch(facecolor="none", edgecolor=outline, linewidth=lw, label="kept full")],
                  loc="upper left", bbox_to_anchor=(0.0, -0.005), frameon=False, fontsize=9,
                  borderaxespad=0.0, handlelength=1.2)

    head = title if title else describe(src)
    sub = f"{L} layers x {H} KV heads"
    if src.kind != "checkpoint" and (src.sink is not None or src.window is not None):
        sub += f", sink {src.sink} / window {src.window}"
    elif src.kind == "checkpoint" and src.sink is not None:
        sub += f"; compressed heads: {src.sink} sink + {src.window} recent tokens"
    lines = [head, sub] + ([caption] if caption else [])
    width_chars = int(wpx / 7.2)
    fig.suptitle("\n".join(_wrap(t, width_chars) for t in lines), fontsize=10)

    plot_io.save_png(fig, output)
    plt.close(fig)
    return mask, caption


def _wrap(text, width):
    import textwrap
    return "\n".join(textwrap.wrap(text, width=max(30, width), break_long_words=True)) or text


def main(argv=None):
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        src = head_mask.load_scores(args.source, warn=lambda m: sys.stderr.write(f"{PROG}: warning: {m}\n"))
    except head_mask.SourceError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    status, drawn = plot_io.write_image(
        PROG, args.output, lambda: render(src, args.output, args.sparsity, args.title, args.value))
    if status:
        return status
    mask, caption = drawn
    print(f"wrote {args.output}: {src.num_layers} x {src.num_kv_heads} heads from {src.path}"
          + (f"; {caption.split(',')[0]}" if caption else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
