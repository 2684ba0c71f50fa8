"""The service's memory: the allocator limit (checked in a fresh interpreter) and the
long-lived objects frozen out of the garbage collector's passes."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import weakref

import pytest

from monitor.service.memory import FULL_PASS_AFTER, freeze_long_lived, thaw
from tests.support import ROOT

# threads that allocate at once, then glibc's own account of its heaps (malloc_info's XML)
PROGRAM = """
import ctypes, ctypes.util, os, sys, tempfile, threading
from monitor.service.memory import limit_malloc_arenas
if sys.argv[1] == "limit":
    assert limit_malloc_arenas()
def churn():
    for _ in range(2000):
        [bytearray(512) for _ in range(50)]
threads = [threading.Thread(target=churn) for _ in range(8)]
for t in threads: t.start()
for t in threads: t.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
libc.malloc_info.argtypes = (ctypes.c_int, ctypes.c_void_p)
libc.fclose.argtypes = (ctypes.c_void_p,)
with tempfile.NamedTemporaryFile() as out:
    f = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, f)
    libc.fclose(f)
    print(open(out.name).read().count("<heap nr="))
"""


def heaps(mode: str) -> int:
    done = subprocess.run([sys.executable, "-c", PROGRAM, mode], cwd=ROOT, check=True,
                          capture_output=True, text=True, timeout=60)
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's allocator only")
def test_the_pipelines_processes_keep_to_two_malloc_arenas() -> None:
    assert heaps("limit") <= 2


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def test_freezing_collects_the_garbage_first_and_keeps_the_living_out_of_passes() -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle: only the collector can free it
    dead = weakref.ref(a)
    del a, b
    alive = _Node()
    before = gc.get_freeze_count()
    try:
        freeze_long_lived()
        assert dead() is None  # collected, not frozen for ever
        assert gc.get_freeze_count() > before
        assert not any(o is alive for o in gc.get_objects())  # frozen: no pass walks it
        assert gc.get_threshold()[2] == FULL_PASS_AFTER  # full passes spaced out
    finally:
        thaw()
    assert any(o is alive for o in gc.get_objects())
    assert gc.get_threshold()[2] == 10
