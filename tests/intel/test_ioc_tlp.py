"""Tests for the TLP 2.0 enum: ordering and label parsing."""

from __future__ import annotations

import pytest

from phantom_notebook.core.errors import ValidationError
from phantom_notebook.intel.tlp import TLP, InvalidTLPError


def test_markings_are_ordered_from_clear_to_red() -> None:
    assert TLP.CLEAR < TLP.GREEN < TLP.AMBER < TLP.AMBER_STRICT < TLP.RED
    assert sorted([TLP.RED, TLP.CLEAR, TLP.AMBER_STRICT, TLP.GREEN, TLP.AMBER]) == list(TLP)


def test_the_strictest_of_several_markings_is_their_max() -> None:
    assert max([TLP.GREEN, TLP.AMBER_STRICT, TLP.AMBER]) is TLP.AMBER_STRICT
    assert TLP.RED >= TLP.RED and TLP.GREEN <= TLP.AMBER and TLP.RED > TLP.CLEAR


def test_markings_do_not_compare_with_strings() -> None:
    with pytest.raises(TypeError):
        _ = TLP.RED < "AMBER"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CLEAR", TLP.CLEAR),
        ("clear", TLP.CLEAR),
        ("TLP:CLEAR", TLP.CLEAR),
        ("TLP:WHITE", TLP.CLEAR),
        ("white", TLP.CLEAR),
        ("tlp:green", TLP.GREEN),
        (" TLP: AMBER ", TLP.AMBER),
        ("amber+strict", TLP.AMBER_STRICT),
        ("TLP:AMBER+STRICT", TLP.AMBER_STRICT),
        ("AMBER_STRICT", TLP.AMBER_STRICT),
        ("amber strict", TLP.AMBER_STRICT),
        ("Red", TLP.RED),
        (TLP.RED, TLP.RED),
    ],
)
def test_parse_accepts_tlp2_labels_and_tlp1_white(text: str | TLP, expected: TLP) -> None:
    assert TLP.parse(text) is expected


@pytest.mark.parametrize("text", ["", "purple", "TLP:", "AMBER+", "amber+red", "TLP:AMBER:STRICT"])
def test_parse_refuses_unknown_labels_with_the_allowed_list(text: str) -> None:
    with pytest.raises(InvalidTLPError, match="expected one of CLEAR, GREEN, AMBER"):
        TLP.parse(text)


def test_invalid_tlp_error_is_a_validation_error() -> None:
    assert issubclass(InvalidTLPError, ValidationError)


def test_label_and_str_use_the_official_form() -> None:
    assert TLP.AMBER_STRICT.label == "TLP:AMBER+STRICT"
    assert str(TLP.CLEAR) == "TLP:CLEAR"
    assert TLP.AMBER_STRICT.value == "AMBER+STRICT"
