"""The search service's large request bodies are parsed in parts (an indexing batch's passages one
at a time, so the emulator's event loop keeps streaming answers meanwhile): the same value as
`json.loads`, and the same refusal of what is not JSON."""

import itertools
import json
import sys
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.emulator.search.body import loads_in_parts

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    scalars, lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=20
)


@given(st.dictionaries(st.text(), values), st.sampled_from([None, 2]), st.sampled_from([", ", ","]))
def test_any_object_reads_as_json_loads_reads_it(value, indent, separator):
    raw = json.dumps(value, indent=indent, separators=(separator, ": "))

    assert loads_in_parts(raw) == json.loads(raw)
    assert loads_in_parts(raw.encode()) == json.loads(raw.encode())


@given(values)
def test_a_body_that_is_not_an_object_reads_as_json_loads_reads_it(value):
    raw = json.dumps(value).encode()

    assert loads_in_parts(raw) == json.loads(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"value": [1, 2}',
        b'{"value": [1 2]}',
        b'{"value": [1, 2],}',
        b'{"value": [1, 2]} x',
        b'{"value" [1]}',
        b"{value: 1}",
        b'{"a": 1 "b": 2}',
        b'{"value": [1,]}',
        b'{"value": [{"id": "a"}, {"id": }]}',
        b"\xff\xfe\xfa",
    ],
)
def test_what_is_not_json_is_refused_as_json_loads_refuses_it(raw):
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        json.loads(raw)
    with pytest.raises((json.JSONDecodeError, UnicodeDecodeError)):
        loads_in_parts(raw)


def longest_pause_while_read(read, raw):
    """The value `read` made of `raw`, and the longest time another thread could not run meanwhile,
    as a share of the whole read."""
    ticks: list[float] = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(time.monotonic())
            time.sleep(0)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)
    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        time.sleep(0.01)
        started = time.monotonic()
        value = read(raw)
        ended = time.monotonic()
    finally:
        done.set()
        ticker.join()
        sys.setswitchinterval(interval)
    moments = [started, *(tick for tick in ticks if started < tick < ended), ended]
    longest = max(later - earlier for earlier, later in itertools.pairwise(moments))
    return value, longest / (ended - started)


def test_an_indexing_batch_lets_other_threads_run_while_it_is_read():
    batch = {
        "value": [
            {
                "@search.action": "upload",
                "id": f"p{n}",
                "content": "leave " * 300,
                "embedding": [0.0123] * 1536,
            }
            for n in range(400)
        ]
    }
    raw = json.dumps(batch)

    value, pause = longest_pause_while_read(loads_in_parts, raw)
    _, pause_in_one_call = longest_pause_while_read(json.loads, raw)

    assert value == batch
    # Read an element at a time, the batch never keeps other threads waiting for long; json.loads
    # reads it in one call, which keeps them waiting for nearly all of it.
    assert pause < 0.25
    assert pause_in_one_call > 0.4
