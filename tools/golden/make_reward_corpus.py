#!/usr/bin/env python3
"""Build the answer-verification corpus for rlkv's reward tests and label it with math-verify.

Run with the pinned reference environment (see tools/golden/requirements.txt):

    /opt/ref/bin/python tools/golden/make_reward_corpus.py --out tests/fixtures/rewards/corpus.jsonl

What it writes: one JSON object per line,

    {"id": int, "category": str, "prediction": str, "reference": str,
     "intended": bool, "math_verify": bool}

- `prediction` is a model response (reasoning text with a \\boxed{} answer, "The final answer is
  $...$. I hope it is correct.", "the answer is ...", a <think> block, a truncated second box, or no
  answer at all); `reference` is a dataset answer (a bare value, a GSM8K solution ending in
  "#### 42", or a MATH-style solution with a \\boxed{} answer).
- `intended` is what the generator meant (equivalent or not); `math_verify` is Hugging Face
  math-verify's verdict, which is the label rlkv's verifier is tested against
  (tests/test_rewards_corpus.cpp: >= 98% agreement, every disagreement listed with a reason in
  tests/fixtures/rewards/disagreements.md).

Categories: integers, decimals, fractions (\\frac, \\dfrac, \\tfrac, a/b, mixed
numbers), percent, scientific notation, signs, thousands separators, LaTeX noise (\\left, \\right,
\\!, \\,, $, \\text units, ^\\circ, trailing period), tuples, intervals (and unions), sets, multiple
choice, expressions with roots / pi / variables, equations, text answers, and extraction formats. Each
category has hand-written seeds plus systematic variations drawn from a fixed-seed RNG, about half
equivalent and half not.

How math-verify is asked (the protocol; math-verify has no notion of some of our conventions):
- prediction: the text after the last `</think>` when there is one (reasoning models' convention;
  math-verify would otherwise read the draft inside the thinking block), parsed with
  [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()] (boxed answers first, as
  in open-r1's accuracy reward);
- reference: the rest of the line after the last `####` (GSM8K), else the solution itself when it has
  a \\boxed{}, else the bare value wrapped in `$...$`, parsed with
  [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()];
- multiple choice (the reference is a letter A-E): the bare letter (without parentheses or \\text{})
  is parsed with StringExtractionConfig(A-E) and the reference as written, as `$...$`, with
  LatexExtractionConfig, both kept as gold candidates; the prediction is parsed with
  [StringExtractionConfig(A-E), LatexExtractionConfig(boxed_match_priority=0)];
- `verify(gold, pred)` with its defaults (float_rounding=6, strict=True, 5 s timeouts).

Deterministic: a fixed seed, no network, sorted iteration; two runs write the same bytes.
"""

import argparse
import importlib.metadata
import json
import logging
import os
import random
import sys
from fractions import Fraction

os.environ.setdefault("OMP_NUM_THREADS", "1")

from math_verify import (  # noqa: E402
    ExprExtractionConfig,
    LatexExtractionConfig,
    StringExtractionConfig,
    parse,
    verify,
)

logging.disable(logging.WARNING)  # math-verify logs every parse timeout / failure

SEED = 20250411
LETTERS = ("A", "B", "C", "D", "E")

# --------------------------------------------------------------------------------------------
# Response and reference wrappers
# --------------------------------------------------------------------------------------------

FILLER = [
    "First we add the two parts and check the units.",
    "Let me set up the equation and solve it step by step.",
    "We simplify the expression carefully.",
    "Substituting the known values gives the result.",
    "Counting the cases one by one,",
]


