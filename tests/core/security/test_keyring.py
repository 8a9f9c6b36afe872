"""Key ids, keys, key rings, key files and the environment, each rule with its exact message.

test_sealing.py uses key rings to seal and rotate; this file checks the ring's own rules:
what is refused, with which message (never echoing key material), and what is accepted.
"""

from __future__ import annotations

import base64
import os
import pickle
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phantom_notebook import ConfigError
from phantom_notebook.core.security import keyring as keyring_module
from phantom_notebook.core.security.keyring import (
    KEY_BYTES,
    KeyRing,
    SecretKey,
    check_key_id,
    decode_key,
    generate_key,
)

RAW1, RAW2, RAW3 = bytes(range(32)), bytes(range(1, 33)), bytes(range(2, 34))
B1, B2, B3 = (base64.b64encode(r).decode() for r in (RAW1, RAW2, RAW3))
ID_RULE = "1-32 of A-Z a-z 0-9 . _ -, starting with a letter or digit"


def _message(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    return str(excinfo.value)


# -- ids and keys ----------------------------------------------------------------------------

def test_a_generated_key_is_32_random_bytes_in_standard_base64() -> None:
    keys = {generate_key() for _ in range(20)}
    assert len(keys) == 20
    for key in keys:
        assert len(key) == 44 and len(base64.b64decode(key, validate=True)) == KEY_BYTES == 32


@pytest.mark.parametrize("key_id", ["k", "K1", "2026-11-27a", "a.b_c-d", "x" * 32, "0"])
def test_a_usable_key_id_is_returned_as_is(key_id: str) -> None:
    assert check_key_id(key_id) == key_id


@pytest.mark.parametrize("key_id", ["", "-k", ".k", "_k", "x" * 33, "a b", "k:1", "active",
                                    None, 7])
def test_an_unusable_key_id_is_refused_without_echoing_it(key_id: object) -> None:
    with pytest.raises(ConfigError) as caught:
        check_key_id(key_id, "PHANTOM_KEYS entry 2")
    assert _message(caught) == ("invalid setting 'PHANTOM_KEYS entry 2': the key id is not "
                                f"usable (allowed: {ID_RULE})")
    with pytest.raises(ConfigError, match="'key id'"):
        check_key_id(key_id)


@pytest.mark.parametrize("text", [B1, B1.rstrip("="), f"  {B1}\n",
                                  base64.urlsafe_b64encode(RAW1).decode().rstrip("=")])
def test_a_key_is_standard_or_url_safe_base64_with_or_without_padding(text: str) -> None:
    assert decode_key(text, "k1", "f") == RAW1


def test_url_safe_characters_decode_to_the_same_bytes_as_standard_ones() -> None:
    raw = bytes([0xFB, 0xFF, 0xBF] * 10 + [0xFB, 0xFF])  # '+' and '/' in standard base64
    standard, url = base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()
    assert "+" in standard and "/" in standard and "-" in url and "_" in url
    assert decode_key(standard, "k", "f") == decode_key(url, "k", "f") == raw


def test_a_key_that_is_not_base64_or_not_32_bytes_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        decode_key("not*base64!", "k1", "PHANTOM_KEYS entry 1")
    assert _message(caught) == ("invalid setting 'PHANTOM_KEYS entry 1': key 'k1' is not valid "
                                "base64")
    short = base64.b64encode(RAW1[:31]).decode()
    with pytest.raises(ConfigError) as caught:
        decode_key(short, "k1", "f")
    assert _message(caught) == "invalid setting 'f': key 'k1' decodes to 31 bytes, need exactly 32"
    assert short not in _message(caught)
    with pytest.raises(ConfigError, match="decodes to 33 bytes"):
        decode_key(base64.b64encode(RAW1 + b"x").decode(), "k1", "f")


def test_a_secret_key_holds_exactly_32_bytes_and_shows_only_its_id() -> None:
    key = SecretKey("k1", bytearray(RAW1))  # type: ignore[arg-type]
    assert key.reveal() == RAW1 and type(key.reveal()) is bytes
    assert key.to_base64() == B1 and SecretKey.from_base64("k1", B1) == key
    assert repr(key) == str(key) == "SecretKey(id='k1', ***)"
    for material, size in ((RAW1[:31], "31"), (RAW1 + b"x", "33"), ("x" * 32, "?")):
        with pytest.raises(ConfigError) as caught:
            SecretKey("k1", material, field="new key")  # type: ignore[arg-type]
        assert _message(caught) == (f"invalid setting 'new key': key 'k1' is {size} bytes, "
                                    "need exactly 32")
    with pytest.raises(ConfigError, match="'key': the key id is not usable"):
        SecretKey("bad id", RAW1)
    with pytest.raises(ConfigError, match="'file line 3': key 'k1' is not valid base64"):
        SecretKey.from_base64("k1", "***", field="file line 3")
    with pytest.raises(ConfigError, match="^invalid setting 'file line 4': the key id is not"):
        SecretKey.from_base64("bad id", B1, field="file line 4")
    with pytest.raises(ConfigError, match="^invalid setting 'key': the key id is not usable"):
        SecretKey.from_base64("bad id", B1)
    with pytest.raises(ConfigError, match="^invalid setting 'key': key 'k1' decodes to 3 bytes"):
        SecretKey.from_base64("k1", "AAAA")


def test_keys_are_equal_by_id_and_material() -> None:
    key = SecretKey("k1", RAW1)
    assert key == SecretKey("k1", RAW1) and hash(key) == hash(SecretKey("k1", RAW2))
    assert key != SecretKey("k1", RAW2) and key != SecretKey("k2", RAW1)
    assert key.__eq__("k1") is NotImplemented and key != RAW1
    assert hash(key) != hash(SecretKey("k2", RAW1))  # spread by id
    with pytest.raises(TypeError) as caught:
        pickle.dumps(key)
    assert str(caught.value) == ("SecretKey cannot be pickled: keys stay out of pickles and "
                                 "caches")


# -- rings -----------------------------------------------------------------------------------

def _ring(active: str | None = None) -> KeyRing:
    return KeyRing([SecretKey("k1", RAW1), SecretKey("k2", RAW2)], active)


def test_the_first_key_is_active_unless_another_is_named() -> None:
    ring = _ring()
    assert (ring.active_id, ring.ids, len(ring)) == ("k1", ("k1", "k2"), 2)
    assert _ring("k2").active_id == "k2" and _ring("k2").ids == ("k1", "k2")
    assert "k2" in ring and "k9" not in ring and 1 not in ring
    assert ring.key("k2") == SecretKey("k2", RAW2)
    with pytest.raises(KeyError):
        ring.key("k9")
    assert repr(ring) == str(ring) == "KeyRing(active='k1', ids=['k1', 'k2'])"
    with pytest.raises(TypeError) as caught:
        pickle.dumps(ring)
    assert str(caught.value) == "KeyRing cannot be pickled: keys stay out of pickles and caches"


def test_each_key_has_its_cipher_and_the_active_one_seals() -> None:
    ring = _ring("k2")
    nonce = b"\x00" * 12
    sealed = ring.active_aead.encrypt(nonce, b"intel", b"")
    assert AESGCM(RAW2).decrypt(nonce, sealed, b"") == b"intel"
    k1 = ring.aead("k1")
    assert k1 is not None and AESGCM(RAW1).decrypt(nonce, k1.encrypt(nonce, b"x", b""), b"")
    assert ring.aead("k9") is None


@pytest.mark.parametrize(("keys", "active", "message"), [
    ([], None, "invalid setting 'keys': the key ring is empty: give at least one key"),
    (["k1"], None, "invalid setting 'keys': expected SecretKey, got str"),
    ([SecretKey("k1", RAW1), SecretKey("k1", RAW2)], None,
     "invalid setting 'keys': key id 'k1' is listed twice"),
    ([SecretKey("k1", RAW1), SecretKey("k2", RAW2)], "k3",
     "invalid setting 'active key': 'k3' is not one of the keys (allowed: k1, k2)")])
def test_a_ring_is_refused_when_empty_mixed_duplicated_or_its_active_key_is_missing(
        keys: list[object], active: str | None, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        KeyRing(keys, active)  # type: ignore[arg-type]
    assert _message(caught) == message


def test_rotating_adds_a_new_active_key_first_and_keeps_the_old_ones() -> None:
    ring = _ring()
    given = ring.rotate("k3", B3)
    assert (given.active_id, given.ids) == ("k3", ("k3", "k1", "k2"))
    assert given.key("k3").reveal() == RAW3 and ring.ids == ("k1", "k2")
    assert ring.rotate("k3", RAW3).key("k3").reveal() == RAW3
    fresh = ring.rotate("k3")
    assert len(fresh.key("k3").reveal()) == 32 and fresh.key("k3").reveal() not in (RAW1, RAW2)
    with pytest.raises(ConfigError) as caught:
        ring.rotate("k2")
    assert _message(caught) == "invalid setting 'new key id': 'k2' is already in the key ring"
    with pytest.raises(ConfigError, match="'new key id': the key id is not usable"):
        ring.rotate("active")
    with pytest.raises(ConfigError, match="'new key': key 'k3' decodes to 3 bytes"):
        ring.rotate("k3", "AAAA")
    with pytest.raises(ConfigError, match="'new key': key 'k3' is 2 bytes"):
        ring.rotate("k3", b"xx")


def test_dropping_removes_a_retired_key_but_never_the_active_one() -> None:
    ring = _ring()
    dropped = ring.drop("k2")
    assert (dropped.ids, dropped.active_id) == (("k1",), "k1")
    assert _ring("k2").drop("k1").ids == ("k2",) and _ring("k2").drop("k1").active_id == "k2"
    three = KeyRing([SecretKey("k1", RAW1), SecretKey("k2", RAW2), SecretKey("k3", RAW3)], "k3")
    assert three.drop("k1").active_id == "k3"  # not simply the first key left
    with pytest.raises(ConfigError) as caught:
        ring.drop("k1")
    assert _message(caught) == "invalid setting 'key id': 'k1' is the active key: rotate first"
    with pytest.raises(ConfigError) as caught:
        ring.drop("k9")
    assert _message(caught) == ("invalid setting 'key id': 'k9' is not in the key ring "
                                "(allowed: k1, k2)")


def test_a_ring_is_built_from_base64_pairs_or_the_environment_spec() -> None:
    assert KeyRing.from_base64({"k1": B1, "k2": B2}).ids == ("k1", "k2")
    assert KeyRing.from_base64([("k2", B2), ("k1", B1)], active="k1").active_id == "k1"
    spec = KeyRing.parse(f" k2 :{B2} , ,k1:{B1},", active="k1")
    assert (spec.ids, spec.active_id) == (("k2", "k1"), "k1")
    assert spec.key("k2").reveal() == RAW2
    with pytest.raises(ConfigError) as caught:
        KeyRing.parse(f"k1:{B1},{B2}")
    assert _message(caught) == "invalid setting 'PHANTOM_KEYS': entry 2 is not '<id>:<base64>'"
    assert B2 not in _message(caught)
    with pytest.raises(ConfigError, match="'PHANTOM_KEYS entry 2': key 'k2' is not valid"):
        KeyRing.parse(f"k1:{B1},k2:***")
    with pytest.raises(ConfigError, match="'PHANTOM_KEYS entry 1': key 'k1' is not valid"):
        KeyRing.parse("k1:AAAA:BBBB")  # the id ends at the first colon


# -- key files -------------------------------------------------------------------------------

def _file(tmp_path: Path, text: str | bytes, mode: int = 0o600) -> Path:
    path = tmp_path / "keys"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    path.chmod(mode)
    return path


def test_a_key_file_lists_keys_and_may_name_the_active_one(tmp_path: Path) -> None:
    path = _file(tmp_path, f"# keys\n\n   \nk1 {B1}\nactive k2\n  k2   {B2}  \n# end\n")
    ring = KeyRing.from_file(path)
    assert (ring.ids, ring.active_id) == (("k1", "k2"), "k2")
    assert KeyRing.from_file(path, active="k1").active_id == "k1"
    assert KeyRing.from_file(_file(tmp_path, f"k1 {B1}\nk2 {B2}\n")).active_id == "k1"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o700 | 0o004])
