"""The admin API under ``/_emulator/`` (JSON in, JSON out). Only loopback clients may use it,
even when the gateway itself is served ``--public``.

A web page the operator visits runs on a loopback client too, so the API also refuses what a
browser sends across sites: a request whose ``Origin`` is not the emulator's own
(``http://<Host>``, ``https://<Host>`` when it serves HTTPS) or whose ``Host`` is not a
loopback name (DNS rebinding), and a ``POST`` whose ``Content-Type`` is not
``application/json`` (a cross-site form or ``text/plain`` POST needs no CORS preflight; a JSON
one does, and the API answers none). All with 403 (415 for the content type).

=======  ==========================  ========================================================
method   path                        effect
=======  ==========================  ========================================================
GET      ``/health``                 ``{"status": "ok", ...}`` once the server is ready
GET      ``/stats``                  counters (``?agreements=0`` leaves out per-agreement ones)
POST     ``/stats/reset``            zero the counters only
GET      ``/faults``                 the fault settings in force
POST     ``/faults``                 change some knobs: ``{"latency_ms": 100, ...}``
GET      ``/options``                the answer options in force
POST     ``/options``                change some: ``{"sign_errors": true, "charset": "gbk"}``
POST     ``/scripts``                ``{"agreement": id, "steps": [...]}`` replaces a script
GET      ``/scripts``                the steps still to come, by agreement id
POST     ``/agreements``             load more agreements (the agreements file's format)
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

from unsign_worker.emulator.config import parse_agreements
from unsign_worker.emulator.errors import EmulatorConfigError
from unsign_worker.emulator.faults import FaultSettings
from unsign_worker.emulator.loopback import is_loopback
from unsign_worker.emulator.options import AnswerOptions
from unsign_worker.emulator.state import EmulatorState
from unsign_worker.emulator.stats import AgreementCounts

Handler = Callable[[web.BaseRequest, EmulatorState, str], Awaitable[Any]]


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _host_name(host: str) -> str:
    """``[::1]:8010`` -> ``::1``; ``localhost:8010`` -> ``localhost``."""
    if host.startswith("["):
        return host[1:].partition("]")[0]
    return host.rpartition(":")[0] if host.count(":") == 1 else host


def cross_site_refusal(request: web.BaseRequest) -> web.Response | None:
    """The answer to a request a browser may have sent from another site, else None."""
    host = request.headers.get("Host", "")
    if not is_loopback(_host_name(host)):
        return _json_error(403, "the admin API only answers requests for a loopback host name")
    origin = request.headers.get("Origin")
    if origin is not None and origin != f"{request.scheme}://{host}":
        return _json_error(403, "cross-site request refused: the Origin is not this emulator")
    if request.method == "POST" and request.content_type != "application/json":
        return _json_error(415, "a POST to the admin API must be Content-Type: application/json")
    return None


async def _body(request: web.BaseRequest) -> dict[str, Any]:
    try:
        data = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError:
        raise EmulatorConfigError("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise EmulatorConfigError("body: must be a JSON object")
    return data


async def _health(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    return {"status": "ok", "partner": state.config.partner, "agreements": len(state.book)}


async def _stats(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    per_agreement = request.query.get("agreements", "1") not in ("0", "false", "no")
    return state.stats.snapshot(in_flight=state.in_flight, per_agreement=per_agreement)


async def _reset_stats(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    state.reset_stats()
    return {"ok": True}


async def _get_faults(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    return state.faults.as_dict()


async def _set_faults(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    state.faults = FaultSettings.from_mapping(await _body(request), base=state.faults)
    return state.faults.as_dict()


async def _get_options(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    return state.options.as_dict()


async def _set_options(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    state.options = AnswerOptions.from_mapping(await _body(request), base=state.options)
    return state.options.as_dict()


async def _set_script(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    data = await _body(request)
    agreement_id, steps = data.get("agreement"), data.get("steps")
    if not isinstance(agreement_id, str) or not isinstance(steps, list):
        raise EmulatorConfigError("body: give {\"agreement\": id, \"steps\": [...]}")
    return {"agreement": agreement_id, "steps": state.set_script(agreement_id, steps)}


async def _get_scripts(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    return {agreement_id: list(steps) for agreement_id, steps in state.scripts.items()}


def _agreement_view(state: EmulatorState, agreement_id: str) -> dict[str, object]:
    view = state.agreement(agreement_id).public()
    counts = state.stats.agreements.get(agreement_id) or AgreementCounts()
    view.update(requests=counts.requests, unsigns=counts.unsigns,
                after_success=counts.after_success,
                script=list(state.scripts.get(agreement_id, ())))
    return view


async def _get_agreement(request: web.BaseRequest, state: EmulatorState,
                         agreement_id: str) -> Any:
    return _agreement_view(state, agreement_id)


async def _set_agreement(request: web.BaseRequest, state: EmulatorState,
                         agreement_id: str) -> Any:
    state.set_status(agreement_id, str((await _body(request)).get("status", "")))
    return _agreement_view(state, agreement_id)


async def _load_agreements(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    """Parse the whole body as an agreements file, then add all of it or none."""
    loaded = parse_agreements(await _body(request), source="body")
    if loaded.partner and loaded.partner != state.config.partner:
        raise EmulatorConfigError(f"body.partner: {loaded.partner!r} is not the partner this "
                                  f"emulator answers for ({state.config.partner!r})")
    added = state.add_agreements(loaded.agreements)
    return {"added": added, "agreements": len(state.book)}


async def _clear(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    state.clear()
    return {"ok": True}


async def _reset(request: web.BaseRequest, state: EmulatorState, _: str) -> Any:
    state.reset()
    return {"ok": True}


_ROUTES: dict[tuple[str, str], Handler] = {
    ("GET", "/health"): _health,
    ("GET", "/stats"): _stats,
    ("POST", "/stats/reset"): _reset_stats,
    ("GET", "/faults"): _get_faults,
    ("POST", "/faults"): _set_faults,
    ("GET", "/options"): _get_options,
    ("POST", "/options"): _set_options,
    ("POST", "/agreements"): _load_agreements,
    ("GET", "/scripts"): _get_scripts,
    ("POST", "/scripts"): _set_script,
    ("POST", "/clear"): _clear,
    ("POST", "/reset"): _reset,
}
_AGREEMENT_ROUTES: dict[str, Handler] = {"GET": _get_agreement, "POST": _set_agreement}
_AGREEMENTS = "/agreements/"


async def handle_admin(request: web.BaseRequest, state: EmulatorState,
                       subpath: str) -> web.Response:
    """Answer an admin request; ``subpath`` is the path after the admin prefix."""
    if not is_loopback(request.remote or ""):
        return _json_error(403, "the admin API only answers loopback clients")
    refusal = cross_site_refusal(request)
    if refusal is not None:
        return refusal
    argument = ""
    if subpath.startswith(_AGREEMENTS) and len(subpath) > len(_AGREEMENTS):
        handler = _AGREEMENT_ROUTES.get(request.method)
        argument = subpath[len(_AGREEMENTS):]
    else:
        handler = _ROUTES.get((request.method, subpath))
    if handler is None:
        return _json_error(404, f"no admin endpoint {request.method} {subpath}")
    try:
        result = await handler(request, state, argument)
    except EmulatorConfigError as exc:
        return _json_error(400, str(exc))
    except KeyError as exc:
        return _json_error(404, f"no agreement has the id {exc.args[0]!r}")
    except web.HTTPRequestEntityTooLarge:
        return _json_error(413, "body over 1 MiB: load a large set in several parts")
    return web.json_response(result)