def respond(answer, fmt, rng):
    """Wraps an answer string in a model-like response of format `fmt`."""
    lead = rng.choice(FILLER)
    if fmt == "boxed":
        return f"{lead} Therefore the result is $\\boxed{{{answer}}}$."
    if fmt == "boxed_display":
        return f"{lead}\n\\[\n\\boxed{{{answer}}}\n\\]"
    if fmt == "minerva":
        return f"{lead}\nFinal Answer: The final answer is ${answer}$. I hope it is correct."
    if fmt == "answer_is":
        return f"{lead} So the answer is ${answer}$."
    if fmt == "think":
        return (f"<think>\nHmm, maybe it is \\boxed{{0}}? No, recheck. {lead}\n</think>\n\n"
                f"The final answer is $\\boxed{{{answer}}}$.")
    if fmt == "truncated_second_box":
        return f"{lead} We get \\boxed{{{answer}}}.\nWait, let me double-check this: \\boxed{{\\frac{{1"
    if fmt == "fbox":
        return f"{lead} Hence \\fbox{{{answer}}}."
    if fmt == "plain_final":
        return f"{lead} The final answer is {answer}"
    raise ValueError(fmt)


# Formats drawn for ordinary pairs; fbox / plain_final are used in a few hand-picked seeds only.
COMMON_FORMATS = ["boxed"] * 5 + ["boxed_display", "minerva", "answer_is", "think", "truncated_second_box"]


def gsm8k_reference(value, rng):
    a = rng.randint(2, 9)
    return f"She has {a} boxes at first.\nThen she computes <<{a}*2={a * 2}>>{a * 2} more.\n#### {value}"


def math_reference(value, rng):
    return f"{rng.choice(FILLER)} Thus the answer is $\\boxed{{{value}}}$."


# --------------------------------------------------------------------------------------------
# Categories: each returns a list of (category, answer_in_prediction, reference_value, intended,
# reference_style) where reference_style is "bare", "gsm8k" or "math".
# --------------------------------------------------------------------------------------------


def frac_tex(q, cmd="\\frac"):
    sign = "-" if q < 0 else ""
    q = abs(q)
    return f"{sign}{cmd}{{{q.numerator}}}{{{q.denominator}}}"


def dec_str(q, places=None):
    if places is None:
        # Exact terminating decimal.
        s = f"{float(q):.10f}".rstrip("0").rstrip(".")
        return s
    return f"{float(q):.{places}f}"


def terminating(q):
    d = q.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def thousands(n):
    return f"{n:,}"


def cat_integers(rng):
    out = []
    seeds = [  # hand-written (prediction, reference, intended)
        ("72", "72", True), ("18", "18", True), ("5", "5.0", True), ("1,000", "1000", True), ("\\$18", "18", True),
        ("18\\text{ dollars}", "18", True), ("0", "0", True), ("-0", "0", True), ("007", "7", True),
        ("72", "27", False), ("18", "81", False), ("1000", "100", False), ("5", "-5", False), ("12", "12.5", False),
    ]
    for p, r, eq in seeds:
        out.append(("integer", p, r, eq, "bare"))
    for _ in range(100):
        n = rng.choice([rng.randint(1, 99), rng.randint(100, 999), rng.randint(1000, 99999), rng.randint(100000, 5000000)])
        style = rng.choice(["bare", "bare", "gsm8k", "gsm8k", "math"])
        ref = thousands(n) if (n >= 1000 and style == "gsm8k" and rng.random() < 0.3) else str(n)
        if rng.random() < 0.5:
            forms = [str(n), f"{n}.00", f"+{n}", f"\\${n}", f"{n}\\text{{ units}}", f"{n} \\text{{ apples}}"]
            if n >= 1000:
                forms += [thousands(n), thousands(n).replace(",", "{,}"), thousands(n).replace(",", "\\,")]
            out.append(("integer", rng.choice(forms), ref, True, style))
        else:
            s = str(n)
            wrong = [str(n + 1), str(n - 1), str(n * 10), str(-n), str(n + 10)]
            if len(s) >= 2 and s[0] != s[1]:
                wrong.append(s[1] + s[0] + s[2:])
            out.append(("integer", rng.choice(wrong), ref, False, style))
    return out


