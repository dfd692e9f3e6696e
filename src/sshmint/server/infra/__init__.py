"""Infrastructure every part of the server uses, and which uses none of them: log lines on
stderr scrubbed of secrets (``logs.py``), private files and directories (``files.py``).
Process-wide services of this kind (metrics, say) belong here too.

The package hands on each module's public names (its ``__all__``)."""

from sshmint.server.infra import files, logs
from sshmint.server.infra.files import *  # noqa: F403
from sshmint.server.infra.logs import *  # noqa: F403

__all__ = [*files.__all__, *logs.__all__]
