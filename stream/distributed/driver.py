"""`facestream site run`: place a site's shards on a Ray cluster, keep its events in one place,
follow where every camera is, and push the gallery when it changes.

Ray does the placing and the restarting: each shard is an actor with ``max_restarts``; when its
node dies Ray starts it again on a node with room, and its cameras come back as new tracks. The
driver only watches: every second it asks each shard for its status (a call that cannot complete
while the actor is being restarted: the shard is then down), and it reads the shards' heartbeats
from its own event proxy. Every ``status_every_s`` it logs the site's state, publishes it as a
``heartbeat`` event from source ``site`` (so `facestream subscribe` sees it too) and updates the
metrics.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from stream.distributed.deps import init_ray, require_ray
from stream.distributed.proxy import EventProxy, SiteKeys
from stream.distributed.shard import ShardRunner
from stream.distributed.site import SiteConfig, site_shards
from stream.events.schema import Event
from stream.recognize.gallery import file_id, gallery_bytes

log = logging.getLogger(__name__)

STATUS_CALL_S = 2.0  # a shard that does not answer its status call within this is counted down
CAMERA_SILENT_S = 3.0  # heartbeat periods without one before a camera counts as down


@dataclass
class ShardState:
    name: str
    cameras: list[str]
    actor: Any
    up: bool = False
    node_ip: str | None = None
    node_id: str | None = None
    since: float = field(default_factory=time.time)
    down_since: float | None = None
    restarts: int = 0
    failed: str | None = None  # the run exited on its own: its log's last lines
    failed_at: float | None = None
    pending: Any = None  # the status call in flight
    down_total_s: float = 0.0  # over the periods it was down and came back

    def went_down(self, now: float) -> None:
        if self.down_since is None:
            self.down_since = now

    def came_up(self, now: float) -> None:
        if self.down_since is not None:
            self.down_total_s += now - self.down_since
            self.down_since = None

    def downtime(self, now: float) -> float:
        """Seconds it was down (or gone for good) so far."""
        if self.failed_at is not None:
            return self.down_total_s + now - self.failed_at
        return self.down_total_s + (now - self.down_since if self.down_since is not None else 0.0)


def stop_report(summaries: dict[str, dict], shards: dict[str, ShardState], now: float | None = None) -> str:
    """The site's last line: frames, and every shard that was down, for how long, and why."""
    now = time.time() if now is None else now
    frames = sum(s.get("frames", 0) for s in summaries.values())
    notes = []
    for name, shard in shards.items():
        down = shard.downtime(now)
        if shard.failed:
            notes.append(f"{name} ended early, {down:.1f} s before the stop ({shard.failed.splitlines()[0][:200]})")
        elif down > 0:
            restarts = f", {shard.restarts} restart(s)" if shard.restarts else ""
            still = ", down at the stop" if shard.down_since is not None else ""
            notes.append(f"{name} down {down:.1f} s{restarts}{still}")
        if "error" in summaries.get(name, {}):
            notes.append(f"{name} gave no summary ({summaries[name]['error']})")
    line = f"site stopped; {frames} frames in {len(summaries)} shard(s)"
    return f"{line}; {'; '.join(notes)}" if notes else f"{line}; every shard up throughout"


class SiteMetrics:
    """Prometheus gauges of the site, served by the driver (127.0.0.1:PORT)."""

    def __init__(self, port: int) -> None:
        from prometheus_client import CollectorRegistry, Gauge, start_http_server

        self.registry = CollectorRegistry()
        self.shard_up = Gauge("facestream_site_shard_up", "1 while the shard's run answers", ["shard"],
                              registry=self.registry)
        self.shard_restarts = Gauge("facestream_site_shard_restarts", "times the shard came back after being down",
                                    ["shard"], registry=self.registry)
        self.camera_up = Gauge("facestream_site_camera_up", "1 while the camera's shard is up and its heartbeats "
                               "arrive", ["camera", "shard"], registry=self.registry)
        start_http_server(port, addr="127.0.0.1", registry=self.registry)

    def update(self, status: dict[str, Any]) -> None:
        for name, shard in status["shards"].items():
            self.shard_up.labels(name).set(1 if shard["up"] else 0)
            self.shard_restarts.labels(name).set(shard["restarts"])
        for name, camera in status["cameras"].items():
            self.camera_up.labels(name, camera["shard"]).set(1 if camera["up"] else 0)


