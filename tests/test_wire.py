"""The wire's encoder writes every message as json does: a reply carries
back whatever id it was sent, and a request keeps every number."""

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
    back = json.loads(protocol.encode(reply))
    assert json.dumps(back["id"]) == json.dumps(msg_id)
    assert back["statuses"] == {"web": "active"} and back["status"] == "ok"


def test_what_json_cannot_write_is_written_as_text():
    back = json.loads(protocol.encode({"id": "abc", "other": object()}))
    assert back["other"].startswith("<object object")
