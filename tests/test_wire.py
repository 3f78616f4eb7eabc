"""The wire's two encoders: what clients send is written exactly as json
writes it; what the daemon sends takes the fast path (orjson) but gives
every id back exactly as json read it."""

from __future__ import annotations

import json
import math

import pytest

from bigtop.control import protocol


def test_a_request_keeps_every_number_json_can_write():
    raw = protocol.encode(protocol.request("logs", "x", since=float("nan"), big=2**70))
    props = json.loads(raw)["properties"]
    assert math.isnan(props["since"]) and props["big"] == 2**70


@pytest.mark.parametrize("msg_id", ["0123abcd", None, 2**70, -2**70, float("inf"), [float("nan")],
                                    {"nested": [1.5, -float("inf")]}, 7])
def test_a_reply_gives_back_the_id_it_was_sent(msg_id):
    reply = protocol.ok({"statuses": {"web": "active"}})
    reply["id"] = msg_id
    back = json.loads(protocol.encode_sent(reply))
    assert json.dumps(back["id"]) == json.dumps(msg_id)
    assert back["statuses"] == {"web": "active"} and back["status"] == "ok"


def test_the_daemon_writes_what_orjson_cannot_with_json():
    reply = protocol.ok({"huge": 2**80, "keys": {1: "one"}, "other": object()})
    reply["id"] = "abc"
    back = json.loads(protocol.encode_sent(reply))
    assert back["huge"] == 2**80 and back["keys"] == {"1": "one"}
    assert back["other"].startswith("<object object")
