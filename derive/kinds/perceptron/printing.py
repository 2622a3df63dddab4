"""The handout sections of a perceptron problem: the givens, then every presentation or sample.

Learning: one block per presentation (the weighted sum, the output, the learning rule), the error
count after each pass, and where training stopped.  Fixed layers: one block per sample (its
hidden and output units), i.e. the truth table worked out row by row.  Every step of the
derivation is printed once, through the printer's ``_print_<Step>`` methods.
"""
from __future__ import annotations

from derive.printing.sections import Section
from derive.printing.latex import Block, Chain, caption
from derive.kinds.perceptron.derivation import Converged, PerceptronNet, PerceptronOutput, PerceptronUpdate
from derive.core.steps import Given
from derive.printing.worked import Group


def _joined(printer, steps, cap) -> Block:
    blocks = [printer.doprint(s) for s in steps]
    return Block(cap, tuple(c for b in blocks for c in b.chains))


def _intro(p) -> tuple:
    n, P = len(p.inputs[0]), len(p.inputs)
    if p.learning:
        until = ("until a whole pass over the samples makes no error" if p.epochs == "converge"
                 else f"for {p.epochs} pass{'es' if p.epochs != 1 else ''} over the samples")
        return caption(f"One {p.activation} unit with {n} inputs learns {P} samples by the perceptron rule, "
                       f"presenting them in turn {until}.")
    sizes = " and ".join(str(len(l.weights)) for l in p.layers)
    return caption(f"A perceptron of {len(p.layers)} computing layer{'s' if len(p.layers) > 1 else ''} "
                   f"({sizes} unit{'s' if sizes != '1' else ''}) evaluated on each of {P} samples of {n} inputs.")


def sections(spec, main, printer) -> list[Section]:
    p = spec.problem
    steps = main.steps
    given = printer.doprint(Group(tuple(s for s in steps if isinstance(s, Given))))
    out = [Section("The problem", (_intro(p), given))]
    if not p.learning:
        output_of = {s.inputs[0]: s for s in steps if isinstance(s, PerceptronOutput)}
        rows = []
        for k in range(1, len(p.inputs) + 1):
            mine = [x for s in steps if isinstance(s, PerceptronNet) and s.sample == k for x in (s, output_of[s.name])]
            rows.append(_joined(printer, mine, caption(f"Sample {k}: the weighted sums and the units' outputs "
                                                      "(rules: perceptron_net, perceptron_output).")))
        return out + [Section("Every sample through the perceptron", tuple(rows))]
    blocks, t = [], 0
    for s in steps:
        if isinstance(s, PerceptronNet):
            t += 1
            trio = [s, main.step(f"o{t}"), main.step(f"W{t}")]
            blocks.append(_joined(printer, trio, caption(
                f"Presentation {t}, sample {s.sample}: the weighted sum, the output and the learning rule "
                "(rules: perceptron_net, perceptron_output, perceptron_rule).")))
        elif not isinstance(s, (Given, PerceptronOutput, PerceptronUpdate, Converged)):
            blocks.append(printer.doprint(s))        # pass errors, and any step this layout does not know
    final = [printer.doprint(s) for s in steps if isinstance(s, Converged)]
    if final:
        last = main.quantity("W_final")
        final.append(Block(caption("The weights learnt: those after the last presentation."),
                           (Chain(printer.q(last.name), (printer.value_form(last),)),)))
    return out + [Section("Training, one presentation at a time", tuple(blocks)),
                  Section("Where training stops", tuple(final))]


def notation(derivation) -> dict[str, str]:
    """The deck's names: X^p and d^p for sample p; learning: W(t), net^p(t−1) = W(t−1)ᵀX^p and o^p(t−1),
    components numbered from 0 (x_0 = −1 carries the threshold); fixed layers: y^p, o^p and net^p."""
    out: dict[str, str] = {}

    def put(name: str, tex: str, element=None):
        out[name] = tex
        q = derivation.quantity(name)
        for idx in (q.indices() if q.shape and element else []):
            out[f"{name}[{','.join(map(str, idx))}]"] = element(idx)

    learning = "W0" in derivation
    base = 0 if learning else 1
    for s in derivation.steps:
        n, k = s.name.rstrip("0123456789"), s.name[len(s.name.rstrip("0123456789")):]
        if not k:
            continue
        if n == "X":
            put(s.name, f"X^{{{k}}}", lambda i, k=k: f"x^{{{k}}}_{{{i[0] + base}}}")
        elif n == "d":
            put(s.name, f"d^{{{k}}}")
        elif learning and n == "W":
            put(s.name, f"W({k})", lambda i, k=k: f"w_{{{i[0]}}}({k})")
        elif learning and n in ("net", "o"):
            p, t = s.sample if n == "net" else derivation.step(f"net{k}").sample, int(k) - 1
            put(s.name, (r"\mathit{net}" if n == "net" else "o") + f"^{{{p}}}({t})")
        elif n in ("y", "net_y", "o", "net"):
            tex = {"y": r"\mathbf{y}", "net_y": r"\mathbf{net}_{y}", "o": "o", "net": r"\mathit{net}"}[n]
            elem = {"y": "y^{%s}_{%d}", "net_y": r"\mathit{net}^{%s}_{y_{%d}}", "o": "o^{%s}_{%d}",
                    "net": r"\mathit{net}^{%s}_{%d}"}[n]
            put(s.name, f"{tex}^{{{k}}}", lambda i, k=k, elem=elem: elem % (k, i[0] + 1))
    return out
