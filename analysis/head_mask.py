#!/usr/bin/python3
"""Head scores and the global-quantile head mask, in numpy (the same rule as masks/head_mask.cpp).

Scores are a float64 array [L, H] (rows = layers, columns = KV heads, row-major = layer first),
higher = more important. A mask at sparsity s (the fraction of KV heads compressed) is computed with
the rule of the RLKV paper's code, with one documented change:

1. round every score to the 9 significant digits the exports write, and clip it to [0, 1];
2. add 1e-6 * (i + 0.5) / n to the i-th head in row-major order (n = L * H). The paper adds uniform
   random noise in [0, 1e-6) to break ties; a deterministic ramp makes masks reproducible and is what
   the C++ side (`rlkv::ranked_scores`) adds too. Heads with distinct scores get the paper's mask;
   among tied heads the later ones are kept first;
3. take the s-quantile of all L * H values with numpy's default (linear) interpolation;
4. keep full (1) every head whose value is >= that threshold, compress (0) the others.

Steps 3-4 are applied as a count: the k = ceil(s (n - 1)) lowest values are compressed, exactly the
heads below the quantile when the values are distinct, and still k heads when two values tie exactly
(scores 1e-6 / n apart in the opposite order of the ramp: the later head is kept).
s = 0 keeps every head; s = 1 keeps only the highest one.

The loaders read every source the analysis scripts accept and turn anything malformed into a
`SourceError` with a one-line message (the scripts print it and exit 2):

- an rlkv training checkpoint `ckpt-<step>.h5` (docs/checkpoint.md; its 512-byte integrity header is
  checked before HDF5 parses anything, as `rlkv::read_checkpoint` does): scores = sigmoid(theta);
- `adapter_weights.tsv` (RLKV-SGLang) or `full_attention_heads.tsv` (DuoAttention; the config.json
  beside it gives sink_size / recent_size), or a directory holding one of them: one row per layer,
  whitespace-separated numbers, no header;
- an `rlkv-head-mask/v1` JSON export (`rlkv export --format json`).

Only numpy is needed at import time; h5py is imported when a checkpoint is read.

As a script: `analysis/head_mask.py SOURCE --sparsity S [--ranked]` prints the mask (or the ranked
scores), one tab-separated line per layer.
"""

import io
import json
import math
import os
import re
import struct
import zlib

import numpy as np

__all__ = [
    "TIE_NOISE", "SourceError", "HeadScores", "ranked_scores", "mask_at_sparsity",
    "parse_tsv", "load_tsv", "load_mask_json", "read_checkpoint", "newest_checkpoint", "load_scores",
    "sigmoid", "finite_number",
]

TIE_NOISE = 1e-6          # size of the tie-breaking ramp
USER_BLOCK = 512          # rlkv checkpoint integrity header (docs/checkpoint.md, "Integrity")
MAX_HEADS = 1 << 20       # sanity bound on L * H for any source
MAX_FILE_BYTES = 1 << 31  # refuse to read larger files into memory
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
CKPT_NAME = re.compile(r"^ckpt-(0|[1-9][0-9]{0,17})\.h5$")  # as rlkv: no leading zero, <= 18 digits


class SourceError(Exception):
    """A source that cannot be read; str(e) is one line naming the file and the problem."""


# ----------------------------------------------------------------------------------------------
# The mask rule


def ranked_scores(scores):
    """The values the quantile rule ranks: scores clipped to [0, 1] plus the tie-breaking ramp.

    `scores`: array-like [L, H] (any shape; row-major order defines i). Returns float64, same shape.
    Computed in the same order of operations as the C++ `ranked_scores`, so the values agree bit for bit.
    """
    v = np.asarray(scores, dtype=np.float64)
    n = v.size
    if n == 0:
        raise ValueError("no scores")
    # Each score as the exports write it (9 significant digits), as the C++ side rounds it.
    written = np.array([float("%.9g" % x) for x in v.ravel()], dtype=np.float64).reshape(v.shape)
    ramp = TIE_NOISE * (np.arange(n, dtype=np.float64) + 0.5) / float(n)
    return np.clip(written, 0.0, 1.0) + ramp.reshape(v.shape)


