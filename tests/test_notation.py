"""Notation profiles: each deck's names for the same quantities, overrides, and templates."""
from __future__ import annotations

import pytest

import worked_examples
from derive.kinds import derive
from derive.kinds.network.derivation import derive_elementwise
from derive.core.errors import SpecError
from derive.kinds import names
from derive.printing.notation import PROFILES, fill, profile, scalar_name, transpose
from derive.kinds import load


@pytest.fixture(scope="module")
def mlp():
    spec = load(worked_examples.path("000_3_mlp_3333"))
    return [derive(spec), derive_elementwise(spec.problem)]


# (quantity or element, profile) -> LaTeX, each as the deck writes it (seed file in the profile)
EXPECTED = {
    "xjtu": {"W1[0,1]": "w^{1}_{12}", "z2": r"\mathbf{z}^{2}", "h3[0]": "y_{1}", "delta2[1]": r"\delta^{2}_{2}",
             "grad_y": r"\nabla_{\mathbf{y}} \mathcal{L}", "gprime3": r"g^{3\prime}(\mathbf{z}^{3})",
             "W1_new": r"\mathbf{W}^{1,\mathrm{new}}", "loss": r"\mathcal{L}", "learning_rate": r"\eta",
             "grad_W2[1,0]": r"\frac{\partial \mathcal{L}}{\partial w^{2}_{21}}"},
    "nankai": {"z1[0]": r"In_{h^{1}_{1}}", "z3[1]": r"In_{o_{2}}", "h3[1]": "o_{2}", "t[0]": "y_{1}",
               "grad_W3[0,1]": r"\delta^{3}_{12}", "loss": r"\mathit{Error}"},
    "deck002": {"x": r"\mathbf{x}^{(1)}", "z1": r"\mathbf{z}^{(2)}", "h1": r"\mathbf{x}^{(2)}", "W1": r"\mathbf{W}^{(1)}",
                "h3": r"\hat{\mathbf{y}}", "t": r"\mathbf{y}",
                "delta3": r"\frac{\partial L}{\partial \mathbf{z}^{(4)}}", "gprime2": r"\sigma'(\mathbf{z}^{(3)})"},
    "uibe": {"W1[0,1]": "v_{21}", "W3[1,0]": "w_{12}", "W2[1,0]": "w^{(2)}_{12}",
             "z3": r"\mathbf{net}^{o}", "h1[0]": "y^{(1)}_{1}", "t[1]": "d_{2}", "delta3": r"\boldsymbol{\delta}^{o}",
             "loss": "E", "W1": r"\mathbf{V}^{\top}"},
    "deck004": {"h2[0]": "a^{(2)}_{1}", "learning_rate": r"\alpha", "delta1[2]": r"\delta^{(1)}_{3}"},
}


@pytest.mark.parametrize("prof", sorted(EXPECTED))
def test_each_deck_names_the_3333_net_its_own_way(mlp, prof):
    n = names(mlp, prof)
    for key, tex in EXPECTED[prof].items():
        assert n(key) == tex, key


def test_deck_003_error_terms_are_negated(mlp):
    n = names(mlp, "uibe")
    assert n.sign("delta3") == -1 and n.sign("delta2[0]") == -1 and n.sign("grad_W3") == 1
    assert names(mlp, "xjtu").sign("delta3") == 1


def test_profiles_by_deck_number():
    assert [profile(a).name for a in ("000", "001", "002", "003", "004")] == [p for p in PROFILES if p != "standard"]
    assert profile("default").name == "standard"     # a spec of one's own: no deck's name attached
    with pytest.raises(SpecError, match="unknown notation profile"):
        profile("deck999")


def test_overrides_rename_a_quantity_and_its_gradient(mlp):
    n = names(mlp, "xjtu", [("z1", r"\mathbf{u}"), ("W1[0,0]", r"\omega"), ("profile", "xjtu")])
    assert n("z1") == r"\mathbf{u}" and n("z1[1]") == r"{\mathbf{u}}_{2}"
    assert n("W1[0,0]") == r"\omega" and n("grad_W1[0,0]") == r"\frac{\partial \mathcal{L}}{\partial \omega}"
    assert n("dL_dz1[1]") == r"\frac{\partial \mathcal{L}}{\partial {\mathbf{u}}_{2}}"
    with pytest.raises(SpecError, match=r"notation.z9"):
        names(mlp, "xjtu", [("z9", "a")])
    with pytest.raises(SpecError, match=r"notation.z1"):
        names(mlp, "xjtu", [("z1", r"\write18{x}")])


def test_graph_names():
    spec = load(worked_examples.path("001_4_net_222"))
    n = names([derive(spec)], "nankai")
    assert n("In_h1") == r"\mathrm{In}_{h_{1}}" and n("grad_w5") == r"\delta_{5}"
    assert n("grad_o1") == r"\frac{\partial \mathrm{Error}}{\partial o_{1}}" and n("w5_new") == "{w_{5}}'"
    n = names([derive(spec)], "xjtu")
    assert n("grad_w5") == r"\frac{\partial \mathrm{Error}}{\partial w_{5}}"
    assert n("w5_new") == r"{w_{5}}^{\mathrm{new}}"


@pytest.mark.parametrize("name, tex", [("w5", "w_{5}"), ("In_h1", r"\mathrm{In}_{h_{1}}"), ("yhat1", r"\hat{y}_{1}"),
                                       ("w0x0", "(w_{0} x_{0})"), ("y_gt", r"y_{\mathit{gt}}"), ("Error", r"\mathrm{Error}"),
                                       ("S", "S"), ("eta", r"\eta"), ("x_1", "x_{1}")])
def test_scalar_names(name, tex):
    assert scalar_name(name) == tex


def test_templates():
    assert fill(r"w^{<l><new>}_{<rc>}", 2, (0, 1), new=r"\mathrm{new}") == r"w^{2,\mathrm{new}}_{12}"
    assert fill(r"w^{<l><new>}_{<rc>}", 2, (9, 1)) == "w^{2}_{10,2}"
    assert fill(r"v_{<cr>}", 1, (0, 2)) == "v_{31}"
    assert fill(r"\mathcal{L}^{<new>}") == r"\mathcal{L}"
    assert fill(r"y^{<(l)>}_{<r>}", 1, (0,), deep=False) == "y_{1}"
    assert transpose(r"\mathbf{W}^{3}") == r"\mathbf{W}^{3\top}"
    assert transpose(r"\mathbf{x}") == r"\mathbf{x}^{\top}"
    assert transpose(r"\mathbf{V}^{\top}") == r"\mathbf{V}"
