"""A backend that remembers how its calls went, so a front end can tell a setup problem
(an endpoint that cannot be reached, or rejects the key, before the model answered
anything) from a run that failed on its way."""

from __future__ import annotations

from rlm.backends.base import Backend, Completion, Message
from rlm.errors import AuthenticationError, BackendError, EndpointUnreachableError

SETUP_ERRORS = (AuthenticationError, EndpointUnreachableError)


class WatchedBackend(Backend):
    """Passes every call to `inner`, counting answers and keeping the first failure."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.answers = 0
        self.first_error: BackendError | None = None

    async def acomplete(
        self,
        messages: list[Message],
        model: str,
        *,
        system: str | None = None,
        max_tokens: int | None = None,
    ) -> Completion:
        try:
            completion = await self.inner.acomplete(
                messages, model, system=system, max_tokens=max_tokens
            )
        except BackendError as exc:
            self.first_error = self.first_error or exc
            raise
        self.answers += 1
        return completion

    async def aclose(self) -> None:
        await self.inner.aclose()

    @property
    def setup_error(self) -> BackendError | None:
        """The endpoint failure that kept the model from ever answering, if that was it."""
        if self.answers == 0 and isinstance(self.first_error, SETUP_ERRORS):
            return self.first_error
        return None
