"""``python -m trio_sse.client URL [--json] [--header K:V] [--last-event-id ID] [--no-reconnect]``."""

from ._cli import main

if __name__ == "__main__":
    raise SystemExit(main())
