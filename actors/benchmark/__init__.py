"""Benchmarks, hardware labels and their re-use: what the cluster is registered as.

- :mod:`actors.benchmark.settings`: the options, from ``cfg.benchmark``;
- :mod:`actors.benchmark.plan`: the suite as jobs and scripts (pure);
- :mod:`actors.benchmark.parsers`: job outputs to numbers (pure);
- :mod:`actors.benchmark.labels`: numbers to the grid's standard labels, the operator's merged
  in, and the hardware fingerprint (pure);
- :mod:`actors.benchmark.messages`: what the actor is asked and stores;
- :mod:`actors.benchmark.actor`: BenchmarkActor, which runs the suite through SlurmActor.
"""
