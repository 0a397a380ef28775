"""The sink registry: output.* in, named sinks out, in a stable order; a sink that cannot open closes the rest."""

from __future__ import annotations

import pytest

from stream.config.schema import AppConfig
from stream.errors import FacestreamError
from stream.events.registry import build_sinks
from stream.events.schema import Event
from stream.events.sinks import JsonlSink
from stream.events.webhook import WebhookSink
from stream.events.zmq_sink import ZmqSink
from tests.support.net import free_port


def test_each_output_becomes_one_named_sink_in_a_stable_order(tmp_path):
    config = AppConfig.model_validate({"output": {
        "publish": f"tcp://127.0.0.1:{free_port()}", "events_out": tmp_path / "e.jsonl",
        "webhooks": [{"url": "http://127.0.0.1:9/a"}, {"url": "http://127.0.0.1:9/b", "queue": 3}]}})
    sinks = build_sinks(config, [("web", lambda: JsonlSink(tmp_path / "web.jsonl"))])
    try:
        assert list(sinks) == ["zmq", "jsonl", "webhook1", "webhook2", "web"]
        assert isinstance(sinks["zmq"], ZmqSink) and isinstance(sinks["webhook2"], WebhookSink)
        assert sinks["webhook2"].max_queued == 3
        for name in ("zmq", "jsonl", "web"):  # not the webhooks: nobody listens on port 9
            sinks[name].write(Event(type="heartbeat", source="cam", seq=1, ts=0.0))
        assert sinks["jsonl"].stats().delivered == 1 and sinks["zmq"].stats().extra == {"unheard": 1}
    finally:
        for sink in sinks.values():
            sink.close()


def test_a_sink_that_cannot_open_closes_the_ones_opened_before_it(tmp_path):
    config = AppConfig.model_validate({"output": {"events_out": tmp_path / "e.jsonl"}})
    opened: list[JsonlSink] = []

    def first() -> JsonlSink:
        opened.append(JsonlSink(tmp_path / "x.jsonl"))
        return opened[-1]

    def broken() -> JsonlSink:
        raise FacestreamError("cannot open")

    with pytest.raises(FacestreamError):
        build_sinks(config, [("a", first), ("b", broken)])
    assert opened and opened[0]._file.closed