class SiteDriver:
    def __init__(self, site: SiteConfig, publish: str, *, address: str | None = None,
                 status_every_s: float = 5.0, metrics_port: int | None = None) -> None:
        self.site = site
        self.metrics = SiteMetrics(metrics_port) if metrics_port else None
        self.ray = require_ray()
        self._started_ray = not self.ray.is_initialized()
        if self._started_ray:
            # Ray's own address rules: --address, else RAY_ADDRESS, else a new local instance
            init_ray(self.ray, address, include_dashboard=False, log_to_driver=False, configure_logging=False)
        # The shards' side is reachable from the network: CURVE with keys made for this run only.
        self.keys = SiteKeys.make()
        try:
            self.proxy = EventProxy(site.sharding.events_bind, publish, sndhwm=site.output.sndhwm,
                                    shard_keys=self.keys, server_key=site.output.publish_server_key,
                                    client_keys=site.output.publish_client_keys)
        except BaseException:
            self.keys.remove()
            raise
        bound_host, _, port = self.proxy.inbound.removeprefix("tcp://").rpartition(":")
        # bound to every interface: the shards on other nodes reach it at this node's address
        host = site.sharding.events_host or (bound_host if bound_host not in ("0.0.0.0", "[::]", "*")
                                             else self.ray.util.get_node_ip_address())
        self.events_endpoint = f"tcp://{host}:{port}"
        self.status_every_s = status_every_s
        self.shards: dict[str, ShardState] = {}
        self.heartbeats: dict[str, tuple[float, dict]] = {}  # per camera: (received, stats)
        self.events_seen = 0
        self._stop = threading.Event()
        self._tap_thread = threading.Thread(target=self._follow_events, name="site-tap", daemon=True)
        self._tap_thread.start()
        self._site_pub = zmq.Context.instance().socket(zmq.PUB)
        self._site_pub.setsockopt(zmq.LINGER, 0)
        for option, value in self.keys.client_options().items():
            self._site_pub.setsockopt(option, value)
        self._site_pub.connect(self.proxy.inbound)
        self._site_seq = 0
        self._gallery_id = None
        self._last_status = 0.0

    # -- placing ---------------------------------------------------------------------------------
    def start(self) -> None:
        actor_class = self.ray.remote(ShardRunner)
        gallery = self._read_gallery()
        sharding = self.site.sharding
        config = self.site.pipeline_config()
        for name, cameras in site_shards(self.site):
            actor = actor_class.options(
                name=f"facestream-{name}", num_cpus=sharding.num_cpus, num_gpus=self.site.gpus_per_shard(),
                max_restarts=sharding.max_restarts, scheduling_strategy="SPREAD",
            ).remote(name, cameras, config, self.events_endpoint, gallery, None, self.keys.for_shard())
            self.shards[name] = ShardState(name, [c.partition("=")[0] for c in cameras], actor)
        log.warning("site: %d camera(s) in %d shard(s); events on %s", len(self.site.cameras), len(self.shards),
                    self.proxy.outbound)

    # -- watching --------------------------------------------------------------------------------
    def poll(self) -> None:
        """One round: shard statuses, a changed gallery, and (every status_every_s) the site's state."""
        for shard in self.shards.values():
            self._poll_shard(shard)
        self._push_gallery_if_changed()
        now = time.monotonic()
        if now - self._last_status >= self.status_every_s:
            self._last_status = now
            self._publish_status()

    def _poll_shard(self, shard: ShardState) -> None:
        ray = self.ray
        if shard.failed:
            return
        if shard.pending is None:
            shard.pending = shard.actor.status.remote()
        ready, _ = ray.wait([shard.pending], timeout=STATUS_CALL_S)
        if not ready:
            self._mark_down(shard, "not answering")
            return
        ref, shard.pending = shard.pending, None
        try:
            status = ray.get(ref)
        except Exception as exc:  # RayActorError, ActorUnavailableError: the node or the actor is gone
            self._mark_down(shard, type(exc).__name__)
            return
        if not status["running"]:
            shard.failed = f"run exited {status['returncode']}: {status.get('log_tail', '')}"
            shard.failed_at = shard.down_since or time.time()
            shard.down_since = None
            shard.up = False
            log.error("site: %s stopped on its own (%s); its cameras are down", shard.name, shard.failed)
            return
        if not shard.up:
            moved = shard.node_id is not None and shard.node_id != status["node_id"]
            if shard.down_since is not None:
                shard.restarts += 1
                log.warning("site: %s is back on %s after %.1f s%s", shard.name, status["node_ip"],
                            time.time() - shard.down_since, " (another node)" if moved else "")
            else:
                log.info("site: %s up on %s", shard.name, status["node_ip"])
            shard.came_up(time.time())
            shard.up, shard.since = True, time.time()
        shard.node_ip, shard.node_id = status["node_ip"], status["node_id"]

    def _mark_down(self, shard: ShardState, why: str) -> None:
        if shard.up or shard.down_since is None:
            log.warning("site: %s down (%s); cameras %s", shard.name, why, ", ".join(shard.cameras))
            shard.went_down(time.time())
        shard.up = False
        if why != "not answering":
            shard.pending = None  # ask again next round: a restarted actor answers a new call

    def _follow_events(self) -> None:
        sock = self.proxy.tap()
        try:
            while not self._stop.is_set():
                if not sock.poll(200):
                    continue
                parts = sock.recv_multipart()
                if len(parts) != 2:
                    continue
                self.events_seen += 1
                if parts[0].startswith(b"heartbeat."):
                    try:
                        event = json.loads(parts[1])
                    except ValueError:
                        continue
                    if event.get("source") != "site":
                        self.heartbeats[str(event.get("source"))] = (time.time(), event.get("stats") or {})
        finally:
            sock.close(0)

    def cameras(self) -> dict[str, dict[str, Any]]:
        """Per camera: its shard, node, and whether it is up (shard up and heartbeats arriving)."""
        silent_after = CAMERA_SILENT_S * self.site.output.heartbeat_s
        out = {}
        for shard in self.shards.values():
            for camera in shard.cameras:
                received, stats = self.heartbeats.get(camera, (0.0, {}))
                source = (stats.get("sources") or {}).get(camera, {})
                online = source.get("online", True) is not False
                fresh = time.time() - received < silent_after
                out[camera] = {"shard": shard.name, "node": shard.node_ip, "up": shard.up and fresh and online,
                               "shard_up": shard.up, "heartbeat_age_s": round(time.time() - received, 1)
                               if received else None, "fps": stats.get("fps")}
        return out

    def status(self) -> dict[str, Any]:
        return {"shards": {s.name: {"up": s.up, "node": s.node_ip, "node_id": s.node_id, "cameras": s.cameras,
                                    "restarts": s.restarts, "failed": s.failed} for s in self.shards.values()},
                "cameras": self.cameras(), "events": self.events_seen}

    def _publish_status(self) -> None:
        status = self.status()
        down = [name for name, cam in status["cameras"].items() if not cam["up"]]
        log.warning("site: %d/%d shard(s) up, %d/%d camera(s) up%s", sum(s["up"] for s in status["shards"].values()),
                    len(status["shards"]), len(status["cameras"]) - len(down), len(status["cameras"]),
                    f"; down: {', '.join(down)}" if down else "")
        if self.metrics is not None:
            self.metrics.update(status)
        self._site_seq += 1
        event = Event(type="heartbeat", source="site", ts=time.time(), seq=self._site_seq, stats=status,
                      origin="site")
        self._site_pub.send_multipart([event.topic.encode(), event.to_json().encode()], zmq.NOBLOCK)

    # -- the gallery -----------------------------------------------------------------------------
    def _read_gallery(self) -> bytes | None:
        path = self.site.gallery
        if path is None:
            return None
        self._gallery_id = file_id(path)
        return gallery_bytes(path) if self._gallery_id else None  # with the enrolls appended since a compaction

    def _push_gallery_if_changed(self) -> None:
        path = self.site.gallery
        if path is None or file_id(path) == self._gallery_id:
            return
        from stream.recognize.gallery import Gallery

        try:
            data = self._read_gallery()
            if data is None:
                return
            Gallery.load(path)  # a broken file stays on the driver: the shards keep what they have
        except Exception as exc:
            log.error("site: %s changed but cannot be read (%s); not pushed", path, exc)
            return
        for shard in self.shards.values():
            shard.actor.set_gallery.remote(data)
        log.warning("site: gallery %s changed; pushed to %d shard(s)", path, len(self.shards))

    # -- stopping --------------------------------------------------------------------------------
    def stop(self) -> dict[str, Any]:
        summaries = {}
        refs = {name: s.actor.stop.remote() for name, s in self.shards.items()}
        for name, ref in refs.items():
            try:
                summaries[name] = self.ray.get(ref, timeout=60)
            except Exception as exc:
                summaries[name] = {"error": type(exc).__name__}
        for shard in self.shards.values():
            self.ray.kill(shard.actor, no_restart=True)
        self._stop.set()
        self._tap_thread.join(timeout=2)
        self._site_pub.close(0)
        self.proxy.close()
        self.keys.remove()
        if self._started_ray:
            self.ray.shutdown()
        return summaries
