"""Application config: one pydantic schema, loaded from YAML, overridden by CLI flags."""

from stream.config.schema import AppConfig, load_config

__all__ = ["AppConfig", "load_config"]
