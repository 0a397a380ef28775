"""The validated config. ``config/default.yaml`` documents every field; both must agree (tested).

Each stage owns its own settings class next to its code (detector, tracker, voting, engine);
this module only composes them, so a stage's knobs live beside the code that reads them.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from stream.config.limits import SettingError
from stream.config.privacy import PrivacyConfig
from stream.config.web import WebConfig
from stream.detect.config import DetectorConfig
from stream.errors import FacestreamError
from stream.history.config import HistoryConfig
from stream.images import PhotosConfig
from stream.inference.config import EngineConfig
from stream.recognize.appearance import AppearanceConfig
from stream.recognize.gallery_index import GallerySearchConfig
from stream.recognize.voting import VotingConfig
from stream.sources.credentials import mask_text
from stream.track.sort import TrackerConfig

if TYPE_CHECKING:
    import yaml

log = logging.getLogger(__name__)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)


class ModelConfig(_Section):
    name: str = Field(default="dlib-resnet-v1", description="embedding model (see `facestream models list`)")
    threshold: float | None = Field(
        default=None, gt=0, le=100, description="match threshold; null = the model manifest's default"
    )


class BatchingConfig(_Section):
    max_batch: int = Field(default=32, ge=1, le=1024, description="most crops per engine call")
    max_wait_ms: float = Field(
        default=8.0, ge=0, le=1000,
        description="how long the first crop of a batch may wait for more; partial batches leave on time",
    )


class RecognitionConfig(_Section):
    reembed_every: int = Field(
        default=10, ge=1, le=1000,
        description="frames (at the source's own rate, whatever sources.fps) between re-embeddings of a track "
                    "that already has a confident identity",
    )
    max_faces_per_frame: int = Field(
        default=16, ge=1, le=256, description="largest faces embedded per frame; the rest are tracked only"
    )


class PipelineConfig(_Section):
    detect_workers: int = Field(default=1, ge=1, le=64, description="detection+alignment processes")
    frame_slots: int = Field(
        default=12, ge=2, le=256,
        description="shared-memory frame slots per source: bounds the frames in flight (latency and memory)",
    )
    max_frame_width: int = Field(default=1920, ge=64, le=8192, description="live frames above this are scaled down")
    max_frame_height: int = Field(default=1080, ge=64, le=8192, description="live frames above this are scaled down")
    max_restarts: int = Field(default=5, ge=0, le=1000, description="restarts per process before giving up")
    restart_window_s: float = Field(default=60.0, gt=0, le=86_400,
                                    description="window over which restarts are counted")
    stall_timeout_s: float = Field(
        default=30.0, gt=0, le=3600, description="a worker whose heartbeat is older than this is restarted"
    )


class SourceConfig(_Section):
    open_timeout_s: float = Field(default=10.0, gt=0, le=300, description="network stream open timeout")
    read_timeout_s: float = Field(default=5.0, gt=0, le=300, description="network stream read timeout")
    reconnect_initial_s: float = Field(default=0.5, gt=0, le=60, description="first reconnect delay")
    reconnect_max_s: float = Field(default=10.0, gt=0, le=600, description="reconnect delay cap")
    give_up_after_s: float | None = Field(
        default=None, gt=0, le=31_536_000,
        description="a camera or stream down this long (at start or mid-run) ends with an error and the run "
                    "exits 1; null = retry forever",
    )
    realtime: bool = Field(default=False, description="pace files at their own frame rate")
    fps: float | None = Field(
        default=None, gt=0, le=1000,
        description="frames a second to process of each source, taken evenly by timestamp (the others are "
                    "skipped before they are converted, counted as skipped); settings counted in frames keep "
                    "meaning frames at the source's own rate. A source's --source ...#fps=N wins; null = every frame",
    )
    hw_decode: str = Field(
        default="cpu", pattern=r"^(cpu|any|vaapi|d3d11|mfx)$",
        description="video decode through OpenCV's FFmpeg: cpu | any (the first hardware decoder the build and "
                    "machine offer, else the CPU) | vaapi | d3d11 | mfx (that one, or the run stops with an error); "
                    "see docs/configuration.md",
    )

    @field_validator("hw_decode", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML reads a bare `off` (or `no`) as false: that is what the user meant by it
        return "cpu" if value is False else value

    @model_validator(mode="after")
    def _backoff_order(self) -> SourceConfig:
        if self.reconnect_max_s < self.reconnect_initial_s:
            raise ValueError("reconnect_max_s must be >= reconnect_initial_s")
        return self


class WebhookConfig(_Section):
    url: str = Field(description="POST each event as JSON to this http(s) URL")
    secret: str | None = Field(
        default=None, min_length=1,
        description="sign each body: header X-Facestream-Signature: sha256=<HMAC-SHA256 of the body under this "
                    "secret> (${VAR} from the environment)",
    )
    timeout_s: float = Field(default=5.0, gt=0, le=300, description="seconds one POST may take before it is retried")
    queue: int = Field(default=1000, ge=1, le=1_000_000,
                       description="events kept while the receiver is slow or away; beyond it the oldest are "
                                   "dropped (counted)")

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        from stream.events.webhook import check_url

        try:
            return check_url(url)
        except FacestreamError as exc:  # pydantic reports ValueErrors with the field's name
            raise ValueError(str(exc).removeprefix("--webhook ")) from None

    @field_validator("secret")
    @classmethod
    def _secret_env(cls, secret: str | None) -> str | None:
        if secret is not None:
            from stream.sources.credentials import expand_env

            try:
                expand_env(secret, "secret")  # an unset ${VAR} fails now, not in the publisher mid-run
            except FacestreamError as exc:
                raise ValueError(str(exc).removeprefix("secret: ")) from None
        return secret


class OutputConfig(_Section):
    publish: str | None = Field(default=None, description="ZeroMQ endpoint to bind a PUB socket on, e.g. tcp://*:5556")
    sndhwm: int = Field(default=1000, ge=1, le=1_000_000, description="ZeroMQ send high-water mark (messages)")
    linger_s: float = Field(
        default=2.0, ge=0, le=60,
        description="at shutdown, how long events still queued for connected subscribers may take to go out "
                    "before they are discarded (uncounted)",
    )
    publish_connect: bool = Field(
        default=False,
        description="connect the event socket to output.publish (a site's event proxy) instead of binding it",
    )
    origin: str | None = Field(
        default=None, max_length=64,
        description="this pipeline's name in a site of several (set by `facestream site run`): every event "
                    "carries it, and subscribers count seq per origin",
    )
    publish_server_key: Path | None = Field(
        default=None,
        description="CURVE: the publisher's NAME.key_secret from `facestream keys generate`; with "
                    "publish_client_keys, events are encrypted and only listed subscribers get them",
    )
    publish_client_keys: Path | None = Field(
        default=None, description="CURVE: folder of the allowed subscribers' public NAME.key files",
    )
    publish_connect_keys: Path | None = Field(
        default=None,
        description="CURVE, with publish_connect: folder with the proxy's public server.key and this "
                    "publisher's client.key_secret (`facestream site run` gives each shard its site's)",
    )
    events_out: Path | None = Field(default=None, description="append events as JSON lines to this file")
    webhooks: list[WebhookConfig] = Field(
        default_factory=list,
        description="POST every event as JSON to each of these, in order, retried with backoff; each item: url "
                    "(http[s]://...), secret (null; if set, header X-Facestream-Signature: sha256=<HMAC-SHA256 of "
                    "the body>, ${VAR} from the environment), timeout_s (5.0), queue (1000 events kept while the "
                    "receiver is slow or away; beyond it the oldest are dropped, counted)",
    )
    mqtt: str | None = Field(
        default=None,
        description="publish events to this MQTT broker, mqtt[s]://[user:password@]host[:port] (${VAR} from the "
                    "environment): <prefix>/<source>/<type> (QoS 1), retained <prefix>/<source>/present and "
                    "<prefix>/status (with a last will)",
    )
    mqtt_prefix: str = Field(default="facestream", min_length=1, max_length=100, pattern=r"^[^#+\s]+$",
                             description="first level of every MQTT topic")
    mqtt_client_id: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="MQTT client id (a broker's ACLs may name it); null: the broker assigns one",
    )
    tracks_out: Path | None = Field(
        default=None,
        description="write per-frame tracks as MOTChallenge rows plus the identity (one file per source)",
    )
    heartbeat_s: float = Field(default=5.0, gt=0, le=3600, description="seconds between heartbeat events")
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535, description="serve Prometheus metrics on this port (127.0.0.1)"
    )
    save_unknowns: Path | None = Field(
        default=None,
        description="for each track that ended unknown, write its best aligned crops and mean embedding to "
                    "DIR/<source>-<track_id>/ (input of `facestream cluster`)",
    )
    unknown_crops: int = Field(default=5, ge=1, le=100,
                               description="crops kept per unknown track (the best by the voter's quality)")
    unknown_min_embeddings: int = Field(
        default=5, ge=1, le=10_000,
        description="save an unknown track only if it was embedded at least this often (tracks of false "
                    "detections are mostly short; unknown_min_score catches the rest)")
    unknown_min_score: float = Field(
        default=0.7, ge=0.0, le=1.0,
        description="save an unknown track only if the detector's mean score over its embedded faces reaches "
                    "this: false detections (hands, dark patches, half faces) and full profiles score lower than "
                    "frontal and three-quarter faces (figures: docs/benchmarks.md)")

    @field_validator("mqtt")
    @classmethod
    def _mqtt_url(cls, url: str | None) -> str | None:
        if url is not None:
            from stream.events.mqtt import parse_broker_url

            try:
                parse_broker_url(url)
            except FacestreamError as exc:  # pydantic reports ValueErrors with the field's name
                raise ValueError(str(exc).removeprefix("--mqtt ")) from None
        return url

    @model_validator(mode="after")
    def _curve_keys(self) -> OutputConfig:
        # Half a CURVE setup would either admit anyone or no one: refuse it instead of guessing.
        key, clients = self.publish_server_key, self.publish_client_keys
        if (key is None) != (clients is None):
            raise ValueError("publish_server_key and publish_client_keys go together: set both or neither")
        if key is not None and not key.is_file():
            raise ValueError(f"publish_server_key: {key}: file not found")
        if clients is not None and not clients.is_dir():
            raise ValueError(f"publish_client_keys: {clients}: folder not found")
        if self.publish_connect_keys is not None and not self.publish_connect:
            raise ValueError("publish_connect_keys is for publish_connect (a site's proxy): set both or neither")
        return self


class AppConfig(_Section):
    model: ModelConfig = Field(default_factory=ModelConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig)
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    tracker: TrackerConfig = Field(default_factory=TrackerConfig)
    voting: VotingConfig = Field(default_factory=VotingConfig)
    appearance: AppearanceConfig = Field(default_factory=AppearanceConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    batching: BatchingConfig = Field(default_factory=BatchingConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    sources: SourceConfig = Field(default_factory=SourceConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    photos: PhotosConfig = Field(default_factory=PhotosConfig)
    history: HistoryConfig = Field(default_factory=HistoryConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    gallery: Path | None = Field(default=None, description="gallery file (.npz) from `facestream enroll`")
    gallery_search: GallerySearchConfig = Field(default_factory=GallerySearchConfig)

    @model_validator(mode="after")
    def _within_limits(self) -> AppConfig:
        from stream.config.limits import check_limits

        check_limits(self)  # a SettingError is a ValueError: pydantic reports it, load_config finds its line
        return self


def load_config(path: Path | None) -> AppConfig:
    """Load and validate a YAML config; errors are one line naming the file, line and key."""
    if path is None:
        return AppConfig()
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FacestreamError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FacestreamError(f"{path}: cannot read config ({exc})") from None
    import yaml  # here, not at the top: every pipeline process imports this module, few read YAML

    from stream.config.yaml_doc import DuplicateKey, load_document

    try:
        data, root = load_document(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise FacestreamError(f"{path}:{where} not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except DuplicateKey as exc:
        raise FacestreamError(f"{path}: {exc}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise FacestreamError(f"{path}: the config must be a mapping of sections, got {type(data).__name__}")
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p) for p in err["loc"]]
        msg = err["msg"].removeprefix("Value error, ")
        value = "" if err["type"] == "extra_forbidden" else f" (got {err.get('input')!r})"
        bound = (err.get("ctx") or {}).get("error")
        if isinstance(bound, SettingError):  # a bound over several settings: shown at the one it names
            loc, msg, value = list(bound.loc), bound.message, ""
        # An unknown key is shown at the key; a wrong value at the value, which may be lines below it.
        line = _line_of(root, tuple(loc), at_value=err["type"] != "extra_forbidden")
        where = f" line {line}" if line else ""
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        # a URL's password (output.mqtt) never goes into the error line
        raise FacestreamError(mask_text(f"{path}:{where} {'.'.join(loc)}: {msg}{value}")) from None


def _line_of(node: yaml.Node | None, loc: tuple, at_value: bool = True) -> int | None:
    """1-based line of the YAML node at a pydantic error location, as far as it can be followed: its
    value's line (``at_value``) or its key's."""
    import yaml

    line = None
    for depth, key in enumerate(loc):
        if isinstance(node, yaml.MappingNode):
            found = None
            for k, v in node.value:
                if k.value == str(key):
                    found, line = v, k.start_mark.line + 1
                    break
            if found is None:
                return line
            node = found
            if at_value and depth == len(loc) - 1:
                line = node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line
