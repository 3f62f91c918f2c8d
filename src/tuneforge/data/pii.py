"""Find and redact personal data in free text: e-mails, phones, China ID numbers, cards, IPs, URLs and IBANs.

Every candidate is validated (ID check digit and birth date, Luhn and card prefix, IBAN mod-97 and length, IP
octets, `ipaddress`) before it counts. Matching runs on a copy with full-width forms folded to ASCII one code point
for one, so spans map straight back onto the original, and a text without PII comes back as the very same string.
"""
from __future__ import annotations

import datetime
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

# Earlier types win overlaps: a URL may hold an e-mail, IP or digits; an ID number is never also a phone or card.
PII_TYPES = ("URL", "EMAIL", "IBAN", "CN_ID", "CARD", "IP", "PHONE")
PLACEHOLDERS = {t: f"[{t}]" for t in PII_TYPES}


@dataclass(frozen=True)
class Match:
    type: str
    start: int
    end: int
    value: str  # the original substring text[start:end]


Span = tuple[int, int]
# Full-width ASCII (U+FF01..U+FF5E) and the ideographic space → ASCII: same length, so spans stay valid.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
# Texts with none of these cannot hold any type (every type needs a digit, '@', '://' or 'www.').
_MAYBE = re.compile(r"[0-9@]|://|www\.", re.IGNORECASE)

# --- URL -------------------------------------------------------------------------------------------------------
# ASCII only: in Chinese text a URL is often followed by characters with no space in between.
_URL = re.compile(r"(?<![A-Za-z0-9@._/-])((?:https?|ftp)://|www\.)[A-Za-z0-9\-._~:/?#@!$&*+,;=%()\[\]]+", re.IGNORECASE)
_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+(?:[a-z]{2,24}|xn--[a-z0-9-]+)", re.IGNORECASE)


def _urls(t: str) -> Iterator[Span]:
    for m in _URL.finditer(t):
        value, prefix = m.group(), m.group(1)
        while value and (value[-1] in ".,;:!?*'" or any(value[-1] == b and value.count(b) > value.count(a)
                                                         for a, b in ("()", "[]"))):
            value = value[:-1]  # sentence punctuation, or a closing bracket that wraps the URL
        if len(value) <= len(prefix):
            continue
        scheme = prefix.endswith("://")
        rest = value[len(prefix):] if scheme else value
        host = re.sub(r":[0-9]{1,5}$", "", re.split(r"[/?#]", rest, 1)[0].rsplit("@", 1)[-1])
        valid = _HOST.fullmatch(host) or host.lower() == "localhost" or _is_ipv4(host) or _is_bracketed_ipv6(host)
        if valid and (scheme or host.count(".") >= 2):  # "www.x" alone is not a web address
            yield m.start(), m.start() + len(value)


# --- e-mail ----------------------------------------------------------------------------------------------------
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
                    r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9-])")
# "icon@2x.png" is a file name, not an address: these endings are file types, not top-level domains.
_FILE_TLDS = {"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "tif", "tiff", "pdf", "txt", "json", "yaml",
              "yml", "csv", "tsv", "exe", "dll", "html", "htm", "css", "mp3", "mp4", "wav", "docx", "xlsx", "pptx",
              "log", "jsx", "tsx", "vue", "scss", "heic"}


def _emails(t: str) -> Iterator[Span]:
    for m in _EMAIL.finditer(t):
        if ".." not in m.group() and m.group(1).rsplit(".", 1)[1].lower() not in _FILE_TLDS:
            yield m.span()


# --- IBAN ------------------------------------------------------------------------------------------------------
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23,
    "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27,
    "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29,
    "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26,
    "UA": 29, "VG": 24, "XK": 20,
}
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2})[0-9]{2}")


def _iban_end(t: str, start: int, length: int) -> int | None:
    """End of an IBAN of `length` characters from `start`; a single space is allowed between groups of four."""
    i, n = start, 0
    while n < length and i < len(t):
        if t[i].isascii() and (t[i].isdigit() or t[i].isupper()):
            n += 1
        elif not (t[i] == " " and n % 4 == 0 and i + 1 < len(t) and t[i + 1].isalnum()):
            return None
        i += 1
    return i if n == length and not (i < len(t) and t[i].isascii() and t[i].isalnum()) else None


def _iban_valid(compact: str) -> bool:
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def _ibans(t: str) -> Iterator[Span]:
    for m in _IBAN_START.finditer(t):
        length = _IBAN_LENGTHS.get(m.group(1))
        end = _iban_end(t, m.start(), length) if length else None
        if end and _iban_valid(t[m.start():end].replace(" ", "")):
            yield m.start(), end


