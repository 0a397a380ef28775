"""The event sinks a run's ``output.*`` asks for, built in one place, each under a stable name.

A new kind of output is one builder here (plus its module and its config): the publisher only
knows ``EventSink``. Each builder imports its sink's module itself, only when the config asks for
it: the publisher process starts without ZeroMQ, paho, ssl or http.client it does not use (each
import costs CPU at every start, on cores the pipeline's processes share). Names are stable for a
config, and so is the order, so a restarted publisher finds each sink's run totals where its
predecessor left them (stream/pipeline/publishing.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

from stream.events.sinks import EventSink, JsonlSink

if TYPE_CHECKING:  # the config validates sink URLs with this package: no import back at run time
    from stream.config.schema import AppConfig


Built = Iterator[tuple[str, EventSink]]  # one at a time: a failure closes exactly those opened


def _zmq(config: AppConfig) -> Built:
    out = config.output
    if out.publish:
        from stream.events.zmq_sink import ZmqSink

        yield "zmq", ZmqSink(out.publish, sndhwm=out.sndhwm, linger_ms=int(out.linger_s * 1000),
                             server_secret_key_file=out.publish_server_key,
                             allowed_clients_dir=out.publish_client_keys, connect=out.publish_connect,
                             connect_keys=out.publish_connect_keys)


def _jsonl(config: AppConfig) -> Built:
    if config.output.events_out:
        yield "jsonl", JsonlSink(config.output.events_out)


def _mqtt(config: AppConfig) -> Built:
    out = config.output
    if out.mqtt:
        from stream.events.mqtt import MqttSink

        yield "mqtt", MqttSink(out.mqtt, prefix=out.mqtt_prefix, client_id=out.mqtt_client_id,
                               reconnect_max_s=config.sources.reconnect_max_s)


def _webhooks(config: AppConfig) -> Built:
    hooks = config.output.webhooks
    if hooks:
        from stream.events.webhook import WebhookSink
    for i, hook in enumerate(hooks):
        yield (f"webhook{i + 1}" if len(hooks) > 1 else "webhook",
               WebhookSink(hook.url, secret=hook.secret, timeout_s=hook.timeout_s, queue=hook.queue))


BUILDERS: tuple[Callable[[AppConfig], Built], ...] = (_zmq, _jsonl, _mqtt, _webhooks)


def build_sinks(config: AppConfig, extra: Sequence[tuple[str, Callable[[], EventSink]]] = ()) -> dict[str, EventSink]:
    """Every sink of ``config.output``, then ``extra`` (sinks a caller registers, e.g. the web view's
    feed), by name. A sink that cannot open closes the ones opened before it, then raises."""
    sinks: dict[str, EventSink] = {}
    try:
        for build in BUILDERS:
            for name, sink in build(config):
                sinks[name] = sink
        for name, make in extra:
            sinks[name] = make()
    except BaseException:
        for sink in sinks.values():
            with contextlib.suppress(Exception):
                sink.close()
        raise
    return sinks
