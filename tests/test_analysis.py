#!/usr/bin/python3
"""Tests of analysis/ (heatmap.py, curves.py, head_mask.py).

Run from the repository root with Debian's interpreter (h5py, numpy, matplotlib):
    /usr/bin/python3 -m unittest tests/test_analysis.py      (or tests/run_python_tests.sh)

Images are rendered from tests/fixtures/analysis/ (a real 300-step toy run: toy-run.h5 is its
ckpt-300.h5, toy-metrics.jsonl its metrics.jsonl) and from the published head scores in
tests/fixtures/published (see its README for where each file comes from).
"""

import json
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
import zlib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANALYSIS = os.path.join(REPO, "analysis")
FIXTURES = os.path.join(REPO, "tests", "fixtures", "analysis")
REFERENCE = os.path.join(REPO, "tests", "fixtures", "published")
TOY_CKPT = os.path.join(FIXTURES, "toy-run.h5")
TOY_METRICS = os.path.join(FIXTURES, "toy-metrics.jsonl")

try:
    import h5py
    import numpy as np
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    HAVE_MODULES = True
except ImportError:  # pragma: no cover - run_python_tests.sh skips (exit 77) before this
    HAVE_MODULES = False

if HAVE_MODULES:
    sys.path.insert(0, ANALYSIS)
    import head_mask  # noqa: E402
    import heatmap  # noqa: E402
    import curves  # noqa: E402
    import plot_io  # noqa: E402

needs_modules = unittest.skipUnless(HAVE_MODULES, "needs h5py, numpy and matplotlib (/usr/bin/python3)")

MIN_VARIANCE = 0.005  # a blank (one-colour) image has 0


def reseal(path):
    """docs/checkpoint.md: recompute the integrity header after a deliberate edit."""
    with open(path, "r+b") as f:
        data = f.read()
        head = bytearray(data[:512])
        struct.pack_into("<QII", head, 16, len(data) - 512, zlib.crc32(data[512:]), 0)
        struct.pack_into("<I", head, 28, zlib.crc32(bytes(head)))
        f.seek(0)
        f.write(head)


class ScriptCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rlkv-analysis-")
        self.env = dict(os.environ, MPLCONFIGDIR=os.path.join(self.tmp, "mpl"), MPLBACKEND="Agg")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.tmp, name)

    def write(self, name, content):
        p = self.path(name)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb" if isinstance(content, bytes) else "w") as f:
            f.write(content)
        return p

    def run_script(self, script, *args):
        return subprocess.run([sys.executable, os.path.join(ANALYSIS, script), *args], cwd=self.tmp,
                              env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=180)

    def render(self, script, *args, size):
        out = self.path("out.png")
        r = self.run_script(script, *args, "--output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        self.assertTrue(os.path.isfile(out), "no image written")
        self.assertLess(os.path.getsize(out), 200_000, "image larger than 200 KB")
        img = mpimg.imread(out)
        self.assertEqual((img.shape[1], img.shape[0]), size, "image size (width, height) in pixels")
        self.assertGreater(float(img[..., :3].var()), MIN_VARIANCE, "image looks blank")
        return r

    def fails(self, script, *args):
        """The script refuses the input: exit 2, one line on stderr naming the script, no image."""
        out = self.path("bad.png")
        if os.path.exists(out):
            os.remove(out)
        r = self.run_script(script, *args, "--output", out)
        self.assertEqual(r.returncode, 2, f"stdout={r.stdout!r} stderr={r.stderr!r}")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, f"expected one line on stderr, got {r.stderr!r}")
        self.assertTrue(lines[0].startswith(script + ": "), lines[0])
        self.assertNotIn("Traceback", r.stderr)
        self.assertFalse(os.path.exists(out), "an image was written for bad input")
        return lines[0]

    def mask_json(self, name, scores, **extra):
        obj = {"format": "rlkv-head-mask/v1", "model": "toy", "num_layers": len(scores),
               "num_kv_heads": len(scores[0]), "sink": 4, "window": 16, "scores": scores}
        obj.update(extra)
        return self.write(name, json.dumps(obj))


# ----------------------------------------------------------------------------------------------