def cat_decimals(rng):
    out = []
    seeds = [("0.5", "0.50", True), (".5", "0.5", True), ("3.75", "3.750", True), ("2.5", "2.05", False),
             ("0.125", "0.12", False), ("12.5", "125", False), ("1.50", "\\frac{3}{2}", True)]
    for p, r, eq in seeds:
        out.append(("decimal", p, r, eq, "bare"))
    for _ in range(70):
        places = rng.choice([1, 2, 3])
        v = Fraction(rng.randint(1, 20000), 10 ** places)
        ref = dec_str(v)
        style = rng.choice(["bare", "bare", "math", "gsm8k"])
        if rng.random() < 0.5:
            forms = [dec_str(v), dec_str(v) + "0", frac_tex(v) if v.denominator <= 1000 else dec_str(v)]
            if v < 1:
                forms.append(dec_str(v)[1:])  # ".25"
            out.append(("decimal", rng.choice(forms), ref, True, style))
        else:
            wrong = [dec_str(v + Fraction(1, 10)), dec_str(v * 10), dec_str(v / 10 if v.denominator < 1000 else v + 1),
                     dec_str(-v)]
            out.append(("decimal", rng.choice(wrong), ref, False, style))
    return out


def cat_fractions(rng):
    out = []
    seeds = [("\\frac{1}{2}", "\\dfrac{1}{2}", True), ("\\tfrac{3}{4}", "3/4", True), ("\\frac12", "0.5", True),
             ("2\\frac{1}{3}", "\\frac{7}{3}", True), ("\\frac{6}{8}", "\\frac{3}{4}", True),
             ("\\frac{1}{3}", "0.333333", True), ("\\frac{2}{3}", "0.6666667", True),
             ("\\frac{1}{3}", "0.33", False), ("\\frac{3}{4}", "\\frac{4}{3}", False),
             ("1\\frac{1}{2}", "\\frac{1}{2}", False), ("\\frac{22}{7}", "\\pi", False)]
    for p, r, eq in seeds:
        out.append(("fraction", p, r, eq, "bare"))
    for _ in range(130):
        b = rng.randint(2, 16)
        a = rng.randint(1, 3 * b)
        q = Fraction(a, b)
        if q.denominator == 1:
            q += Fraction(1, b + 1)
        if rng.random() < 0.2:
            q = -q
        style = rng.choice(["bare", "bare", "math"])
        ref = rng.choice([frac_tex(q), frac_tex(q, "\\dfrac"), f"{q.numerator}/{q.denominator}"])
        if rng.random() < 0.5:
            unreduced = ("-" if q < 0 else "") + f"\\frac{{{abs(q.numerator) * 2}}}{{{q.denominator * 2}}}"
            forms = [frac_tex(q), frac_tex(q, "\\tfrac"), frac_tex(q, "\\dfrac"), f"{q.numerator}/{q.denominator}", unreduced]
            if terminating(q):
                forms.append(dec_str(q))
            else:
                forms.append(dec_str(q, 7))
            if abs(q) > 1 and q > 0:
                whole = q.numerator // q.denominator
                rest = q - whole
                forms.append(f"{whole}\\frac{{{rest.numerator}}}{{{rest.denominator}}}")
            out.append(("fraction", rng.choice(forms), ref, True, style))
        else:
            wrong = [frac_tex(1 / q) if q != 0 else "1", frac_tex(q + Fraction(1, q.denominator)), frac_tex(-q),
                     f"{abs(q.numerator)}{q.denominator}"]
            if Fraction(dec_str(q, 2)) != q:  # rounded to 2 places: too coarse to count
                wrong.append(dec_str(q, 2))
            out.append(("fraction", rng.choice(wrong), ref, False, style))
    return out


def cat_percent(rng):
    out = []
    seeds = [("25\\%", "25", True), ("25\\%", "0.25", True), ("0.25", "25\\%", True), ("25", "25\\%", True),
             ("12.5\\%", "0.125", True), ("25\\%", "2.5", False), ("50\\%", "5", False), ("40 \\%", "40\\%", True)]
    for p, r, eq in seeds:
        out.append(("percent", p, r, eq, "bare"))
    for _ in range(50):
        # Mostly whole percentages, as in GSM8K / MATH; some quarter percents.
        p = rng.randint(1, 99) if rng.random() < 0.8 else rng.randint(1, 400) / 4
        ps = ("%g" % p)
        style = rng.choice(["bare", "gsm8k", "math"])
        if rng.random() < 0.5:
            pred, ref = rng.choice([(f"{ps}\\%", ps), (f"{ps}\\%", f"{ps}\\%"), (ps, f"{ps}\\%"),
                                    (f"{ps}\\%", "%g" % (p / 100)), (f"{ps} \\%", ps)])
            if style == "gsm8k" and "\\%" in ref:
                style = "bare"
            out.append(("percent", pred, ref, True, style))
        else:
            pred, ref = rng.choice([(f"{ps}\\%", "%g" % (p + 1)), (f"{ps}\\%", "%g" % (p / 10)),
                                    (f"{'%g' % (p + 5)}\\%", f"{ps}\\%")])
            if style == "gsm8k" and "\\%" in ref:
                style = "bare"
            out.append(("percent", pred, ref, False, style))
    return out


