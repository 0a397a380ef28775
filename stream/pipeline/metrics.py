"""Prometheus metrics, served by the publisher process when ``output.metrics_port`` is set."""

from __future__ import annotations

import logging

from stream.errors import FacestreamError

log = logging.getLogger(__name__)


class PipelineMetrics:
    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        self.registry = CollectorRegistry()
        self.frames = Counter("facestream_frames_total", "frames processed", ["source"], registry=self.registry)
        self.faces = Counter("facestream_faces_total", "faces detected", ["source"], registry=self.registry)
        self.embedded = Counter("facestream_embeddings_total", "faces embedded", ["source"], registry=self.registry)
        self.events = Counter("facestream_events_total", "events emitted", ["type"], registry=self.registry)
        self.dropped = Gauge("facestream_frames_dropped", "live frames dropped (newest-frame policy)", ["source"],
                             registry=self.registry)
        self.lost = Gauge("facestream_frames_lost", "frames lost with a killed worker", ["source"],
                          registry=self.registry)
        self.corrupt = Gauge("facestream_frames_corrupt", "live frames that did not decode (skipped)", ["source"],
                             registry=self.registry)
        self.skipped = Gauge("facestream_frames_skipped", "frames passed over for the processing rate "
                             "(sources.fps) or held back as still (an idle live camera), by design", ["source"],
                             registry=self.registry)
        self.online = Gauge("facestream_source_online", "1 while a source gives frames, 0 while it is down",
                            ["source"], registry=self.registry)
        self.reconnects = Gauge("facestream_source_reconnects", "connection attempts of a live source after its "
                                "first", ["source"], registry=self.registry)
        self.restarts = Gauge("facestream_worker_restarts", "restarts of each pipeline process", ["worker"],
                              registry=self.registry)
        self.sink_delivered = Gauge("facestream_sink_delivered", "events (MQTT: messages) each output delivered, "
                                    "over the run", ["sink"], registry=self.registry)
        self.sink_dropped = Gauge("facestream_sink_dropped", "events (MQTT: messages) each output lost, over the "
                                  "run", ["sink"], registry=self.registry)
        self.sink_queued = Gauge("facestream_sink_queued", "events (MQTT: messages) waiting in each output now",
                                 ["sink"], registry=self.registry)
        self.latency = Histogram("facestream_latency_seconds", "frame capture to result", ["source"],
                                 buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5), registry=self.registry)
        try:
            start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise FacestreamError(f"metrics port {host}:{port}: cannot listen ({exc.strerror})") from None
        log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    def resume(self, ledger) -> None:
        """Start from the run's totals so far (this publisher may be a restarted one)."""
        for source, led in ledger.sources.items():
            self.frames.labels(source).inc(int(led["frames"]))
        self.update(ledger)

    def update(self, ledger) -> None:
        """Gauges that other processes keep current in the run's ledger."""
        for source, led in ledger.sources.items():
            self.dropped.labels(source).set(int(led["live_dropped"]))
            self.lost.labels(source).set(int(led["lost"]))
            self.corrupt.labels(source).set(int(led["corrupt"]))
            self.skipped.labels(source).set(int(led["skipped"]))
            self.online.labels(source).set(int(led["online"]))
            self.reconnects.labels(source).set(int(led["reconnects"]))
        for worker, count in ledger.restarts().items():
            self.restarts.labels(worker).set(count)

    def update_sinks(self, sinks: dict[str, dict[str, int]]) -> None:
        """Each event sink's figures (the publisher's ``stats()["sinks"]``)."""
        for name, counts in sinks.items():
            self.sink_delivered.labels(name).set(counts["delivered"])
            self.sink_dropped.labels(name).set(counts["dropped"])
            self.sink_queued.labels(name).set(counts["queued"])
