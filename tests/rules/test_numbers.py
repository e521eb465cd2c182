"""E.164 normalisation: what the small normaliser reads, and what it refuses."""

from __future__ import annotations

import pytest

from worker.rules.numbers import (
    ListEntryError,
    NumberError,
    NumberPlan,
    check_country_code,
    is_anonymous,
    parse_number_list,
)

NANP = NumberPlan("1")
FRANCE = NumberPlan("33")
NONE = NumberPlan()


@pytest.mark.parametrize(
    ("plan", "raw", "expected"),
    [
        (NONE, "+15145550000", "+15145550000"),
        (NONE, "+1 (514) 555-0000", "+15145550000"),
        (NONE, " +33 1.23.45.67.89 ", "+33123456789"),
        (NONE, "tel:+1-514-555-0000", "+15145550000"),
        (NONE, "sip:+15145550000@pbx.example.com;user=phone", "+15145550000"),
        (NONE, "1009", "1009"),  # an extension stays an extension
        (NANP, "1009", "1009"),
        (NANP, "514 555 0000", "+15145550000"),
        (NANP, "(514) 555-0000", "+15145550000"),
        (NANP, "1-514-555-0000", "+15145550000"),
        (NANP, "011 33 1 23 45 67 89", "+33123456789"),
        (FRANCE, "01 23 45 67 89", "+33123456789"),
        (FRANCE, "06.12.34.56.78", "+33612345678"),
        (FRANCE, "0044 20 7946 0000", "+442079460000"),
        (FRANCE, "+1 514 555 0000", "+15145550000"),
    ],
)
def test_normalises_to_e164(plan: NumberPlan, raw: str, expected: str) -> None:
    assert plan.normalise(raw) == expected


@pytest.mark.parametrize(
    ("plan", "raw", "message"),
    [
        (NONE, "5145550000", "no default_country"),
        (NANP, "555-0000", "North American"),
        (NANP, "514 555 00001", "North American"),
        (NANP, "+12", r"E\.164 is \+ and 7 to 15 digits"),
        (NANP, "+1234567890123456", r"E\.164 is \+ and 7 to 15 digits"),
        (NANP, "1-800-FLOWERS", "only digits"),
        (NANP, "+1 514 555 000O", "E.164"),
        (NANP, "  ", "empty"),
    ],
)
def test_refuses_what_it_cannot_read(plan: NumberPlan, raw: str, message: str) -> None:
    with pytest.raises(NumberError, match=message):
        plan.normalise(raw)


@pytest.mark.parametrize(
    ("plan", "raw", "expected"),
    [
        (NONE, "+1 514", "+1514"),
        (NANP, "514", "+1514"),
        (NANP, "1514", "+1514"),
        (FRANCE, "06", "+336"),
        (FRANCE, "+44", "+44"),
    ],
)
def test_prefixes(plan: NumberPlan, raw: str, expected: str) -> None:
    assert plan.normalise_prefix(raw) == expected


def test_bad_prefixes() -> None:
    with pytest.raises(NumberError, match="or set default_country"):
        NONE.normalise_prefix("514")
    with pytest.raises(NumberError, match="not a number prefix"):
        NANP.normalise_prefix("+1-514-ABC")


@pytest.mark.parametrize(
    "raw",
    ["", "  ", "anonymous", "Anonymous", "RESTRICTED", "unknown", "private", "sip:anonymous@x"],
)
def test_anonymous_callers(raw: str) -> None:
    assert is_anonymous(raw)
    assert NANP.caller(raw) == ""


def test_caller_numbers_are_read_leniently() -> None:
    assert not is_anonymous("+15145550000")
    assert NANP.caller("514-555-0000") == "+15145550000"
    # What cannot be normalised is compared as written, without separators.
    assert NANP.caller("555-0000") == "5550000"
    assert NANP.caller("Front Desk") == "FrontDesk"


def test_country_codes() -> None:
    assert check_country_code("1") == "1"
    assert check_country_code("+33") == "33"
    for bad in ("", "0", "1234", "x1", "033"):
        with pytest.raises(NumberError, match="country calling code"):
            check_country_code(bad)


def test_number_list_files() -> None:
    text = (
        "# blocked\n+1 514 555 0142   # robocalls\n\n(438) 555-0177\n   # indented comment\n1009\n"
    )
    assert parse_number_list(text, NANP) == frozenset({"+15145550142", "+14385550177", "1009"})
    with pytest.raises(ListEntryError) as caught:
        parse_number_list("+15145550142\n# ok\n555-01\n5550000000000\n", NANP)
    assert caught.value.line == 4
    assert caught.value.text == "5550000000000"
    assert "North American" in caught.value.reason
