#!/usr/bin/env python3
"""Tests of tools/compare_seeds.py (the comparison table over RLKV training seeds).

Run from the repository root: python3 -m unittest tests/test_tools.py (standard library only).
The inputs are small hand-made results files in the format rlkv compare / rlkv eval --output write, so
every expected number below is worked out by hand from them.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "tools", "compare_seeds.py")


def row(method, sparsity, accuracy, kv=0.5, **extra):
    return {"method": method, "sparsity": sparsity, "accuracy": accuracy, "kv_fraction_of_full": kv, **extra}


# Per-head baselines: at 0.25 the best is duo-reasoning (0.90), at 0.5 the oracle (0.40).
COMPARE = {
    "problems": 100,
    "rows": [
        {"method": "full", "sparsity": 0.0, "accuracy": 1.0, "kv_fraction_of_full": 1.0, "n": 100},
        row("oracle", 0.25, 0.88, 0.8), row("oracle", 0.5, 0.40, 0.6),
        row("duo-retrieval", 0.25, 0.70, 0.8), row("duo-retrieval", 0.5, 0.30, 0.6),
        row("duo-reasoning", 0.25, 0.90, 0.8), row("duo-reasoning", 0.5, 0.35, 0.6),
        row("random", 0.25, 0.20, 0.8, accuracy_std=0.1), row("random", 0.5, 0.05, 0.6, accuracy_std=0.02),
        row("rlkv", 0.25, 0.5, 0.8), row("rlkv", 0.5, 0.5, 0.6),  # a one-checkpoint row the seeds replace
    ],
}
# Three seeds: means 0.87 and 0.50 (min 0.85 / 0.45, max 0.89 / 0.55).
SEEDS = [
    [row("rlkv", 0.25, 0.85, 0.79), row("rlkv", 0.5, 0.45, 0.59)],
    [row("rlkv", 0.25, 0.87, 0.80), row("rlkv", 0.5, 0.50, 0.60)],
    [row("rlkv", 0.25, 0.89, 0.81), row("rlkv", 0.5, 0.55, 0.61)],
]


class CompareSeeds(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="rlkv-tools-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write(self, name, doc):
        p = os.path.join(self.tmp, name)
        with open(p, "w") as f:
            f.write(doc if isinstance(doc, str) else json.dumps(doc))
        return p

    def run_script(self, *args):
        return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=60)

    def inputs(self):
        return [self.write("compare.json", COMPARE)] + [
            self.write(f"seed{i}.json", {"rows": rows}) for i, rows in enumerate(SEEDS)]

    def test_table_margins_and_merged_rows(self):
        merged = os.path.join(self.tmp, "merged.json")
        r = self.run_script(*self.inputs(), "--merged", merged)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertIn("| rlkv (3 seeds: mean, min-max) | **87.0** (85.0-89.0) | **50.0** (45.0-55.0) | 60.0% |", lines)
        self.assertIn("| rlkv, seed 3 | 89.0 | 55.0 | 61.0% |", lines)
        self.assertIn("| random masks | 20.0 ± 10.0 | 5.0 ± 2.0 | 60.0% |", lines)
        self.assertIn("Every head full: 100.0% on 100 problems.", lines)
        # Margins against the best per-head baseline, and the oracle against the best mask found.
        self.assertIn("- 25.0% compressed: learned mean 87.0 against the best per-head baseline 90.0 "
                      "(duo-reasoning): -3.0 points; the oracle is 2.0 below the best mask found.", lines)
        self.assertIn("- 50.0% compressed: learned mean 50.0 against the best per-head baseline 40.0 "
                      "(oracle): +10.0 points; the oracle is 15.0 below the best mask found.", lines)
        with open(merged) as f:
            doc = json.load(f)
        self.assertEqual(doc["problems"], 100)  # the compare file's description is kept
        rl = {r["sparsity"]: r for r in doc["rows"] if r["method"] == "rlkv"}
        self.assertEqual(sorted(rl), [0.25, 0.5])  # the one-checkpoint rows are gone
        self.assertAlmostEqual(rl[0.5]["accuracy"], 0.50)
        self.assertAlmostEqual(rl[0.5]["accuracy_std"], 0.05)
        self.assertAlmostEqual(rl[0.25]["kv_fraction_of_full"], 0.80)
        self.assertEqual(sum(r["method"] == "oracle" for r in doc["rows"]), 2)

    def test_bad_input_one_line_error(self):
        good = self.inputs()
        cases = {
            "not json": self.write("bad.json", "{not json"),
            "no rows": self.write("norows.json", {"results": []}),
            "row without accuracy": self.write("noacc.json", {"rows": [{"method": "rlkv", "sparsity": 0.5}]}),
            "non-numeric sparsity": self.write("str.json", {"rows": [row("rlkv", "half", 0.5)]}),
            "missing file": os.path.join(self.tmp, "absent.json"),
        }
        for what, bad in cases.items():
            with self.subTest(what):
                r = self.run_script(good[0], bad)
                self.assertNotEqual(r.returncode, 0)
                self.assertEqual(len(r.stderr.strip().splitlines()), 1, r.stderr)
                self.assertIn("compare_seeds.py: ", r.stderr)
                self.assertNotIn("Traceback", r.stderr)
        # Seed files that share no sparsity.
        r = self.run_script(good[0], good[1], self.write("other.json", {"rows": [row("rlkv", 0.75, 0.1)]}))
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("share no sparsity", r.stderr)


if __name__ == "__main__":
    unittest.main()
