"""The trainer actor: one node's share of a training job, run as a process tree on that node.

The actor knows no experiment: it calls the job it is given (a picklable callable, built by the
driver side, e.g. `orchestrator.speedrun.launch.NodeJob`) with a stop event and a callback for
live points, on the node where Ray placed it. Placed into a bundle of a job's placement group,
it takes the whole bundle, which makes Ray hand it exactly that node's GPUs
(CUDA_VISIBLE_DEVICES). `progress` and `stop` may be called while `run` blocks.
"""
from __future__ import annotations

import socket
import threading
from typing import Callable

import ray

from actors.placement import computing_runtime_env


@ray.remote(max_concurrency=3, runtime_env=computing_runtime_env())
class TrainerActor:
    def __init__(self):
        self._stop = threading.Event()
        self._points: list[dict] = []

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()

    def rendezvous_address(self) -> tuple[str, int]:
        """This node's address and a free port, for torchrun's multi-node rendezvous."""
        with socket.socket() as s:
            s.bind(("", 0))
            port = s.getsockname()[1]
        return ray.util.get_node_ip_address(), port

    def run(self, job: Callable[[threading.Event, Callable[[dict], None]], dict]) -> dict:
        """`job(stop_event, on_point)` here, on this node; its result plus this node's id."""
        return {**job(self._stop, self._points.append), "node_id": self.node_id()}

    def progress(self) -> list[dict]:
        """Points reported so far (validation points of a training script)."""
        return list(self._points)

    def stop(self) -> None:
        self._stop.set()
