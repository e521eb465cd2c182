"""A small phone-number normaliser to E.164, and number-list files.

This is deliberately not a numbering-plan database. What it does:

- strips a ``tel:`` or ``sip:`` prefix (and a SIP ``@host`` part) and visual
  separators (spaces, ``-``, ``.``, ``(``, ``)``, ``/``);
- ``+`` followed by 7 to 15 digits is kept as it is (already E.164);
- 1 to :data:`MAX_EXTENSION_DIGITS` digits are an internal extension and are
  kept as they are, without ``+``;
- other national numbers need a default country calling code
  (``default_country``). With ``1`` (North America): 10 digits, or 11 starting
  with ``1``, become ``+1...``; ``011`` starts an international number. With any
  other code: ``00`` starts an international number, one leading trunk ``0`` is
  dropped, and the code is prefixed. (This is right for most of Europe; it is
  wrong for Italy, where the ``0`` belongs to the number: write those in E.164.)

Caller numbers that arrive in a form this cannot read are compared as given
(cleaned of separators); numbers written in a rules file or a list file must
normalise, or the file is rejected.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_EXTENSION_DIGITS = 6
MIN_E164_DIGITS = 7
MAX_E164_DIGITS = 15

#: Caller "numbers" that mean the caller withheld or has no number (compared lowercased).
ANONYMOUS = frozenset(
    {"", "anonymous", "restricted", "unknown", "private", "unavailable", "withheld"}
)

_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")


class NumberError(ValueError):
    """A number cannot be normalised; the message says why."""


def is_anonymous(raw: str) -> bool:
    """Whether a caller number means "no number" (empty, anonymous, restricted, ...)."""
    return clean(raw).lower() in ANONYMOUS


def clean(raw: str) -> str:
    """Strip a tel:/sip: prefix, a SIP host and visual separators."""
    text = raw.strip()
    lowered = text.lower()
    for scheme in ("tel:", "sip:", "sips:"):
        if lowered.startswith(scheme):
            text = text[len(scheme) :]
            break
    text = text.split("@", 1)[0].split(";", 1)[0]
    return text.translate(_SEPARATORS)


def check_country_code(code: str) -> str:
    """Validate a default country calling code ("1", "+33", ...); return its digits."""
    digits = code.strip().removeprefix("+")
    if not (digits.isdigit() and 1 <= len(digits) <= 3 and digits[0] != "0"):
        raise NumberError(
            f"a country calling code is 1 to 3 digits not starting with 0 (like 1 or 33), "
            f"got {code!r}"
        )
    return digits


def _e164(digits: str, raw: str) -> str:
    if not digits.isdigit() or not MIN_E164_DIGITS <= len(digits) <= MAX_E164_DIGITS:
        raise NumberError(
            f"{raw!r} is not a phone number: E.164 is + and {MIN_E164_DIGITS} to "
            f"{MAX_E164_DIGITS} digits"
        )
    return "+" + digits


@dataclass(frozen=True)
class NumberPlan:
    """How to read national numbers: the default country calling code ("" for none)."""

    default_country: str = ""

    def normalise(self, raw: str) -> str:
        """Return ``raw`` in E.164 (or as an extension); raise :class:`NumberError`."""
        text = clean(raw)
        if not text:
            raise NumberError("an empty phone number")
        if text.startswith("+"):
            return _e164(text[1:], raw)
        if not text.isdigit():
            raise NumberError(
                f"{raw!r} is not a phone number: only digits, a leading +, spaces, dashes, "
                "dots and parentheses are allowed"
            )
        if len(text) <= MAX_EXTENSION_DIGITS:
            return text
        code = self.default_country
        if not code:
            raise NumberError(
                f"{raw!r} is not in E.164 form (+ and the country code) and the file sets "
                "no default_country to read national numbers with"
            )
        if code == "1":
            if text.startswith("011"):
                return _e164(text[3:], raw)
            if len(text) == 10:
                return "+1" + text
            if len(text) == 11 and text[0] == "1":
                return "+" + text
            raise NumberError(
                f"{raw!r} is not a North American number: expected 10 digits, or 11 starting "
                "with 1, or +country code"
            )
        if text.startswith("00"):
            return _e164(text[2:], raw)
        national = text[1:] if text.startswith("0") else text
        return _e164(code + national, raw)

    def normalise_prefix(self, raw: str) -> str:
        """Normalise the start of a number: ``+1 514`` stays ``+1514``, ``0612`` becomes ``+33612``
        (with default country 33), ``514`` becomes ``+1514`` (with 1)."""
        text = clean(raw)
        if text.startswith("+"):
            digits = text[1:]
        elif text.isdigit() and self.default_country:
            if self.default_country == "1":
                digits = "1" + text.removeprefix("1")
            else:
                digits = self.default_country + text.removeprefix("0")
        else:
            raise NumberError(
                f"{raw!r} is not a number prefix: write it as + and digits (like +1514)"
                + ("" if self.default_country else ", or set default_country")
            )
        if not digits.isdigit() or len(digits) > MAX_E164_DIGITS:
            raise NumberError(f"{raw!r} is not a number prefix: expected + and 1 to 15 digits")
        return "+" + digits

    def caller(self, raw: str) -> str:
        """A caller number as rules compare it: normalised when possible, "" if anonymous."""
        if is_anonymous(raw):
            return ""
        try:
            return self.normalise(raw)
        except NumberError:
            return clean(raw)


class ListEntryError(ValueError):
    """A line of a number-list file is wrong (the loader turns this into a RulesError)."""

    def __init__(self, line: int, text: str, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.text = text
        self.reason = reason


def parse_number_list(text: str, plan: NumberPlan) -> frozenset[str]:
    """Parse a list file: one number per line, ``#`` starts a comment, blank lines skipped."""
    numbers: set[str] = set()
    for index, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            numbers.add(plan.normalise(entry))
        except NumberError as exc:
            raise ListEntryError(index, entry, str(exc)) from None
    return frozenset(numbers)
