"""Partition routing is a pure function of the key: every process, whatever its hash seed,
sends a key to the same partition, and the values are pinned so a change is a decision."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from redis.crc import key_slot

import phantom_notebook as pn
from phantom_notebook.core.model.routing import (
    MAX_PARTITIONS,
    PARTITION_KEY_HEADER,
    SLOTS,
    Layout,
    default_partition_key,
    key_hash,
    parent_of,
    partition_names,
)

COUNTS = (1, 2, 3, 4, 6, 16, 64)
KEYS = ["198.51.100.7", "evil.example", "https://evil.example/a.php", "", "é-ü", "AS64500",
        "0190a1b2-0000-7000-8000-000000000000", *(f"203.0.113.{i}" for i in range(40))]

#: what another interpreter computes: hash(str) (differs per seed) and every route
_CHILD = """
import json, sys
from phantom_notebook.core.model.routing import Layout, key_hash, partition_names
keys, counts = json.loads(sys.stdin.read())
layouts = {n: Layout("ioc-processing", n, partition_names("ioc-processing", n)) for n in counts}
print(json.dumps({"hash": hash("ioc-processing"),
                  "routes": {n: [layouts[n].route(key_hash(k)) for k in keys] for n in counts}}))
"""


def _layout(count: int, queue: str = "ioc-processing") -> Layout:
    return Layout(queue, count, partition_names(queue, count))


def _routes_here() -> dict[str, list[str]]:
    return {str(n): [_layout(n).route(key_hash(k)) for k in KEYS] for n in COUNTS}


def test_a_process_with_another_hash_seed_routes_every_key_to_the_same_partition() -> None:
    seed = "1" if os.environ.get("PYTHONHASHSEED") == "0" else "0"
    package_root = Path(pn.__file__).resolve().parents[1]  # the code this process imported
    child = subprocess.run([sys.executable, "-c", _CHILD], input=json.dumps([KEYS, COUNTS]),
                           capture_output=True, text=True, check=True, timeout=60,
                           cwd=package_root, env={**os.environ, "PYTHONHASHSEED": seed})
    theirs = json.loads(child.stdout)
    assert theirs["hash"] != hash("ioc-processing"), "the child must hash strings differently"
    assert theirs["routes"] == _routes_here()


def test_routing_hashes_and_partition_names_are_pinned() -> None:
    assert key_hash("198.51.100.7") == "77774f4808cb052f"
    assert key_hash("evil.example") == "f17f2355d3a156cb"
    assert key_hash("") == "e4a6a0577479b2b4"
    assert partition_names("q", 6) == ("q#0.11", "q#1.13", "q#2.12", "q#3.3", "q#4.2", "q#5.1")
    assert partition_names("ioc-processing", 4) == (
        "ioc-processing#0.4", "ioc-processing#1.2", "ioc-processing#2.4", "ioc-processing#3.2")
    routes = {n: _layout(n).route(key_hash("198.51.100.7")) for n in (2, 3, 4, 6, 16)}
    assert routes == {2: "ioc-processing#1", 3: "ioc-processing#1", 4: "ioc-processing#3.2",
                      6: "ioc-processing#1.3", 16: "ioc-processing#15.62"}
    routes = {n: _layout(n).route(key_hash("evil.example")) for n in (2, 3, 4, 6, 16)}
    assert routes == {2: "ioc-processing#1", 3: "ioc-processing#0.4", 4: "ioc-processing#3.2",
                      6: "ioc-processing#3.3", 16: "ioc-processing#11.12"}


def test_a_route_is_the_hash_modulo_the_count_into_the_active_partitions() -> None:
    layout = _layout(6)
    for key in KEYS:
        assert layout.route(key_hash(key)) == layout.active[int(key_hash(key), 16) % 6]
    assert _layout(1).route(key_hash("anything")) == "ioc-processing"
    assert len({_layout(16).route(key_hash(k)) for k in KEYS}) > 8  # keys spread out


@pytest.mark.parametrize("count", [2, 3, 7, 16, MAX_PARTITIONS])
def test_partition_i_hashes_into_the_i_th_slice_of_the_slots(count: int) -> None:
    names = partition_names("feed", count)
    assert len(names) == count
    for i, name in enumerate(names):
        assert parent_of(name) == "feed" and name.split("#")[1].split(".")[0] == str(i)
        assert i * SLOTS // count <= key_slot(name.encode()) < (i + 1) * SLOTS // count
    first = f"feed#{0}"  # a name already in its slice keeps no ".k" suffix
    if 0 <= key_slot(first.encode()) < SLOTS // count:
        assert names[0] == first


@pytest.mark.parametrize(("queue", "count", "i", "name", "slot"), [
    ("q2878", 3, 0, "q2878#0.1", 0),  # the very first slot belongs to partition 0
    ("q612", 5, 2, "q612#2.2", 6553),  # 2 * 16384 // 5: the first slot of partition 2's slice
])
def test_a_name_on_the_first_slot_of_its_slice_is_taken(queue: str, count: int, i: int,
                                                         name: str, slot: int) -> None:
    assert key_slot(name.encode()) == slot == i * SLOTS // count
    assert partition_names(queue, count)[i] == name


def test_a_name_on_the_first_slot_of_the_next_slice_is_passed_over() -> None:
    assert key_slot(b"q1013#3.4") == 13107 == 4 * SLOTS // 5  # partition 4's first slot
    chosen = partition_names("q1013", 5)[3]
    assert chosen != "q1013#3.4" and chosen.startswith("q1013#3.")
    assert int(chosen.rsplit(".", 1)[1]) > 4


@pytest.mark.parametrize("count", [0, -1, MAX_PARTITIONS + 1, True, 2.0, "4", None])
def test_a_partition_count_outside_one_to_256_or_not_an_integer_is_refused(count: object) -> None:
    with pytest.raises(pn.ValidationError, match=f"1..{MAX_PARTITIONS}"):
        partition_names("q", count)  # type: ignore[arg-type]


def test_parent_of_strips_the_partition_suffix_only() -> None:
    assert parent_of("ioc-feed#2.7") == "ioc-feed"
    assert parent_of("ioc-feed#2") == "ioc-feed"
    assert parent_of("ioc-feed") == "ioc-feed"


def test_the_partition_key_is_the_ioc_value_of_any_shape_else_the_message_id() -> None:
    assert default_partition_key({"ioc": {"value": 64500}}, "m1") == "64500"
    assert default_partition_key({"ioc": {"value": "1.2.3.4"}}, "m1") == "1.2.3.4"
    assert default_partition_key({"ioc": {"value": None}}, "m1") == "m1"
    assert default_partition_key({"ioc": {"type": "ip"}}, "m1") == "m1"
    assert default_partition_key({"ioc": ["1.2.3.4"]}, "m1") == "m1"
    assert default_partition_key({"ioc": "evil.example"}, "m1") == "evil.example"
    assert default_partition_key(["ioc"], "m1") == "m1"


def test_a_stored_message_routes_by_its_key_hash_else_its_id_else_to_the_first_partition(
        ) -> None:
    layout = _layout(6)
    hashed = key_hash("198.51.100.7")
    assert layout.route_header({"h": {PARTITION_KEY_HEADER: hashed}, "id": "m1"}) == \
        layout.route(hashed)
    assert layout.route_header({"h": {PARTITION_KEY_HEADER: ""}, "id": "m9"}) == \
        layout.route(key_hash("m9"))
    assert layout.route_header({"h": {"other": "x"}, "id": "m9"}) == layout.route(key_hash("m9"))
    assert layout.route_header({"h": "not a dict", "id": "m9"}) == layout.route(key_hash("m9"))
    assert layout.route_header({"id": "m9"}) == layout.route(key_hash("m9"))
    for header in ({"id": ""}, {"id": 7}, {}, None, "junk", {"h": {"other": "x"}}):
        assert layout.route_header(header) == layout.active[0]
    # the ids chosen route elsewhere than the first partition, so the fallback is visible
    assert layout.route(key_hash("m9")) != layout.active[0]
    assert layout.route(hashed) != layout.route(key_hash("m1"))


def test_a_layout_lists_active_then_draining_partitions_once() -> None:
    plain = Layout("q", 1, ("q",))
    assert not plain.partitioned and plain.all == ("q",)
    draining = Layout("q", 1, ("q",), ("q#0.11", "q#1.13"))
    assert draining.partitioned and draining.all == ("q", "q#0.11", "q#1.13")
    split = _layout(2, "q")
    assert split.partitioned and split.all == split.active
    overlap = Layout("q", 2, split.active, (split.active[1], "q"))
    assert overlap.all == (*split.active, "q")


def test_the_layout_is_read_from_the_queue_s_meta_hash(real_mq: pn.MessageQueue) -> None:
    meta = f"{real_mq.keys.prefix}:{{routing-test}}:meta"
    assert Layout.read(real_mq.client, "routing-test", meta) == Layout(
        "routing-test", 1, ("routing-test",), ())
    real_mq.client.hset(meta, mapping={"partitions": 4, "draining": "routing-test,,x#1"})
    assert Layout.read(real_mq.client, "routing-test", meta) == Layout(
        "routing-test", 4, partition_names("routing-test", 4), ("routing-test", "x#1"))
