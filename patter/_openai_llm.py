"""Pipecat's OpenAI LLM service, with its client built over a shared HTTP connection pool
and bounded by the agent's deadlines."""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI
from pipecat.services.openai.llm import OpenAILLMService

from patter._pipecat import AsyncHTTPClient
from patter._recovery import StepDeadlines


class PooledOpenAILLMService(OpenAILLMService):
    """``OpenAILLMService`` whose ``AsyncOpenAI`` client sends over ``http_client``.

    Pipecat's LLM service takes no HTTP client (its STT and TTS services do) and builds its
    own in ``create_client()``, the extension point overridden here: no per-call client
    (and connection pool) is opened. ``http_client`` is owned by the caller, who closes it
    (None: the SDK opens its own).

    With ``deadlines``, a request that has not started answering within
    ``deadlines.attempt_s`` is sent once more (Pipecat's ``retry_on_timeout``), and the
    SDK retries an error (5xx, 429, a lost connection) once, not twice with backoff;
    every wait of the client (connect, each read) is bounded by ``deadlines.response_s``.
    So a failing request is given up within the caller's deadline, after two tries.
    """

    def __init__(
        self,
        *,
        http_client: AsyncHTTPClient | None,
        deadlines: StepDeadlines | None = None,
        **kwargs: Any,
    ) -> None:
        self._shared_http_client = http_client  # read by create_client(), called by super()
        self._deadlines = deadlines
        if deadlines is not None:
            kwargs.update(retry_on_timeout=True, retry_timeout_secs=deadlines.attempt_s)
        super().__init__(**kwargs)

    def create_client(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        organization: str | None = None,
        project: str | None = None,
        default_headers: Any = None,
        **kwargs: Any,
    ) -> AsyncOpenAI:
        """An ``AsyncOpenAI`` client over the shared connection pool."""
        limits: dict[str, Any] = {}
        if self._deadlines is not None:
            limits.update(max_retries=1, timeout=self._deadlines.response_s)
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            default_headers=default_headers,
            http_client=self._shared_http_client,
            **limits,
        )
