"""The preset table and `make_backend`."""

from __future__ import annotations

import pytest

from rlm.backends import (
    PRESETS,
    AnthropicBackend,
    ClaudeCLIBackend,
    OpenAICompatibleBackend,
    make_backend,
)
from rlm.errors import AuthenticationError
from tests.fakes.claude_cli import install_fake_claude, result_json
from tests.fakes.model_server import Reply

KEYS = {
    "anthropic": "ANTHROPIC_API_KEY",
    "openai": "OPENAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "huggingface": "HF_TOKEN",
}


def test_the_table():
    table = {
        name: (p.provider, p.key_env, p.default_model, p.base_url, p.base_url_env)
        for name, p in PRESETS.items()
    }
    assert table == {
        "anthropic": ("Anthropic", "ANTHROPIC_API_KEY", "claude-sonnet-4-20250514", None,
                      "RLM_ANTHROPIC_BASE_URL"),
        "openai": ("OpenAI", "OPENAI_API_KEY", "gpt-4o", None, "RLM_OPENAI_BASE_URL"),
        "openrouter": ("OpenRouter", "OPENROUTER_API_KEY", "anthropic/claude-sonnet-4",
                       "https://openrouter.ai/api/v1", "RLM_OPENROUTER_BASE_URL"),
        "huggingface": ("Hugging Face", "HF_TOKEN", "Qwen/Qwen2.5-Coder-32B-Instruct",
                        "https://router.huggingface.co/v1", "RLM_HUGGINGFACE_BASE_URL"),
        "ollama": ("Ollama (local)", "OLLAMA_API_KEY", "qwen3-coder:32b",
                   "http://localhost:11434/v1", "RLM_OLLAMA_BASE_URL"),
        "vllm": ("vLLM (local)", "VLLM_API_KEY", None, "http://localhost:8000/v1",
                 "RLM_VLLM_BASE_URL"),
        "claude": ("Claude CLI", None, "claude-sonnet-4-20250514", None, None),
    }  # fmt: skip


@pytest.mark.parametrize(
    ("preset", "backend_class", "url"),
    [
        ("anthropic", AnthropicBackend, "https://api.anthropic.com"),
        ("openai", OpenAICompatibleBackend, "https://api.openai.com/v1/"),
        ("openrouter", OpenAICompatibleBackend, "https://openrouter.ai/api/v1/"),
        ("huggingface", OpenAICompatibleBackend, "https://router.huggingface.co/v1/"),
        ("ollama", OpenAICompatibleBackend, "http://localhost:11434/v1/"),
    ],
)
async def test_builds_the_backend_with_the_default_model(preset, backend_class, url, monkeypatch):
    if preset in KEYS:
        monkeypatch.setenv(KEYS[preset], "k")

    backend, model = make_backend(preset)
    try:
        assert isinstance(backend, backend_class)
        assert model == PRESETS[preset].default_model
        assert backend.name == preset
        assert backend.base_url.rstrip("/") == url.rstrip("/")
    finally:
        await backend.aclose()


@pytest.mark.parametrize("preset", sorted(KEYS))
def test_missing_key_names_the_env_var(preset):
    with pytest.raises(AuthenticationError, match=KEYS[preset]):
        make_backend(preset)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError, match="anthropic, openai, openrouter, huggingface, ollama"):
        make_backend("gemini")


def test_vllm_requires_a_model():
    with pytest.raises(ValueError, match="no default model"):
        make_backend("vllm")


async def test_explicit_model_and_base_url(model_server):
    backend, model = make_backend("vllm", model="my/model", base_url=model_server.openai_url)
    model_server.push("served")
    try:
        completion = await backend.acomplete([{"role": "user", "content": "q"}], model)
    finally:
        await backend.aclose()

    assert model == "my/model"
    assert completion.text == "served"
    assert model_server.requests[0].json["model"] == "my/model"


@pytest.mark.parametrize("preset", ["vllm", "ollama"])
async def test_local_presets_send_their_key_when_one_is_set(preset, monkeypatch, model_server):
    """A vLLM server started with --api-key, or Ollama behind an authenticating proxy."""
    monkeypatch.setenv(PRESETS[preset].key_env, "local-key")
    backend, model = make_backend(preset, model="m", base_url=model_server.openai_url)
    model_server.push("served")
    try:
        await backend.acomplete([{"role": "user", "content": "q"}], model)
    finally:
        await backend.aclose()
    assert model_server.requests[0].headers["authorization"] == "Bearer local-key"


async def test_local_presets_need_no_key(monkeypatch):
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    backend, _ = make_backend("vllm", model="m")
    await backend.aclose()


async def test_openrouter_via_env_override_reports_its_cost(monkeypatch, model_server):
    monkeypatch.setenv("OPENROUTER_API_KEY", "or-key")
    monkeypatch.setenv("RLM_OPENROUTER_BASE_URL", model_server.openai_url)
    model_server.push(Reply(input_tokens=100, output_tokens=10, cost=0.5))

    backend, model = make_backend("openrouter")
    try:
        completion = await backend.acomplete([{"role": "user", "content": "q"}], model)
    finally:
        await backend.aclose()

    request = model_server.requests[0]
    assert request.json["usage"] == {"include": True}  # asks OpenRouter for the cost
    assert request.json["model"] == "anthropic/claude-sonnet-4"
    assert request.headers["authorization"] == "Bearer or-key"
    assert completion.usage.cost_usd == 0.5


async def test_base_url_argument_beats_the_env_var(monkeypatch, model_server):
    monkeypatch.setenv("RLM_OLLAMA_BASE_URL", "http://127.0.0.1:9/v1")
    backend, _ = make_backend("ollama", base_url=model_server.openai_url)
    try:
        assert backend.base_url.rstrip("/") == model_server.openai_url
    finally:
        await backend.aclose()


async def test_anthropic_env_override_and_user_prices(monkeypatch, model_server, tmp_path):
    monkeypatch.setenv("RLM_ANTHROPIC_BASE_URL", model_server.url)
    prices = tmp_path / "prices.json"
    prices.write_text('{"claude-new": {"input": 2, "output": 4}}')
    model_server.push(Reply(input_tokens=1_000_000, output_tokens=1_000_000))

    backend, _ = make_backend("anthropic", api_key="k", max_retries=0, prices=str(prices))
    try:
        completion = await backend.acomplete([{"role": "user", "content": "q"}], "claude-new")
    finally:
        await backend.aclose()

    assert completion.usage.cost_usd == pytest.approx(6.0)


async def test_claude_preset(tmp_path, monkeypatch):
    install_fake_claude(tmp_path, stdout=result_json())
    monkeypatch.setenv("PATH", str(tmp_path))

    backend, model = make_backend("claude")

    assert isinstance(backend, ClaudeCLIBackend)
    assert model == "claude-sonnet-4-20250514"
    with pytest.raises(ValueError, match="no base URL"):
        make_backend("claude", base_url="http://x")