@needs_modules
class HeadMaskTest(unittest.TestCase):
    def test_toy_checkpoint_mask_keeps_the_eight_most_probable_heads(self):
        src = head_mask.load_scores(TOY_CKPT)
        self.assertEqual(src.kind, "checkpoint")
        self.assertEqual((src.num_layers, src.num_kv_heads), (4, 4))
        m = head_mask.mask_at_sparsity(src.values, 0.5)
        expected = [[0, 1, 0, 1], [1, 0, 0, 1], [0, 0, 1, 1], [0, 1, 1, 0]]
        self.assertEqual(m.tolist(), expected)
        self.assertEqual(m.dtype, np.uint8)

    def test_ties_are_broken_by_position_later_heads_kept_first(self):
        s = np.full((2, 4), 0.5)
        self.assertEqual(head_mask.mask_at_sparsity(s, 0.5).tolist(), [[0, 0, 0, 0], [1, 1, 1, 1]])
        self.assertEqual(head_mask.mask_at_sparsity(s, 0.25).tolist(), [[0, 0, 1, 1], [1, 1, 1, 1]])

    def test_scores_are_clipped_to_unit_interval(self):
        a = np.array([[-3.0, 0.2], [0.7, 5.0]])
        b = np.array([[0.0, 0.2], [0.7, 1.0]])
        np.testing.assert_array_equal(head_mask.ranked_scores(a), head_mask.ranked_scores(b))
        self.assertEqual(head_mask.mask_at_sparsity(a, 0.5).tolist(), [[0, 0], [1, 1]])

    def test_extremes(self):
        s = np.random.default_rng(1).random((6, 5))
        self.assertTrue(np.all(head_mask.mask_at_sparsity(s, 0.0) == 1))
        one = head_mask.mask_at_sparsity(s, 1.0)
        self.assertEqual(int(one.sum()), 1)
        self.assertEqual(int(np.argmax(s)), int(np.argmax(one)))
        for bad in (-0.1, 1.5, float("nan")):
            with self.assertRaises(ValueError):
                head_mask.mask_at_sparsity(s, bad)

    def test_ranked_scores_formula(self):
        s = np.array([[0.3, 0.3, 0.3]])
        n = 3
        expect = [0.3 + 1e-6 * (i + 0.5) / n for i in range(n)]
        self.assertEqual(head_mask.ranked_scores(s).ravel().tolist(), expect)

    def test_reference_masks_compress_the_lowest_scores(self):
        for rel in ("rlkv/Llama-3.1-8B-R1", "rlkv/Qwen-2.5-7B-R1", "duo_attn/Qwen-2.5-7B-R1",
                    "duo_attn/Qwen-3-4B-Instruct/full_attention_heads.tsv"):
            src = head_mask.load_scores(os.path.join(REFERENCE, rel))
            n = src.values.size
            clipped = np.clip(src.values, 0, 1)
            for k in range(0, 101, 5):
                sp = k / 100
                m = head_mask.mask_at_sparsity(src.values, sp)
                compressed = int(n - m.sum())
                # the linear quantile's count: ceil(s (n - 1)), so |compressed - s n| <= 1.
                self.assertEqual(compressed, math.ceil(sp * (n - 1)), (rel, sp))
                self.assertLessEqual(abs(compressed - sp * n), 1.0, (rel, sp))
                if 0 < compressed < n:
                    self.assertLessEqual(clipped[m == 0].max(), clipped[m == 1].min() + 1e-6, (rel, sp))

    def test_reference_shapes(self):
        self.assertEqual(head_mask.load_scores(os.path.join(REFERENCE, "rlkv/Llama-3.1-8B-R1")).values.shape, (32, 8))
        self.assertEqual(head_mask.load_scores(os.path.join(REFERENCE, "rlkv/Qwen-2.5-7B-R1")).values.shape, (28, 4))
        duo = head_mask.load_scores(os.path.join(REFERENCE, "duo_attn/Llama-3.1-8B-R1"))
        self.assertEqual((duo.kind, duo.sink, duo.window), ("duo", 128, 256))

    def test_exact_ties_after_the_ramp_still_give_the_count(self):
        # 0.5000005 + 1e-6 * 0.5 / 2 == 0.5 + 1e-6 * 1.5 / 2: the threshold kept both heads.
        s = np.array([[0.5000005, 0.5]])
        v = head_mask.ranked_scores(s).ravel()
        self.assertEqual(v[0], v[1])
        self.assertEqual(head_mask.mask_at_sparsity(s, 0.5).tolist(), [[0, 1]])

    def test_agrees_with_the_quantile_rule(self):
        # The paper's rule with rlkv's quantile_linear = v[lo] + frac * (v[hi] - v[lo]), pos = q (n - 1):
        # on distinct values the count rule gives the same masks.
        def cpp_mask(values, q):
            v = head_mask.ranked_scores(values).ravel().tolist()
            if q <= 0:
                return [1] * len(v)
            srt = sorted(v)
            pos = q * (len(srt) - 1)
            lo = int(pos // 1)
            hi = min(lo + 1, len(srt) - 1)
            thr = srt[lo] + (pos - lo) * (srt[hi] - srt[lo])
            return [1 if x >= thr else 0 for x in v]
        sources = [head_mask.load_scores(TOY_CKPT).values]
        for rel in ("rlkv/Llama-3.1-8B-R1", "rlkv/Qwen-2.5-7B-R1", "duo_attn/Llama-3.1-8B-R1",
                    "duo_attn/Qwen-2.5-7B-Inst", "duo_attn/Qwen-3-4B-Instruct"):
            sources.append(head_mask.load_scores(os.path.join(REFERENCE, rel)).values)
        for values in sources:
            for k in range(0, 1001, 7):
                q = k / 1000
                self.assertEqual(head_mask.mask_at_sparsity(values, q).ravel().tolist(), cpp_mask(values, q), q)


@needs_modules
class HeadMaskCliTest(ScriptCase):
    def test_prints_the_mask(self):
        r = self.run_script("head_mask.py", TOY_CKPT, "--sparsity", "0.5")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "0\t1\t0\t1\n1\t0\t0\t1\n0\t0\t1\t1\n0\t1\t1\t0\n")
        r = self.run_script("head_mask.py", TOY_CKPT, "--sparsity", "0.5", "--ranked")
        self.assertEqual(r.returncode, 0, r.stderr)
        got = np.array([[float(v) for v in line.split("\t")] for line in r.stdout.splitlines()])
        np.testing.assert_array_equal(got, head_mask.ranked_scores(head_mask.load_scores(TOY_CKPT).values))

    def test_bad_input(self):
        for args in ((self.path("nope"), "--sparsity", "0.5"), (TOY_CKPT,), (TOY_CKPT, "--sparsity", "-1")):
            r = self.run_script("head_mask.py", *args)
            self.assertEqual(r.returncode, 2)
            self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
            self.assertTrue(r.stderr.startswith("head_mask.py: "), r.stderr)


