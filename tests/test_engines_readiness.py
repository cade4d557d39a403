"""A router's worker list: parsing, and polling a real server on 127.0.0.1."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.engines.readiness import count_listed_workers, listed_workers

GENERATE = {"endpoint": "generate"}


def instance(component: str, endpoint: str) -> dict:
    return {"component": component, "endpoint": endpoint, "namespace": "dynamo", "instance_id": 1}


def test_count_generate_instances():
    payload = {"status": "healthy", "instances": [
        instance("backend", "clear_kv_blocks"), instance("backend", "generate"),
        instance("prefill", "generate"), instance("backend", "load_metrics"),
    ]}

    # Two of the four endpoints are `generate`: one decode and one prefill worker.
    assert count_listed_workers(payload, "instances", GENERATE) == 2


def test_count_before_registration():
    payload = {"instances": [], "message": "No endpoints available", "status": "unhealthy"}

    assert count_listed_workers(payload, "instances", GENERATE) == 0


@pytest.mark.parametrize("payload", [None, [1, 2], {"instances": "none"}, {"other": []}])
def test_count_unexpected_shapes(payload):
    assert count_listed_workers(payload, "instances", GENERATE) == 0


def test_count_without_match():
    assert count_listed_workers({"workers": [{"url": "a"}, {"url": "b"}, "c"]}, "workers", {}) == 2


class WorkerListHandler(BaseHTTPRequestHandler):
    bodies: dict[str, bytes] = {}

    def do_GET(self):
        body = self.bodies.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server_url():
    WorkerListHandler.bodies = {
        "/health": json.dumps({"instances": [instance("backend", "generate")] * 3}).encode(),
        "/broken": b"not json",
    }
    server = ThreadingHTTPServer(("127.0.0.1", 0), WorkerListHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_listed_workers_live(server_url):
    assert listed_workers(server_url + "/health", "instances", GENERATE) == 3


def test_listed_workers_not_json(server_url):
    assert listed_workers(server_url + "/broken", "instances", GENERATE) is None


def test_listed_workers_http_error(server_url):
    assert listed_workers(server_url + "/missing", "instances", GENERATE) is None
