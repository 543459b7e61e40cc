"""`run.json`: the record of a pipeline run (settings, versions, every stage's status, time and counts).

It is rewritten after each stage, so a killed run shows where it stopped; a stage still marked
running when the file is opened again was cut off by a kill and is resumed from its files.
A stage's `seconds` add up every sitting that worked on it (`sittings`); a killed sitting counts
until the last file it wrote in the run's folder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Iterator

from autoact.presets import PipelineConfig, Preset
from core.errors import AutoactError, ConfigError
from core.versions import package_versions


class RunRecord:
    """`run.json`: settings, versions and the status, time and counts of every stage."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path, self.data = path, data
        self.on_stage: Callable[[str], None] | None = None  # called as each stage starts (progress display)

    def done(self, name: str) -> bool:
        return any(s["name"] == name and s["status"] in ("done", "skipped") for s in self.data["stages"])

    @classmethod
    def open(cls, workdir: Path, config: PipelineConfig, preset: Preset) -> RunRecord:
        path = workdir / "run.json"
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except ValueError as err:
                raise ConfigError(f"{path}: not valid JSON ({err}); move it away to start the run afresh") from err
            if data.get("task") != config.task or data.get("preset") != config.preset:
                raise ConfigError(f"{path} belongs to a {data.get('task')}/{data.get('preset')} run; use another "
                                  f"--workdir for {config.task}/{config.preset}")
        data.update({
            "name": workdir.name, "task": config.task, "preset": config.preset, "settings": {
                **asdict(preset), "base": config.base, "base_url": config.base_url,
                "eval_file": str(config.eval_file), "tool_selection": config.tool_selection,
                "corpus_file": str(config.corpus_file) if config.corpus_file else None,
                "corpus_share": config.corpus_share, "train_on_eval": config.train_on_eval,
                "questions": config.questions,
                "ablations": config.ablations, "curve": list(config.curve), "serving": dict(config.serving),
                "data_dir": str(config.data_dir),
                "synthesized_by": ({r: str(p) for r, p in config.synth_adapters.items()}
                                   if config.synth_adapters else "Meta-Agent"),
                "avoided_questions_of": [str(p) for p in config.avoid_questions],
                "also_trained_on": [str(p) for p in config.extra_training_data],
                "adapters_continued_from": str(config.init_adapters) if config.init_adapters else None},
            "versions": _versions(), "finished_at": None,
        })
        data.setdefault("started_at", now())
        data.setdefault("stages", [])
        for entry in data["stages"]:  # a stage still "running" in the file was cut off by a kill
            if entry.get("status") == "running":
                entry.update(status="interrupted", error="the previous invocation stopped during this stage "
                             "(killed); this one resumes it from its files")
                if since := entry.pop("running_since", None):  # the killed sitting: until its last file
                    killed = max(0.0, _last_write(workdir, skip=path) - float(since))
                    entry["seconds"] = round(float(entry.get("seconds") or 0.0) + killed, 1)
        data.setdefault("evaluations", {})
        data.setdefault("history", []).append({"started_at": now(), "pid": os.getpid(),
                                               "host": socket.gethostname()})
        record = cls(path, data)
        record.save()
        return record

    def stage(self, name: str) -> dict[str, Any]:
        for entry in self.data["stages"]:
            if entry["name"] == name:
                return entry
        entry = {"name": name, "status": "pending", "seconds": None, "counts": {}, "error": None}
        self.data["stages"].append(entry)
        return entry

    def save(self) -> None:
        tmp = self.path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)

    @contextlib.contextmanager
    def running(self, name: str) -> Iterator[dict[str, Any]]:
        """Time a stage; its body fills `counts`. A failure is recorded, then re-raised with a resume hint."""
        if self.on_stage:
            self.on_stage(name)
        entry = self.stage(name)
        resumed = entry.get("status") in ("interrupted", "failed")  # an earlier sitting's time counts too
        # a stage done earlier and entered again (an evaluation whose rows are all there) keeps its time
        redone = entry.get("status") == "done" and entry.get("seconds") is not None
        earlier = float(entry.get("seconds") or 0.0) if resumed or redone else 0.0
        sittings = int(entry.get("sittings") or 1) + (1 if resumed else 0) if resumed or redone else 1
        entry.update(status="running", error=None, sittings=sittings,
                     seconds=round(earlier, 1) if resumed or redone else None, running_since=time.time())
        self.save()
        start = time.perf_counter()
        counts: dict[str, Any] = {}

        def spent() -> float:
            return round(earlier + time.perf_counter() - start, 1)
        try:
            yield counts
        except BaseException as err:
            status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
            entry.pop("running_since", None)
            entry.update(status=status, error=f"{type(err).__name__}: {err}", seconds=spent(), counts=counts)
            self.save()
            raise
        entry.pop("running_since", None)
        entry.update(status="done", seconds=spent(), counts=counts)
        self.save()

    def skipped(self, name: str, counts: dict[str, Any], why: str) -> None:
        entry = self.stage(name)
        if entry["status"] != "done":  # a stage done in an earlier invocation keeps its time
            entry.update(status="skipped", counts=counts, error=None, note=why)
        self.save()


def _last_write(workdir: Path, skip: Path) -> float:
    """When a file in the run's folder was last written (`skip` aside) before this process started: where a
    killed sitting's work ended (what this invocation, or its shell's redirection, wrote since is not its work)."""
    started = _process_started()
    times = [m for p in workdir.rglob("*") if p != skip and p.is_file() and (m := p.stat().st_mtime) < started]
    return max(times, default=0.0)


def _process_started() -> float:
    """This process's start, in seconds since the epoch (Linux: /proc; elsewhere: when this module was loaded)."""
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime"))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return _LOADED


_LOADED = time.time()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _versions() -> dict[str, str]:
    return package_versions(("autoact", "torch", "transformers", "peft", "fschat", "langgraph", "datasets"))


class StageError(AutoactError):
    """A pipeline stage failed; the message names it and says how to resume."""
