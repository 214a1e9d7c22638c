"""``python -m tests.reliability.nofile N -- command...``: raise RLIMIT_NOFILE to N, then exec.

The load test's server holds one file descriptor per stream; a small wrapper instead of a
``preexec_fn`` (unsafe in a test process that has threads) or ``prlimit`` (not everywhere).
The soft limit is raised to N, at most to the hard limit.
"""

from __future__ import annotations

import os
import resource
import sys


def main() -> None:
    wanted = int(sys.argv[1])
    if sys.argv[2] != "--":
        raise SystemExit("usage: python -m tests.reliability.nofile N -- command...")
    command = sys.argv[3:]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
