"""The HTTP transport: one listener for the API and the VM proxy (aiohttp's low-level server).

- ``frontend.py``: the one request handler, host routing, and the listener it is served by;
- ``api.py``: ``POST /exec`` and ``/healthz`` (docs/http-api.md#post-exec);
- ``listener.py``: connections (accept loop with a limit, head deadline, TLS handshakes,
  fixed answers to parser refusals);
- ``accesslog.py``: the access log, never showing a token;
- ``tls.py``: the TLS context of ``--tls-cert``/``--tls-key``;
- ``ratelimit.py``: per-key token buckets for ``/exec`` (its step 7).

The proxy itself is :mod:`sshmint.server.proxy`. The package hands on each module's public
names (its ``__all__``).
"""

from sshmint.server.http import accesslog, api, frontend, listener, ratelimit, tls
from sshmint.server.http.accesslog import *  # noqa: F403
from sshmint.server.http.api import *  # noqa: F403
from sshmint.server.http.frontend import *  # noqa: F403
from sshmint.server.http.listener import *  # noqa: F403
from sshmint.server.http.ratelimit import *  # noqa: F403
from sshmint.server.http.tls import *  # noqa: F403

__all__ = [
    *accesslog.__all__,
    *api.__all__,
    *frontend.__all__,
    *listener.__all__,
    *ratelimit.__all__,
    *tls.__all__,
]
