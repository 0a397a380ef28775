#!/usr/bin/env python
"""Ray site benchmark: the cost of the Ray layer, and how long a shard takes to come back.

On a real local Ray cluster (ray.cluster_utils.Cluster: a head with no CPU for work and --shards+1
worker nodes with --cpus-per-node each), side by side in one invocation:

1. the same --shards MJPEG test cameras (the Hamilton clip at 30 fps, served from 127.0.0.1) for
   --seconds in one local `facestream run`, then in `facestream site run` with one camera per
   shard: frames processed per second (all cameras), events per second, identity events;
2. recovery: the node of one shard is killed (as a machine that dies), and the time until Ray has
   the shard up on another node, and until its camera's first event after the kill, is measured;
3. event transport: 3000 events of 500 bytes from a task on a worker node to the driver, through
   the site's ZeroMQ proxy and as Ray actor calls: throughput and per-event latency.

    python tools/bench_ray.py [--shards 2] [--seconds 30] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MEDIA = Path(os.environ.get("FACESTREAM_MEDIA", REPO / "tests" / "media"))


class Counter:
    """Events from a subscriber socket, counted per type and source."""

    def __init__(self, endpoint: str) -> None:
        from stream.events.subscriber import EventSubscriber

        self.sub = EventSubscriber(endpoint)
        self.events: list[tuple[float, str, str, str | None]] = []
        self.frames: dict[str | None, int] = {}  # per origin (one per run or shard): frames, from its heartbeats
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            event = self.sub.receive(0.5)
            if event is None or event.source == "site":
                continue
            if event.type == "heartbeat":
                self.frames[event.origin] = int((event.stats or {}).get("frames", 0))
            else:
                self.events.append((time.time(), event.type, event.source, event.identity))

    def total_frames(self) -> int:
        return sum(self.frames.values())

    def between(self, start: float, end: float) -> list[tuple]:
        return [e for e in self.events if start <= e[0] < end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sub.close()


def _rates(counter: Counter, start: float, end: float, frames: int) -> dict:
    events = counter.between(start, end)
    span = end - start
    return {"fps_total": round(frames / span, 1), "events_per_s": round(len(events) / span, 1),
            "identity_events": sum(1 for e in events if e[1] == "identity" and e[3])}


def local_run(urls: list[str], gallery: Path, seconds: float, tmp: Path) -> dict:
    from tests.support.net import free_port

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    summary = tmp / "local.json"
    config = tmp / "local.yaml"
    config.write_text("output:\n  heartbeat_s: 1.0\n")
    args = [sys.executable, "-m", "stream", "run", "--gallery", str(gallery), "--publish", endpoint,
            "--config", str(config), "--summary-json", str(summary), "--no-progress"]
    for k, url in enumerate(urls):
        args += ["--source", f"cam{k}={url}"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    counter = Counter(endpoint)
    while not any(e[1] == "track_started" for e in counter.events):  # warm: the first faces are out
        if proc.poll() is not None:
            raise SystemExit(proc.stderr.read())
        time.sleep(0.2)
    time.sleep(2)
    start, frames0 = time.time(), counter.total_frames()
    time.sleep(seconds)
    end, frames1 = time.time(), counter.total_frames()
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    counter.close()
    return _rates(counter, start, end, frames1 - frames0)


def site_run(cluster, workers, urls: list[str], gallery: Path, seconds: float, tmp: Path) -> tuple[dict, dict]:
    import yaml

    from stream.distributed.driver import SiteDriver
    from stream.distributed.site import load_site_config

    site_path = tmp / "site.yaml"
    site_path.write_text(yaml.safe_dump({
        "cameras": [f"cam{k}={url}" for k, url in enumerate(urls)], "gallery": str(gallery),
        "sharding": {"cameras_per_shard": 1, "events_bind": "tcp://127.0.0.1:0"}, "output": {"heartbeat_s": 1.0}}))
    driver = SiteDriver(load_site_config(site_path), "tcp://127.0.0.1:0", status_every_s=5)
    driver.start()
    counter = Counter(driver.proxy.outbound)
    try:
        def poll_until(predicate, timeout: float):
            deadline = time.time() + timeout
            while time.time() < deadline:
                driver.poll()
                if predicate():
                    return time.time()
                time.sleep(0.2)
            return None

        poll_until(lambda: {e[2] for e in counter.events if e[1] == "track_started"} >= {f"cam{k}" for k in
                                                                                        range(len(urls))}, 180)
        poll_until(lambda: False, 2)
        start, frames0 = time.time(), counter.total_frames()
        poll_until(lambda: False, seconds)
        end, frames1 = time.time(), counter.total_frames()
        steady = _rates(counter, start, end, frames1 - frames0)
        # recovery: kill the node of cam0's shard
        shard = next(s for s in driver.shards.values() if s.cameras == ["cam0"])
        victim = next(w for w in workers if w.node_id == shard.node_id)
        killed = time.time()
        cluster.remove_node(victim, allow_graceful=False)
        down = poll_until(lambda: not shard.up, 60)
        up = poll_until(lambda: shard.up and shard.node_id != victim.node_id, 120)
        first = poll_until(lambda: any(e[2] == "cam0" and e[0] > (up or killed) for e in counter.events), 120)
        recovery = {"detected_down_s": _since(down, killed), "shard_up_s": _since(up, killed),
                    "first_event_s": _since(first, killed)}
    finally:
        counter.close()
        driver.stop()
    return steady, recovery


def _since(t: float | None, t0: float) -> float | None:
    return round(t - t0, 1) if t else None


def transport_comparison(n: int = 3000, size: int = 500) -> dict:
    """Events from a task on a worker node to the driver: ZeroMQ through the site's proxy vs Ray actor
    calls (the two ways the issue names), same events, same nodes. Per-event latency and throughput."""
    import ray
    import zmq

    from stream.distributed.proxy import EventProxy

    payload = "x" * size

    @ray.remote(num_cpus=0)
    class Sink:
        def __init__(self) -> None:
            self.latencies: list[float] = []

        def put(self, sent: float, _data: str) -> None:
            self.latencies.append(time.time() - sent)

        def take(self) -> list[float]:
            return self.latencies

    @ray.remote(num_cpus=1)
    def send_ray(sink, count: int) -> float:
        start = time.time()
        ray.get([sink.put.remote(time.time(), payload) for _ in range(count)])
        return time.time() - start

    @ray.remote(num_cpus=1)
    def send_zmq(endpoint: str, count: int) -> float:
        sock = zmq.Context.instance().socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 0)
        sock.connect(endpoint)
        time.sleep(1.0)  # the proxy's subscription arrives
        start = time.time()
        for _ in range(count):
            sock.send_multipart([b"identity.cam", json.dumps({"ts": time.time(), "data": payload}).encode()])
        sock.close(linger=5000)
        return time.time() - start

    out = {}
    sink = Sink.remote()
    wall = ray.get(send_ray.remote(sink, n))
    lat = ray.get(sink.take.remote())
    out["ray_actor_calls"] = {"events_per_s": round(n / wall), **_ms(lat)}

    proxy = EventProxy("tcp://127.0.0.1:0", "tcp://127.0.0.1:0")
    tap = proxy.tap()
    time.sleep(0.3)
    ref = send_zmq.remote(proxy.inbound, n)
    got: list[float] = []
    deadline = time.time() + 60
    while len(got) < n and time.time() < deadline:
        if tap.poll(1000):
            got.append(time.time() - json.loads(tap.recv_multipart()[1])["ts"])
    wall = ray.get(ref)
    tap.close(0)
    proxy.close()
    out["zeromq_proxy"] = {"events_per_s": round(n / wall), "received": len(got), **_ms(got)}
    return out


def _ms(values: list[float]) -> dict:
    v = sorted(values)
    return {"p50_ms": round(v[len(v) // 2] * 1e3, 2), "p95_ms": round(v[int(len(v) * 0.95)] * 1e3, 2)} if v else {}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--cpus-per-node", type=float, default=1.0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from tests.support.mjpeg_server import MjpegServer

    tmp = Path(tempfile.mkdtemp(prefix="bench-site-"))
    gallery = tmp / "people.npz"
    for name in ("lin-manuel-miranda", "alex-lacamoire"):
        subprocess.run([sys.executable, "-m", "stream", "enroll", "--gallery", str(gallery), "--name", name,
                        str(MEDIA / f"{name}.png")], cwd=REPO, check=True, capture_output=True)
    cameras = [MjpegServer(MEDIA / "short_hamilton_clip.mp4").start() for _ in range(args.shards)]
    urls = [c.url for c in cameras]
    local = local_run(urls, gallery, args.seconds, tmp)

    t0 = time.time()
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "include_dashboard": False, "object_store_memory": 80 * 2**20,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4,
                           "health_check_initial_delay_ms": 0}})
    workers = [cluster.add_node(num_cpus=args.cpus_per_node, object_store_memory=80 * 2**20)
               for _ in range(args.shards + 1)]
    cluster.wait_for_nodes()
    cluster_start_s = round(time.time() - t0, 1)
    ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
    try:
        transport = transport_comparison()
        sharded, recovery = site_run(cluster, workers, urls, gallery, args.seconds, tmp)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for c in cameras:
            c.stop()
    result = {"machine_cores": os.cpu_count(), "cameras": args.shards, "seconds": args.seconds,
              "local_run": local, "site_run": sharded, "ratio_fps": round(sharded["fps_total"] /
                                                                             local["fps_total"], 2)
              if local["fps_total"] else None,
              "cluster_start_s": cluster_start_s, "recovery": recovery, "event_transport": transport}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
