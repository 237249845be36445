"""One bot under test alone in its own process, so that its CPU time and memory are its own.

Started by ``load.py`` (not by hand) as ``python -P benchmarks/_bot_process.py``; the first
line on stdin is the bot's configuration as JSON, kept off the command line since it holds
the (fake) keys::

    {"bot": "patter", "port": 8123, "settings": {...Patter(...) keyword arguments...},
     "speculative_replies": false}
    {"bot": "pipecat", "port": 8123, "openai_base_url": "...", "openai_key": "..."}

Prints ``ready`` once the bot accepts calls; answers each further ``stats`` line with one
JSON line (``{"tasks": n}``: asyncio tasks alive after a garbage collection) and exits when
stdin closes. The fakes and the callers live in the parent process.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from loguru import logger

logger.remove()

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import GREETING  # noqa: E402
from pipecat_baseline import plain_pipecat_app  # noqa: E402

from patter import Patter  # noqa: E402
from patter.testing._server import LoopbackServer  # noqa: E402

PROMPT = "You are a test bot."


async def serve_patter(stack: AsyncExitStack, config: dict[str, Any]) -> None:
    """Serve Patter (its default OpenAI STT, LLM and TTS) on the configured port."""
    phone = Patter(**config["settings"])
    stack.push_async_callback(phone.close)
    agent = phone.agent(PROMPT, first_message=GREETING,
                        speculative_replies=config.get("speculative_replies", False))
    serving = asyncio.create_task(phone.serve(agent, port=config["port"], host="127.0.0.1"))

    async def stop() -> None:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)

    stack.push_async_callback(stop)
    waiting = asyncio.create_task(phone.wait_until_serving())
    await asyncio.wait({serving, waiting}, return_when=asyncio.FIRST_COMPLETED)
    if serving.done():
        waiting.cancel()
        serving.result()
    await waiting


async def serve_pipecat(stack: AsyncExitStack, config: dict[str, Any]) -> None:
    """Serve the plain Pipecat bot (``pipecat_baseline.py``) on the configured port."""
    app = plain_pipecat_app(openai_base_url=config["openai_base_url"],
                            openai_key=config["openai_key"], greeting=GREETING)
    await stack.enter_async_context(LoopbackServer(app, port=config["port"]))


async def main() -> None:
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    config = json.loads(await stdin.readline())
    async with AsyncExitStack() as stack:
        serve = serve_patter if config["bot"] == "patter" else serve_pipecat
        await serve(stack, config)
        print("ready", flush=True)
        while line := await stdin.readline():
            if line.strip() == b"stats":
                gc.collect()
                print(json.dumps({"tasks": len(asyncio.all_tasks())}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