# ----------------------------------------------------------------------------------------------


@needs_modules
class HeatmapTest(ScriptCase):
    def test_checkpoint_with_sparsity(self):
        r = self.render("heatmap.py", TOY_CKPT, "--sparsity", "0.5", size=heatmap.figure_pixels(4, 4))
        self.assertIn("8 of 16 KV heads compressed", r.stdout)

    def test_checkpoint_logits_and_title(self):
        self.render("heatmap.py", TOY_CKPT, "--value", "score", "--title", "toy logits",
                    size=heatmap.figure_pixels(4, 4))

    def test_run_directory_uses_newest_checkpoint(self):
        run = self.path("run")
        os.makedirs(run)
        shutil.copy(TOY_CKPT, os.path.join(run, "ckpt-300.h5"))
        r = self.render("heatmap.py", run, size=heatmap.figure_pixels(4, 4))
        self.assertIn("ckpt-300.h5", r.stdout)
        self.write("run/ckpt-400.h5", b"RLKVCKPT" + b"\0" * 600)  # damaged: passed over with a warning
        r = self.render("heatmap.py", run, size=heatmap.figure_pixels(4, 4))
        self.assertIn("ckpt-300.h5", r.stdout)
        self.assertIn("ckpt-400.h5", r.stderr)

    def test_tsv_file_and_directory(self):
        rows = ["\t".join(f"{(l * 5 + h) / 15:.3f}" for h in range(5)) for l in range(3)]
        tsv = self.write("export/adapter_weights.tsv", "\n".join(rows) + "\n")
        self.render("heatmap.py", tsv, "--sparsity", "0.4", size=heatmap.figure_pixels(3, 5))
        r = self.render("heatmap.py", os.path.dirname(tsv), "--value", "score", size=heatmap.figure_pixels(3, 5))
        self.assertIn("3 x 5", r.stdout)

    def test_json_export_with_and_without_sparsity(self):
        scores = [[0.1, 0.9, 0.4], [0.8, 0.2, 0.6]]
        js = self.mask_json("mask.json", scores, sparsity=0.5, full_attention=[[0, 1, 0], [1, 0, 1]])
        r = self.render("heatmap.py", js, size=heatmap.figure_pixels(2, 3))
        self.assertIn("3 of 6", r.stdout)  # the stored mask
        r = self.render("heatmap.py", js, "--sparsity", "0.8", size=heatmap.figure_pixels(2, 3))
        self.assertIn("4 of 6", r.stdout)

    def test_large_grid(self):
        rng = np.random.default_rng(3)
        tsv = self.write("big.tsv", "\n".join("\t".join(f"{v:.4f}" for v in row) for row in rng.random((64, 40))))
        self.render("heatmap.py", tsv, "--sparsity", "0.75", size=heatmap.figure_pixels(64, 40))

    def test_reference_rlkv_llama(self):
        r = self.render("heatmap.py", os.path.join(REFERENCE, "rlkv/Llama-3.1-8B-R1"), "--sparsity", "0.5",
                        size=heatmap.figure_pixels(32, 8))
        self.assertIn("128 of 256 KV heads compressed", r.stdout)

    def test_reference_rlkv_qwen_tsv_file(self):
        self.render("heatmap.py", os.path.join(REFERENCE, "rlkv/Qwen-2.5-7B-R1/adapter_weights.tsv"),
                    "--sparsity", "0.25", size=heatmap.figure_pixels(28, 4))

    def test_reference_duo(self):
        self.render("heatmap.py", os.path.join(REFERENCE, "duo_attn/Llama-3.1-8B-R1"), "--sparsity", "0.5",
                    size=heatmap.figure_pixels(32, 8))

    def test_figure_size_is_bounded(self):
        for L, H in ((1, 1), (4, 4), (32, 8), (80, 8), (126, 64)):
            w, h = heatmap.figure_pixels(L, H)
            self.assertTrue(400 <= w <= 1400 and 400 <= h <= 1300, (L, H, w, h))

    # ---- bad input

    def test_missing_file(self):
        self.assertIn("no such file", self.fails("heatmap.py", self.path("nope.h5")))

    def test_directory_without_scores(self):
        os.makedirs(self.path("empty"))
        self.assertIn("no adapter_weights.tsv", self.fails("heatmap.py", self.path("empty")))

    def test_foreign_hdf5(self):
        p = self.path("foreign.h5")
        with h5py.File(p, "w") as f:
            f["x"] = np.zeros(3)
        self.assertIn("not an rlkv checkpoint", self.fails("heatmap.py", p))

    def test_damaged_checkpoint(self):
        p = self.path("ckpt-300.h5")
        with open(TOY_CKPT, "rb") as f:
            data = bytearray(f.read())
        data[len(data) // 2] ^= 0xFF
        self.write("ckpt-300.h5", bytes(data))
        self.assertIn("checksum mismatch", self.fails("heatmap.py", p))
        self.write("ckpt-300.h5", bytes(data[:3000]))
        self.assertIn("truncated", self.fails("heatmap.py", p))
        self.write("ckpt-300.h5", b"")
        self.fails("heatmap.py", p)

    def test_checkpoint_with_wrong_layout(self):
        p = self.path("ckpt-1.h5")
        shutil.copy(TOY_CKPT, p)
        with h5py.File(p, "r+") as f:
            f.attrs["format_version"] = 2
        reseal(p)
        self.assertIn("format_version 2", self.fails("heatmap.py", p))
        shutil.copy(TOY_CKPT, p)
        with h5py.File(p, "r+") as f:
            del f["policy/logits"]
        reseal(p)
        self.assertIn("/policy/logits", self.fails("heatmap.py", p))
        shutil.copy(TOY_CKPT, p)
        with h5py.File(p, "r+") as f:
            f.attrs["num_layers"] = 5
        reseal(p)
        self.assertIn("shape", self.fails("heatmap.py", p))

    def test_malformed_tsv(self):
        cases = {
            "ragged.tsv": ("0.1\t0.2\n0.3\n", "1 columns, earlier rows have 2"),
            "word.tsv": ("0.1\tabc\n", "'abc' is not a finite number"),
            "nan.tsv": ("0.1\tnan\n", "not a finite number"),
            "inf.tsv": ("0.1\tinf\n", "not a finite number"),
            "underscore.tsv": ("1_0\t0.2\n", "not a finite number"),
            "empty.tsv": ("\n\n", "no scores"),
        }
        for name, (text, expect) in cases.items():
            with self.subTest(name=name):
                line = self.fails("heatmap.py", self.write(name, text))
                self.assertIn(expect, line)
                self.assertIn(name, line)
        self.assertIn(":2:", self.fails("heatmap.py", self.path("ragged.tsv")))
        self.fails("heatmap.py", self.write("binary.tsv", b"\x00\xff\xfe\x01garbage"))

    def test_wrong_json(self):
        ok = [[0.1, 0.2], [0.3, 0.4]]
        cases = {
            "syntax.json": ("{\"format\": ", "not valid JSON"),
            "list.json": ("[1, 2]", "not an rlkv-head-mask/v1"),
            "format.json": (json.dumps({"format": "other", "scores": ok}), "not an rlkv-head-mask/v1"),
            "noscores.json": (json.dumps({"format": "rlkv-head-mask/v1"}), "'scores'"),
            "ragged.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": [[0.1, 0.2], [0.3]]}), "row 1"),
            "string.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": [[0.1, "x"]]}), "finite number"),
            "bool.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": [[0.1, True]]}), "finite number"),
            "nan.json": ('{"format": "rlkv-head-mask/v1", "scores": [[0.1, NaN]]}', "not valid JSON"),
            "layers.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": ok, "num_layers": 3}), "num_layers"),
            "mask.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": ok,
                                      "full_attention": [[0, 1]]}), "full_attention"),
            "maskval.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": ok,
                                         "full_attention": [[0, 2], [1, 1]]}), "0 or 1"),
            "sparsity.json": (json.dumps({"format": "rlkv-head-mask/v1", "scores": ok, "sparsity": 2}), "sparsity"),
            # Past the range of a double: inf, and an integer float() cannot convert (OverflowError).
            "inf.json": ('{"format": "rlkv-head-mask/v1", "scores": [[0.1, 1e400]]}', "'scores' row 0"),
            "bigint.json": ('{"format": "rlkv-head-mask/v1", "scores": [[0.1, 1%s]]}' % ("0" * 400), "'scores' row 0"),
            "bigsparsity.json": ('{"format": "rlkv-head-mask/v1", "scores": [[0.1, 0.2]], "sparsity": 1%s}'
                                 % ("0" * 400), "'sparsity'"),
        }
        for name, (text, expect) in cases.items():
            with self.subTest(name=name):
                self.assertIn(expect, self.fails("heatmap.py", self.write(name, text)))

    def test_fifo_is_refused_without_opening_it(self):
        # Opening a FIFO blocks until a writer comes.
        os.mkfifo(self.path("scores.tsv"))
        self.assertIn("not a regular file", self.fails("heatmap.py", self.path("scores.tsv")))
        os.makedirs(self.path("run"))
        os.mkfifo(self.path("run/ckpt-5.h5"))
        self.assertIn("not a regular file", self.fails("heatmap.py", self.path("run")))
        r = self.run_script("head_mask.py", self.path("scores.tsv"), "--sparsity", "0.5")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("not a regular file", r.stderr)

    def rendered(self, values, sparsity):
        """(axes, figure) as heatmap.render hands them to save_png, for an L x H score table."""
        seen = {}

        def keep(fig, output):
            seen["ax"] = fig.axes[0]
        saved = heatmap.plot_io.save_png
        heatmap.plot_io.save_png = keep
        try:
            heatmap.render(head_mask.HeadScores(np.asarray(values, dtype=np.float64), "rlkv-sglang", "s.tsv"),
                           self.path("unused.png"), sparsity)
        finally:
            heatmap.plot_io.save_png = saved
        return seen["ax"]

    def test_outlines_are_one_artist_and_large_grids_have_no_cell_grid(self):
        from matplotlib.collections import PolyCollection
        # 256 x 256 at sparsity 0.5 took 19.6 s: a Rectangle per kept head (32,768) and a minor tick
        # and grid line per cell drawn at width 0.
        ax = self.rendered(np.random.default_rng(5).random((256, 256)), 0.5)
        self.assertEqual(len(ax.patches), 0)
        outlines = [c for c in ax.collections if isinstance(c, PolyCollection)]
        self.assertEqual([len(c.get_paths()) for c in outlines], [32768])
        self.assertEqual((len(ax.xaxis.get_minorticklocs()), len(ax.yaxis.get_minorticklocs())), (0, 0))
        # A small grid keeps its white cell lines, and each kept head's square sits inset in its cell.
        ax = self.rendered([[0.9, 0.1], [0.2, 0.8]], 0.5)
        self.assertEqual(len(ax.xaxis.get_minorticklocs()), 3)
        (outline,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
        squares = sorted(tuple(map(tuple, p.vertices[:4].round(6))) for p in outline.get_paths())
        self.assertEqual(squares, [((-0.43, -0.43), (0.43, -0.43), (0.43, 0.43), (-0.43, 0.43)),
                                   ((0.57, 0.57), (1.43, 0.57), (1.43, 1.43), (0.57, 1.43))])

    def test_bad_options(self):
        self.assertIn("--sparsity", self.fails("heatmap.py", TOY_CKPT, "--sparsity", "1.5"))
        self.fails("heatmap.py", TOY_CKPT, "--sparsity", "half")
        self.fails("heatmap.py", TOY_CKPT, "--value", "logit")
        self.fails("heatmap.py", TOY_CKPT, "--bogus")
        r = self.run_script("heatmap.py", TOY_CKPT, "--output", self.path("no/such/dir/x.png"))
        self.assertEqual(r.returncode, 2)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)


