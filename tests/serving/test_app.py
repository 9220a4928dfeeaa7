"""The HTTP service: searches, every 4xx with a JSON message, and service after each bad request."""

from __future__ import annotations

import base64
import io
import re

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from metaembed.cli import main
from metaembed.commands.serve import is_loopback
from metaembed.serving.app import create_app

MAX_IMAGE_BYTES = 4096
GOOD = {"text": "a blue square", "budget": "4x8", "k": 3}


def _b64_png(size=(32, 24)) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", size, (30, 30, 200)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def client(plain_index):
    return TestClient(create_app(plain_index, max_image_bytes=MAX_IMAGE_BYTES, max_k=5))


def _still_serves(client) -> None:
    response = client.post("/search", json=GOOD)
    assert response.status_code == 200 and len(response.json()["results"]) == 3


def test_search_returns_ranked_ids_scores_displays_budget_and_timing(client):
    body = client.post("/search", json=GOOD).json()

    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3]
    assert all(set(hit) == {"rank", "id", "score", "display"} for hit in body["results"])
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["budget"] == [4, 8] and body["k"] == 3 and body["first_stage_k"] is None
    assert set(body["timing_ms"]) == {"encode", "search", "total"} and body["timing_ms"]["total"] > 0
    pair = client.post("/search", json={**GOOD, "budget": [2, 4], "first_stage_k": 6}).json()
    assert pair["budget"] == [2, 4] and pair["first_stage_k"] == 6


def test_an_image_query_with_or_without_text(client):
    for payload in ({"image": _b64_png()}, {"text": "which colour?", "image": "data:image/png;base64," + _b64_png()}):
        response = client.post("/search", json={**payload, "budget": "1x1", "k": 2})
        assert response.status_code == 200, response.text
        assert len(response.json()["results"]) == 2


def test_an_unknown_path_is_a_json_404(client):
    response = client.get("/search/all")
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}


def test_health_describes_the_index_and_model(client, saved_model):
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["count"] == 6 and body["dtype"] == "float32"
    assert body["model"] == str(saved_model.resolve()) and body["first_stage"] == "flat"
    assert body["vectors"] == {"query": 4, "candidate": 8, "dim": 128} and body["full_budget"] == "4x8"


def test_budgets_of_a_model_folder_are_a_404_that_says_why(client):
    response = client.get("/budgets")
    assert response.status_code == 404
    assert "not a registered version" in response.json()["error"]


@pytest.mark.parametrize("payload, status, message", [
    ({"text": "x", "budget": "4by8"}, 422, "is not RQxRC"),
    ({"text": "x", "budget": [5, 8]}, 422, r"r_q must be in 1..4"),
    ({"text": "x", "budget": [4, 9]}, 422, r"r_c in 1..8"),
    ({"text": "x", "budget": [0, 1]}, 422, "at least 1"),
    ({"budget": "4x8"}, 422, "empty query"),
    ({"text": "   "}, 422, "empty query"),
    ({"text": "x", "k": 0}, 422, "k=0 is out of range"),
    ({"text": "x", "k": 6}, 422, r"k=6 is out of range: ask for 1..5"),
    ({"text": "x", "k": 3, "first_stage_k": 2}, 422, "first_stage_k=2 is out of range"),
    ({"text": "x", "k": "many"}, 422, "k: Input should be a valid integer"),
    ({"text": "x", "k": True}, 422, "k: Input should be a valid integer"),
    ({"text": "x", "top": 3}, 422, "top: Extra inputs are not permitted"),
    ({"image": "not base64!"}, 422, "not valid base64"),
    ({"image": base64.b64encode(b"GIF89a broken").decode()}, 422, "cannot decode image"),
    ({"image": _b64_png((2000, 4))}, 422, "aspect ratios above 200"),
    ({"image": base64.b64encode(bytes(MAX_IMAGE_BYTES + 10)).decode()}, 413, "over this service's limit of 4096"),
])
def test_a_bad_request_is_a_4xx_with_a_message_and_the_service_carries_on(client, payload, status, message):
    response = client.post("/search", json=payload)

    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert re.search(message, response.json()["error"]), response.json()
    _still_serves(client)


def test_malformed_json_and_oversized_bodies_are_refused(client):
    response = client.post("/search", content=b'{"text": "x",', headers={"content-type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    _still_serves(client)

    huge = b'{"text": "' + b"a" * 200_000 + b'"}'
    response = client.post("/search", content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]

    def chunks():  # no content-length: the limit holds while the body streams in
        yield b'{"text": "'
        for _ in range(50):
            yield b"a" * 4096
        yield b'"}'

    response = client.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    _still_serves(client)


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                            ("127.0.0.2", True), ("0.0.0.0", False), ("192.168.1.4", False),
                                            ("example.internal", False)])
def test_only_loopback_hosts_count_as_local(host, loopback):
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_address_without_allow_remote(plain_index, capsys):
    assert main(["serve", "--index", str(plain_index), "--host", "0.0.0.0"]) == 2
    assert "refusing to bind 0.0.0.0" in capsys.readouterr().out
