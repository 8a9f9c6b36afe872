"""Defanging and refanging: make indicators safe to display, and readable by machines again.

Defang style (what ``defang`` writes):

* URLs: ``http`` -> ``hxxp``, ``https`` -> ``hxxps``, ``ftp`` -> ``fxp``, dots in the
  host part -> ``[.]``; the path is left alone (``hxxp://evil[.]com/a.php``).
* domains and IPv4 addresses: every dot -> ``[.]``.
* IPv6 addresses: every colon -> ``[:]`` (and dots of an embedded IPv4 -> ``[.]``).
* CIDR: the address part as above, the ``/prefix`` unchanged.
* emails: ``@`` -> ``[@]`` and dots of the domain part -> ``[.]``.
* hashes, CVE, ASN, MITRE technique and MAC values are inert and returned unchanged.

``refang`` undoes that and the other forms seen in the wild: ``hXXp``/``hxtp``/``fxp``
schemes, ``[.]`` ``(.)`` ``{.}`` ``[dot]`` (with optional blanks around), ``[@]`` ``(@)``
``[at]`` ``(at)``, ``[:]``, ``[:]//``, ``[://]`` and ``[/]``.  Both are idempotent and
``refang(defang(x)) == x`` for every valid indicator ``x``.
"""

from __future__ import annotations

import re

from phantom_notebook.intel.normalize import IOCType, classify, coerce_type, normalize_as

__all__ = ["defang", "refang", "refang_with_offsets"]

_REFANG = re.compile(
    r"(?P<scheme>(?<!\w)(?:h(?:xx|xt|tx)p|fxp)(?=s?(?:\[:\]|\[://\]|:)))"
    r"|(?P<sep>\[:\]//|\[://\]|\[:\]|\[/\])"
    r"|(?P<dot>[ \t]?[\[({][ \t]*(?:\.|dot)[ \t]*[\])}][ \t]?)"
    r"|(?P<at>[ \t]?[\[({][ \t]*(?:@|at)[ \t]*[\])}][ \t]?)",
    re.IGNORECASE,
)
_SEPARATORS = {"[:]//": "://", "[://]": "://", "[:]": ":", "[/]": "/"}
_TO_FANGED = str.maketrans("xX", "tT")
_TO_DEFANGED = str.maketrans("tT", "xX")
_DEFANGED_SCHEMES = frozenset({"http", "https", "ftp", "ftps"})
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)(.*)", re.S)


def _replacement(match: re.Match[str]) -> str:
    kind = match.lastgroup
    if kind == "scheme":
        return match[0].translate(_TO_FANGED)
    if kind == "sep":
        return _SEPARATORS[match[0]]
    return "." if kind == "dot" else "@"


def refang(text: str) -> str:
    """Return ``text`` with every defanged form turned back into the real characters.

    Works on single values and on whole reports alike; text without defanged forms is
    returned unchanged.
    """
    return _REFANG.sub(_replacement, text)


def refang_with_offsets(text: str) -> tuple[str, list[int]]:
    """Return the refanged text and the sorted offsets, in it, where a replacement was made.

    The offsets let a caller tell whether a span of the refanged text was written defanged.
    """
    pieces: list[str] = []
    offsets: list[int] = []
    position = 0
    length = 0
    for match in _REFANG.finditer(text):
        before = text[position : match.start()]
        pieces.append(before)
        length += len(before)
        offsets.append(length)
        replacement = _replacement(match)
        pieces.append(replacement)
        length += len(replacement)
        position = match.end()
    pieces.append(text[position:])
    return "".join(pieces), offsets


def _defang_host(host: str) -> str:
    if host.startswith("["):
        return host  # a bracketed ipv6 host inside a URL: the scheme is already defanged
    return host.replace(".", "[.]")


def _defang_ip(address: str) -> str:
    return address.replace(":", "[:]").replace(".", "[.]")


def _defang_url(url: str) -> str:
    match = _URL.fullmatch(url)
    if match is None:  # pragma: no cover - normalize_as already refused such values
        return url
    scheme, netloc, rest = match.groups()
    if scheme.lower() in _DEFANGED_SCHEMES:
        scheme = scheme.translate(_TO_DEFANGED)
    userinfo, at, hostport = netloc.rpartition("@")
    return f"{scheme}://{userinfo}{at}{_defang_host(hostport)}{rest}"


def _defang_email(email: str) -> str:
    local, _, domain = email.rpartition("@")
    return f"{local}[@]{_defang_host(domain)}"


def defang_as(value: str, ioc_type: IOCType) -> str:
    """Return a fanged ``value`` of known type ``ioc_type`` defanged, without normalizing it."""
    if ioc_type is IOCType.URL:
        return _defang_url(value)
    if ioc_type is IOCType.EMAIL:
        return _defang_email(value)
    if ioc_type is IOCType.DOMAIN:
        return _defang_host(value)
    if ioc_type in (IOCType.IPV4, IOCType.IPV6, IOCType.CIDR):
        return _defang_ip(value)
    return value


def defang(value: str, ioc_type: IOCType | str | None = None) -> str:
    """Return ``value`` defanged, keeping its spelling (case, ports, paths) otherwise as is.

    The type is detected when not given.  Already defanged input is accepted, so
    ``defang(defang(x)) == defang(x)``.  Raises InvalidIOCError if ``value`` is not a
    valid indicator (of ``ioc_type``, when given).
    """
    text = refang(value.strip())
    kind = coerce_type(ioc_type) if ioc_type is not None else classify(text)
    normalize_as(text, kind)
    return defang_as(text, kind)
