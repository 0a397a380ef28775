"""A site: the pipeline config every shard runs, its cameras, and how they are split into shards."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from stream.config.schema import AppConfig
from stream.errors import FacestreamError
from stream.sources.spec import parse_sources


class ShardingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    cameras_per_shard: int = Field(default=4, ge=1, le=256, description="cameras in one shard (one Ray actor)")
    num_cpus: float = Field(default=1.0, ge=0, le=256, description="CPUs Ray reserves per shard")
    num_gpus: float | None = Field(
        default=None, ge=0, le=16, description="GPUs per shard; null: 1 when engine.kind is tensorrt, else 0")
    max_restarts: int = Field(default=-1, ge=-1, le=10_000,
                              description="times Ray restarts a shard whose node died (-1: always)")
    events_bind: str = Field(default="tcp://0.0.0.0:5557",
                             description="where the driver's event proxy takes the shards' events in (CURVE: "
                                         "only this run's shards, with keys the driver makes and hands them)")
    events_host: str | None = Field(
        default=None, description="address shards use to reach the driver (default: the driver's node IP)")


class SiteConfig(AppConfig):
    """The usual config (every shard runs it), plus the site's cameras and its sharding."""

    cameras: list[str] = Field(default_factory=list, description="[NAME=]SRC, as --source takes them")
    sharding: ShardingConfig = ShardingConfig()

    def pipeline_config(self) -> dict:
        """What a shard's `facestream run --config` gets: the site's config without the site's own keys."""
        data = self.model_dump(mode="json", exclude={"cameras", "sharding"})
        return data

    def gpus_per_shard(self) -> float:
        if self.sharding.num_gpus is not None:
            return self.sharding.num_gpus
        return 1.0 if self.engine.kind == "tensorrt" else 0.0


def load_site_config(path: Path) -> SiteConfig:
    from stream.config.schema import _line_of  # the same one-line errors as `run --config`

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise FacestreamError(f"{path}: cannot read the site config ({exc.strerror or exc})") from None
    from stream.config.yaml_doc import DuplicateKey, load_document

    try:
        data, root = load_document(text)
        data = data or {}
    except yaml.YAMLError as exc:
        raise FacestreamError(f"{path}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except DuplicateKey as exc:
        raise FacestreamError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise FacestreamError(f"{path}: the site config must be a mapping of sections")
    try:
        site = SiteConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        line = _line_of(root, err["loc"], at_value=err["type"] != "extra_forbidden")
        where = f" line {line}" if line else ""
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise FacestreamError(f"{path}:{where} {'.'.join(map(str, err['loc']))}: {msg}") from None
    if not site.cameras:
        raise FacestreamError(f"{path}: cameras: list the site's cameras ([NAME=]SRC, as --source takes them)")
    return site


def site_shards(site: SiteConfig) -> list[tuple[str, list[str]]]:
    """(shard name, its cameras as ``NAME=SRC``) for every shard.

    ``${VAR}`` stays as typed: it is expanded on the node that runs the shard, so a camera's
    password can live in that node's environment and never crosses the network. Names (and their
    clashes) are worked out here, the same way `run --source` names sources.
    """
    placeholder = [re.sub(r"\$\{[^}]*\}", "x", text) for text in site.cameras]
    specs = parse_sources(placeholder)
    named = [f"{spec.name}={_uri_as_typed(text)}" for spec, text in zip(specs, site.cameras)]
    return [(f"shard-{k}", named[i:i + site.sharding.cameras_per_shard])
            for k, i in enumerate(range(0, len(named), site.sharding.cameras_per_shard))]


def _uri_as_typed(text: str) -> str:
    head, sep, tail = text.strip().partition("=")
    return tail.strip() if sep and "://" not in head and "/" not in head else text.strip()