# --- mainland China resident ID (GB 11643) ---------------------------------------------------------------------
_CN_ID = re.compile(r"(?<![0-9A-Za-z])[1-9][0-9]{16}[0-9Xx](?![0-9A-Za-z])")
_PROVINCES = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51, 52, 53,
              54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_check_digit(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of the first 17 digits ('X' stands for 10)."""
    return "10X98765432"[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS)) % 11]


def _cn_id_valid(s: str) -> bool:
    try:
        born = datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    # A fixed year range, not "today": the result must not change with the date it runs on.
    return (int(s[:2]) in _PROVINCES and 1900 <= born.year <= 2099
            and cn_id_check_digit(s[:17]) == s[17].upper())


def _cn_ids(t: str) -> Iterator[Span]:
    yield from (m.span() for m in _CN_ID.finditer(t) if _cn_id_valid(m.group()))


# --- payment cards ---------------------------------------------------------------------------------------------
_CARD = re.compile(r"(?<![0-9A-Za-z])(?:[0-9]{4}([ -])[0-9]{4}\1[0-9]{4}\1[0-9]{4}(?:\1[0-9]{1,3})?"
                   r"|[0-9]{4}([ -])[0-9]{6}\2[0-9]{4,5}|[0-9]{13,19})(?![0-9A-Za-z])")


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _card_prefix_ok(d: str) -> bool:
    """Issuer prefix (IIN) and length of the major networks; other numbers are order ids, barcodes, timestamps."""
    n, p2, p3, p4 = len(d), int(d[:2]), int(d[:3]), int(d[:4])
    if d[0] == "4":
        return n in (13, 16, 19)  # Visa
    if 51 <= p2 <= 55 or 2221 <= p4 <= 2720:
        return n == 16  # Mastercard
    if p2 in (34, 37):
        return n == 15  # American Express
    if p2 in (62, 65) or p4 == 6011 or 644 <= p3 <= 649 or 3528 <= p4 <= 3589 or 2200 <= p4 <= 2204:
        return 16 <= n <= 19  # UnionPay, Discover, JCB, Mir
    if 300 <= p3 <= 305 or p2 in (36, 38, 39):
        return 14 <= n <= 19  # Diners Club
    return p4 in (5018, 5020, 5038, 5893, 6304, 6759, 6761, 6762, 6763)  # Maestro


def _cards(t: str) -> Iterator[Span]:
    for m in _CARD.finditer(t):
        d = re.sub(r"[^0-9]", "", m.group())
        if len(set(d)) > 1 and _card_prefix_ok(d) and luhn_valid(d) and _free_number(t, *m.span()):
            yield m.span()


# --- IP addresses ----------------------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![0-9A-Za-z.])(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9A-Za-z]|\.[0-9])")
_IPV6 = re.compile(r"(?<![0-9A-Za-z:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}(?:\.[0-9]{1,3}){3}|[0-9A-Fa-f]{0,4})"
                   r"(?![0-9A-Za-z:]|\.[0-9A-Za-z])")
# "version 2.10.3.1", "§ 1.2.3.4", "2.10.3.1 版本": four dotted numbers that are not addresses.
_NOT_IP_BEFORE = re.compile(r"(?:version|ver\.?|release|build|firmware|patch|section|sec\.|chapter|clause|"
                            r"step|§|版本号?|固件|章节?|第)\s*[:#]?\s*$", re.IGNORECASE)
_NOT_IP_AFTER = re.compile(r"^\s*(?:版|release|build)", re.IGNORECASE)


def _is_ipv4(s: str) -> bool:
    return bool(re.fullmatch(rf"(?:{_OCTET}\.){{3}}{_OCTET}", s))


def _is_bracketed_ipv6(s: str) -> bool:
    """A URL host such as [2001:db8::1]."""
    try:
        return s.startswith("[") and s.endswith("]") and ipaddress.IPv6Address(s[1:-1]) is not None
    except ValueError:
        return False


def _ips(t: str) -> Iterator[Span]:
    for m in _IPV6.finditer(t):
        groups = [g for g in re.split(r"[:.]", m.group()) if g]
        if len(groups) < 2 or not re.search(r"[0-9]", m.group()):
            continue  # "a::b", "std::map" style tokens
        try:
            ipaddress.IPv6Address(m.group())
        except ValueError:
            continue
        yield m.span()
    for m in _IPV4.finditer(t):  # after IPv6, so "::ffff:192.0.2.128" is one address
        before, after = t[max(0, m.start() - 24):m.start()], t[m.end():m.end() + 12]
        if not m.group().startswith("0") and not _NOT_IP_BEFORE.search(before) and not _NOT_IP_AFTER.match(after):
            yield m.span()


# --- phone numbers ---------------------------------------------------------------------------------------------
_PHONE_RULES = (
    # mainland China mobile, optionally +86 / 0086: 13812345678, 138-1234-5678, 138 1234 5678
    ("cn_mobile", re.compile(r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ -]?)?(1[3-9][0-9])(?:[0-9]{8}|([ -])[0-9]{4}\2[0-9]{4})"
                             r"(?![0-9A-Za-z])")),
    # international with a country code: +44 20 7946 0958, +1 (555) 123-4567, +49-30-901820
    ("intl", re.compile(r"(?<![0-9A-Za-z+])\+[1-9][0-9]{0,2}(?:[ .-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,7}(?![0-9A-Za-z])")),
    # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-0199
    ("nanp", re.compile(r"(?<![0-9A-Za-z(])(?:1-)?(?:\([2-9][0-9]{2}\) ?[0-9]{3}-|[2-9][0-9]{2}([-.])[0-9]{3}\1)"
                        r"[0-9]{4}(?![0-9A-Za-z])")),
    # mainland China landline with its area code: 010-12345678, (0755) 1234567
    ("cn_landline", re.compile(r"(?<![0-9A-Za-z])(?:(0[1-9][0-9]{1,2})-|\((0[1-9][0-9]{1,2})\) ?)[2-9][0-9]{6,7}"
                               r"(?![0-9A-Za-z])")),
)
_CN_MOBILE_PREFIXES = ({*range(130, 140), *range(145, 150), *range(150, 160), 162, 165, 166, 167, *range(170, 179),
                        *range(180, 190), *range(190, 200)} - {154, 194})
_UNIT_AFTER = re.compile(r"^\s*(?:元|块|万|亿|美元|人民币|次|个|人|条|件|股|张|台|吨|%|USD|CNY|RMB|EUR|dollars?|yuan|users?|people|"
                         r"times|bytes?|ms)(?![A-Za-z])", re.IGNORECASE)
_MONEY_BEFORE = re.compile(r"[$¥￥€£]\s*$")


def _free_number(t: str, start: int, end: int) -> bool:
    """Not a piece of a longer number: '12-' / '.5' style digits right beside it (or ' 7' when it is spaced)."""
    before, after = t[max(0, start - 2):start], t[end:end + 2]
    if re.search(r"[0-9][.-]$", before) or re.match(r"[.-][0-9]", after):
        return False
    return " " not in t[start:end] or not (re.search(r"[0-9] $", before) or re.match(r" [0-9]", after))


def _phone_ok(rule: str, m: re.Match, t: str) -> bool:
    digits = re.sub(r"[^0-9]", "", m.group().replace("(0)", ""))  # "+44 (0)20 ...": the 0 is not dialled
    if rule == "cn_mobile" and int(m.group(1)) not in _CN_MOBILE_PREFIXES:
        return False
    if rule == "intl" and not 10 <= len(digits) <= 15:
        return False  # E.164: country code + national number is at most 15 digits; real ones have 10 or more
    if rule == "cn_landline":
        area = m.group(1) or m.group(2)
        if len(area) != (3 if area[1] in "12" else 4):  # 010, 020-029 are the two-digit areas; the rest have three
            return False
    before = t[max(0, m.start() - 3):m.start()]
    return (_free_number(t, *m.span()) and not _UNIT_AFTER.match(t[m.end():m.end() + 12])
            and not _MONEY_BEFORE.search(before))


def _phones(t: str) -> Iterator[Span]:
    for rule, pattern in _PHONE_RULES:
        yield from (m.span() for m in pattern.finditer(t) if _phone_ok(rule, m, t))


_FINDERS: dict[str, Callable[[str], Iterator[Span]]] = {
    "URL": _urls, "EMAIL": _emails, "IBAN": _ibans, "CN_ID": _cn_ids, "CARD": _cards, "IP": _ips, "PHONE": _phones,
}


# --- public API ------------------------------------------------------------------------------------------------
def find_pii(text: str) -> list[Match]:
    """Validated, non-overlapping finds in text order. Types are searched in PII_TYPES order; earlier ones win."""
    folded = text.translate(_FOLD) if text else ""
    if not _MAYBE.search(folded):
        return []
    found: list[Match] = []
    taken = bytearray(len(text))  # 1 where a find already sits
    grew = True
    while grew:  # rounds until nothing new: a find can free a neighbour that looked like part of a longer number
        grew = False
        for kind in PII_TYPES:
            for start, end in list(_FINDERS[kind](folded)):
                if any(taken[start:end]):
                    continue
                found.append(Match(kind, start, end, text[start:end]))
                taken[start:end] = b"\x01" * (end - start)
                # Every later search sees "[...]" where the placeholder will be, as a second redaction would; so
                # the checks on neighbouring characters agree and redaction is idempotent.
                folded = folded[:start] + "[" + "\x00" * (end - start - 2) + "]" + folded[end:]
                grew = True
    return sorted(found, key=lambda m: m.start)


def redact(text: str) -> tuple[str, Counter]:
    """(text with each find replaced by its placeholder, count per type). No find: the same string, untouched."""
    matches = find_pii(text)
    if not matches:
        return text, Counter()
    parts, pos = [], 0
    for m in matches:
        parts += [text[pos:m.start], PLACEHOLDERS[m.type]]
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts), Counter(m.type for m in matches)


def redact_texts(texts: Iterable[str]) -> tuple[list[str], Counter]:
    """Redact each text; the counts are summed over all texts."""
    out, total = [], Counter()
    for text in texts:
        new, counts = redact(text)
        out.append(new)
        total.update(counts)
    return out, total