def cat_scientific(rng):
    out = []
    seeds = [("1.5\\times 10^{3}", "1500", True), ("3 \\cdot 10^{-2}", "0.03", True), ("2\\times10^6", "2,000,000", True),
             ("1.5e3", "1500", True), ("2.5e-3", "0.0025", True), ("1.5\\times 10^{4}", "1500", False),
             ("10^{-5}", "0.00001", True), ("6.02\\times10^{23}", "6.02\\times 10^{23}", True)]
    for p, r, eq in seeds:
        out.append(("scientific", p, r, eq, "bare"))
    for _ in range(40):
        m = rng.randint(11, 99) / 10
        k = rng.randint(-4, 6)
        v = Fraction(int(round(m * 10)), 10) * (Fraction(10) ** k)
        ref = dec_str(v) if -4 <= k <= 6 else f"{m}\\times 10^{{{k}}}"
        forms_eq = [f"{m}\\times 10^{{{k}}}", f"{m} \\cdot 10^{{{k}}}", f"{m}\\times10^{{{k}}}"]
        if rng.random() < 0.5:
            out.append(("scientific", rng.choice(forms_eq), ref, True, "bare"))
        else:
            out.append(("scientific", rng.choice([f"{m}\\times 10^{{{k + 1}}}", f"{m + 1}\\times 10^{{{k}}}",
                                                  f"{m}\\times 10^{{{-k if k else 1}}}"]), ref, False, "bare"))
    return out


def cat_signs(rng):
    out = []
    seeds = [("-3", "- 3", True), ("-\\frac{1}{2}", "\\frac{-1}{2}", True), ("-0.5", "-\\frac{1}{2}", True),
             ("+5", "5", True), ("-3", "3", False), ("\\frac{1}{2}", "-\\frac{1}{2}", False), ("-(-4)", "4", True)]
    for p, r, eq in seeds:
        out.append(("sign", p, r, eq, "bare"))
    for _ in range(50):
        n = rng.randint(1, 500)
        if rng.random() < 0.5:
            p, r = rng.choice([(f"-{n}", f"-{n}"), (f"- {n}", f"-{n}"), (f"-{n}", f"-{n}.0"), (f"{-n}", f"\\left(-{n}\\right)")])
            out.append(("sign", p, r, True, "bare"))
        else:
            out.append(("sign", rng.choice([f"{n}", f"-{n + 1}"]), f"-{n}", False, "bare"))
    return out