# ----------------------------------------------------------------------------------------------


@needs_modules
class CurvesTest(ScriptCase):
    def make_run(self, with_metrics=True, with_ckpt=True):
        run = self.path("run")
        os.makedirs(run, exist_ok=True)
        if with_metrics:
            shutil.copy(TOY_METRICS, os.path.join(run, "metrics.jsonl"))
        if with_ckpt:
            shutil.copy(TOY_CKPT, os.path.join(run, "ckpt-300.h5"))
        return run

    def test_run_directory(self):
        r = self.render("curves.py", self.make_run(), size=curves.figure_pixels(True))
        self.assertIn("300 steps", r.stdout)
        self.assertIn("ckpt-300.h5", r.stdout)

    def test_checkpoint(self):
        self.render("curves.py", TOY_CKPT, size=curves.figure_pixels(True))

    def test_metrics_only(self):
        self.render("curves.py", TOY_METRICS, size=curves.figure_pixels(False))
        self.render("curves.py", self.make_run(with_ckpt=False), size=curves.figure_pixels(False))

    def test_directory_with_checkpoint_only(self):
        self.render("curves.py", self.make_run(with_metrics=False), size=curves.figure_pixels(True))

    def test_newest_readable_checkpoint_is_used(self):
        run = self.make_run()
        self.write("run/ckpt-400.h5", b"RLKVCKPT" + b"\0" * 600)  # damaged: skipped with a warning
        r = self.render("curves.py", run, size=curves.figure_pixels(True))
        self.assertIn("ckpt-300.h5", r.stdout)
        self.assertIn("ckpt-400.h5", r.stderr)

    def test_torn_last_line_and_resumed_duplicates(self):
        with open(TOY_METRICS) as f:
            lines = f.read().splitlines()
        # a resumed run: steps 11-20 twice; the killed writer left half a line
        text = "\n".join(lines[:20] + lines[10:40]) + "\n" + lines[40][:30]
        r = self.render("curves.py", self.write("m/metrics.jsonl", text), size=curves.figure_pixels(False))
        self.assertIn("40 steps", r.stdout)
        self.assertIn("incomplete last line", r.stderr)

    def test_torn_last_line_holding_nan_is_still_torn(self):
        good = "\n".join(json.dumps({"step": s, "reward_mean": s / 10}) for s in range(1, 11))
        r = self.render("curves.py", self.write("metrics.jsonl", good + '\n{"step": 11, "reward_mean": NaN, "corr'),
                        size=curves.figure_pixels(False))
        self.assertIn("incomplete last line", r.stderr)

    def test_missing_fields_and_nulls(self):
        text = "\n".join(json.dumps({"step": s, "reward_mean": s / 10, "length_ratio": None}) for s in range(1, 11))
        self.render("curves.py", self.write("metrics.jsonl", text + "\n"), size=curves.figure_pixels(False))

    # ---- bad input

    def test_missing(self):
        self.assertIn("no such file", self.fails("curves.py", self.path("nope")))

    def test_foreign_files(self):
        self.assertIn("not a JSON object", self.fails("curves.py", os.path.join(REPO, "README.md")))
        p = self.path("foreign.h5")
        with h5py.File(p, "w") as f:
            f["x"] = np.zeros(3)
        self.assertIn("not an rlkv checkpoint", self.fails("curves.py", p))
        self.fails("curves.py", self.write("png.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"))
        os.makedirs(self.path("emptydir"))
        self.assertIn("no metrics.jsonl", self.fails("curves.py", self.path("emptydir")))

    def test_malformed_metrics(self):
        good = json.dumps({"step": 1, "reward_mean": 0.5})
        cases = {
            "middle.jsonl": (good + "\n{oops\n" + good.replace("1", "2") + "\n", ":2:"),
            "nostep.jsonl": (json.dumps({"reward_mean": 0.5}) + "\n", "step"),
            "boolstep.jsonl": (json.dumps({"step": True}) + "\n", "step"),
            "string.jsonl": (json.dumps({"step": 1, "reward_mean": "high"}) + "\n", "reward_mean"),
            "array.jsonl": ("[1, 2]\n", "not a JSON object"),
            "empty.jsonl": ("", "no metrics"),
            "torn-only.jsonl": ('{"step": 1, "rew', "not a JSON object"),
            # A complete last line is not torn: its NaN was dropped with the torn-line warning.
            "nan-last.jsonl": (good + '\n{"step": 2, "reward_mean": NaN}', ":2: holds NaN"),
            "nan-middle.jsonl": ('{"step": 2, "reward_mean": NaN}\n' + good + "\n", ":1: holds NaN"),
            # Past the range of a double: 1e400 was read as inf and the point dropped (exit 0), a
            # longer integer was an OverflowError.
            "inf.jsonl": (good + '\n{"step": 2, "reward_mean": 1e400}\n', ":2: 'reward_mean'"),
            "bigint.jsonl": (good + '\n{"step": 2, "correct_mean": 1%s}\n' % ("0" * 400), ":2: 'correct_mean'"),
            "bigstep.jsonl": ('{"step": 1%s}\n' % ("0" * 400), ":1: 'step'"),
        }
        for name, (text, expect) in cases.items():
            with self.subTest(name=name):
                self.assertIn(expect, self.fails("curves.py", self.write(name, text)))

    def test_fifo_is_refused_without_opening_it(self):
        os.mkfifo(self.path("metrics.jsonl"))
        self.assertIn("not a regular file", self.fails("curves.py", self.path("metrics.jsonl")))

    def test_checkpoint_without_history(self):
        p = self.path("ckpt-0.h5")
        shutil.copy(TOY_CKPT, p)
        with h5py.File(p, "r+") as f:
            L, H = f["policy/logits"].shape
            for name in list(f["history"].keys()):
                dtype = f["history"][name].dtype
                del f["history"][name]
                f["history"].create_dataset(name, shape=(0, L, H) if name == "logits" else (0,), dtype=dtype)
        reseal(p)
        self.assertIn("history is empty", self.fails("curves.py", p))

    def test_bad_history_shape(self):
        p = self.path("ckpt-300.h5")
        shutil.copy(TOY_CKPT, p)
        with h5py.File(p, "r+") as f:
            del f["history/logits"]
            f["history/logits"] = np.zeros((3, 4, 4), dtype=np.float32)
        reseal(p)
        self.assertIn("/history/logits", self.fails("curves.py", p))



