"""labkit's fuzz harness: structure-aware mutations of real inputs, run against every parser.

``python -m tests.fuzz --help`` runs a campaign by hand; ``tests/test_fuzz_campaign.py`` runs
the bounded one CI runs (deterministic seed, >= 2000 inputs, under two minutes) and
``tests/test_fuzz_regressions.py`` replays every input that once crashed labkit
(``tests/fuzz_regressions/``). docs/robustness.md explains the choices and gives the figures.
"""