def cat_noise(rng):
    out = []
    seeds = [("\\left( 3 \\right)", "3", True), ("\\!5", "5", True), ("5\\,", "5", True), ("\\displaystyle\\frac{1}{2}", "0.5", True),
             ("\\mathrm{12}", "12", True), ("30^\\circ", "30", True), ("30^{\\circ}", "30", True), ("45^\\circ", "30", False),
             ("12\\text{ cm}", "12", True), ("12 \\text{cm}^2", "12", True), ("\\text{12}", "12", True), ("5.", "5", True),
             ("3\\,000", "3000", True), ("\\$4.50", "4.5", True), ("12\\text{ cm}", "13", False), ("90^\\circ", "\\frac{\\pi}{2}", False)]
    for p, r, eq in seeds:
        out.append(("latex_noise", p, r, eq, "bare"))
    wraps = [("\\left({}\\right)", "paren"), ("\\!{}", ""), ("{}\\,", ""), ("\\displaystyle {}", ""), ("{}^\\circ", "deg"),
             ("{}^{{\\circ}}", "deg"), ("{}\\text{{ cm}}", ""), ("{}\\text{{ meters}}", ""), ("\\mathrm{{{}}}", ""),
             ("\\textbf{{{}}}", ""), ("{} \\text{{ inches}}", "")]
    for _ in range(60):
        n = rng.choice([str(rng.randint(1, 360)), dec_str(Fraction(rng.randint(1, 999), 10)), frac_tex(Fraction(rng.randint(1, 9), rng.randint(10, 19)))])
        w, _kind = rng.choice(wraps)
        pred = w.format(n)
        if rng.random() < 0.5:
            out.append(("latex_noise", pred, n, True, rng.choice(["bare", "math"])))
        else:
            other = str(rng.randint(361, 999))
            out.append(("latex_noise", pred, other, False, "bare"))
    return out


def cat_tuples(rng):
    out = []
    seeds = [("(1,2,3)", "(1, 2, 3)", True), ("\\left(1,2,3\\right)", "(1,2,3)", True), ("[1,2,3]", "(1,2,3)", True),
             ("(3,2,1)", "(1,2,3)", False), ("(1,2)", "(2,1)", False), ("(\\frac{1}{2}, 3, -1)", "(0.5,3,-1)", True),
             ("(1,2,3)", "(1,2,3,4)", False)]
    for p, r, eq in seeds:
        out.append(("tuple", p, r, eq, "bare"))
    for _ in range(70):
        k = rng.choice([3, 3, 4])
        xs = [rng.randint(-9, 20) for _ in range(k)]
        ref = "(" + ", ".join(map(str, xs)) + ")"
        if rng.random() < 0.5:
            forms = ["(" + ",".join(map(str, xs)) + ")", "\\left(" + ", ".join(map(str, xs)) + "\\right)",
                     "(" + ", ".join(frac_tex(Fraction(2 * x, 2)) if x % 2 == 0 and x else str(x) for x in xs) + ")"]
            out.append(("tuple", rng.choice(forms), ref, True, rng.choice(["bare", "math"])))
        else:
            ys = list(xs)
            how = rng.choice(["swap", "change", "drop"])
            if how == "swap" and ys[0] != ys[1]:
                ys[0], ys[1] = ys[1], ys[0]
            elif how == "drop":
                ys = ys[:-1]
            else:
                ys[rng.randrange(len(ys))] += rng.choice([1, -1, 2])
            out.append(("tuple", "(" + ", ".join(map(str, ys)) + ")", ref, False, "bare"))
    return out


def cat_intervals(rng):
    out = []
    seeds = [("[1,2)", "[1, 2)", True), ("(-\\infty, 3]", "(-\\infty,3]", True), ("[1,2)", "(1,2)", False),
             ("(1,2]", "[1,2]", False), ("(-\\infty,1)\\cup(2,\\infty)", "(2,\\infty)\\cup(-\\infty,1)", True),
             ("(-\\infty,1)\\cup(2,\\infty)", "(-\\infty,1]\\cup(2,\\infty)", False), ("\\left[0, \\frac{1}{2}\\right)", "[0,0.5)", True),
             ("x \\in [2,5]", "[2,5]", True), ("[0,\\infty)", "(0,\\infty)", False)]
    for p, r, eq in seeds:
        out.append(("interval", p, r, eq, "bare"))
    for _ in range(70):
        a = rng.randint(-10, 5)
        b = a + rng.randint(1, 10)
        lo, hi = rng.choice("(["), rng.choice(")]")
        ea = rng.choice([str(a), "-\\infty"]) if lo == "(" else str(a)
        eb = rng.choice([str(b), "\\infty"]) if hi == ")" else str(b)
        ref = f"{lo}{ea}, {eb}{hi}"
        if rng.random() < 0.5:
            forms = [f"{lo}{ea},{eb}{hi}", f"\\left{lo}{ea}, {eb}\\right{hi}", f"{lo} {ea} , {eb} {hi}"]
            out.append(("interval", rng.choice(forms), ref, True, rng.choice(["bare", "math"])))
        else:
            wrong = []
            if ea != "-\\infty":  # flip the left bracket of a finite endpoint
                wrong.append(f"{'[' if lo == '(' else '('}{ea}, {eb}{hi}")
            if eb != "\\infty":  # move the right endpoint
                wrong.append(f"{lo}{ea}, {b + 1}{hi}")
            else:
                wrong.append(f"{lo}{a - 1}, {eb}{hi}")
            out.append(("interval", rng.choice(wrong), ref, False, "bare"))
    return out