def mask_at_sparsity(scores, sparsity):
    """Binary head mask at `sparsity` (fraction of KV heads compressed), paper's global-quantile rule.

    `scores`: array-like [L, H] of head scores (keep probabilities, gates), higher = more important.
    Returns a uint8 array of the same shape: 1 = head keeps its full KV cache, 0 = compressed
    (sink + recent window). See the module docstring for the exact rule.
    """
    s = _check_sparsity(sparsity)
    v = ranked_scores(scores)
    n = v.size
    k = 0 if s <= 0.0 else min(n - 1, math.ceil(s * float(n - 1)))
    order = np.lexsort((np.arange(n), v.ravel()))  # by value, an exact tie by index
    keep = np.ones(n, dtype=np.uint8)
    keep[order[:k]] = 0
    return keep.reshape(v.shape)


def _check_sparsity(sparsity):
    s = float(sparsity)
    if not (0.0 <= s <= 1.0):  # also rejects NaN
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    return s


def sigmoid(x):
    """Keep probability p = sigmoid(theta) in float64 (theta float32 in the checkpoint)."""
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-x))


# ----------------------------------------------------------------------------------------------
# Sources


class HeadScores:
    """Scores read from one source.

    values:    float64 [L, H] as stored (TSV / JSON scores, or sigmoid(theta) for a checkpoint);
               mask rules clip them to [0, 1].
    kind:      "checkpoint" | "rlkv-sglang" | "duo" | "json"
    path:      the file the scores came from
    logits:    float32 [L, H] theta (checkpoints only, else None)
    mask:      uint8 [L, H] mask stored in the source (JSON `full_attention`, else None)
    sparsity:  the sparsity stored with that mask (JSON), else None
    model, sink, window, step: what the source says about the run (None when it does not say)
    """

    def __init__(self, values, kind, path, **info):
        self.values = values
        self.kind = kind
        self.path = path
        self.logits = info.get("logits")
        self.mask = info.get("mask")
        self.sparsity = info.get("sparsity")
        self.model = info.get("model")
        self.sink = info.get("sink")
        self.window = info.get("window")
        self.step = info.get("step")

    @property
    def num_layers(self):
        return self.values.shape[0]

    @property
    def num_kv_heads(self):
        return self.values.shape[1]


def _read_bytes(path, what="file"):
    try:
        if os.path.isdir(path):
            raise SourceError(f"{path}: is a directory, expected a {what}")
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO or a device would block or never end
            raise SourceError(f"{path}: not a regular file, expected a {what}")
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise SourceError(f"{path}: {size} bytes, too large for a {what}")
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or directory") from None
    except OSError as e:
        raise SourceError(f"{path}: cannot read ({e.strerror or e})") from None


def _decode_text(data, path):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not a text file (invalid UTF-8 at byte {e.start})") from None


