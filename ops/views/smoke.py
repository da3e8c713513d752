"""`inv smoke`: is an environment actually serving? Its frontend and every edge function, over HTTP.

The card's "test on the preprod preview URL", as a command: the frontend must answer 2xx or
3xx; each function of `supabase/functions` must answer at `<functions_url>/<slug>` with
anything but 404 or 5xx (a CORS preflight, OPTIONS, by default). `[smoke]` adds URLs and
overrides a function's method, path and expected status. Checks run in parallel, each with a
timeout and one retry, and report their latency.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ops.config import Config, Environment
from ops.errors import OperationFailed, OpsError, UserError
from ops.platform.functions import local_functions
from ops.report import Result, Table


@dataclass(frozen=True)
class Probe:
    check: str
    method: str
    url: str
    expected: int | None = None  # None: 2xx/3xx for pages, "not 404 and not 5xx" for functions
    function: bool = False

    def passes(self, status: int) -> bool:
        if self.expected is not None:
            return status == self.expected
        return status < 400 if not self.function else status != 404 and status < 500


@dataclass
class Outcome:
    check: str
    url: str
    ok: bool
    status: int | None
    latency_ms: float
    detail: str = ""


@dataclass
class SmokeReport(Result):
    env: str
    outcomes: list[Outcome] = field(default_factory=list)

    def rows(self) -> Table:
        return Table(
            ["check", "status", "latency", "detail"],
            [
                [
                    o.check,
                    ("ok " if o.ok else "FAIL ") + str(o.status or "-"),
                    f"{o.latency_ms:.0f} ms",
                    o.detail or o.url,
                ]
                for o in self.outcomes
            ],
        )

    @property
    def failed(self) -> list[str]:
        return [o.check for o in self.outcomes if not o.ok]

    def footer(self) -> str:
        return f"{len(self.outcomes) - len(self.failed)}/{len(self.outcomes)} checks passed on {self.env}"

    def failure(self) -> OpsError | None:
        return OperationFailed(f"{self.env} is not serving: {', '.join(self.failed)}") if self.failed else None


def page_url(value: str) -> str | None:
    """The frontend as a URL (`app.example.com` gets https://); None when it names no URL."""
    value = value.strip()
    if value.startswith(("http://", "https://")):
        return value
    return f"https://{value}" if value and " " not in value and "." in value else None


def probes(config: Config, env: Environment) -> list[Probe]:
    found = []
    frontend = page_url(env.frontend)
    if frontend:
        found.append(Probe("frontend", "GET", frontend))
    base = env.functions_url.rstrip("/")
    for slug in local_functions(config):
        override = config.smoke.functions.get(slug)
        if override:
            method, path, expected = override
            found.append(Probe(f"function {slug}", method, f"{base}/{slug}{path}", expected, function=True))
        else:
            found.append(Probe(f"function {slug}", "OPTIONS", f"{base}/{slug}", function=True))
    found += [Probe(url, "GET", url) for url in config.smoke.urls]
    return found


def run_probe(client: object, probe: Probe, timeout: float) -> Outcome:
    import httpx

    assert isinstance(client, httpx.Client)
    started, status, detail = time.monotonic(), None, ""
    for attempt in range(2):  # one retry: a cold function or a dropped connection gets a second chance
        started = time.monotonic()
        try:
            response = client.request(
                probe.method,
                probe.url,
                timeout=timeout,
                headers={"Origin": "https://ops-smoke.invalid", "Access-Control-Request-Method": "POST"},
            )
            status, detail = response.status_code, ""
            if probe.passes(status) or status < 500:
                break
        except httpx.HTTPError as error:
            status, detail = None, f"{type(error).__name__}: {error}"
        if attempt == 0:
            time.sleep(0.5)
    latency = (time.monotonic() - started) * 1000
    ok = status is not None and probe.passes(status)
    if not ok and not detail:
        detail = f"{probe.method} {probe.url} answered {status}" + (
            f", expected {probe.expected}" if probe.expected is not None else ""
        )
    return Outcome(probe.check, probe.url, ok, status, round(latency, 1), detail)


def smoke(config: Config, env: str | None) -> SmokeReport:
    import httpx

    environment = config.env(env or config.workflows.preprod)
    checks = probes(config, environment)
    if not checks:
        raise UserError(f"nothing to check on {environment.name}: give it a frontend URL, functions, or [smoke] urls")
    with httpx.Client(follow_redirects=False) as client, ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda p: run_probe(client, p, config.smoke.timeout), checks))
    return SmokeReport(environment.name, outcomes)