@needs_modules
class SavePngTest(ScriptCase):
    """plot_io.save_png writes the whole image or leaves the file that was there."""

    def figure(self):
        import matplotlib.pyplot as plt
        fig = plt.figure(figsize=(2, 2), dpi=plot_io.DPI)
        fig.add_subplot().plot([0, 1], [1, 0])
        self.addCleanup(plt.close, fig)
        return fig

    def without_pillow(self, yes):
        """With yes, `from PIL import Image` fails until the test ends (the path without Pillow)."""
        if yes:
            saved = sys.modules.get("PIL")
            sys.modules["PIL"] = None
            self.addCleanup(lambda: sys.modules.__setitem__("PIL", saved) if saved else sys.modules.pop("PIL"))

    def test_failed_write_leaves_the_old_image(self):
        for no_pillow in (False, True):
            with self.subTest(no_pillow=no_pillow):
                out_dir = self.path(f"pillow-{not no_pillow}")
                os.makedirs(out_dir)
                out = os.path.join(out_dir, "out.png")
                self.without_pillow(no_pillow)
                fig = self.figure()
                plot_io.save_png(fig, out)
                with open(out, "rb") as f:
                    good = f.read()
                self.assertGreater(len(good), 2000)
                soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # ulimit -f: EFBIG past 1000 bytes
                try:
                    with self.assertRaises(OSError):
                        plot_io.save_png(fig, out)
                finally:
                    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
                with open(out, "rb") as f:
                    self.assertEqual(f.read(), good, "the image was damaged")
                self.assertEqual(os.listdir(out_dir), ["out.png"], "a temporary file was left")

    def test_symlink_stays_a_link(self):
        os.makedirs(self.path("real"))
        target = self.path("real/target.png")
        self.write("real/target.png", b"old")
        link = self.path("link.png")
        os.symlink(target, link)
        plot_io.save_png(self.figure(), link)
        self.assertTrue(os.path.islink(link))
        with open(target, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertEqual(sorted(os.listdir(self.path("real"))), ["target.png"])

    def test_script_under_a_file_size_limit(self):
        out = self.path("out.png")
        self.assertEqual(self.run_script("heatmap.py", TOY_CKPT, "--output", out).returncode, 0)
        with open(out, "rb") as f:
            good = f.read()
        r = subprocess.run([sys.executable, os.path.join(ANALYSIS, "heatmap.py"), TOY_CKPT, "--output", out],
                           cwd=self.tmp, env=self.env, capture_output=True, text=True, timeout=180,
                           preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1000, resource.RLIM_INFINITY)))
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(r.stderr.splitlines()), 1, r.stderr)
        self.assertIn("cannot write", r.stderr)
        with open(out, "rb") as f:
            self.assertEqual(f.read(), good, "a failed write damaged the image")


