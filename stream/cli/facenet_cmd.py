"""`facestream models import-facenet` and `download-facenet`."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from stream.errors import FacestreamError


def register_models(sub: argparse._SubParsersAction) -> None:
    imp = sub.add_parser("import-facenet", help="convert a facenet-pytorch InceptionResnetV1 checkpoint (needs torch)",
                         description="Convert an InceptionResnetV1 checkpoint (facenet-pytorch layout: the "
                                     "published VGGFace2 or CASIA-WebFace weights) to ONNX with its manifest. "
                                     "Needs PyTorch: pip install 'facestream[export]'.")
    imp.add_argument("checkpoint", type=Path)
    imp.add_argument("--name", default=None, help="model name (default: facenet-vggface2, or from the file name)")
    imp.add_argument("--force", action="store_true", help="replace an installed model of that name")
    imp.set_defaults(func=import_cmd)

    dl = sub.add_parser("download-facenet", help="download a published FaceNet checkpoint (pinned sha256)")
    dl.add_argument("which", choices=["vggface2", "casia-webface"])
    dl.add_argument("--dest", type=Path, help="folder (default: <engines dir>/downloads)")
    dl.add_argument("--url", help="fetch from this address instead (a mirror or a local copy); the pinned sha256 "
                                  "still applies unless --sha256 says otherwise")
    dl.add_argument("--sha256", help="expected sha256, for a file we have no pinned hash for")
    dl.add_argument("--allow-unpinned", action="store_true", help="accept the file without a known sha256")
    dl.add_argument("--import", dest="do_import", action="store_true", help="import it as a model afterwards")
    dl.add_argument("--timeout", type=float, default=30.0, help="network timeout, seconds")
    dl.set_defaults(func=download_cmd)


def _default_name(checkpoint: Path) -> str:
    stem = checkpoint.stem.lower()
    if "casia" in stem:
        return "facenet-casia-webface"
    if "vggface2" in stem:
        return "facenet-vggface2"
    return "facenet-" + (re.sub(r"[^a-z0-9._-]+", "-", stem).strip("-") or "custom")[:50]


def import_cmd(args: argparse.Namespace) -> int:
    from stream.models.facenet import import_facenet

    model = import_facenet(args.checkpoint, args.name or _default_name(args.checkpoint), force=args.force)
    print(f"installed {model.name}: {model.manifest.embedding_size}-D, {model.onnx_path} "
          f"(sha256 {model.manifest.sha256})")
    return 0


def download_cmd(args: argparse.Namespace) -> int:
    from stream.models.download import PUBLISHED, download
    from stream.models.store import ModelStore

    item = PUBLISHED[args.which]
    sha = (args.sha256 or item.sha256 or "").lower() or None
    if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise FacestreamError(f"--sha256 {args.sha256!r}: not a 64-digit hex sha256")
    dest_dir = args.dest or ModelStore().root / "downloads"
    path = download(args.url or item.url, dest_dir / item.url.rsplit("/", 1)[-1], sha, timeout=args.timeout,
                    allow_unpinned=args.allow_unpinned)
    print(f"downloaded {path}")
    if args.do_import:
        from stream.models.facenet import import_facenet

        model = import_facenet(path, item.model_name, force=True)
        print(f"installed {model.name} ({model.onnx_path})")
    return 0
