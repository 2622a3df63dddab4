"""How a layered network is printed: its names from the profile's templates, its handout sections
(problem, forward pass, backward pass in matrix form and element by element, update, the forward
pass again; a mini-batch sample by sample), and the line under the title."""
from __future__ import annotations

from derive.core import primitives
from derive.printing.latex import HandoutPrinter as Printer  # noqa: F401  (the printer this kind uses)
from derive.printing.names import layered_names
from derive.printing.sections import Section, _steps, natural_order


def _network_steps() -> tuple:
    """The step classes the network sections show."""
    from derive.core import steps as st
    return (st.Given, st.Affine, st.Activate, st.Probabilities, st.LossValue, st.OutputGradient, st.LocalDerivative,
            st.DeltaOutput,
            st.SoftmaxCrossEntropy, st.BackError, st.DeltaHidden, st.WeightGradient, st.BiasGradient,
            st.Update, st.Recompute, st.BatchMean)


def _network(spec, derivations, printer) -> list[Section]:
    from derive.core import steps as st
    from derive.printing.latex import caption
    from derive.printing.tikz import network_figure
    from derive.printing.worked import Group
    net = spec.problem
    if net.samples:
        return _batch(spec, derivations[0], printer)
    main, elementwise = derivations
    layers = ", ".join(f"layer {l} {primitives.ACTIVATIONS[layer.activation.name].words}" for l, layer in enumerate(net.layers, start=1))
    intro = caption(f"A fully connected network with layer sizes {'-'.join(map(str, net.sizes))} (input "
                    f"first): {layers}; loss: {primitives.LOSSES[net.loss].words}" +
                    ("; one step of gradient descent." if net.learning_rate is not None else "."))
    problem = [intro, _symbol_table(printer, main), printer.doprint(Group(tuple(_steps(main, st.Given)))),
               network_figure(printer, main)]
    forward = [printer.doprint(s) for s in _steps(main, st.Affine, st.Activate, st.Probabilities, st.LossValue)]
    backward = [printer.doprint(s) for s in _steps(main, st.OutputGradient, st.LocalDerivative, st.DeltaOutput,
                                                    st.SoftmaxCrossEntropy, st.BackError, st.DeltaHidden,
                                                    st.WeightGradient, st.BiasGradient)]
    backward += _delta_sizes(printer, main, len(net.layers))
    update = [printer.doprint(Group(tuple(_steps(main, st.Update))))] if _steps(main, st.Update) else []
    again = [printer.doprint(Group(tuple(_steps(main, st.Recompute))))] if _steps(main, st.Recompute) else []
    return [Section("The problem", tuple(problem)), Section("Forward pass", tuple(forward)),
            Section("Backward pass, matrix form", tuple(backward)),
            Section("Backward pass, element by element", tuple(_elementwise(elementwise, printer))),
            Section("Gradient-descent update", tuple(update)),
            Section("Forward pass with the updated parameters", tuple(again))]


DEEP = 3   # layers from which a numeric network's handout shows the size of δ per layer


def _delta_sizes(printer, main, layers: int) -> list:
    """A numeric network of DEEP or more layers: a bar chart of ‖δˡ‖ per layer."""
    import math
    from derive.printing.tikz import delta_plot
    names = [f"delta{l}" for l in range(1, layers + 1)]
    if printer.values is None or layers < DEEP or not all(n in printer.quantities for n in names):
        return []
    rows = []
    for n in names:
        syms = main.quantity(n).symbols()
        if not printer.has_values(syms):
            return []
        rows.append((rf"\|{printer.q(n)}\|", math.sqrt(sum(float(printer.values[s]) ** 2 for s in syms))))
    if not all(v > 0 for _, v in rows):      # a log scale shows no zero
        return []
    return [delta_plot(rows)]


