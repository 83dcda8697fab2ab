"""Every exception rlm raises on purpose, in one place so users can catch them.

Each class is a failure a user can act on; its message says what to do.
"""


class RLMError(Exception):
    """Base class of every error rlm raises deliberately."""


# --- sandbox -----------------------------------------------------------------


class SandboxError(RLMError):
    """The sandbox could not be started or used."""


class EngineNotFoundError(SandboxError):
    """No container engine (Podman or Docker) is reachable."""


class ImageNotFoundError(SandboxError):
    """The kernel image is not present in the engine's storage."""


class ContextFileError(SandboxError):
    """The context file cannot be read or decoded."""


class NotUtf8Error(ContextFileError):
    """The context file is not UTF-8 text."""


class KernelDiedError(SandboxError):
    """The kernel stopped answering and could not be brought back."""


class CallbackError(RLMError):
    """An llm_query callback failed on the host."""


class RequestsRefused(RLMError):
    """Raised by an llm_query handler that will refuse every later prompt too (a budget is
    spent): the rest of an llm_query_batched request is refused at once, unasked."""


# --- backends ----------------------------------------------------------------


class BackendError(RLMError):
    """A model backend failed."""


class AuthenticationError(BackendError):
    """The endpoint rejected the API key."""


class EndpointUnreachableError(BackendError):
    """The endpoint could not be reached."""


class RateLimitError(BackendError):
    """The endpoint kept rate-limiting after all retries."""


class PromptTooLongError(BackendError):
    """The prompt does not fit the model's context window."""


class MalformedResponseError(BackendError):
    """The endpoint answered with something that is not a valid completion."""


class BackendTimeoutError(BackendError):
    """The endpoint did not answer in time."""


class ClaudeCLINotFoundError(BackendError):
    """The `claude` command-line tool is not installed or not on PATH."""
