"""The OpenAI-compatible coder against a local endpoint on 127.0.0.1 that hangs, returns garbage or
answers: a timeout or garbage is a buggy node with its reason, and the rollout goes on."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from orchestrator.edits import search_replace
from orchestrator.agents.openai_coder import OpenAICoder
from orchestrator.agents.scaffolds import Scaffold
from orchestrator.protocols import ProposeRequest
from test_agents import ROOT_SCRIPT, run

GOOD = "Hypothesis: faster\n" + search_replace("speed = 10", "speed = 20")


class Endpoint(BaseHTTPRequestHandler):
    mode = "ok"

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.mode == "hang":
            time.sleep(3)
            return
        if self.mode == "garbage":
            body = b"<html>not a chat completion</html>"
        elif self.mode == "wrong_json":
            body = json.dumps({"choices": "nope"}).encode()
        else:
            body = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                               "choices": [{"index": 0, "finish_reason": "stop",
                                            "message": {"role": "assistant", "content": GOOD}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def coder(server):
    return OpenAICoder(f"http://127.0.0.1:{server.server_address[1]}/v1", "test-key", "m", timeout_s=0.5, retries=1)


@pytest.mark.parametrize("mode, reason", [("hang", "timed out after 0.5 s, 2 attempts"), ("garbage", "coder endpoint"),
                                          ("wrong_json", "coder endpoint")])
def test_a_hanging_or_garbage_endpoint_is_an_error_not_an_edit(endpoint, mode, reason):
    Endpoint.mode = mode
    [proposal] = coder(endpoint).propose([ProposeRequest("Record: x", ROOT_SCRIPT)])
    assert proposal.error and reason in proposal.error and not proposal.edit


def test_an_answer_becomes_hypothesis_and_edit(endpoint):
    Endpoint.mode = "ok"
    [proposal] = coder(endpoint).propose([ProposeRequest("Record: x", ROOT_SCRIPT)])
    assert proposal.error is None and proposal.hypothesis == "faster" and "speed = 20" in proposal.edit


def test_the_rollout_goes_on_past_a_hanging_endpoint(endpoint, tmp_path):
    Endpoint.mode = "hang"
    tree, evaluator = run(Scaffold("two", drafts=2, branching=1, iterations=2, max_nodes=3), tmp_path / "j.jsonl",
                          coder=coder(endpoint))
    assert len(tree.nodes) == 4 and evaluator.ran == [tree.nodes[0].sha]
    for node in list(tree.nodes.values())[1:]:
        assert node.buggy and "timed out" in node.reason
    assert tree.best == 0
