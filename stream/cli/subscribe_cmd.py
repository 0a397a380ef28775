"""`facestream subscribe`: a downstream consumer that prints or records events."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("subscribe", help="print or record events from a running pipeline")
    p.add_argument("--connect", required=True, metavar="ENDPOINT", help="e.g. tcp://127.0.0.1:5556")
    p.add_argument("--topic", action="append", default=[], metavar="PREFIX",
                   help="only events whose topic starts with this (e.g. identity. or identity.cam1); repeatable")
    p.add_argument("--out", type=Path, metavar="FILE.jsonl", help="append events here instead of stdout")
    p.add_argument("--count", type=int, help="exit after this many events")
    p.add_argument("--timeout", type=float,
                   help="exit when no event arrives for this many seconds (an error if no publisher ever answered)")
    p.add_argument("--server-key", type=Path, metavar="FILE.key",
                   help="the publisher's CURVE public key (with --client-key: encrypted, authenticated)")
    p.add_argument("--client-key", type=Path, metavar="FILE.key_secret",
                   help="this subscriber's CURVE keypair; its .key must be in the publisher's client folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from stream.errors import FacestreamError
    from stream.events.sinks import JsonlSink
    from stream.events.subscriber import EventSubscriber

    sub = EventSubscriber(args.connect, tuple(args.topic) or ("",),
                          server_key_file=args.server_key, client_key_file=args.client_key)
    sink = JsonlSink(args.out) if args.out else None
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, on_signal)
    last = time.monotonic()
    problem = None
    try:
        while not stop and (args.count is None or sub.received < args.count):
            event = sub.receive(timeout_s=0.2)
            if event is None:
                if sub.refused:  # libzmq would retry the same refused handshake forever
                    problem = sub.refused
                    break
                if args.timeout is not None and time.monotonic() - last > args.timeout:
                    problem = sub.silence() if sub.received == 0 else None
                    break
                continue
            last = time.monotonic()
            if sink is not None:
                sink.write(event)
            else:
                print(event.to_json(), flush=True)
    finally:
        if sink is not None:
            sink.close()
        sub.close()
        if problem is None:
            print(f"facestream subscribe: {sub.received} events, {sub.gaps} missed, {sub.invalid} invalid",
                  file=sys.stderr)
    if problem is not None:
        raise FacestreamError(f"{args.connect}: {problem}")
    return 0