def cat_sets(rng):
    out = []
    seeds = [("\\{1,2,3\\}", "\\{3,2,1\\}", True), ("1, 2, 3", "\\{1,2,3\\}", True), ("\\{1,2\\}", "\\{1,2,3\\}", False),
             ("\\{-1, \\frac{1}{2}\\}", "\\{0.5,-1\\}", True), ("1, 2, 4", "1, 2, 3", False), ("2, -2", "-2, 2", True)]
    for p, r, eq in seeds:
        out.append(("set", p, r, eq, "bare"))
    for _ in range(70):
        k = rng.choice([2, 3, 4])
        xs = rng.sample(range(-12, 25), k)
        ref = rng.choice(["\\{" + ", ".join(map(str, xs)) + "\\}", ", ".join(map(str, xs))])
        if rng.random() < 0.5:
            ys = list(xs)
            rng.shuffle(ys)
            pred = rng.choice(["\\{" + ",".join(map(str, ys)) + "\\}", ", ".join(map(str, ys)),
                               "\\left\\{" + ", ".join(map(str, ys)) + "\\right\\}"])
            out.append(("set", pred, ref, True, rng.choice(["bare", "math"])))
        else:
            ys = list(xs)
            if rng.random() < 0.5:
                ys[rng.randrange(k)] = 40 + rng.randint(0, 9)
            else:
                ys = ys[:-1]
            rng.shuffle(ys)
            out.append(("set", "\\{" + ", ".join(map(str, ys)) + "\\}", ref, False, "bare"))
    return out


def cat_choice(rng):
    out = []
    for _ in range(80):
        ref = rng.choice(LETTERS)
        ref_form = rng.choice([ref, ref, f"({ref})", f"\\text{{({ref})}}"])
        eq = rng.random() < 0.5
        letter = ref if eq else rng.choice([c for c in LETTERS if c != ref])
        pred = rng.choice([f"\\boxed{{{letter}}}", f"\\boxed{{({letter})}}", f"\\boxed{{\\text{{({letter})}}}}",
                           f"\\boxed{{\\textbf{{{letter}}}}}", f"The answer is {letter}.", f"Answer: {letter}"])
        out.append(("choice", pred, ref_form, eq, "raw"))
    # A few with the parenthesised letter after "answer is", which math-verify's string patterns miss.
    out.append(("choice", "The answer is (B).", "B", True, "raw"))
    out.append(("choice", "The answer is (D).", "B", False, "raw"))
    return out


