"""Astroparticle and GW data: saetta against the field's own tools, in one command.

Two parts, each a script of its own that can run alone:

- ``events`` (``benchmarks/astro_events.py``): the θ² ON/OFF analysis of gamma-ray
  event lists (generated GADF DL3 files, 10^8 events by default) against astropy
  ``Table.read`` + numpy and against gammapy, one core each, same files, same counts;
- ``strain`` (``benchmarks/astro_strain.py``): the matched-filter search against
  PyCBC's ``matched_filter`` on the same bank, data and PSD, and saetta's 2-worker
  scaling.

Usage::

    python benchmarks/astro.py                      # both parts at their full sizes
    python benchmarks/astro.py --small              # both, at the smoke test's sizes
    python benchmarks/astro.py events --events 10000000 --observations 10
    python benchmarks/astro.py strain --duration 1024

The exit status is non-zero when a part's own checks fail (different counts,
SNRs that disagree by 1 % or more).
"""

from __future__ import annotations

import sys
from pathlib import Path

# The two parts are sibling scripts, found through this folder on the path.
sys.path.insert(0, str(Path(__file__).parent))

import astro_events
import astro_strain

SMALL = {
    "events": ["--events", "20000", "--observations", "2"],
    "strain": ["--small"],
}


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    parts = {"events": astro_events.main, "strain": astro_strain.main}
    if args and args[0] in parts:
        return parts[args[0]](args[1:])
    small = "--small" in args
    extra = [a for a in args if a != "--small"]
    status = 0
    for name, part in parts.items():
        print(f"== {name}", flush=True)
        status |= part([*(SMALL[name] if small else []), *extra])
    return status


if __name__ == "__main__":
    sys.exit(main())
