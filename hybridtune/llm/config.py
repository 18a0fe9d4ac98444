"""The LLM layer's settings: endpoints, role bindings, retries/cache/batch/prices, and the pool's view.

    pool = LLMPool(PoolConfig(seed=0, endpoints={"local": EndpointConfig()}, roles={...}, llm=LLMConfig()))

These are sections of the experiment config (`endpoints:`, `roles:`, `llm:`), declared here so that
the LLM layer reads only its own settings: `ExperimentConfig.pool_config()` builds the `PoolConfig`
an `LLMPool` takes. Keys never go in a config: validators refuse key-shaped values and URLs with
credentials (the check is `looks_like_key` / `url_credential`).
"""
from __future__ import annotations

import re
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
KEY_PREFIX = re.compile(r"(sk|pk|rk)[-_]|(hf|ghp|gho|ghs|github_pat|glpat|xox[abpr])[-_]|AKIA[0-9A-Z]{12}|AIza|Bearer\s")
SECRET_PARAMS = {"key", "api_key", "apikey", "api-key", "token", "access_token", "auth", "password", "secret", "sig"}


def looks_like_key(value: object) -> bool:
    """True for strings shaped like an API key or token (never printed, never stored)."""
    s = str(value).strip()
    if KEY_PREFIX.match(s):
        return True
    if len(s) >= 32 and re.fullmatch(r"[0-9a-fA-F]+", s) and re.search(r"\d", s):  # a hex secret (64 chars: a SHA-256 key)
        return True
    if len(s) >= 24 and re.fullmatch(r"[A-Za-z0-9]+", s) and re.search(r"\d", s) and re.search(r"[A-Za-z]", s):
        return True  # one long run of letters and digits: no variable name or path word looks like that
    return (len(s) >= 20 and re.fullmatch(r"[A-Za-z0-9_\-.=+/]+", s) is not None and re.search(r"\d", s) is not None
            and re.search(r"[a-z]", s) is not None and re.search(r"[A-Z]", s) is not None)


def url_credential(url: str) -> str | None:
    """Why `url` carries a credential (user:password, a key-like query or path part), or None."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid URL"
    if parts.username or parts.password:
        return "it has a user:password@ part"
    for k, v in parse_qsl(parts.query, keep_blank_values=True):
        if k.lower() in SECRET_PARAMS or looks_like_key(v):
            return f"its query parameter '{k[:20]}' holds a credential"
    if any(looks_like_key(seg) for seg in parts.path.split("/")):
        return "a part of its path looks like a key"
    return None


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EndpointConfig(Strict):
    """Where a model is served. `llamacpp` runs in-process; `openai` is any OpenAI-compatible API."""

    backend: str = Field("llamacpp", description="registered backend: llamacpp | openai | fake")
    model: str = Field("smollm2", description="model name; for llamacpp 'smollm2' or a .gguf path")
    base_url: str | list[str] | None = Field(None, description="OpenAI-compatible URL(s); several = load-balanced")
    api_key_env: str | None = Field(None, description="name of the env var holding the API key (never the key)")
    max_in_flight: int = Field(8, ge=1, description="concurrent requests to this endpoint")
    rpm: int | None = Field(None, ge=1, description="requests-per-minute limit")
    tpm: int | None = Field(None, ge=1, description="tokens-per-minute limit")
    timeout_s: float = Field(120.0, gt=0)
    n_ctx: int = Field(4096, ge=256, description="llamacpp: context window")
    n_threads: int | None = Field(None, ge=1, description="llamacpp: CPU threads (default: 1 or all cores, "
                                  "whichever has been faster lately, for prompts and generation each)")
    lora_path: str | None = Field(None, description="llamacpp: GGUF LoRA adapter applied to the model")
    chat_format: str | None = Field(None, description="llamacpp: override the GGUF's chat template")
    prefix_reuse: bool = Field(True, description="llamacpp: keep model states across calls and evaluate only "
                               "the prompt tokens not already read (outputs are the same either way)")
    state_cache_mib: int = Field(128, ge=0, description="llamacpp: byte limit of the saved-state store, MiB per model "
                                 "instance (each variant and the scorer are one)")
    min_prompt_batch: int = Field(8, ge=2, le=256, description="llamacpp: no prompt is read in batches smaller "
                                  "than this (a 1-token batch computes other bits), so reuse never changes outputs")
    structured: Literal["json_schema", "json_object", "none"] = Field(
        "json_schema", description="how to ask for JSON: schema-constrained, JSON mode, or prompt only"
    )
    logprobs: bool = Field(True, description="openai: endpoint returns prompt logprobs (vLLM, llama.cpp server)")
    extra: dict[str, Any] = Field(default_factory=dict, description="backend-specific keyword arguments")

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if looks_like_key(v):
            raise ValueError("this looks like a key, not a variable name; put the key in an environment variable "
                             "(export OPENAI_API_KEY=...) and write the variable's name here; then revoke the key "
                             "if this file was shared")
        if not ENV_NAME.fullmatch(v):
            raise ValueError("not an environment variable name (letters, digits and '_'), e.g. OPENAI_API_KEY")
        return v

    @field_validator("extra")
    @classmethod
    def _no_key_in_extra(cls, v: dict[str, Any]) -> dict[str, Any]:
        for k, x in v.items():
            if isinstance(x, str) and (looks_like_key(x) or url_credential(x) and "://" in x):
                raise ValueError(f"'{k[:40]}' holds what looks like a key; keys never go in a config (it is shown by "
                                 "--show and saved in the run); put it in an environment variable named by api_key_env")
        return v

    @field_validator("base_url")
    @classmethod
    def _no_key_in_url(cls, v: str | list[str] | None) -> str | list[str] | None:
        for url in [v] if isinstance(v, str) else v or []:
            why = url_credential(url)
            if why:
                raise ValueError(f"refused: {why}; keys never go in a URL (it is logged and saved); put the key "
                                 "in an environment variable and name it in api_key_env")
        return v


class RoleConfig(Strict):
    """A role's binding: endpoint + model override + sampling params."""

    endpoint: str = "local"
    model: str | None = Field(None, description="override the endpoint's model for this role")
    temperature: float = Field(0.7, ge=0, le=2)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(384, ge=1)
    seed: int | None = None


