"""Stage: execute (layer 6) — testbeds: named places to run, read from ``testbeds.yaml``.

- :mod:`~saetta.execute.testbeds.spec`: the file, each testbed read and checked;
- :mod:`~saetta.execute.testbeds.kinds`: what each type (local, dask, slurm, htcondor) does;
- :mod:`~saetta.execute.testbeds.batch`: SLURM and HTCondor clusters, checked and started.


A testbed names an execution target and how big it is, so a notebook or a
command line says ``testbed="leonardo"`` instead of twenty cluster options.
saetta looks for the file, first found wins:

1. ``$SAETTA_TESTBEDS`` (a path);
2. ``./testbeds.yaml``;
3. ``$XDG_CONFIG_HOME/saetta/testbeds.yaml`` (default ``~/.config/saetta/testbeds.yaml``).

Example::

    testbeds:
      laptop:      {type: local, workers: 4}                 # worker processes
      dask-here:   {type: dask, workers: 2}                  # a Dask LocalCluster
      lab:         {type: dask, address: "tcp://10.0.0.5:8786"}
      slurm-local:                                           # dask-jobqueue SLURMCluster
        type: slurm
        workers: 2                                           # or adapt: {minimum: 1, maximum: 50}
        startup_timeout: 10 min # or 600 (seconds); default 300 s
        queue: debug            # partition
        account: null
        cores: 1                # per job
        processes: 1            # Dask workers per job
        memory: 2GB             # per job
        walltime: "01:00:00"
        job_extra_directives: ["--exclusive"]
        python: /opt/venv/bin/python
        interface: ib0
      condor:                                                # dask-jobqueue HTCondorCluster
        type: htcondor
        workers: 2
        cores: 1
        memory: 2GB
        disk: 1GB

``type`` is one of local, dask, slurm, htcondor. ``workers`` is a positive integer;
``adapt`` (slurm and htcondor only, instead of ``workers``) is ``{minimum: m, maximum: n}``;
``address`` (dask only) is ``"tcp://host:port"`` or ``"host:port"``; ``startup_timeout``
is seconds or a duration such as ``"5 min"``. Every other key of a slurm or htcondor
testbed goes to the dask-jobqueue cluster class as is. Anything malformed is an
:class:`~saetta.errors.ExecutorError` naming the testbed, the file and the field. Two
testbeds always exist unless a file redefines them: ``local`` (one process per core)
and ``dask`` (a LocalCluster, one worker per core).
"""

from __future__ import annotations

from saetta.execute.testbeds.kinds import KINDS
from saetta.execute.testbeds.spec import Testbed, find_testbeds_file, load_testbeds, testbed

__all__ = ["KINDS", "Testbed", "find_testbeds_file", "load_testbeds", "testbed"]
