"""A FastChat model worker backed by :class:`serving.batched_engine.BatchedEngine`.

    python -m serving.batched_worker --model-path BASE --model-name NAME \\
        [--adapter plan=DIR --adapter tool=DIR ...] --controller-address URL --port P ...

It registers with a FastChat controller and answers the worker protocol that FastChat's
OpenAI API server speaks (``/worker_generate_stream``, ``/worker_generate``,
``/worker_get_status``, ``/count_token``, ``/worker_get_conv_template``,
``/model_details``), and sends heart-beats, so the controller, the API server and every
client stay as they are. Unlike FastChat's workers it serves concurrent requests for the
base model and every adapter in shared batches.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
from fastapi import (  # module level: FastAPI resolves the handlers' annotations here
    FastAPI,
    Request,
)
from fastapi.responses import JSONResponse, StreamingResponse

from serving.batched_engine import BatchedEngine
from serving.engine_requests import (
    ERROR_INTERNAL,
    ERROR_INVALID_MODEL,
    ERROR_OVERLOADED,
    EngineOverloaded,
)

log = logging.getLogger("autoact.batched_worker")
HEART_BEAT_ENV = "FASTCHAT_WORKER_HEART_BEAT_INTERVAL"  # FastChat's own workers read it too (default 45 s)


def heart_beat_seconds() -> float:
    """Seconds between heart-beats: ``$FASTCHAT_WORKER_HEART_BEAT_INTERVAL``, else FastChat's 45."""
    try:
        return max(1.0, float(os.environ.get(HEART_BEAT_ENV, "45")))
    except ValueError:
        return 45.0


class ControllerLink:
    """Registration and heart-beats with a FastChat controller (a daemon thread)."""

    def __init__(self, controller: str, worker_address: str, status: Any) -> None:
        self.controller = controller.rstrip("/")
        self.worker_address = worker_address
        self.status = status  # callable returning the worker status dict

    def register(self) -> None:
        data = {"worker_name": self.worker_address, "check_heart_beat": True,
                "worker_status": self.status(), "multimodal": False}
        response = httpx.post(f"{self.controller}/register_worker", json=data, timeout=30, trust_env=False)
        response.raise_for_status()

    def beat_forever(self) -> None:
        interval = heart_beat_seconds()
        while True:
            time.sleep(interval)
            try:
                response = httpx.post(f"{self.controller}/receive_heart_beat", timeout=5, trust_env=False,
                                      json={"worker_name": self.worker_address,
                                            "queue_length": self.status()["queue_length"]})
                if not response.json().get("exist", True):
                    self.register()
            except (httpx.HTTPError, ValueError) as err:
                log.warning("heart-beat to %s failed: %s", self.controller, err)

    def start(self) -> None:
        self.register()
        threading.Thread(target=self.beat_forever, name="heart-beat", daemon=True).start()


def _is_final(out: dict[str, Any]) -> bool:
    """Whether an engine output ends its request (finished, or an error)."""
    return out.get("finish_reason") is not None or bool(out.get("error_code", 0))


