"""A handout is what a lecturer hands out as is: no engine identifiers in its text.

Every bundled example (and the worked examples of docs/examples) is printed in TeX and Markdown
and searched for the names only the engine uses: registry keys (``half_sse``, ``leaky_relu``),
step rules (``(rule: delta_hidden)``), quantity identifiers (``grad_W3[0,2]``, ``W1_new``,
``gprime2``), seed file names (``000_9ff9b7f9e4790c65.txt``) and profile keys.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

import worked_examples
from derive.core import primitives
from derive.handout.assemble import build
from derive.kinds import load

DOCS = Path(__file__).resolve().parent.parent / "docs" / "examples"
SPECS = [worked_examples.path(n) for n in worked_examples.names()] + \
    sorted(p for p in DOCS.glob("*.toml") if p.stem not in ("bad_activation",))

# registry keys that are not also plain words (sigmoid, tanh, softmax are words)
REGISTRY = sorted({n for n in list(primitives.ACTIVATIONS) + list(primitives.LOSSES) if "_" in n} |
                  {"half_sse", "bce", "mse", "mae"})
FORBIDDEN = [
    (r"\(rule: ", "a step's rule key"),
    (r"\b(?:grad_|dL_d)[A-Za-z]+\d*(?:\[\d+(?:,\d+)?\])?", "a gradient's identifier"),
    (r"\b[A-Za-z]+\d*_new\b", "an updated quantity's identifier"),
    (r"\bgprime\d*\b", "a local derivative's identifier"),
    (r"\b\d{3}_[0-9a-f]{16}\.txt\b", "a seed file name"),
    (r"profile '", "a notation profile's key"),
] + [(rf"\b{re.escape(n)}\b", "a registry key") for n in REGISTRY]


def _prose(text: str) -> str:
    """The text a reader reads: maths and code blocks, TeX commands and comments left out."""
    text = re.sub(r"(?m)%.*$", "", text)                       # TeX comments
    text = re.sub(r"\$\$.*?\$\$|\$[^$]*\$", " ", text, flags=re.S)
    text = re.sub(r"\\\[.*?\\\]|\\begin\{(equation|align|tikzpicture|gather)\*?\}.*?\\end\{\1\*?\}", " ", text,
                  flags=re.S)
    text = re.sub(r"\\(?:usepackage|label|ref|input|includegraphics|hypersetup)(?:\[[^]]*\])?\{[^}]*\}", " ", text)
    text = re.sub(r"\\[A-Za-z]+", " ", text)                    # other commands, keep their arguments
    return text.replace(r"\_", "_")


@pytest.fixture(scope="module")
def printed():
    out = {}
    for path in SPECS:
        h = build(load(path))
        out[path.stem] = (h.tex(), h.markdown())
    return out


@pytest.mark.parametrize("path", SPECS, ids=[p.stem for p in SPECS])
def test_no_engine_identifiers_in_handouts(printed, path):
    for fmt, text in zip(("tex", "md"), printed[path.stem]):
        prose = _prose(text)
        for pattern, what in FORBIDDEN:
            m = re.search(pattern, prose)
            assert m is None, f"{path.stem}.{fmt}: {what} {m.group(0)!r} in …{prose[max(0, m.start() - 60):m.end() + 40]}…"


def test_the_search_finds_what_it_looks_for():
    """The patterns catch each kind of identifier (so a clean result means something)."""
    dirty = ["The loss, half_sse (rule: loss).", "key grad_W3[0,2] here", "W1_new is", "gprime2 is",
             "Source: 000_9ff9b7f9e4790c65.txt, sections", "(profile 'xjtu')", "activation leaky_relu"]
    for line in dirty:
        assert any(re.search(p, _prose(line)) for p, _ in FORBIDDEN), line


def test_a_spec_of_ones_own_gets_the_neutral_profile(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text('[meta]\ntitle = "My net"\nsource = "my course, week 3"\n[network]\ninput = ["1", "2"]\n'
                    'target = ["0.5"]\nloss = "half_sse"\n[[network.layer]]\nweights = [["0.1", "0.2"]]\n'
                    'activation = "sigmoid"\n')
    md = build(load(spec)).markdown()
    assert "XJTU" not in md and "deck 000" not in md
    assert "Notation: standard notation" in md
    assert "Source: my course, week 3." in md


def test_a_slide_example_keeps_its_decks_notation_and_names_the_deck():
    md = build(load(worked_examples.path("000_3_mlp_3333"))).markdown()
    assert "Source: XJTU advanced machine learning (deck 000), sections" in md
    assert "Notation: XJTU advanced machine learning (deck 000)" in md