def _batch(spec, main, printer) -> list[Section]:
    """A mini-batch: each sample's forward and backward pass (its δ's), the means, the update."""
    from derive.core import steps as st
    from derive.kinds.network.derivation import sample_name
    from derive.printing.latex import Math, caption
    from derive.printing.worked import Group
    net = spec.problem
    m = len(net.samples)
    layers = ", ".join(f"layer {l} {primitives.ACTIVATIONS[layer.activation.name].words}"
                       for l, layer in enumerate(net.layers, start=1))
    L = printer.names.loss
    intro = caption(f"A fully connected network with layer sizes {'-'.join(map(str, net.sizes))} (input "
                    f"first): {layers}; loss: {primitives.LOSSES[net.loss].words}; a mini-batch of {m} samples, "
                    f"written with a superscript (k) for sample k. The batch loss is the mean of the samples' "
                    f"losses, ",
                    Math(rf"{L} = \frac{{1}}{{{m}}} \sum_{{k=1}}^{{{m}}} {{{L}}}^{{(k)}}"),
                    ", so each gradient is the mean of the samples' gradients" +
                    ("; one step of gradient descent with the mean gradients." if net.learning_rate is not None
                     else "."))
    problem = [intro, printer.doprint(Group(tuple(s for s in _steps(main, st.Given) if s.role in ("param", "hyper"))))]
    out = [Section("The problem", tuple(problem))]
    forward = (st.Affine, st.Activate, st.LossValue)
    backward = (st.OutputGradient, st.LocalDerivative, st.DeltaOutput, st.SoftmaxCrossEntropy, st.BackError,
                st.DeltaHidden, st.WeightGradient, st.BiasGradient)
    for k in range(1, m + 1):
        mine = [s for s in main.steps if s.name.endswith(sample_name("", k)) and not s.name.endswith("_new" +
                                                                                                  sample_name("", k))]
        given = [printer.doprint(Group(tuple(s for s in mine if isinstance(s, st.Given))))]
        out.append(Section(f"Sample {k}: forward pass",
                           tuple(given + [printer.doprint(s) for s in mine if isinstance(s, forward)])))
        out.append(Section(f"Sample {k}: backward pass, matrix form",
                           tuple(printer.doprint(s) for s in mine if isinstance(s, backward))))
    means = [s for s in main.steps if isinstance(s, st.BatchMean) and not s.name.endswith("_new")]
    out.append(Section(f"The mean over the mini-batch of {m} samples",
                       (caption("The batch loss and its gradients: the mean of the samples' values."),)
                       + tuple(printer.doprint(s) for s in means)))
    if _steps(main, st.Update):
        out.append(Section("Gradient-descent update", (printer.doprint(Group(tuple(_steps(main, st.Update)))),)))
    again = [s for s in main.steps if isinstance(s, st.Recompute) or (isinstance(s, st.BatchMean) and s not in means)]
    if again:
        out.append(Section("Forward pass with the updated parameters", (printer.doprint(Group(tuple(again))),)))
    return out


def _symbol_table(printer, main):
    """The notation at a glance: one row per kind of quantity, one column per layer."""
    from derive.printing.latex import Math, Table
    L = max((s.layer for s in main.steps if getattr(s, "layer", 0)), default=1)
    kinds = (("weights", "W"), ("biases", "b"), ("pre-activations", "z"), ("activations", "h"),
             ("error terms", "delta"))
    rows = []
    for what, base in kinds:
        cells = [printer.q(f"{base}{l}") if f"{base}{l}" in printer.quantities else "" for l in range(1, L + 1)]
        if any(cells):
            flipped = any(printer.names.sign(f"{base}{l}") < 0 for l in range(1, L + 1))
            rows.append((what + (" (= −∂L/∂z)" if flipped else ""),) + tuple(Math(c) if c else "" for c in cells))
    others = [(what, name) for what, name in (("input", "x"), ("target", "t"), ("loss", "loss"),
                                              ("learning rate", "learning_rate")) if name in printer.quantities]
    header = ("layer",) + tuple(str(l) for l in range(1, L + 1))
    extra = tuple((what, Math(printer.q(name))) + ("",) * (L - 1) for what, name in others)
    body = tuple(rows) + extra
    return Table(("Symbols used below.",), header, body, ("l",) + ("c",) * L, (0,) * len(body))


def _elementwise(elementwise, printer) -> list:
    """Chain-rule lines for the nodes and parameters, and the factored path for w_11 of each layer."""
    from derive.printing.latex import caption
    from derive.core.steps import ChainRule, Given
    from derive.printing.worked import Group, path_chain
    leaves = {s.name: s.role for s in elementwise.steps if isinstance(s, Given)}
    rules = [s for s in elementwise.steps if isinstance(s, ChainRule) and leaves.get(s.of, "param") == "param"]
    intro = caption("The same gradients from the chain rule on single numbers: every node of the network "
                    "(pre-activations, activations) and every parameter, from the output back to the input.")
    out = [intro, printer.doprint(Group(natural_order(rules)))]
    layer = 1
    while f"W{layer}" in printer.quantities:
        chain = path_chain(elementwise, f"W{layer}[0,0]")
        if chain is not None:
            out.append(printer.doprint(chain))
        layer += 1
    return out


def names(derivations, prof, overrides=()):
    return layered_names(derivations, prof, overrides)


def sections(spec, derivations, printer) -> list[Section]:
    return _network(spec, derivations, printer)


placed = _network_steps


def meta(spec, prof) -> str:
    return f"Notation: {prof.title} ({prof.summary})."
