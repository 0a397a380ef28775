"""The on-disk model store: ``<engines dir>/models/<name>/{model.onnx, manifest.json}``.

Built-in models (converted from a pip package's weights) are built on first use, once, under a
file lock so that several pipeline processes starting together do not convert twice.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stream.errors import ModelError
from stream.locking import exclusive_lock
from stream.models.manifest import NAME_PATTERN, ModelManifest, sha256_file

log = logging.getLogger(__name__)

DEFAULT_MODEL = "dlib-resnet-v1"
ENGINES_DIR_ENV = "FACESTREAM_ENGINES_DIR"

# name -> "module:function"; the function takes a scratch dir and returns (manifest, onnx path).
BUILTINS: dict[str, str] = {
    DEFAULT_MODEL: "stream.models.dlib_resnet:build_builtin",
    "facenet-casia": "stream.models.facenet_casia:build_builtin",  # needs pip install -e '.[facenet]'
}


def default_engines_dir() -> Path:
    """Where models and engines live: $FACESTREAM_ENGINES_DIR, else ./engines if present, else a user cache."""
    env = os.environ.get(ENGINES_DIR_ENV)
    if env:
        return Path(env).expanduser()
    local = Path("engines")
    if local.is_dir():
        return local.resolve()
    return Path.home() / ".cache" / "facestream" / "engines"


@dataclass(frozen=True)
class InstalledModel:
    manifest: ModelManifest
    onnx_path: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    def verify(self) -> None:
        """Refuse a model file that is not the one its manifest describes."""
        if not self.onnx_path.is_file():
            raise ModelError(f"{self.onnx_path}: model file missing; reinstall with `facestream models install`")
        actual = sha256_file(self.onnx_path)
        if actual != self.manifest.sha256:
            raise ModelError(
                f"{self.onnx_path}: sha256 {actual[:12]}… does not match its manifest "
                f"({self.manifest.sha256[:12]}…); the file is corrupt or was replaced"
            )


class ModelStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_engines_dir()

    @property
    def models_dir(self) -> Path:
        return self.root / "models"

    def model_dir(self, name: str) -> Path:
        if not re.match(NAME_PATTERN, name):
            raise ModelError(f"{name!r}: not a valid model name (lowercase letters, digits, '.', '_', '-')")
        return self.models_dir / name

    def installed_names(self) -> list[str]:
        if not self.models_dir.is_dir():
            return []
        return sorted(p.parent.name for p in self.models_dir.glob("*/manifest.json"))

    def available_names(self) -> list[str]:
        """Installed models plus built-ins that can be built on first use."""
        return sorted(set(self.installed_names()) | set(BUILTINS))

    def get(self, name: str = DEFAULT_MODEL, *, verify: bool = True) -> InstalledModel:
        """The installed model ``name``; a built-in is built on first use."""
        directory = self.model_dir(name)
        manifest_path = directory / "manifest.json"
        if not manifest_path.is_file():
            if name not in BUILTINS:
                known = ", ".join(self.available_names()) or "none"
                raise ModelError(f"{name}: no such model (available: {known})")
            self.build_builtin(name)
        manifest = ModelManifest.load(manifest_path)
        if manifest.name != name:
            raise ModelError(f"{manifest_path}: manifest names model {manifest.name!r}, expected {name!r}")
        model = InstalledModel(manifest, directory / manifest.onnx_file)
        if verify:
            model.verify()
        return model

    def build_builtin(self, name: str, *, force: bool = False) -> InstalledModel:
        """Convert a built-in model from its package weights, once, under a lock."""
        if name not in BUILTINS:
            raise ModelError(f"{name}: not a built-in model (built-ins: {', '.join(sorted(BUILTINS))})")
        with self._lock():
            manifest_path = self.model_dir(name) / "manifest.json"
            if manifest_path.is_file() and not force:
                return self.get(name)
            module_name, func_name = BUILTINS[name].split(":")
            builder: Callable[[Path], tuple[ModelManifest, Path]] = getattr(
                importlib.import_module(module_name), func_name
            )
            log.info("building built-in model %s into %s (once)", name, self.model_dir(name))
            with tempfile.TemporaryDirectory(prefix=f".build-{name}-", dir=self._ensure_models_dir()) as tmp:
                manifest, onnx_path = builder(Path(tmp))
                return self._install_locked(manifest, onnx_path)

    def install(self, manifest: ModelManifest, onnx_path: Path) -> InstalledModel:
        """Copy an ONNX file and its manifest into the store, atomically per file."""
        with self._lock():
            return self._install_locked(manifest, onnx_path)

    def remove(self, name: str) -> None:
        directory = self.model_dir(name)
        if not directory.is_dir():
            raise ModelError(f"{name}: not installed")
        shutil.rmtree(directory)

    # -- internals -----------------------------------------------------------------------------
    def _install_locked(self, manifest: ModelManifest, onnx_path: Path) -> InstalledModel:
        actual = sha256_file(onnx_path)
        if actual != manifest.sha256:
            raise ModelError(f"{onnx_path}: sha256 does not match the manifest being installed")
        directory = self.model_dir(manifest.name)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / manifest.onnx_file
        # ONNX first, manifest last: a crash in between leaves a manifest-less dir, never a
        # manifest that points at a half-written model.
        _atomic_copy(onnx_path, target)
        _atomic_write(directory / "manifest.json", manifest.dump())
        log.info("installed model %s (%s, sha256 %s)", manifest.name, manifest.precision, manifest.sha256[:12])
        return InstalledModel(manifest, target)

    def _ensure_models_dir(self) -> Path:
        try:
            self.models_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ModelError(f"{self.models_dir}: cannot create the model store ({exc.strerror})") from None
        return self.models_dir

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with exclusive_lock(self._ensure_models_dir() / ".lock"):
            yield


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _atomic_write(dst: Path, text: str) -> None:
    tmp = dst.with_name(f".{dst.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, dst)


def load_model(name: str | None = None) -> InstalledModel:
    """The installed model ``name`` (``DEFAULT_MODEL`` when None: a command's --model left out)."""
    return ModelStore().get(name or DEFAULT_MODEL)
