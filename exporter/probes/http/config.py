"""The http kind's config: one request and what its reply must look like."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self

from pydantic import Field, field_validator, model_validator
from yarl import URL

from exporter.probes.base import Duration, Regex
from exporter.probes.http.presets import PRESETS
from exporter.probes.shared.conditions import Conditions
from exporter.probes.shared.httpclient import HttpClientConfig, http_url
from exporter.probes.shared.presets import with_preset

SecurityHeader = Literal["hsts", "x_frame_options", "x_content_type_options", "csp"]

SECURITY_HEADERS: dict[str, str] = {
    "hsts": "hsts_header",
    "x_frame_options": "x_frame_options_header",
    "x_content_type_options": "x_content_type_options_header",
    "csp": "csp_header",
}
"""Config name of each security header -> the check it enables."""

_STATUS_CLASS = re.compile(r"^[1-5]xx$")
_STATUS_CODE = re.compile(r"^[1-5]\d\d$")


def status_pattern_error(pattern: int | str) -> str | None:
    """Why *pattern* is not a status code or class, or None when it is."""
    if isinstance(pattern, bool):
        return f"{pattern!r} is not a status code"
    if isinstance(pattern, int):
        return None if 100 <= pattern <= 599 else f"{pattern} is not in 100..599"
    text = pattern.strip().lower()
    if _STATUS_CLASS.match(text) or _STATUS_CODE.match(text):
        return None
    return f"{pattern!r} is not a status code or class"


def _any_2xx() -> list[int | str]:
    return ["2xx"]


class HttpConfig(HttpClientConfig):
    """One request and what its reply must look like."""

    RENAMED: ClassVar[dict[str, str]] = {
        **HttpClientConfig.RENAMED,
        "latency_target": "latency_p95_max",
    }

    kind: Literal["http"] = "http"
    preset: str | None = None
    url: str
    path: str | None = None
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    body: str | None = None
    valid_status_codes: list[int | str] = Field(default_factory=_any_2xx)
    body_regex: Regex | None = None
    conditions: Conditions = Field(default_factory=list)
    latency_p95_max: Duration | None = None
    latency_window: int = Field(default=20, ge=1, le=1000)
    latency_window_age_max: Duration | None = 300.0
    security_headers: bool | list[SecurityHeader] = True
    cors_check: bool = True
    redirect_https: bool = False
    redirect_https_url: str | None = None
    rate_limit_headers: bool = False

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return with_preset(PRESETS, data)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url", "redirect_https_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return (
            None if value is None else http_url(value, credentials_field="basic_auth")
        )

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError(f"path {value!r} must start with /")
        return value

    @field_validator("valid_status_codes")
    @classmethod
    def _status_patterns(cls, value: list[int | str]) -> list[int | str]:
        if not value:
            raise ValueError('list at least one status, e.g. ["2xx"]')
        for index, pattern in enumerate(value):
            problem = status_pattern_error(pattern)
            if problem:
                raise ValueError(
                    f"item {index}: {problem}; write a code (200, 204) or a"
                    ' class ("2xx", "3xx")'
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.latency_window_age_max == 0:
            raise ValueError(
                "latency_window_age_max must be above zero (null keeps runs of"
                " any age; latency_window: 1 judges each run alone)"
            )
        if self.path is not None and URL(self.url).query_string:
            raise ValueError("with path (or a preset) url must not have a ?query")
        endpoints = [c.name for c in self.conditions if c.endpoint is not None]
        if endpoints:
            raise ValueError(
                f"conditions {endpoints}: endpoint applies to the workers kind;"
                " an http probe has one reply"
            )
        plain_url = URL(self.url).scheme != "https"
        if self.redirect_https and self.redirect_https_url is None and plain_url:
            raise ValueError(
                "redirect_https checks that http:// redirects to https://,"
                " so url must be https:// (or set redirect_https_url)"
            )
        return self

    def target(self) -> str:
        """The URL requested: `url`, plus `path` when one is set."""
        if self.path is None:
            return self.url
        return self.url.rstrip("/") + self.path

    def security_header_names(self) -> tuple[str, ...]:
        """Config names of the security headers to check."""
        if self.security_headers is True:
            return tuple(SECURITY_HEADERS)
        if self.security_headers is False:
            return ()
        return tuple(h for h in SECURITY_HEADERS if h in self.security_headers)

    def plain_http_url(self) -> str:
        """Where the https redirect is tried: the target on http, port 80."""
        if self.redirect_https_url is not None:
            return self.redirect_https_url
        https = URL(self.target())
        # No userinfo: whatever it holds must never travel over plain http.
        return str(https.with_scheme("http").with_port(None).with_user(None))
