"""Benchmarks of the service against bare baselines measured in the same run: see README.md.

``python -m bench <part>`` with part one of e2e, cpu, ingest, queries, rss, all.
"""