def test_a_key_file_others_may_read_is_refused_unless_insecure_ok(tmp_path: Path,
                                                                   mode: int) -> None:
    path = _file(tmp_path, f"k1 {B1}\n", mode)
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_file(path)
    assert _message(caught) == (f"invalid setting 'key file {path}': is accessible to group or "
                                f"others (mode {mode:04o}) (allowed: chmod 600, or "
                                "insecure_ok=True for throwaway keys)")
    assert KeyRing.from_file(path, insecure_ok=True).ids == ("k1",)
    assert KeyRing.from_file(_file(tmp_path, f"k1 {B1}\n", 0o400)).ids == ("k1",)


@pytest.mark.parametrize(("text", "problem"), [
    (f"k1 {B1}\nk2 {B2} extra\n", "line 2 is not '<id> <base64>' or 'active <id>'"),
    ("k1\n", "line 1 is not '<id> <base64>' or 'active <id>'"),
    (f"active k1\nk1 {B1}\nactive k1\n", "line 3: a second 'active' line"),
    (b"k1 \xff\xfe\n", "is not UTF-8 text")])
def test_a_malformed_key_file_names_the_line_never_its_content(
        tmp_path: Path, text: str | bytes, problem: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_file(path)
    assert _message(caught) == f"invalid setting 'key file {path}': {problem}"
    assert B2 not in _message(caught)


def test_bad_ids_and_keys_in_a_key_file_name_their_line(tmp_path: Path) -> None:
    path = _file(tmp_path, f"k1 {B1}\nactive bad/id\n")
    with pytest.raises(ConfigError, match=f"'key file {path} line 2': the key id is not usable"):
        KeyRing.from_file(path)
    path = _file(tmp_path, f"k1 {B1}\nk2 AAAA\n")
    with pytest.raises(ConfigError, match=f"'key file {path} line 2': key 'k2' decodes to 3"):
        KeyRing.from_file(path)


def test_a_key_file_that_cannot_be_opened_or_is_no_file_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "none"
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_file(missing)
    assert _message(caught) == (f"invalid setting 'key file {missing}': cannot be opened (No "
                                "such file or directory)")
    for other in (tmp_path, Path(os.devnull)):  # a directory, a character device
        with pytest.raises(ConfigError) as caught:
            KeyRing.from_file(other)
        assert _message(caught) == f"invalid setting 'key file {other}': is not a regular file"


def test_a_written_key_file_is_owner_only_and_names_the_active_key(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    _ring("k2").write_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text() == ("# phantom_notebook keys: keep this file mode 0600\n"
                                f"active k2\nk1 {B1}\nk2 {B2}\n")
    loaded = KeyRing.from_file(path)
    assert (loaded.ids, loaded.active_id, loaded.key("k1")) == (("k1", "k2"), "k2",
                                                               SecretKey("k1", RAW1))
    _ring().write_key_file(path)  # replaces the file atomically
    assert KeyRing.from_file(path).active_id == "k1"
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]


def test_the_key_file_is_written_beside_its_target_then_renamed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    renames: list[tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: object) -> None:
        renames.append((str(src), str(dst)))
        real_replace(src, dst)  # type: ignore[arg-type]

    monkeypatch.setattr(keyring_module.os, "replace", spy)
    monkeypatch.chdir(tmp_path.parent)  # a temp file in the working directory would show
    target = tmp_path / "keys"
    _ring().write_key_file(target)
    [(src, dst)] = renames
    assert Path(src).parent == tmp_path and Path(src).name.startswith(".pn-keys-")
    assert dst == str(target)


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "keys"
    target.mkdir()  # a directory cannot be replaced by the written file
    with pytest.raises(OSError):
        _ring().write_key_file(target)
    assert [p.name for p in tmp_path.iterdir()] == ["keys"]


# -- the environment -------------------------------------------------------------------------

def test_without_keys_in_the_environment_there_is_no_ring() -> None:
    assert KeyRing.from_env({}) is None
    assert KeyRing.from_env({"PHANTOM_KEYS": "  ", "PHANTOM_KEY_FILE": " "}) is None
    with pytest.raises(ConfigError) as caught:
        KeyRing.from_env({"PHANTOM_ACTIVE_KEY": "k1"})
    assert _message(caught) == ("invalid setting 'PHANTOM_ACTIVE_KEY': is set but neither "
                                "PHANTOM_KEYS nor PHANTOM_KEY_FILE is")


def test_the_environment_combines_its_keys_with_a_key_file(tmp_path: Path) -> None:
    path = _file(tmp_path, f"active k3\nk3 {B3}\n")
    both = KeyRing.from_env({"PHANTOM_KEYS": f" k1:{B1},k2:{B2} ", "PHANTOM_KEY_FILE": str(path)})
    assert both is not None and (both.ids, both.active_id) == (("k1", "k2", "k3"), "k3")
    chosen = KeyRing.from_env({"PHANTOM_KEYS": f"k1:{B1}", "PHANTOM_KEY_FILE": f" {path} ",
                               "PHANTOM_ACTIVE_KEY": " k1 "})
    assert chosen is not None and chosen.active_id == "k1"
    only_file = KeyRing.from_env({"PHANTOM_KEY_FILE": str(path)})
    assert only_file is not None and only_file.ids == ("k3",)
    only_spec = KeyRing.from_env({"PHANTOM_KEYS": f"k1:{B1},k2:{B2}", "PHANTOM_ACTIVE_KEY": "k2"})
    assert only_spec is not None and only_spec.active_id == "k2"
    loose = _file(tmp_path, f"k3 {B3}\n", 0o644)
    with pytest.raises(ConfigError, match="accessible to group or others"):
        KeyRing.from_env({"PHANTOM_KEY_FILE": str(loose)})
    assert KeyRing.from_env({"PHANTOM_KEY_FILE": str(loose)}, insecure_ok=True) is not None


def test_the_process_environment_is_read_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PHANTOM_KEYS", f"k9:{B1}")
    monkeypatch.delenv("PHANTOM_KEY_FILE", raising=False)
    monkeypatch.delenv("PHANTOM_ACTIVE_KEY", raising=False)
    ring = KeyRing.from_env()
    assert ring is not None and ring.ids == ("k9",)
    assert os.environ["PHANTOM_KEYS"].startswith("k9:")
