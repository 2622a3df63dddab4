"""The mistakes library names the slip in at least 80% of realistic wrong answers (issue 12).

The corpus (tests/slips_corpus.py) labels each answer with its slip by an independent computation
(NumPy / mpmath, no engine); here that label is checked first, then the answer is graded as
``nnderive check`` grades it and the feedback is searched for the slip (by its phrase, and a slip
of the wrong layer by the two quantities in the course's notation).  Prints the share and the misses.
"""
from __future__ import annotations

import re
from functools import lru_cache

import numpy as np
import pytest

from derive.grading.grade import Problem, grade_data, grade_latex
from derive.kinds import load
from test_feedback_words import IDENTIFIERS
from slips_corpus import PHRASES, Item, fmt, items, network, precision_items

CORPUS = items()
PRECISION = precision_items()
SHARE = 0.80


@lru_cache(maxsize=None)
def problem(path) -> Problem:
    return Problem.build(load(path))


def _close(a, b) -> bool:
    return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-9, atol=1e-12))


def test_the_corpus_is_large_and_varied():
    assert len(CORPUS) >= 120
    kinds = {k.split(":")[0] for it in CORPUS for k in it.kinds}
    assert kinds >= (set(PHRASES) - {"rounded", "truncated", "coarse"}) | {"layer"}   # every kind of slip is there
    assert len({it.spec for it in CORPUS}) >= 5
    assert sum(it.value is not None for it in CORPUS) >= 40 and sum(it.value is None for it in CORPUS) >= 60
    assert sum(len(it.kinds) == 2 for it in CORPUS) >= 8


@pytest.mark.parametrize("it", CORPUS, ids=lambda it: f"{it.spec.stem}:{it.key}:{'+'.join(it.kinds)}")
def test_each_label_is_what_the_answer_computes(it: Item):
    """The independent check: the mistaken computation gives the answer, and the right one does not."""
    if it.value is None:
        assert fmt(it.mistaken) == it.answer and fmt(it.right) != it.answer
    else:
        assert _close(it.value, it.mistaken), (it.value, it.mistaken)
        if it.literal is not None:    # as written, its product does not fit: the slip is the shape
            with pytest.raises(ValueError):
                it.literal(network_of(it))
        else:
            assert not _close(it.value, it.right)


def network_of(it: Item) -> dict:
    return network(it.spec)


def feedback(it: Item) -> tuple[str, str]:
    p = problem(it.spec)
    if it.value is not None:
        r = grade_latex(p, it.quantity, it.index, it.answer)
        return r["verdict"], r["feedback"]
    answers = dict(it.others)
    answers[it.key] = it.answer
    records, _ = grade_data(p, {"answers": answers})
    (r,) = [r for r in records if r.quantity == it.quantity and r.index == it.index and r.answer == it.answer]
    return r.verdict, r.feedback


def names_the_slip(it: Item, verdict: str, text: str) -> bool:
    p = problem(it.spec)
    if verdict != "wrong":
        return False
    for kind in it.kinds:
        if kind.startswith("layer:"):
            used, needed = (part.split("=")[1] for part in kind[len("layer:"):].split(","))
            if f"used {p.display(used)} where {p.display(needed)} is needed" not in text:
                return False
        elif not re.search(PHRASES[kind], text):
            return False
    return True


def test_the_feedback_names_the_slip_in_most_answers():
    misses, raw = [], []
    for it in CORPUS:
        verdict, text = feedback(it)
        raw += [f"{it.spec.name} {it.key}: {m.group(0)!r} in {text}" for pattern in IDENTIFIERS
                if (m := re.search(pattern, text))]
        if not names_the_slip(it, verdict, text):
            misses.append(f"{it.spec.name} {it.key} = {it.answer} [{' + '.join(it.kinds)}] -> {verdict}: {text}")
    share = 1 - len(misses) / len(CORPUS)
    print(f"\nslips named: {len(CORPUS) - len(misses)} of {len(CORPUS)} ({share:.0%})")
    for m in misses:
        print("  missed:", m)
    assert share >= SHARE
    assert not raw, raw           # and every feedback is in the course's notation


@pytest.mark.parametrize("it", PRECISION, ids=lambda it: f"{it.spec.stem}:{it.key}:{it.answer}")
def test_rounding_is_named_and_no_slip_is_blamed(it: Item):
    """A right value rounded too far or truncated: say so; no missing bias, no 'error carried forward'."""
    verdict, text = feedback(it)
    assert re.search(PHRASES[it.kinds[0]], text), (verdict, text)
    for word in ("bias", "carried", "slip", "sign", "missing"):
        assert word not in text, (verdict, text)
