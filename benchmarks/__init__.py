"""The throughput and memory benchmark of carbonlake (issue 7).

``python -m benchmarks --sizes 10k,1m`` (or ``make bench``) generates
deterministic activity CSVs, runs ``carbonlake run`` end to end on each in a
fresh workspace, and reports wall time, pipeline time, rows per second, peak
resident memory and two ratios measured on the same file: the speed-up over a
per-record Python version of the original algorithm (:mod:`benchmarks.baseline`)
and the time relative to DuckDB merely scanning the CSV. See
``docs/performance.md``.

The benchmark is not a test: nothing asserts a time. It does fail loudly when
carbonlake and the per-record baseline disagree on a record's emissions.
"""
