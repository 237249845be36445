"""Pipecat's OpenAI LLM service, with its client built over a shared HTTP connection pool."""

from __future__ import annotations

from typing import Any

from openai import AsyncOpenAI
from pipecat.services.openai.llm import OpenAILLMService

from patter._pipecat import AsyncHTTPClient


class PooledOpenAILLMService(OpenAILLMService):
    """``OpenAILLMService`` whose ``AsyncOpenAI`` client sends over ``http_client``.

    Pipecat's LLM service takes no HTTP client (its STT and TTS services do) and builds its
    own in ``create_client()``, the extension point overridden here: no per-call client
    (and connection pool) is opened. ``http_client`` is owned by the caller, who closes it.
    """

    def __init__(self, *, http_client: AsyncHTTPClient, **kwargs: Any) -> None:
        self._shared_http_client = http_client  # read by create_client(), called by super()
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
        return AsyncOpenAI(
            api_key=api_key,
            base_url=base_url,
            organization=organization,
            project=project,
            default_headers=default_headers,
            http_client=self._shared_http_client,
        )