_NUMBER = re.compile(r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")


def _cell(cell, where):
    # Decimal numbers only (float() alone would accept '1_0', 'nan' and 'inf').
    v = float(cell) if _NUMBER.match(cell) else math.nan
    if not math.isfinite(v):
        shown = cell if len(cell) <= 40 else cell[:40] + "..."
        raise SourceError(f"{where}: {shown!r} is not a finite number")
    return v


def parse_tsv(text, origin):
    """Parses a score table: one row per layer, whitespace-separated numbers, blank lines skipped.

    Returns float64 [L, H]. Raises SourceError naming `origin:line` for ragged rows and non-numbers.
    """
    rows = []
    width = 0
    for lineno, line in enumerate(text.splitlines(), 1):
        cells = line.split()
        if not cells:
            continue
        row = [_cell(c, f"{origin}:{lineno}") for c in cells]
        if width and len(row) != width:
            raise SourceError(f"{origin}:{lineno}: {len(row)} columns, earlier rows have {width}")
        width = len(row)
        rows.append(row)
        if len(rows) * width > MAX_HEADS:
            raise SourceError(f"{origin}: more than {MAX_HEADS} scores, not a head-score table")
    if not rows:
        raise SourceError(f"{origin}: no scores (expected one row per layer)")
    return np.array(rows, dtype=np.float64)


def _int_field(obj, key):
    v = obj.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def load_tsv(path):
    """Reads an adapter_weights.tsv / full_attention_heads.tsv file (DuoAttention: + config.json)."""
    values = parse_tsv(_decode_text(_read_bytes(path, "score table"), path), path)
    kind = "duo" if os.path.basename(path) == "full_attention_heads.tsv" else "rlkv-sglang"
    info = {}
    if kind == "duo":
        cfg = os.path.join(os.path.dirname(path), "config.json")
        if os.path.exists(cfg):
            obj = _parse_json(_read_bytes(cfg, "JSON file"), cfg)
            if isinstance(obj, dict):
                info["sink"] = _int_field(obj, "sink_size")
                info["window"] = _int_field(obj, "recent_size")
                if isinstance(obj.get("model_name"), str):
                    info["model"] = obj["model_name"]
    return HeadScores(values, kind, path, **info)


def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(data, path):
    text = _decode_text(data, path)
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as e:
        msg = e.msg if isinstance(e, json.JSONDecodeError) else str(e)
        line = f" (line {e.lineno})" if isinstance(e, json.JSONDecodeError) else ""
        raise SourceError(f"{path}: not valid JSON{line}: {msg}") from None


def finite_number(v):
    """A JSON number as a finite float, else None: not a number (a bool neither), or not finite as a
    double (1e400 reads as inf, and an integer past the double range, 1 followed by 400 zeros, cannot
    be converted at all)."""
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except OverflowError:
        return None
    return f if math.isfinite(f) else None


def _is_number(v):
    return finite_number(v) is not None


def _is_bit(v):
    return isinstance(v, bool) or (isinstance(v, int) and v in (0, 1))


def _table(obj, key, path, check):
    rows = obj.get(key)
    if not isinstance(rows, list) or not rows:
        raise SourceError(f"{path}: '{key}' must be a non-empty list of rows (one per layer)")
    width = None
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            raise SourceError(f"{path}: '{key}' row {i} is not a non-empty list")
        if width is not None and len(row) != width:
            raise SourceError(f"{path}: '{key}' row {i} has {len(row)} entries, earlier rows have {width}")
        width = len(row)
        for v in row:
            if not check(v):
                raise SourceError(f"{path}: '{key}' row {i} holds {json.dumps(v)[:40]}, "
                                  f"expected {'0 or 1' if key == 'full_attention' else 'a finite number'}")
        if len(rows) * width > MAX_HEADS:
            raise SourceError(f"{path}: '{key}' has more than {MAX_HEADS} entries")
    return rows


def load_mask_json(path):
    """Reads an `rlkv-head-mask/v1` JSON export (`rlkv export --format json`)."""
    obj = _parse_json(_read_bytes(path, "JSON file"), path)
    if not isinstance(obj, dict) or obj.get("format") != "rlkv-head-mask/v1":
        raise SourceError(f"{path}: not an rlkv-head-mask/v1 file (missing \"format\": \"rlkv-head-mask/v1\")")
    values = np.array(_table(obj, "scores", path, _is_number), dtype=np.float64)
    L, H = values.shape
    for key, n in (("num_layers", L), ("num_kv_heads", H)):
        if key in obj and _int_field(obj, key) != n:
            raise SourceError(f"{path}: '{key}' is {json.dumps(obj[key])[:40]} but 'scores' has {n}")
    info = {"model": obj.get("model") if isinstance(obj.get("model"), str) else None,
            "sink": _int_field(obj, "sink"), "window": _int_field(obj, "window")}
    if "full_attention" in obj:
        mask = np.array(_table(obj, "full_attention", path, _is_bit), dtype=np.uint8)
        if mask.shape != values.shape:
            raise SourceError(f"{path}: 'full_attention' is {mask.shape[0]} x {mask.shape[1]}, "
                              f"'scores' is {L} x {H}")
        info["mask"] = mask
    if "sparsity" in obj and obj["sparsity"] is not None:
        s = obj["sparsity"]
        v = finite_number(s)
        if v is None or not 0 <= v <= 1:
            raise SourceError(f"{path}: 'sparsity' must be a number in [0, 1], got {json.dumps(s)[:40]}")
        info["sparsity"] = v
    return HeadScores(values, "json", path, **info)


# ---- checkpoints


def _check_header(data, path):
    """The 512-byte integrity header of docs/checkpoint.md; raises SourceError when it does not hold."""
    if data[:8] == HDF5_SIGNATURE:
        raise SourceError(f"{path}: an HDF5 file without the rlkv checkpoint header (not an rlkv checkpoint)")
    if data[:8] != b"RLKVCKPT":
        if not data:
            raise SourceError(f"{path}: empty file")
        raise SourceError(f"{path}: not an rlkv checkpoint (no RLKVCKPT header)")
    if len(data) < USER_BLOCK + 8:
        raise SourceError(f"{path}: truncated checkpoint ({len(data)} bytes)")
    version, block, length, crc, head_crc = struct.unpack_from("<IIQII", data, 8)
    if version != 1:
        raise SourceError(f"{path}: checkpoint header version {version} is not supported (this script reads 1)")
    if block != USER_BLOCK:
        raise SourceError(f"{path}: checkpoint header names a {block}-byte user block, expected {USER_BLOCK}")
    head = bytearray(data[:USER_BLOCK])
    head[28:32] = b"\0\0\0\0"
    if zlib.crc32(bytes(head)) != head_crc:
        raise SourceError(f"{path}: checkpoint header checksum mismatch (damaged file)")
    if length != len(data) - USER_BLOCK:
        what = "truncated" if length > len(data) - USER_BLOCK else "bytes appended"
        raise SourceError(f"{path}: {what} (header says {length + USER_BLOCK} bytes, file has {len(data)})")
    if zlib.crc32(data[USER_BLOCK:]) != crc:
        raise SourceError(f"{path}: data checksum mismatch (damaged, or edited without resealing; "
                          "see docs/checkpoint.md)")


class _Checkpoint:
    """What the analysis scripts read from a checkpoint."""

    def __init__(self, path):
        self.path = path
        self.logits = None        # float32 [L, H]
        self.attrs = {}           # root attributes (plain Python values)
        self.history = {}         # name -> 1-D float64 / int64 arrays, plus "logits" [N, L, H]


HISTORY_METRICS = ("reward_mean", "correct_mean", "sparsity_expected", "penalty_weight",
                   "length_ratio", "truncated_rate")


def read_checkpoint(path, history=False):
    """Reads an rlkv checkpoint; with `history`, also /history (missing metric datasets become NaN).

    Returns an object with `logits` (float32 [L, H]), `attrs` (root attributes) and `history`
    ({"step": int64 [N], "logits": float32 [N, L, H], metric: float64 [N]}).
    """
    data = _read_bytes(path, "checkpoint")
    _check_header(data, path)
    try:
        import h5py
    except ImportError:
        raise SourceError(f"{path}: reading checkpoints needs h5py (Debian: python3-h5py, /usr/bin/python3)") from None
    ck = _Checkpoint(path)
    try:
        # Parse exactly the bytes whose checksum was checked (HDF5's parser is not hardened).
        with h5py.File(io.BytesIO(data), "r") as f:
            for k, v in f.attrs.items():
                ck.attrs[k] = v.decode("utf-8", "replace") if isinstance(v, bytes) else v
            fv = ck.attrs.get("format_version")
            if fv is None:
                raise SourceError(f"{path}: no format_version attribute (not an rlkv checkpoint)")
            if int(fv) != 1:
                raise SourceError(f"{path}: format_version {int(fv)} is not supported (this script reads version 1)")
            L, H = _dims(ck.attrs, path)
            ck.logits = _dataset(f, "policy/logits", path, (L, H), np.float32)
            if history:
                step = _dataset(f, "history/step", path, None, np.int64)
                if step.ndim != 1:
                    raise SourceError(f"{path}: /history/step has shape {step.shape}, expected 1-D")
                n = step.shape[0]
                if n > 1 and np.any(np.diff(step) <= 0):
                    raise SourceError(f"{path}: /history/step is not strictly increasing")
                ck.history["step"] = step
                ck.history["logits"] = _dataset(f, "history/logits", path, (n, L, H), np.float32)
                for name in HISTORY_METRICS:
                    if "history/" + name in f:
                        ck.history[name] = _dataset(f, "history/" + name, path, (n,), np.float64, allow_nan=True)
                    else:
                        ck.history[name] = np.full(n, np.nan)
    except SourceError:
        raise
    except Exception as e:  # h5py raises OSError, KeyError, TypeError, ValueError on damaged files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise SourceError(f"{path}: unreadable HDF5 ({msg})") from None
    return ck


def _dims(attrs, path):
    dims = []
    for key in ("num_layers", "num_kv_heads"):
        v = attrs.get(key)
        if v is None:
            raise SourceError(f"{path}: no {key} attribute (not an rlkv checkpoint)")
        try:
            v = int(v)
        except (TypeError, ValueError):
            raise SourceError(f"{path}: attribute {key} is not an integer") from None
        if v <= 0:
            raise SourceError(f"{path}: attribute {key} is {v}")
        dims.append(v)
    if dims[0] * dims[1] > MAX_HEADS:
        raise SourceError(f"{path}: {dims[0]} x {dims[1]} heads is implausible")
    return dims


def _dataset(f, name, path, shape, dtype, allow_nan=False):
    import h5py
    if name not in f or not isinstance(f[name], h5py.Dataset):
        raise SourceError(f"{path}: no /{name} dataset (not an rlkv checkpoint)")
    d = f[name]
    kind = np.dtype(dtype).kind
    if d.dtype.kind != kind and not (kind == "f" and d.dtype.kind in "fi"):
        raise SourceError(f"{path}: /{name} has type {d.dtype}, expected {np.dtype(dtype).name}")
    if shape is not None and tuple(d.shape) != tuple(shape):
        raise SourceError(f"{path}: /{name} has shape {tuple(d.shape)}, expected {tuple(shape)}")
    a = d[()].astype(dtype, copy=False) if d.size else np.zeros(d.shape, dtype=dtype)
    if kind == "f" and a.size:
        bad = ~np.isfinite(a) if not allow_nan else np.isinf(a)
        if np.any(bad):
            raise SourceError(f"{path}: /{name} holds {'inf' if allow_nan else 'NaN or inf'}")
    return a


def newest_checkpoint(directory):
    """Paths of the `ckpt-<step>.h5` files in `directory`, highest step first."""
    try:
        names = os.listdir(directory)
    except OSError as e:
        raise SourceError(f"{directory}: cannot list ({e.strerror or e})") from None
    found = [(int(m.group(1)), n) for n in names for m in [CKPT_NAME.match(n)] if m]
    return [os.path.join(directory, n) for _, n in sorted(found, reverse=True)]


def is_checkpoint_file(path):
    """True when the file starts like an rlkv checkpoint or any HDF5 file."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError:
        return False
    return head in (b"RLKVCKPT", HDF5_SIGNATURE)


def _checkpoint_scores(path):
    ck = read_checkpoint(path)
    a = ck.attrs
    return HeadScores(sigmoid(ck.logits), "checkpoint", path, logits=ck.logits,
                      model=a.get("model") if isinstance(a.get("model"), str) else None,
                      sink=_int_attr(a, "sink"), window=_int_attr(a, "window"), step=_int_attr(a, "step"))


def _int_attr(attrs, key):
    try:
        return int(attrs[key])
    except (KeyError, TypeError, ValueError):
        return None


def _first_byte(path):
    """The first non-blank byte of the file (b"" when there is none or it cannot be read)."""
    if not os.path.isfile(path):
        return b""
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(4096)
                if not chunk:
                    return b""
                rest = chunk.lstrip()
                if rest:
                    return rest[:1]
    except OSError:
        return b""


def load_scores(path, warn=None):
    """Head scores from any supported source (see the module docstring); raises SourceError.

    A directory may hold adapter_weights.tsv, full_attention_heads.tsv (in that order of preference)
    or, for a training run directory, ckpt-<step>.h5 files: the newest one that reads is used, the
    damaged ones passed over are reported through `warn(message)` (as `rlkv train --resume auto` does).
    """
    if not os.path.exists(path):
        raise SourceError(f"{path}: no such file or directory")
    if not os.path.isdir(path) and not os.path.isfile(path):
        raise SourceError(f"{path}: not a regular file or directory (a FIFO or a device?)")
    if os.path.isdir(path):
        for name in ("adapter_weights.tsv", "full_attention_heads.tsv"):
            f = os.path.join(path, name)
            if os.path.isfile(f):
                return load_tsv(f)
        ckpts = newest_checkpoint(path)
        for i, ck in enumerate(ckpts):
            try:
                return _checkpoint_scores(ck)
            except SourceError as e:
                if i == len(ckpts) - 1:
                    raise
                if warn:
                    warn(f"skipping {e}")
        raise SourceError(f"{path}: no adapter_weights.tsv, full_attention_heads.tsv or ckpt-<step>.h5 "
                          "in the directory")
    if is_checkpoint_file(path):
        return _checkpoint_scores(path)
    if path.endswith(".json") or _first_byte(path) == b"{":  # the loaders read (and check) the file
        return load_mask_json(path)
    if path.endswith(".h5"):
        raise SourceError(f"{path}: not an rlkv checkpoint (no RLKVCKPT header)")
    return load_tsv(path)


def main(argv=None):
    """`head_mask.py SOURCE --sparsity S`: prints the mask, one line per layer, tab-separated 0/1
    (1 = full cache), for comparisons with `rlkv` (exit 2 and one line on stderr for bad input)."""
    import sys

    from plot_io import OneLineParser

    p = OneLineParser(prog="head_mask.py", description=main.__doc__)
    p.add_argument("source", metavar="SOURCE", help="checkpoint, run directory, .tsv file or directory, JSON export")
    p.add_argument("--sparsity", type=float, required=True, metavar="S", help="fraction of KV heads compressed")
    p.add_argument("--ranked", action="store_true", help="print the ranked scores (%%.17g) instead of the mask")
    a = p.parse_args(argv)
    if not 0.0 <= a.sparsity <= 1.0:
        p.error(f"--sparsity must be in [0, 1], got {a.sparsity}")
    try:
        src = load_scores(a.source, warn=lambda m: sys.stderr.write(f"head_mask.py: warning: {m}\n"))
    except SourceError as e:
        sys.stderr.write(f"head_mask.py: {e}\n")
        return 2
    rows = ranked_scores(src.values) if a.ranked else mask_at_sparsity(src.values, a.sparsity)
    fmt = "{:.17g}" if a.ranked else "{:d}"
    sys.stdout.write("".join("\t".join(fmt.format(v) for v in row.tolist()) + "\n" for row in rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
