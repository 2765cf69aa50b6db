"""A bare DRF view, the web tier's own ceiling (issue 18), for the benchmarks only.

Served by a second web server started with DJANGO_SETTINGS_MODULE=bench.ceiling.settings:
the product's settings, middleware and gunicorn configuration, with one more public URL,
`POST /bench/ceiling/`. The product's URL modules never import it.
"""