def cat_expressions(rng):
    out = []
    seeds = [("2\\sqrt{2}", "\\sqrt{8}", True), ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}", True), ("3\\sqrt{2}", "\\sqrt{18}", True),
             ("\\frac{\\pi}{2}", "\\pi/2", True), ("2\\pi", "\\pi", False), ("\\sqrt{2}", "\\sqrt{3}", False),
             ("x^2+2x+1", "(x+1)^2", True), ("2x+2", "2(x+1)", True), ("x^2-1", "(x-1)(x+1)", True), ("x^2+1", "x^2-1", False),
             ("\\frac{x}{2}", "0.5x", True), ("1+9t", "9t+1", True), ("2^{10}", "1024", True), ("5!", "120", True), ("\\binom{5}{2}", "10", True),
             ("\\sqrt[3]{27}", "3", True), ("\\pi r^2", "r^2\\pi", True), ("\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", True),
             ("\\frac{\\sqrt{3}}{2}", "0.8660254", True), ("\\pi", "3.1415927", True), ("\\sqrt{2}", "1.41", False)]
    for p, r, eq in seeds:
        out.append(("expression", p, r, eq, "bare"))
    for _ in range(80):
        kind = rng.choice(["root", "pi", "poly"])
        if kind == "root":
            a, n = rng.randint(2, 6), rng.choice([2, 3, 5, 6, 7])
            ref = f"{a}\\sqrt{{{n}}}"
            eq_forms = [f"\\sqrt{{{a * a * n}}}", f"{a} \\sqrt{{{n}}}", f"\\sqrt{{{n}}}\\cdot {a}"]
            ne_forms = [f"{a + 1}\\sqrt{{{n}}}", f"\\sqrt{{{a * n}}}", f"{a}\\sqrt{{{n + 1}}}"]
        elif kind == "pi":
            a, b = rng.randint(1, 9), rng.randint(2, 9)
            ref = f"\\frac{{{a}\\pi}}{{{b}}}"
            eq_forms = [f"\\frac{{{a}}}{{{b}}}\\pi", f"{a}\\pi/{b}", f"\\frac{{{2 * a}\\pi}}{{{2 * b}}}"]
            ne_forms = [f"\\frac{{{a + 1}\\pi}}{{{b}}}", f"\\frac{{{a}}}{{{b}}}", f"\\frac{{{b}\\pi}}{{{a + b}}}"]
        else:
            a, b = rng.randint(1, 9), rng.randint(1, 9)
            v = rng.choice("xyn")  # not t: math-verify drops a trailing "t" as a unit (tonne)
            ref = f"{a}{v}+{b}"
            eq_forms = [f"{b}+{a}{v}", f"{a} {v} + {b}", f"{a}\\cdot {v}+{b}"]
            ne_forms = [f"{a}{v}-{b}", f"{b}{v}+{a}" if a != b else f"{a}{v}+{b + 1}", f"{a}{v}^2+{b}"]
        if rng.random() < 0.5:
            out.append(("expression", rng.choice(eq_forms), ref, True, rng.choice(["bare", "math"])))
        else:
            out.append(("expression", rng.choice(ne_forms), ref, False, "bare"))
    return out


def cat_equations(rng):
    out = []
    seeds = [("x=5", "5", True), ("5", "x=5", True), ("x = 5", "x=5", True), ("y=3+2x", "y=2x+3", True),
             ("x=6", "5", False), ("y=5", "x=5", False), ("2x+3", "y=2x+3", True), ("k = \\frac{1}{2}", "0.5", True)]
    for p, r, eq in seeds:
        out.append(("equation", p, r, eq, "bare"))
    for _ in range(50):
        n = rng.randint(-20, 50)
        v = rng.choice("xynk")
        if rng.random() < 0.5:
            p, r = rng.choice([(f"{v}={n}", str(n)), (f"{v} = {n}", f"{v}={n}"), (str(n), f"{v}={n}")])
            out.append(("equation", p, r, True, "bare"))
        else:
            out.append(("equation", f"{v}={n + 1}", str(n), False, "bare"))
    return out


def cat_text(rng):
    out = [("text", "\\text{north}", "north", True, "bare")]  # math-verify cannot read a bare "north"
    words = ["Monday", "yes", "no", "even", "odd", "red", "blue", "triangle", "square"]
    for _ in range(40):
        w = rng.choice(words)
        if rng.random() < 0.5:
            p, r = rng.choice([(f"\\text{{{w}}}", w), (f"\\text{{{w}}}", f"\\text{{{w.lower()}}}"), (f"\\textbf{{{w}}}", f"\\text{{{w}}}")])
            out.append(("text", p, r, True, "bare"))
        else:
            other = rng.choice([x for x in words if x != w])
            out.append(("text", f"\\text{{{other}}}", f"\\text{{{w}}}", False, "bare"))
    return out


