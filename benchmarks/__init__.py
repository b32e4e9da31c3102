"""Speed and memory benchmarks for ``labkit analyze``.

``python -m benchmarks.generate`` writes a deterministic capture of one traffic mix
(:mod:`benchmarks.mixes`) and its ground truth; ``python -m benchmarks.run`` times labkit
against tcpdump's BPF scan and tshark on every mix side by side and checks its counts;
``python -m benchmarks.fullrun`` times ``--keylog`` + ``--plot`` on a GB-scale AnyConnect
session (:mod:`benchmarks.cstp_session`); :mod:`benchmarks.scaling` makes inputs of each kind
at any size for the growth checks of ``tests/test_scaling.py``.
"""
