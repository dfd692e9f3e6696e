"""The authenticating reverse proxy in front of VMs (docs/proxy.md#vm-proxy).

- ``forward.py``: :class:`VMProxy`, the order of processing and the forwarding of one request;
- ``headers.py``: the header rules, pure functions (credentials, what the upstream receives);
- ``answers.py``: the proxy's own answers (messages, ``text/plain``);
- ``response.py``: relaying the upstream's response (framing, body, splice);
- ``upgrade.py``: byte relay of upgraded connections (WebSocket);
- ``connection.py``: one HTTP/1.1 connection to an upstream (httptools);
- ``pool.py``: keep-alive connections per upstream, and the response-head deadlines;
- ``splice.py``: zero-copy relay of large bodies, socket to socket (Linux);
- ``upstreams.py``: VM upstream URLs and the ``--upstream-allow`` network check.

The package hands on each module's public names (its ``__all__``).
"""

from sshmint.server.proxy import (
    answers,
    connection,
    forward,
    headers,
    pool,
    response,
    splice,
    upgrade,
    upstreams,
)
from sshmint.server.proxy.answers import *  # noqa: F403
from sshmint.server.proxy.connection import *  # noqa: F403
from sshmint.server.proxy.forward import *  # noqa: F403
from sshmint.server.proxy.headers import *  # noqa: F403
from sshmint.server.proxy.pool import *  # noqa: F403
from sshmint.server.proxy.response import *  # noqa: F403
from sshmint.server.proxy.splice import *  # noqa: F403
from sshmint.server.proxy.upgrade import *  # noqa: F403
from sshmint.server.proxy.upstreams import *  # noqa: F403

__all__ = [
    *answers.__all__,
    *connection.__all__,
    *forward.__all__,
    *headers.__all__,
    *pool.__all__,
    *response.__all__,
    *splice.__all__,
    *upgrade.__all__,
    *upstreams.__all__,
]