class Price(Strict):
    input: float = Field(0.0, ge=0, description="USD per 1M input tokens")
    output: float = Field(0.0, ge=0, description="USD per 1M output tokens")
    training: float = Field(0.0, ge=0, description="USD per 1M training tokens (hosted fine-tuning; x epochs)")


class LLMConfig(Strict):
    cache: bool = Field(True, description="SQLite response cache (runs/<name>/cache.sqlite)")
    max_reasks: int = Field(2, ge=0, description="re-asks of an invalid structured reply")
    max_retries: int = Field(5, ge=0, description="retries on 429/5xx/timeouts")
    backoff_s: float = Field(1.0, gt=0, description="base of exponential backoff")
    max_failure_rate: float = Field(0.25, ge=0, le=1, description="a stage fails loudly above this")
    budget_usd: float | None = Field(None, ge=0, description="stop the run cleanly when spent")
    prices: dict[str, Price] = Field(default_factory=dict, description="per-model price table")
    gpu_hour_usd: float | None = Field(None, ge=0, description="dry-run estimate: USD per GPU hour of local "
                                       "training and of serving on your own GPUs")
    output_fill: float = Field(0.6, gt=0, le=1, description="dry-run estimate: share of max_tokens a reply uses")
    batch: bool = Field(False, description="openai endpoints: send batchable stages through /v1/batches")
    batch_discount: float = Field(0.5, gt=0, le=1, description="price factor of batch requests (OpenAI: half)")
    batch_poll_s: float = Field(30.0, gt=0, description="seconds between batch status polls")
    batch_timeout_h: float = Field(24.0, gt=0, description="give up waiting for a batch (it keeps running; rerun follows it)")


class PoolConfig(BaseModel):
    """What an `LLMPool` reads of an experiment: the base seed, endpoints, role bindings and `llm:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 0
    endpoints: dict[str, EndpointConfig] = Field(default_factory=lambda: {"local": EndpointConfig()})
    roles: dict[str, RoleConfig] = Field(default_factory=dict)
    llm: LLMConfig = Field(default_factory=LLMConfig)
