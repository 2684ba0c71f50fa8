"""The process's memory, set for a long-running service: the allocator's arenas, and the
garbage collector kept off the objects that live as long as the process.

glibc gives each thread that allocates under contention an arena of its own, up to 8 per
core, and returns little of an arena's free memory to the system. The pipeline renders
/metrics (about 12 MB of text nationwide) in worker threads while the event loop keeps
allocating: each render can leave its megabytes in another arena, and the resident size
creeps up by tens of MB (measured with ``bench collector_attack``: a peak of 209–213 MB,
197 MB with ``MALLOC_ARENA_MAX=2``). Two arenas are enough for one event loop and its
worker thread; asked for once, before those threads allocate.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

import structlog

log = structlog.get_logger("memory")

M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Ask glibc for at most ``arenas`` malloc arenas; False where there is no glibc (or it
    refused), which changes nothing but the memory used."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    done = bool(mallopt(M_ARENA_MAX, arenas))
    if not done:
        log.warning("malloc_arenas_not_limited", arenas=arenas)
    return done


#: Young-generation passes between two full passes (CPython's default: 10). A full pass
#: walks every object not frozen: nationwide, the state's observations replaced at each
#: cycle and batch, some 200,000 objects, ~70 ms a pass; at the default pace that was five
#: passes every 20 s in ``run --mqtt`` (0.035 core, 8 % of the process; now ~1 %, measured
#: with ``bench run_mqtt``, 2026-12-05). The young passes still free the cycles of the
#: moment (asyncio's futures and exceptions) as often as before.
FULL_PASS_AFTER = 100
_CPYTHON_FULL_PASS_AFTER = 10


def freeze_long_lived() -> None:
    """Every object alive now is left out of the garbage collector's passes from now on
    (``gc.freeze``): the inventory, the state and its trackers of a nationwide monitor are
    some 700,000 objects that live as long as the process, and each full pass walked them
    all again; the passes took ~15 % of the time spent on agents' batches and cycles
    (measured in process, 2026-12-04). Collected first, so that no garbage is frozen;
    frozen objects are still freed when nothing refers to them. Full passes are spaced
    out too (:data:`FULL_PASS_AFTER`)."""
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_PASS_AFTER)


def thaw() -> None:
    """Undo :func:`freeze_long_lived` (a benchmark or test that shares its process)."""
    gc.unfreeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _CPYTHON_FULL_PASS_AFTER)
