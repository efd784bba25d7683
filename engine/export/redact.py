"""Redaction for exports: planted secrets and anything that looks like an e-mail address, a
phone number or a national id become stable pseudonyms ("[email-3]"): the same value gets the
same pseudonym everywhere in one export, so a reader can still see that two answers leaked the
same thing."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

_TLD = r"[a-z]{2,12}"
_SPELLED_DOT = r"(?:\s*(?:\(dot\)|\[dot\])\s*|\s+dot\s+)"
_DOT = r"(?:" + _SPELLED_DOT[3:-1] + r"|\.)"
# name@host.tld, and the spelled-out forms models write to dodge filters:
# "jane.doe at example dot com", "jane (at) example (dot) com".
EMAIL = re.compile(
    r"[\w.+%-]+@[\w-]+(?:\.[\w-]+)*\." + _TLD
    + r"|[\w.+%-]+(?:\s*(?:\(at\)|\[at\])\s*|\s+at\s+)[\w-]+(?:" + _DOT + r"[\w-]+)*"
    + _SPELLED_DOT + _TLD + r"\b",
    re.I)
# US social security numbers and UK national insurance numbers.
NATIONAL_ID = re.compile(
    r"(?<![\w-])\d{3}-\d{2}-\d{4}(?![\w-])"
    r"|\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b")
# Phone numbers with separators: 555-0142, (212) 555-0142, 212.555.0142, and with a country
# code +1 212 555 0142 or +44 20 7946 0958. Not year ranges (1990-2000) or decimals.
PHONE = re.compile(
    r"(?<![\w+.-])(?:\+\d{1,3}[ .-]?(?:\(?\d{1,4}\)?[ .-]?)?\d{3,4}[ .-]?\d{4}"
    r"|(?:\(\d{3}\)[ .-]?|\d{3}[ .-])?\d{3}[ .-]\d{4})(?![\w-]|\.\d)")


def _secret_pattern(secret: str) -> tuple[str, re.Pattern[str]]:
    """A secret as the pii-leak judge finds it: any spacing between its words, and for
    numbers of 7 or more digits, the digits in order whatever separates them (1975/03/12
    for 1975-03-12). Returned with an anchor, a piece every match contains (casefolded),
    so that texts without it are skipped at the speed of a substring search."""
    words = re.findall(r"\w+|[^\w\s]", secret)  # "HSC-1234" is also "HSC - 1234"
    pattern = r"\s*".join(re.escape(w) for w in words)
    anchor = max(words, key=len).casefold()
    digits = re.sub(r"\D", "", secret)
    if len(digits) >= 7 and sum(c.isalpha() for c in secret) <= 4:
        pattern = (f"(?:{pattern}|" + r"(?<!\d)" + r"[\s().\-/]*".join(digits) + r"(?!\d))")
        anchor = digits[0]
    return anchor, re.compile(pattern, re.I)


def _norm(kind: str, value: str) -> str:
    if kind == "phone":
        return re.sub(r"\D", "", value)
    if kind == "secret":  # every way of writing one secret shares its pseudonym
        return re.sub(r"[\W_]+", "", value).casefold()
    if kind == "email":  # spelled-out and written forms of one address share a pseudonym
        value = re.sub(r"\s*(?:\(at\)|\[at\])\s*|\s+at\s+", "@", value, flags=re.I)
        value = re.sub(r"\s*(?:\(dot\)|\[dot\])\s*|\s+dot\s+", ".", value, flags=re.I)
    return re.sub(r"\s+", " ", value.strip().lower())


class Redactor:
    """Replaces sensitive values in text. ``secrets`` are the planted values of privacy
    items; they are replaced wherever they appear, whatever they look like."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._names: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()
        self.replaced: Counter[str] = Counter()
        words = set()
        for s in secrets:
            s = s.strip()
            if len(s) >= 4:
                words.add(s)
            if "@" in s and len(s.split("@", 1)[0]) >= 4:
                words.add(s.split("@", 1)[0])  # the local part alone is a partial leak
        # Longest first, so an e-mail address wins over its own local part.
        self._secrets = [_secret_pattern(w) for w in sorted(words, key=len, reverse=True)]

    def _pseudonym(self, kind: str, value: str) -> str:
        key = (kind, _norm(kind, value))
        if key not in self._names:
            self._counts[kind] += 1
            self._names[key] = f"[{kind}-{self._counts[kind]}]"
        self.replaced[kind] += 1
        return self._names[key]

    def text(self, text: str) -> str:
        text = EMAIL.sub(lambda m: self._pseudonym("email", m.group()), text)
        folded = text.casefold()
        for anchor, pattern in self._secrets:
            if anchor in folded:
                new = pattern.sub(lambda m: self._pseudonym("secret", m.group()), text)
                if new != text:
                    text, folded = new, new.casefold()
        text = NATIONAL_ID.sub(lambda m: self._pseudonym("id", m.group()), text)
        return PHONE.sub(lambda m: self._pseudonym("phone", m.group()), text)

    def value(self, value: Any) -> Any:
        """Every string inside ``value`` (dicts, lists) redacted; keys are left alone."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v) for v in value]
        return value

    def counts(self) -> dict[str, Any]:
        """Distinct values and replacements per kind, once the export is written."""
        return {"pseudonyms": dict(self._counts), "replacements": dict(self.replaced)}

    @staticmethod
    def describe() -> dict[str, Any]:
        """What the manifest says about the redaction (written before any record)."""
        return {"redacted": True, "pseudonym": "[KIND-N], stable within one export",
                "rules": ["planted secrets of privacy items (and e-mail local parts)",
                          "e-mail addresses, also spelled out with at/dot",
                          "phone numbers with separators", "US SSN and UK NI numbers"]}
