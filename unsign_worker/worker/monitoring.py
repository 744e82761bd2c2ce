"""What monitoring sees: task events, inspect replies and log lines, with personal data masked.

Flower shows whatever the workers' events and inspect replies contain. The tasks already send a
masked ``argsrepr``/``kwargsrepr`` (see :class:`unsign_worker.worker.app.UnsignTask`), but a
producer that forgets them, or a worker's ``reserved``/``scheduled`` inspect reply (which carries
the raw arguments), or its ``conf``/``stats`` reply (which carries the broker password), would put
personal data or a secret on a screen. The functions here are the second line of defence that
``unsign-worker flower`` applies to everything before Flower stores or serves it:

- :func:`mask_text` masks emails (Unicode ones too), mainland mobile numbers, long digit runs
  (accounts, user ids) and ``sign``/``key`` values in free text; it is idempotent, so
  already-masked text is left as it is; inside a mapping (a ``params`` object of an inspect
  reply) personal fields are masked by name, whatever their value looks like;
- :func:`sanitize_task_event` and :func:`sanitize_inspect` apply it to events and inspect replies;
- :func:`format_task` is Flower's ``format_task`` hook for its HTML pages;
- :func:`connect_log_signals` hangs retry/failure logging and a masking log filter off Celery's
  signals for a worker process (call it once, e.g. from the app factory).

Pure apart from :func:`connect_log_signals`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from unsign_worker.protocol.masking import mask_field, mask_text

log = logging.getLogger(__name__)

#: Fields of a task event (and of Flower's task object) that carry free text.
TASK_TEXT_FIELDS = ("args", "kwargs", "result", "exception", "traceback")
#: Inspect replies that list requests with their raw arguments.
REQUEST_LISTS = ("active", "reserved", "scheduled")
#: Configuration keys whose values are never shown, whatever their content.
_SECRET_CONF = re.compile(r"API|TOKEN|KEY|SECRET|PASS|SIGNATURE|DATABASE|AUTH", re.IGNORECASE)

def _mask_value(value: Any) -> Any:
    """Mask every string inside ``value`` (str, list, tuple, dict); other values unchanged.

    In a mapping, a personal field (``user_email``, ``trans_account_out``…) is masked by its
    name, whatever its value looks like (a phone login, a short account)."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {k: ("********" if isinstance(k, str) and k.lower() in _SECRET_NAMES
                    else mask_text(mask_field(k, v)) if isinstance(v, str)
                    else _mask_value(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(v) for v in value)
    return value


_SECRET_NAMES = frozenset({"sign", "key", "password", "private_key"})


def sanitize_task_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a Celery event with the free-text task fields masked."""
    out = dict(event)
    for name in TASK_TEXT_FIELDS:
        if name in out and out[name] is not None:
            out[name] = _mask_value(out[name]) if not isinstance(out[name], str) else \
                mask_text(out[name])
    return out


def _sanitize_request(info: Any) -> Any:
    if not isinstance(info, Mapping):
        return info
    out = dict(info)
    if isinstance(out.get("request"), Mapping):  # scheduled: {"eta", "priority", "request"}
        out["request"] = _sanitize_request(out["request"])
        return out
    for name in ("args", "kwargs"):
        if name in out:
            out[name] = mask_text(out[name] if isinstance(out[name], str)
                                  else repr(_mask_value(out[name])))
    return out


def sanitize_conf(conf: Mapping[str, Any]) -> dict[str, Any]:
    """A worker's configuration with secret-looking settings hidden and URL passwords masked."""
    shown: dict[str, Any] = {}
    for name, value in conf.items():
        if _SECRET_CONF.search(str(name)) and not str(name).endswith("_url"):
            shown[name] = "********"
        else:
            shown[name] = _mask_value(value)
    return shown


def sanitize_inspect(method: str, response: Any) -> Any:
    """A worker's reply to an inspect ``method``, safe to show."""
    if method in REQUEST_LISTS and isinstance(response, list):
        return [_sanitize_request(item) for item in response]
    if method == "conf" and isinstance(response, Mapping):
        return sanitize_conf(response)
    if method == "stats" and isinstance(response, Mapping):
        out = dict(response)
        for holder in (out, out.get("consumer") if isinstance(out.get("consumer"), Mapping)
                       else None):
            if holder is not None and isinstance(holder.get("broker"), Mapping):
                broker = dict(holder["broker"])
                if broker.get("password"):
                    broker["password"] = "********"
                broker.pop("alternates", None)
                holder["broker"] = broker
        return _mask_value(out)
    return response


def format_task(task: Any) -> Any:
    """Flower's ``format_task`` hook: mask the free-text fields of a task before a page shows
    it. Flower passes a copy, so changing it in place is safe."""
    for name in TASK_TEXT_FIELDS:
        value = getattr(task, name, None)
        if isinstance(value, str):
            setattr(task, name, mask_text(value))
    return task


class MaskingFilter(logging.Filter):
    """Masks personal data and secrets in every record it sees (message and arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    log.info("task %s[%s] will retry: %s", getattr(request, "task", "?"),
             getattr(request, "id", "?"), mask_text(str(reason)))


def _on_failure(sender: Any = None, task_id: Any = None, exception: Any = None,
                **_: Any) -> None:
    if isinstance(exception, tuple(getattr(sender, "throws", ()) or ())):
        return  # a job that ended badly, not a bug: Celery logs it once, as expected
    log.error("task %s[%s] failed: %s: %s", getattr(sender, "name", "?"), task_id,
              type(exception).__name__, mask_text(str(exception)))


def _on_rejected_or_unknown(message: Any = None, name: Any = None, **_: Any) -> None:
    log.warning("message refused by the worker (%s); its body is not shown",
                name or "rejected")


def _add_filter(logger: logging.Logger | None = None, **_: Any) -> None:
    targets = [logger] if logger is not None else []
    targets.append(logging.getLogger())
    for target in targets:
        for handler in target.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())


def connect_log_signals() -> None:
    """Log retries (info) and failures (error) with the task id, never the arguments, and mask
    every log line of the worker. Safe to call more than once."""
    from celery import signals

    signals.task_retry.connect(_on_retry, weak=False, dispatch_uid="unsign-monitoring-retry")
    signals.task_failure.connect(_on_failure, weak=False,
                                 dispatch_uid="unsign-monitoring-failure")
    signals.task_rejected.connect(_on_rejected_or_unknown, weak=False,
                                  dispatch_uid="unsign-monitoring-rejected")
    signals.task_unknown.connect(_on_rejected_or_unknown, weak=False,
                                 dispatch_uid="unsign-monitoring-unknown")
    signals.after_setup_logger.connect(_add_filter, weak=False,
                                       dispatch_uid="unsign-monitoring-logger")
    signals.after_setup_task_logger.connect(_add_filter, weak=False,
                                            dispatch_uid="unsign-monitoring-task-logger")
    _add_filter()
