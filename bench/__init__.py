"""The benchmark suite (`python manage.py bench`, `make bench`): see docs/benchmarks.md.

The standalone scripts beside it (seed_and_rebuild.py, tenants.py) predate the suite and
still run on their own.
"""
