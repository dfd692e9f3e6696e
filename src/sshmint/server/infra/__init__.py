"""Infrastructure every part of the server uses, and which uses none of them: log lines on
stderr scrubbed of secrets (``logs.py``), private files and directories (``files.py``).
Process-wide services of this kind (metrics, say) belong here too."""

from sshmint.server.infra.files import (
    PRIVATE_DIR_MODE,
    PRIVATE_FILE_MODE,
    create_private_file,
    loose_mode_warning,
    make_private_dir,
)
from sshmint.server.infra.logs import (
    REDACTED,
    BatchingStreamHandler,
    LineFormatter,
    SecretsFilter,
    configure_logging,
    direct_line_writer,
    redact_tokens,
    scrub_secrets,
)

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "REDACTED",
    "BatchingStreamHandler",
    "LineFormatter",
    "SecretsFilter",
    "configure_logging",
    "create_private_file",
    "direct_line_writer",
    "loose_mode_warning",
    "make_private_dir",
    "redact_tokens",
    "scrub_secrets",
]
