"""Run FastChat's OpenAI API server, dropping a worker that stops answering at once.

    python -m serving.api_main --host H --port P --controller-address URL [--api-keys K]

FastChat's controller drops a worker only when its heart-beats have been missing for a while
(``FASTCHAT_CONTROLLER_HEART_BEAT_EXPIRATION``, 90 s by default); until then it keeps sending
requests to a worker that died, and the API server answers each with an HTTP 400 that no
client retries. Here, when a call to a worker fails at the connection (refused, reset, cut off
mid-answer), the API server asks the controller to check its workers again
(``/refresh_all_workers``: a worker that does not answer its status is removed), asks it for
another worker of the same model, and sends the call there, up to :data:`TRIES` times in all.
A generation that was cut off is generated again from its start, as a client's retry would.
Everything else is FastChat 0.2.36's server unchanged. Streamed completions open their own
connections and are not covered; autoact's clients do not stream.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger("autoact.api_main")
_REFRESH_GAP_S = 1.0  # failures within this long of a refresh share it
TRIES = 3  # workers one call is sent to at most


def patch_worker_failover(api: Any) -> None:
    """Wrap ``api.fetch_remote`` (the module ``fastchat.serve.openai_api_server``) as described above."""
    import aiohttp

    original = api.fetch_remote
    if getattr(original, "_autoact_failover", False):
        return
    lock = asyncio.Lock()
    last = {"refresh": 0.0}

    async def refresh(controller: str, failed: str) -> None:
        async with lock:
            if time.monotonic() - last["refresh"] < _REFRESH_GAP_S:
                return
            log.warning("worker request %s failed: asking the controller to drop workers that do not answer", failed)
            try:
                await original(controller + "/refresh_all_workers")
            except aiohttp.ClientError as err:
                log.warning("controller refresh failed: %s", err)
            last["refresh"] = time.monotonic()

    async def fetch_remote(url: str, pload: Any = None, name: Any = None) -> Any:
        controller = api.app_settings.controller_address.rstrip("/")
        model = pload.get("model") if isinstance(pload, dict) else None
        for attempt in range(1, TRIES + 1):
            try:
                return await original(url, pload, name)
            except aiohttp.ClientError:
                if url.startswith(controller) or not model or attempt == TRIES:
                    raise
                await refresh(controller, url)
                other = await original(controller + "/get_worker_address", {"model": model}, "address")
                if not other:
                    raise
                url = other.rstrip("/") + urlsplit(url).path
        raise AssertionError("unreachable")

    fetch_remote._autoact_failover = True  # type: ignore[attr-defined]
    api.fetch_remote = fetch_remote


def main(argv: Sequence[str] | None = None) -> None:
    """Parse FastChat's API server options from `argv`, patch, and serve (what its ``__main__`` does)."""
    import uvicorn
    from fastchat.serve import openai_api_server as api

    sys.argv = ["fastchat.serve.openai_api_server", *(sys.argv[1:] if argv is None else argv)]
    patch_worker_failover(api)
    args = api.create_openai_api_server()
    ssl = {"ssl_keyfile": os.environ["SSL_KEYFILE"], "ssl_certfile": os.environ["SSL_CERTFILE"]} if args.ssl else {}
    uvicorn.run(api.app, host=args.host, port=args.port, log_level="info", **ssl)


if __name__ == "__main__":
    main()
