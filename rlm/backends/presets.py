"""Named ways to reach a model (``--backend`` in the CLI), and the factory that
builds a backend from one."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from rlm.backends._sdk import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S
from rlm.backends.base import Backend
from rlm.backends.pricing import PricesArg
from rlm.errors import AuthenticationError


@dataclass(frozen=True)
class Preset:
    name: str
    provider: str
    kind: Literal["anthropic", "openai", "claude-cli"]
    """Which backend class serves it: the Anthropic API, an OpenAI-compatible
    endpoint, or the Claude command-line tool."""
    key_env: str | None
    """Environment variable holding the API key; None: the CLI tool logs in itself."""
    default_model: str | None
    """None: the user must name the model (what a local server serves varies)."""
    base_url: str | None
    """None: the SDK's default (which honours ANTHROPIC_BASE_URL / OPENAI_BASE_URL)."""
    extra_body: Mapping[str, Any] | None = None
    """Merged into every request body."""
    key_required: bool = True
    """False for local servers: they need a key only when started with one."""

    @property
    def needs_key(self) -> bool:
        """Whether a run fails without the key (local servers take one only if set)."""
        return self.key_env is not None and self.key_required

    @property
    def base_url_env(self) -> str | None:
        """Environment variable overriding `base_url`; None for the CLI tool."""
        return None if self.kind == "claude-cli" else f"RLM_{self.name.upper()}_BASE_URL"


PRESETS: Mapping[str, Preset] = MappingProxyType(
    {
        preset.name: preset
        for preset in (
            Preset("anthropic", "Anthropic", "anthropic", "ANTHROPIC_API_KEY",
                   "claude-sonnet-4-20250514", None),
            Preset("openai", "OpenAI", "openai", "OPENAI_API_KEY", "gpt-4o", None),
            # Asking for usage accounting makes OpenRouter report the billed cost.
            Preset("openrouter", "OpenRouter", "openai", "OPENROUTER_API_KEY",
                   "anthropic/claude-sonnet-4", "https://openrouter.ai/api/v1",
                   MappingProxyType({"usage": {"include": True}})),
            Preset("huggingface", "Hugging Face", "openai", "HF_TOKEN",
                   "Qwen/Qwen2.5-Coder-32B-Instruct", "https://router.huggingface.co/v1"),
            # Keys for local servers are optional: a vLLM server started with --api-key
            # (which reads VLLM_API_KEY itself), or Ollama behind an authenticating proxy.
            Preset("ollama", "Ollama (local)", "openai", "OLLAMA_API_KEY",
                   "qwen3-coder:32b", "http://localhost:11434/v1", key_required=False),
            Preset("vllm", "vLLM (local)", "openai", "VLLM_API_KEY", None,
                   "http://localhost:8000/v1", key_required=False),
            Preset("claude", "Claude CLI", "claude-cli", None, "claude-sonnet-4-20250514", None),
        )
    }
)  # fmt: skip


def make_backend(
    preset: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_retries: int = DEFAULT_MAX_RETRIES,
    prices: PricesArg = None,
) -> tuple[Backend, str]:
    """Build the backend a preset names, and the model to ask it for.

    The base URL is `base_url`, else ``RLM_<PRESET>_BASE_URL``, else the preset's.
    The key is `api_key`, else the preset's environment variable. Raises ValueError
    for an unknown preset or a missing model, and AuthenticationError for a missing
    key, both before any network call.
    """
    chosen = PRESETS.get(preset)
    if chosen is None:
        raise ValueError(f"unknown backend preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    model = model or chosen.default_model
    if model is None:
        raise ValueError(f"the {preset} preset has no default model: name the model to use")

    if chosen.kind == "claude-cli":
        if base_url or api_key:
            raise ValueError(
                f"the {preset} preset takes no base URL or API key: the CLI logs in itself"
            )
        # Imported here so listing presets never loads an SDK.
        from rlm.backends.claude_cli import ClaudeCLIBackend

        return ClaudeCLIBackend(timeout=timeout, prices=prices), model

    env_url = os.environ.get(chosen.base_url_env) if chosen.base_url_env else None
    url = base_url or env_url or chosen.base_url
    key = api_key or (os.environ.get(chosen.key_env) if chosen.key_env else None)
    if chosen.needs_key and not key:
        raise AuthenticationError(f"{chosen.provider} needs an API key: set {chosen.key_env}")
    if chosen.kind == "anthropic":
        from rlm.backends.anthropic_api import AnthropicBackend

        backend: Backend = AnthropicBackend(
            key, url, timeout=timeout, max_retries=max_retries, prices=prices
        )
    else:
        from rlm.backends.openai_compat import OpenAICompatibleBackend

        backend = OpenAICompatibleBackend(
            url,
            key,
            api_key_env=chosen.key_env,
            name=chosen.name,
            timeout=timeout,
            max_retries=max_retries,
            extra_body=chosen.extra_body,
            prices=prices,
        )
    return backend, model
