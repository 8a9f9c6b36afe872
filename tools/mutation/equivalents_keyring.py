"""Equivalent mutants of keyring.py (see python_equivalents.py)."""

from __future__ import annotations

EQUIVALENT: dict[str, tuple[str, str]] = {
    "phantom_notebook.core.security.keyring.x__read_key_file__mutmut_52": (
        'data.decode("UTF-8")',
        "codec names are case-insensitive"),
    "phantom_notebook.core.security.keyring.x_generate_key__mutmut_5": (
        '.decode("ASCII")',
        "codec names are case-insensitive"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁto_base64__mutmut_4": (
        '.decode("ASCII")',
        "codec names are case-insensitive"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁfrom_env__mutmut_34": (
        'if (spec) or True else []',
        "_parse_spec('') finds no entries: the empty list either way"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁrotate__mutmut_37": (
        'active=None)',
        "without an active id the first key is active, and the fresh key is listed first"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁrotate__mutmut_39": (
        '*self._keys.values()], )',
        "without an active id the first key is active, and the fresh key is listed first"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_14": (
        'target.parent or "XX.XX"',
        "a Path is always true (Path('keys').parent is '.'): the fallback is never used"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_19": (
        'encoding=None)',
        "the file is pure ASCII (ids and base64), and every locale encoding writes ASCII the "
        "same way"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_22": (
        'os.fdopen(fd, "w", )',
        "the file is pure ASCII (ids and base64), and every locale encoding writes ASCII the "
        "same way"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_26": (
        'encoding="ASCII"',
        "codec names are case-insensitive"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_42": (
        'unlink(missing_ok=None)',
        "the cleanup runs only before the rename succeeds, so the file mkstemp made is there"),
    "phantom_notebook.core.security.keyring.xǁKeyRingǁwrite_key_file__mutmut_44": (
        'unlink(missing_ok=False)',
        "the cleanup runs only before the rename succeeds, so the file mkstemp made is there"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁ__hash____mutmut_2": (
        'hash(("XXSecretKeyXX", self.key_id))',
        "any constant salt gives equal keys equal hashes and spreads ids alike"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁ__hash____mutmut_3": (
        'hash(("secretkey", self.key_id))',
        "any constant salt gives equal keys equal hashes and spreads ids alike"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁ__hash____mutmut_4": (
        'hash(("SECRETKEY", self.key_id))',
        "any constant salt gives equal keys equal hashes and spreads ids alike"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁfrom_base64__mutmut_5": (
        'field=None)',
        "the id and the 32 bytes were checked just before: the constructor cannot fail"),
    "phantom_notebook.core.security.keyring.xǁSecretKeyǁfrom_base64__mutmut_8": (
        'decode_key(text, key_id, field), )',
        "the id and the 32 bytes were checked just before: the constructor cannot fail"),
}