def create_app(engine: BatchedEngine, conv_template: str | None) -> Any:
    """The FastAPI app speaking FastChat's worker protocol for ``engine``."""
    app = FastAPI()

    def status() -> dict[str, Any]:
        return {"model_names": engine.model_names, "speed": 1, "queue_length": engine.queue_length}

    app.state.status = status

    def submit(params: dict[str, Any], final_only: bool = False
               ) -> tuple[Any, asyncio.Queue[dict[str, Any]] | dict[str, Any]]:
        """Queue ``params``; outputs arrive on the returned queue (with ``final_only``, just the
        last one: the event loop is not woken for partial outputs nobody reads)."""
        loop = asyncio.get_running_loop()
        outputs: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def emit(out: dict[str, Any]) -> None:
            if not final_only or _is_final(out):
                loop.call_soon_threadsafe(outputs.put_nowait, out)

        try:
            request = engine.submit(params, emit)
        except EngineOverloaded as err:
            return None, {"text": str(err), "error_code": ERROR_OVERLOADED}
        except KeyError as err:
            return None, {"text": str(err.args[0]), "error_code": ERROR_INVALID_MODEL}
        except Exception as err:  # noqa: BLE001 - the client gets the reason
            return None, {"text": f"cannot queue the request: {err}", "error_code": ERROR_INTERNAL}
        return request, outputs

    @app.post("/worker_generate_stream")
    async def generate_stream(raw: Request) -> StreamingResponse:
        params = await raw.json()
        request, outputs = submit(params)

        async def chunks() -> AsyncIterator[bytes]:
            if request is None:
                yield json.dumps(outputs).encode() + b"\0"
                return
            try:
                while True:
                    out = await outputs.get()  # type: ignore[union-attr]
                    yield json.dumps(out).encode() + b"\0"
                    if _is_final(out):
                        return
            finally:
                request.cancel()  # a client that went away frees its row at the next step

        return StreamingResponse(chunks())

    @app.post("/worker_generate")
    async def generate(raw: Request) -> JSONResponse:
        params = await raw.json()
        request, outputs = submit(params, final_only=True)
        if request is None:
            return JSONResponse(outputs)
        try:
            return JSONResponse(await outputs.get())  # type: ignore[union-attr]  # the final output only
        finally:
            request.cancel()

    @app.post("/worker_get_status")
    async def get_status() -> dict[str, Any]:
        return status()

    @app.post("/count_token")
    async def count_token(raw: Request) -> dict[str, Any]:
        params = await raw.json()
        return {"count": len(engine.tokenizer(params["prompt"]).input_ids), "error_code": 0}

    @app.post("/worker_get_conv_template")
    async def get_conv_template() -> dict[str, Any]:
        from fastchat.conversation import get_conv_template
        from fastchat.model.model_adapter import get_conversation_template

        conv = get_conv_template(conv_template) if conv_template else get_conversation_template(str(engine.model_path))
        conv.sep_style = int(conv.sep_style)
        return {"conv": conv}

    @app.post("/model_details")
    async def model_details() -> dict[str, Any]:
        return {"context_length": engine.context_len}

    @app.post("/engine_stats")
    async def engine_stats() -> dict[str, Any]:
        return {**engine.stats, "prefix_cache_entries": len(engine.prefix_cache),
                "prefix_cache_hits": engine.prefix_cache.hits,
                "prefix_reused_tokens": engine.prefix_cache.reused_tokens,
                "dtype": str(engine.dtype).replace("torch.", ""), "device": engine.device,
                "max_batch_size": engine.max_batch_size,
                "threads": engine.threads}

    return app


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m serving.batched_worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=21002)
    parser.add_argument("--worker-address", default=None, help="URL the controller reaches this worker at")
    parser.add_argument("--controller-address", default="http://127.0.0.1:21001")
    parser.add_argument("--model-path", required=True, help="the base model's HF directory")
    parser.add_argument("--model-name", default=None, help="name of the base model (default: directory name)")
    parser.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                        help="a LoRA adapter served as model NAME (repeatable)")
    parser.add_argument("--conv-template", default=None)
    parser.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32"],
                        help="weights and activations (auto: bf16 where the device computes it natively)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when torch sees a GPU), cpu, cuda or cuda:N")
    parser.add_argument("--max-batch-size", type=int, default=32, help="rows decoded together at most")
    parser.add_argument("--max-queue", type=int, default=256,
                        help="requests queued or running at most; more are refused with an error")
    parser.add_argument("--context-len", type=int, default=None, help="default: the model's")
    parser.add_argument("--prefix-cache-tokens", type=int, default=32768,
                        help="prompt tokens whose key/value cache is kept for reuse (0: off); the "
                        "candidates of a scored choice reuse their shared prompt through it")
    parser.add_argument("--stream-interval", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: available cores)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    from serving.worker_main import chatml_stop_token_ids, register_chatml_template

    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    register_chatml_template(chatml_stop_token_ids(args.model_path))
    adapters = {}
    for spec in args.adapter:
        name, sep, path = spec.partition("=")
        if not sep:
            raise SystemExit(f"--adapter {spec!r}: expected NAME=DIR")
        adapters[name.strip()] = Path(path.strip())
    engine = BatchedEngine(args.model_path, adapters, base_name=args.model_name, dtype=args.dtype,
                           max_batch_size=args.max_batch_size, max_queue=args.max_queue,
                           context_len=args.context_len, stream_interval=args.stream_interval,
                           prefix_cache_tokens=args.prefix_cache_tokens, threads=args.threads,
                           device=args.device).start()
    log.info("batched worker %s: models %s, device %s, dtype %s, batch ≤ %d, threads %d", uuid.uuid4().hex[:8],
             engine.model_names, engine.device, engine.dtype, engine.max_batch_size, engine.threads)
    app = create_app(engine, args.conv_template)
    address = args.worker_address or f"http://{args.host}:{args.port}"
    ControllerLink(args.controller_address, address, app.state.status).start()
    try:
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    finally:
        engine.stop()  # let the engine thread leave its forward pass before the interpreter exits


if __name__ == "__main__":
    main()
