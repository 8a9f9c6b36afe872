"""Equivalent mutants of ioc_extract.py (see python_equivalents.py).

Every survivor of the last run that no test can tell apart, each reviewed; the
others are killed by tests (notes of this module in python_equivalents.py that are
not repeated here are of mutants a test now kills)."""

from __future__ import annotations

#: mutant name -> (a fragment of its diff's mutated line, why no test can tell it apart)
EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.intel.ioc_extract.x__add_related__mutmut_5": (
        "                break",
        "an IOC of extract_iocs has at most one related pivot: break ends the same loop"),
    "phantom_notebook.intel.ioc_extract.x__add_related__mutmut_9": (
        "found[pivot.key][0] >= start",
        "two hits never start at the same offset: > and >= agree"),
    "phantom_notebook.intel.ioc_extract.x__add_related__mutmut_12": (
        "(start + 1.5, pivot)",
        "nothing starts 1-2 characters into a URL: the pivot sorts right after it either way"),
    "phantom_notebook.intel.ioc_extract.x__host_of__mutmut_5": (
        'ioc.value.partition("@")[2]',
        "an address holds one '@' (the patterns allow none in the local part): both cut at it"),
    "phantom_notebook.intel.ioc_extract.x__inside_url__mutmut_6": (
        'match.lastgroup != "XXhashXX"',
        "a hash of no known length is typed md5 and then fails md5 validation: skipped anyway"),
    "phantom_notebook.intel.ioc_extract.x__inside_url__mutmut_7": (
        'match.lastgroup != "HASH"',
        "a hash of no known length is typed md5 and then fails md5 validation: skipped anyway"),
    "phantom_notebook.intel.ioc_extract.x__kind_of__mutmut_7": (
        "_HASH_BY_LENGTH.get(len(match[0]), None)",
        "the default is only reached for lengths every caller skips"),
    "phantom_notebook.intel.ioc_extract.x__kind_of__mutmut_9": (
        "_HASH_BY_LENGTH.get(len(match[0]), )",
        "the default is only reached for lengths every caller skips"),
    "phantom_notebook.intel.ioc_extract.x__looks_like_file__mutmut_3": (
        'value.partition(".")',
        "with more than two labels both cuts leave no file-extension TLD: False either way"),
    "phantom_notebook.intel.ioc_extract.x_extract_iocs__mutmut_42": (
        "start <= previous[0]",
        "one value is never found twice at the same offset: < and <= agree"),
    "phantom_notebook.intel.ioc_extract.x_extract_iocs__mutmut_65": (
        "key=None)]",
        "the offsets are unique (pivots at +0.5): tuples sort by them alone"),
    "phantom_notebook.intel.ioc_extract.x_extract_iocs__mutmut_67": (
        "sorted(found.values(), )]",
        "the offsets are unique (pivots at +0.5): tuples sort by them alone"),
}
