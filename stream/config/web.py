"""The web view's settings (the ``web`` section of the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIN_TOKEN_CHARS = 16
TOKEN_RULE = f"at least {MIN_TOKEN_CHARS} characters, not one character repeated, no spaces at either end"


def token_problem(token: str) -> str | None:
    """Why ``token`` is too weak to guard the page, or None."""
    if len(token) < MIN_TOKEN_CHARS or len(set(token)) == 1 or token != token.strip():
        return f"too weak ({TOKEN_RULE}; e.g. python -c 'import secrets; print(secrets.token_urlsafe())')"
    return None


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    http: str | None = Field(
        default=None,
        description="serve the live web view on HOST:PORT (or PORT: 127.0.0.1); beyond loopback it needs web.token",
    )
    token: str | None = Field(
        default=None,
        description=f"required by every request when set (Bearer, basic-auth password, or open /?token= once: "
                    f"the page keeps it in a cookie); {TOKEN_RULE}; ${{VAR}} reads it from the environment",
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names the view answers to beyond loopback names and the bound address (against DNS "
                    "rebinding), e.g. the name of a TLS proxy in front of it; '*' turns the check off",
    )
    max_fps: float = Field(default=10.0, gt=0, le=120, description="pictures per second per camera sent to viewers")
    jpeg_quality: int = Field(default=80, ge=10, le=100, description="JPEG quality of the pictures")

    @field_validator("token")
    @classmethod
    def _strong_token(cls, token: str | None) -> str | None:
        if token and not (token.startswith("${") and token.endswith("}")):  # ${VAR}: checked once it is read
            problem = token_problem(token)
            if problem:
                raise ValueError(problem)
        return token

    @field_validator("allowed_hosts")
    @classmethod
    def _host_names(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            if not host.strip() or (any(c in host for c in "/:@ ") and not host.startswith("[")):
                raise ValueError(f"{host!r}: a host name or address without scheme or port (e.g. faces.example)")
        return hosts
