"""The SSH transport (docs/ssh.md#connection-and-login) on asyncssh.

- ``listener.py``: the acceptors, public-key login, shutdown;
- ``session.py``: one session: exec mode or the REPL, the key checks before every command;
- ``hostkey.py``: the persistent host key.

The package hands on each module's public names (its ``__all__``).
"""

from sshmint.server.ssh import hostkey, listener, session
from sshmint.server.ssh.hostkey import *  # noqa: F403
from sshmint.server.ssh.listener import *  # noqa: F403
from sshmint.server.ssh.session import *  # noqa: F403

__all__ = [*hostkey.__all__, *listener.__all__, *session.__all__]
