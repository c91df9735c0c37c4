"""Request fields, two ways: admission of a case reference or purpose agrees
with a plain reading of the documented rule, and a bounded audit field is
the value itself or a short marked prefix, never more."""

from __future__ import annotations

import string
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from accord.errors import PolicyDenied
from broker.policy.admission import MAX_CASE_REF, admitted_case_ref, admitted_purpose
from broker.record import AUDIT_PREFIX, TRUNCATED, bounded

CASE_REF_CHARS = set(string.ascii_letters + string.digits + "./:#-_")
#: Text close to the rule's edges: ASCII, blanks, look-alikes, full-width forms.
ALPHABET = st.sampled_from(
    [
        *(string.ascii_letters + string.digits + "./:#-_ ;\n\t\x00"),
        "\u0420",
        "\u0430",
        "\uff32",
        "\uff10",
        "\u200b",
        "\u00a0",
        "\u2024",
        "\ufb01",
    ]
)
TEXTS = st.text(ALPHABET, max_size=80) | st.text(max_size=80)


def plain_case_ref(text: str) -> str | None:
    """The documented rule, read plainly: None means refused."""
    form = unicodedata.normalize("NFKC", text).strip()
    if form and (len(form) > MAX_CASE_REF or not set(form) <= CASE_REF_CHARS):
        return None
    return form


@settings(max_examples=400, deadline=None, derandomize=True)
@given(TEXTS)
def test_case_ref_admission_agrees_with_the_documented_rule(text):
    expected = plain_case_ref(text)
    try:
        got = admitted_case_ref(text)
    except PolicyDenied as exc:
        assert expected is None
        # The refusal does not echo what was sent (a one- or two-character text
        # may occur in the message's own words, as ',' does).
        echoed = len(text.strip()) > 2 and text.strip() in str(exc)
        assert str(exc).isascii() and not echoed
        return
    assert got == expected and got.isascii()
    assert admitted_case_ref(got) == got  # what the audit holds is admitted as itself


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(st.sampled_from([*"abz09_ \n", "\u0430", "\uff41"]), max_size=70))
def test_purpose_admission_is_an_ascii_identifier_or_refused(text):
    try:
        got = admitted_purpose(text)
    except PolicyDenied:
        return
    assert got == unicodedata.normalize("NFKC", text).strip()
    assert got == "" or (got[0].isalpha() and set(got) <= set("abz09_") and len(got) <= 64)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.text(max_size=3000), st.integers(1, 2000))
def test_a_bounded_field_is_whole_or_a_short_marked_prefix(value, limit):
    cut: dict[str, int] = {}
    kept = bounded(value, limit, cut, "sql")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size <= limit:
        assert kept == value and cut == {}
    else:
        assert cut == {"sql": size}
        assert kept.endswith(TRUNCATED) and value.startswith(kept.removesuffix(TRUNCATED))
        assert len(kept) <= AUDIT_PREFIX + len(TRUNCATED)


@pytest.mark.parametrize("text", ["R-2026-0042\n", " R-2026-0042", "\uff32-2026-0042"])
def test_plain_forms_of_a_case_reference_are_admitted_as_it(text):
    assert admitted_case_ref(text) == "R-2026-0042"