def cat_formats(rng):
    """Extraction-specific seeds: formats that are not drawn at random."""
    out = []
    rows = [
        ("fbox", "42", "42", True), ("fbox", "41", "42", False),
        ("plain_final", "42", "42", True), ("plain_final", "17", "42", False),
        ("think", "7", "7", True), ("think", "8", "7", False),
        ("truncated_second_box", "12", "12", True), ("truncated_second_box", "13", "12", False),
    ]
    for fmt, p, r, eq in rows:
        out.append(("format:" + fmt, p, r, eq, "bare"))
    return out


NO_ANSWER = [
    "I could not finish the computation.",
    "Let me think about this problem more carefully before committing.",
    "<think>\nWe need the area. Maybe the answer is \\boxed{12}\n",  # thinking never closed
]

# --------------------------------------------------------------------------------------------
# Labelling with math-verify
# --------------------------------------------------------------------------------------------

PRED_CFG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
GOLD_CFG = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
MC_STR = StringExtractionConfig(strings=LETTERS)


def after_think(text):
    i = text.rfind("</think>")
    return text[i + len("</think>"):] if i >= 0 else text


def is_choice(ref):
    core = ref.replace("\\text{", "").replace("}", "").replace("(", "").replace(")", "").strip()
    return core in LETTERS


def math_verify_label(prediction, reference):
    pred_text = after_think(prediction)
    if is_choice(reference):
        letter = reference.replace("\\text{", "").replace("}", "").replace("(", "").replace(")", "").strip()
        gold = parse(letter, [MC_STR]) + parse(f"${reference}$", [LatexExtractionConfig()])
        pred = parse(pred_text, [MC_STR, LatexExtractionConfig(boxed_match_priority=0)])
        return bool(verify(gold, pred))
    if "####" in reference:
        gold_text = "$" + reference[reference.rfind("####") + 4:].strip().split("\n")[0] + "$"
    elif "\\boxed" in reference:
        gold_text = reference
    else:
        gold_text = f"${reference}$"
    gold = parse(gold_text, GOLD_CFG)
    pred = parse(pred_text, PRED_CFG)
    return bool(verify(gold, pred))


def build(rng):
    rows = []
    generators = [cat_integers, cat_decimals, cat_fractions, cat_percent, cat_scientific, cat_signs, cat_noise,
                  cat_tuples, cat_intervals, cat_sets, cat_choice, cat_expressions, cat_equations, cat_text, cat_formats]
    for gen in generators:
        for category, answer, ref_value, intended, style in gen(rng):
            if category.startswith("format:"):
                fmt = category.split(":", 1)[1]
                prediction = respond(answer, fmt, rng)
            elif style == "raw":  # multiple choice: the prediction is already a response
                prediction = f"{rng.choice(FILLER)} {answer}"
            else:
                prediction = respond(answer, rng.choice(COMMON_FORMATS), rng)
            if style == "gsm8k":
                reference = gsm8k_reference(ref_value, rng)
            elif style == "math":
                reference = math_reference(ref_value, rng)
            else:
                reference = ref_value
            rows.append({"category": category, "prediction": prediction, "reference": reference, "intended": intended})
    for text in NO_ANSWER:
        for ref in ("12", "42"):
            rows.append({"category": "no_answer", "prediction": text, "reference": ref, "intended": False})
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output JSONL (tests/fixtures/rewards/corpus.jsonl)")
    args = ap.parse_args()
    rng = random.Random(SEED)
    rows = build(rng)
    for i, row in enumerate(rows):
        row["id"] = i
        row["math_verify"] = math_verify_label(row["prediction"], row["reference"])
    keys = ["id", "category", "prediction", "reference", "intended", "math_verify"]
    with open(args.out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps({k: row[k] for k in keys}, ensure_ascii=False) + "\n")
    n = len(rows)
    n_true = sum(r["math_verify"] for r in rows)
    n_intended = sum(r["intended"] for r in rows)
    n_diff = sum(r["math_verify"] != r["intended"] for r in rows)
    print(f"{n} pairs written to {args.out}: math-verify says {n_true} equivalent, {n - n_true} not "
          f"(intended {n_intended} / {n - n_intended}; math-verify differs from the intent on {n_diff}); "
          f"math-verify {importlib.metadata.version('math-verify')}", file=sys.stderr)


if __name__ == "__main__":
    main()