@needs_modules
class TradeoffTest(ScriptCase):
    def results(self, name="r.json", rows=None):
        rows = rows if rows is not None else [
            {"method": "full", "sparsity": 0.0, "accuracy": 1.0, "kv_fraction_of_full": 1.0},
            {"method": "rlkv", "sparsity": 0.5, "accuracy": 0.99, "kv_fraction_of_full": 0.59},
            {"method": "rlkv", "sparsity": 0.75, "accuracy": 0.9, "kv_fraction_of_full": 0.39},
            {"method": "h2o", "sparsity": 0.5, "accuracy": 0.08, "kv_fraction_of_full": 0.71},
            {"method": "random", "sparsity": 0.5, "accuracy": 0.1, "accuracy_std": 0.2, "kv_fraction_of_full": 0.6},
            {"method": "single-head", "sparsity": 0.06, "accuracy": 0.5, "kv_fraction_of_full": 0.9},
        ]
        return self.write(name, json.dumps({"problems": 10, "sink": 4, "window": 16, "rows": rows}))

    def test_methods_become_lines(self):
        out = self.path("out.png")
        r = self.run_script("tradeoff.py", self.results(), "--output", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        # single-head rows (an ablation pass, not a method at a sparsity) are not plotted
        self.assertIn("5 points of 4 methods", r.stdout)
        img = mpimg.imread(out)
        self.assertGreater(float(img[..., :3].var()), MIN_VARIANCE, "image looks blank")

    def test_bad_input(self):
        self.assertIn("cannot read", self.fails("tradeoff.py", self.path("missing.json")))
        self.assertIn("not JSON", self.fails("tradeoff.py", self.write("bad.json", "{")))
        self.assertIn("no 'rows'", self.fails("tradeoff.py", self.write("empty.json", json.dumps({"rows": []}))))
        self.assertIn("without method", self.fails("tradeoff.py", self.results("odd.json", [{"method": "x"}])))
        # Each of these was a traceback, exit 1.
        self.assertIn("not UTF-8", self.fails("tradeoff.py", self.write("latin1.json", b'{"rows": "\xe9"}')))
        null_std = [{"method": "random", "accuracy": 0.1, "accuracy_std": None, "kv_fraction_of_full": 0.6}]
        self.assertIn("accuracy_std", self.fails("tradeoff.py", self.results("null.json", null_std)))
        self.assertIn("nested too deeply", self.fails("tradeoff.py", self.write("deep.json", "[" * 100000)))
        self.assertIn("not finite", self.fails("tradeoff.py", self.write(
            "nan.json", '{"rows": [{"method": "rlkv", "accuracy": NaN, "kv_fraction_of_full": 0.5}]}')))
        # An integer past the double range (OverflowError) and one past Python's digit limit (ValueError).
        self.assertIn("not finite", self.fails("tradeoff.py", self.write(
            "huge.json", '{"rows": [{"method": "rlkv", "accuracy": 1, "kv_fraction_of_full": 1' + "0" * 400 + '}]}')))
        self.assertIn("not a results file", self.fails("tradeoff.py", self.write(
            "digits.json", '{"rows": [{"method": "rlkv", "accuracy": 1, "kv_fraction_of_full": 1' + "0" * 5000 + '}]}')))

if __name__ == "__main__":
    unittest.main()
