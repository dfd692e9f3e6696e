"""The server's lifetime policy (docs/lifecycle.md#lifetime-policy): ``--max-token-lifetime``.

One rule, asked in two places: the token path refuses a token that outlives the maximum
(every request, so lowering the maximum applies to tokens already issued), and the
commands that make exe1 handles (``exe0-to-exe1``, ``ssh-key generate-api-key``) refuse
to make one that would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sshmint.duration import format_duration
from sshmint.errors import TokenPolicyError

__all__ = ["NO_POLICY", "LifetimePolicy"]


@dataclass(frozen=True, slots=True)
class LifetimePolicy:
    """``maximum`` is the longest a token may still live, in seconds; ``None`` is ``off``."""

    maximum: int | None = None
    # The maximum as messages name it (``90d``), rendered once.
    text: str = field(init=False, default="off")

    def __post_init__(self) -> None:
        if self.maximum is not None:
            object.__setattr__(self, "text", format_duration(self.maximum))

    def refuses(self, exp: int | None, now: int) -> bool:
        """A token (or an exe1 handle) expiring at ``exp`` (``None``: never) outlives the
        maximum: it has no expiry, or one later than ``now`` plus the maximum."""
        maximum = self.maximum
        return maximum is not None and (exp is None or exp > now + maximum)

    def error(self) -> TokenPolicyError:
        """The token path's refusal: ``invalid token: token lifetime exceeds this server's
        maximum of <DURATION>``."""
        return TokenPolicyError(self.text)


NO_POLICY = LifetimePolicy()
