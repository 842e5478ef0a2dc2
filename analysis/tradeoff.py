#!/usr/bin/python3
"""Accuracy against KV cache: one line per method, from `rlkv compare --output` (or `rlkv eval --output`).

Each point is one row: x = the KV bytes a sequence held as a fraction of every head full (the row's
kv_fraction_of_full), y = accuracy; random masks carry their spread over seeds as an error bar.
Full-cache and every-head-compressed rows are single points. Lines join a method's sparsities.

Usage: analysis/tradeoff.py RESULTS.json [--output tradeoff.png] [--title T]
Bad input (a missing or unreadable file, no rows) is one line on stderr and exit status 2.
"""

import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plot_io  # noqa: E402

PROG = "tradeoff.py"
# One style per method, in the order `rlkv compare` writes them; others get the cycle's colours.
STYLES = {
    "rlkv": ("#d62728", "o", "RLKV (learned mask)"),
    "oracle": ("#9467bd", "s", "single-head ablation oracle"),
    "duo-retrieval": ("#1f77b4", "^", "DuoAttention (retrieval)"),
    "duo-reasoning": ("#17becf", "v", "DuoAttention (own chains)"),
    "h2o": ("#8c564b", "D", "H2O (token dropping)"),
    "snapkv": ("#e377c2", "P", "SnapKV (token dropping)"),
    "rkv": ("#ff7f0e", "X", "R-KV (token dropping)"),
    "random": ("#7f7f7f", ".", "random masks"),
    "full": ("#000000", "*", "full cache"),
    "streaming": ("#bcbd22", "*", "every head compressed"),
}


class SourceError(Exception):
    pass


def load(path):
    """The rows of a results JSON, grouped by method in file order."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})")
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not UTF-8 text (byte {e.start})")
    except json.JSONDecodeError as e:
        raise SourceError(f"{path}: not JSON ({e.msg} at line {e.lineno})")
    except ValueError as e:  # an integer of more digits than Python converts
        raise SourceError(f"{path}: not a results file ({e})")
    except RecursionError:
        raise SourceError(f"{path}: nested too deeply to be a results file")
    rows = doc.get("rows") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or not rows:
        raise SourceError(f"{path}: no 'rows' (expected the --output of rlkv compare or rlkv eval)")
    groups = {}
    for r in rows:
        try:
            method = str(r["method"])
            x, y = float(r["kv_fraction_of_full"]), float(r["accuracy"])
            std = float(r.get("accuracy_std", 0.0))
        except OverflowError:  # an integer past the double range
            raise SourceError(f"{path}: a row of method {method} with a number that is not finite")
        except (KeyError, TypeError, ValueError, AttributeError):
            raise SourceError(f"{path}: a row without method, accuracy or kv_fraction_of_full, or with an "
                              "accuracy_std that is not a number")
        if not all(math.isfinite(v) for v in (x, y, std)):
            raise SourceError(f"{path}: a row of method {method} with a number that is not finite")
        if method == "single-head":
            continue
        groups.setdefault(method, []).append((x, y, std))
    return doc, groups


def render(doc, groups, output, title, source):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5.0))
    for method, pts in groups.items():
        colour, marker, label = STYLES.get(method, (None, "o", method))
        pts = sorted(pts)
        xs, ys, es = [p[0] * 100 for p in pts], [p[1] * 100 for p in pts], [p[2] * 100 for p in pts]
        if method == "random":
            ax.errorbar(xs, ys, yerr=es, color=colour, marker=marker, linestyle=":", capsize=3, label=label)
        else:
            ax.plot(xs, ys, color=colour, marker=marker, linestyle="-" if len(pts) > 1 else "none", label=label)
    ax.set_xlabel("KV cache held, % of every head full")
    ax.set_ylabel("accuracy, %")
    ax.set_ylim(-3, 103)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    sub = f"{doc.get('problems', '?')} problems, S = {doc.get('sink', '?')}, W = {doc.get('window', '?')}"
    ax.set_title((title or os.path.basename(source)) + "\n" + sub, fontsize=10)
    fig.tight_layout()
    plot_io.save_png(fig, output)
    plt.close(fig)


def main(argv=None):
    p = plot_io.image_parser(PROG, __doc__, "results JSON of rlkv compare / rlkv eval", "tradeoff.png")
    a = plot_io.parse_image_args(p, sys.argv[1:] if argv is None else argv)
    try:
        doc, groups = load(a.source)
    except SourceError as e:
        sys.stderr.write(f"{PROG}: {e}\n")
        return 2
    status, _ = plot_io.write_image(PROG, a.output, lambda: render(doc, groups, a.output, a.title, a.source))
    if status:
        return status
    print(f"wrote {a.output}: {sum(len(v) for v in groups.values())} points of {len(groups)} methods")
    return 0


if __name__ == "__main__":
    sys.exit(main())
