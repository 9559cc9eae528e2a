"""The command line (layer 9) — what Ctrl-C and SIGTERM do to the ``saetta`` command.

SIGTERM (a batch system's, or ``kill``'s) winds a run down as one Ctrl-C does:
finished units are kept and the command says how to resume. After that, a
second signal ends the process at once.
"""

from __future__ import annotations

import os
import threading
from typing import Any

__all__ = ["TERMINATED", "stop_at_once", "terminate"]

#: Set by SIGTERM: the run winds down as after one Ctrl-C.
TERMINATED = threading.Event()


def terminate(signum: int, frame: Any) -> None:
    TERMINATED.set()
    raise KeyboardInterrupt


def stop_at_once(signum: int, frame: Any) -> None:
    os._exit(128 + signum)
