"""The admin API under ``/_emulator/`` (JSON in, JSON out). Only loopback clients may use it,
even when the gateway itself is served ``--public``.

=======  ==========================  ========================================================
method   path                        effect
=======  ==========================  ========================================================
GET      ``/health``                 ``{"status": "ok", ...}`` once the server is ready
GET      ``/stats``                  counters (``?agreements=0`` leaves out per-agreement ones)
POST     ``/stats/reset``            zero the counters only
GET      ``/faults``                 the fault settings in force
POST     ``/faults``                 change some knobs: ``{"latency_ms": 100, ...}``
POST     ``/scripts``                ``{"agreement": id, "steps": [...]}`` replaces a script
GET      ``/scripts``                the steps still to come, by agreement id
GET      ``/agreements/<id>``        one agreement's status and counters
POST     ``/agreements/<id>``        ``{"status": "signed"}`` re-signs (or unsigns) by hand
POST     ``/clear``                  no faults, no scripts (agreements and stats kept)
POST     ``/reset``                  everything back to start-up, counters zeroed
=======  ==========================  ========================================================
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from unsign_worker.emulator.faults import FaultSettings
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.stats import AgreementCounts
from unsign_worker.exceptions import ConfigError
from unsign_worker.settings import is_loopback_host

Handler = Callable[[web.Request, EmulatorState], Awaitable[Any]]


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        raise ConfigError("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise ConfigError("body: must be a JSON object")
    return data


async def _stats(request: web.Request, state: EmulatorState) -> Any:
    per_agreement = request.query.get("agreements", "1") not in ("0", "false", "no")
    return state.stats.snapshot(in_flight=state.in_flight, per_agreement=per_agreement)


async def _reset_stats(request: web.Request, state: EmulatorState) -> Any:
    state.reset_stats()
    return {"ok": True}


async def _get_faults(request: web.Request, state: EmulatorState) -> Any:
    return state.faults.as_dict()


async def _set_faults(request: web.Request, state: EmulatorState) -> Any:
    state.faults = FaultSettings.from_mapping(await _body(request), base=state.faults)
    return state.faults.as_dict()


async def _set_script(request: web.Request, state: EmulatorState) -> Any:
    data = await _body(request)
    agreement_id, steps = data.get("agreement"), data.get("steps")
    if not isinstance(agreement_id, str) or not isinstance(steps, list):
        raise ConfigError("body: give {\"agreement\": id, \"steps\": [...]}")
    return {"agreement": agreement_id, "steps": state.set_script(agreement_id, steps)}


async def _get_scripts(request: web.Request, state: EmulatorState) -> Any:
    return {agreement_id: list(steps) for agreement_id, steps in state.scripts.items()}


def _agreement_view(state: EmulatorState, agreement_id: str) -> dict[str, object]:
    view = state.agreement(agreement_id).public()
    counts = state.stats.agreements.get(agreement_id) or AgreementCounts()
    view.update(requests=counts.requests, unsigns=counts.unsigns,
                after_success=counts.after_success,
                script=list(state.scripts.get(agreement_id, ())))
    return view


async def _get_agreement(request: web.Request, state: EmulatorState) -> Any:
    return _agreement_view(state, request.match_info["agreement_id"])


async def _set_agreement(request: web.Request, state: EmulatorState) -> Any:
    agreement_id = request.match_info["agreement_id"]
    state.set_status(agreement_id, str((await _body(request)).get("status", "")))
    return _agreement_view(state, agreement_id)


async def _clear(request: web.Request, state: EmulatorState) -> Any:
    state.clear()
    return {"ok": True}


async def _reset(request: web.Request, state: EmulatorState) -> Any:
    state.reset()
    return {"ok": True}


def _wrap(handler: Handler, state_key: web.AppKey[EmulatorState]
          ) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def route(request: web.Request) -> web.Response:
        if not is_loopback_host(request.remote or ""):
            return _json_error(403, "the admin API only answers loopback clients")
        try:
            result = await handler(request, request.app[state_key])
        except ConfigError as exc:
            return _json_error(400, str(exc))
        except KeyError as exc:
            return _json_error(404, f"no agreement has the id {exc.args[0]!r}")
        return web.json_response(result)
    return route


def add_admin_routes(app: web.Application, prefix: str,
                     state_key: web.AppKey[EmulatorState]) -> None:
    """Register the admin routes under ``prefix`` (no trailing slash)."""
    routes: list[tuple[str, str, Handler]] = [
        ("GET", "/stats", _stats),
        ("POST", "/stats/reset", _reset_stats),
        ("GET", "/faults", _get_faults),
        ("POST", "/faults", _set_faults),
        ("GET", "/scripts", _get_scripts),
        ("POST", "/scripts", _set_script),
        ("GET", "/agreements/{agreement_id}", _get_agreement),
        ("POST", "/agreements/{agreement_id}", _set_agreement),
        ("POST", "/clear", _clear),
        ("POST", "/reset", _reset),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, prefix + path, _wrap(handler, state_key))
