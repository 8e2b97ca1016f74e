"""Logs: one configuration for every process (gunicorn, the Celery worker and beat, the
relay and consumer commands), human-readable on a console by default, one JSON object a
line with LOG_FORMAT=json.

Every line, ours and the libraries' (`logging.getLogger` lines too), carries what is bound
to the context when it is written:

- `request_id`: the request's correlation id (config.middleware.CorrelationIdMiddleware:
  the caller's `X-Request-ID` when sane, else a new one), the one the ledger stores and the
  response echoes; in a Celery task, the id of the request that queued it;
- `user_id` (the user's pk: an API token's from the moment it is authenticated, a session's
  once something evaluated `request.user`), `ip` (the rate limits' client address);
- `trace_id`, `span_id`: the current OpenTelemetry span's, when one is recording
  (config/tracing.py);
- `view` and the ids in its URL (`order_id`, `transfer_id`, ...), a stock move's
  `stock_level`; `event_id`, `event_type` and the aggregate (`order_id`, `stock_level`, ...)
  where one event is concerned (the relay, the consumers); `task_id` in a Celery task.

Why structlog with django-structlog rather than the standard library with a JSON formatter:
the fields above live in the context (contextvars), not in each call, so the existing
`logger.info(...)` calls get them without a change, and the context has to follow a
request into the Celery tasks it queues. django-structlog does both (its request middleware
binds and clears the context and writes the `request_finished` line; its Celery receivers
carry the context in the task headers and bind `task_id`), structlog's ProcessorFormatter
renders the standard library's records and its own through one chain, and both are well
kept (DESIGN.md §9). What we add is small: our correlation id and trusted client address
instead of django-structlog's own, the user bound without a session lookup of our own, the
view's ids, the span ids, the event fields.
"""

import logging
import sys
import time
from contextlib import contextmanager
from functools import partial

import orjson
import structlog
from asgiref.sync import iscoroutinefunction
from django.dispatch import receiver
from django.http import StreamingHttpResponse
from django.utils.functional import SimpleLazyObject, empty
from django_structlog import signals as request_signals
from django_structlog.app_settings import app_settings
from django_structlog.celery import signals as task_signals
from django_structlog.middlewares import RequestMiddleware
from django_structlog.middlewares.request import (
    async_streaming_content_wrapper,
    sync_streaming_content_wrapper,
)
from django_structlog.middlewares.request import logger as _request_logger

try:  # the API package only; config/tracing.py installs the SDK that records spans
    from opentelemetry import trace as otel_trace
except ImportError:  # pragma: no cover - opentelemetry-api is a dependency
    otel_trace = None

FORMATS = ("console", "json")
# The standard library logger behind django-structlog's request lines: asked whether a level
# is on before a line is built.
_REQUEST_LOG = logging.getLogger("django_structlog.middlewares.request")


def _trace_ids(logger, method_name: str, event_dict: dict) -> dict:
    """`trace_id` and `span_id` (W3C hex) of the span current where the line is written."""
    if otel_trace is not None:
        context = otel_trace.get_current_span().get_span_context()
        if context.is_valid:
            event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
            event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _leading(logger, method_name: str, event_dict: dict) -> dict:
    """When, how bad, what and where first; then the rest as bound."""
    first = {key: event_dict.pop(key) for key in _FIRST if key in event_dict}
    return {**first, **event_dict}


_FIRST = ("timestamp", "level", "message", "logger")


def _dumps(value, **kwargs) -> str:
    return orjson.dumps(value, default=str).decode()


# Run on every line, a structlog one or a standard library record ("foreign").
_SHARED = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    _trace_ids,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _formatter(fmt: str) -> dict:
    if fmt == "json":
        render = [
            structlog.processors.format_exc_info,
            # "message", not structlog's "event": an event here is an outbox event.
            structlog.processors.EventRenamer("message"),
            _leading,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ]
    else:
        render = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "processors": [structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        # A standard library record's `extra={...}` becomes fields too.
        "foreign_pre_chain": [*_SHARED, structlog.stdlib.ExtraAdder()],
    }


def logging_config(*, fmt: str, level: str) -> dict:
    """The LOGGING setting (config/settings/base.py), and structlog's own configuration."""
    if fmt not in FORMATS:
        raise ValueError(f"LOG_FORMAT is {fmt!r}; it is one of {', '.join(FORMATS)}.")
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {name: _formatter(name) for name in FORMATS},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": fmt}},
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            # Its 5xx lines repeat request_finished's, with the traceback: kept. Its 4xx
            # warnings are request_finished's too: left out.
            "django.request": {"level": "ERROR"},
            # Not its start-up banner in every command's output; failed logins still are logged.
            "axes.apps": {"level": "WARNING"},
        },
    }


def bind(**fields) -> None:
    """Add fields to every line written from here until the context is cleared (at the end
    of the request or task)."""
    structlog.contextvars.bind_contextvars(**fields)


@contextmanager
def bound(**fields):
    """Fields on every line written inside the block."""
    with structlog.contextvars.bound_contextvars(**fields):
        yield


def event_fields(
    *,
    event_id,
    event_type: str = "",
    aggregate_type: str = "",
    aggregate_id="",
    correlation_id: str = "",
) -> dict:
    """The fields of a line about one event: its id and type, its aggregate under the name
    the rest of the logs use (`order_id`, `stock_level` for a stock level's `SKU@LOCATION`,
    `<type>_id` otherwise), and the id of the request that caused it."""
    fields = {"event_id": str(event_id)}
    if event_type:
        fields["event_type"] = event_type
    if aggregate_type:
        key = "stock_level" if aggregate_type == "stock" else f"{aggregate_type}_id"
        fields[key] = aggregate_id
    if correlation_id:
        fields["request_id"] = correlation_id
    return fields


# URL parameters bound under another name (`code` would shadow request_finished's status).
_URL_FIELDS = {"sku": "sku", "code": "location"}


def _user_bound(lazy: SimpleLazyObject):
    """AuthenticationMiddleware's lazy user, evaluated, its pk bound to the context."""
    user_id = getattr(lazy, "pk", None)  # evaluates it
    structlog.contextvars.bind_contextvars(user_id=user_id)
    return lazy._wrapped


class RequestLogMiddleware(RequestMiddleware):
    """django-structlog's request middleware (the context, the `request_finished` line),
    placed early so that every request gets its line (a 413 too), plus what is known once
    the URL is resolved: the view's name and the ids in its URL. The user is bound when
    something evaluates `request.user` (the admin, DRF's authentication), never by this
    middleware itself: django-structlog's own binding evaluated it on every request, a
    session lookup that cost more than the rest of the logging (bench, README)."""

    @staticmethod
    def bind_user_id(request) -> None:
        user = request.__dict__.get("user")
        if isinstance(user, SimpleLazyObject):
            if user._wrapped is empty:
                return
            user = user._wrapped
            if isinstance(user, SimpleLazyObject):  # ours, around AuthenticationMiddleware's
                if user._wrapped is empty:
                    return
                user = user._wrapped
        if user is not None:
            structlog.contextvars.bind_contextvars(user_id=getattr(user, "pk", None))

    def __call__(self, request):
        """django-structlog's prepare and handle_response, with the same context and lines,
        minus what a request paid for without a use: a uuid4 as request_id that the
        correlation id replaced at once, the `request_started` line built and dropped (it is
        DEBUG), the `request_finished` line built when its level is off (WARNING in make
        bench), a copy of the context for a response that does not stream, and its two
        signals sent when nothing but this module listened: 40-90 us of CPU a request
        (bench/README.md, "Round two"). An async stack, a request without a correlation id
        and the exception path keep django-structlog's own code."""
        correlation_id = getattr(request, "correlation_id", None)
        if correlation_id is None or iscoroutinefunction(self):
            return super().__call__(request)
        from config.api.throttling import client_ip

        request._log_started = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=correlation_id, ip=client_ip(request))
        if _listened(request_signals.bind_extra_request_metadata) or _REQUEST_LOG.isEnabledFor(
            app_settings.STATUS_START_LOG_LEVEL
        ):
            self._prepare(request)
        response = self.get_response(request)
        if hasattr(request, "_raised_exception"):
            super().handle_response(request, response)
            return response
        self.bind_user_id(request)
        level = self._log_level_for_status_code(response.status_code)
        if _listened(request_signals.bind_extra_request_finished_metadata) or (
            _REQUEST_LOG.isEnabledFor(level)
        ):
            log_kwargs = {"code": response.status_code, "request": self.format_request(request)}
            log_kwargs["duration_ms"] = round(
                (time.perf_counter() - request._log_started) * 1000, 1
            )
            request_signals.bind_extra_request_finished_metadata.send(
                sender=self.__class__,
                request=request,
                logger=_request_logger,
                response=response,
                log_kwargs=log_kwargs,
            )
            _request_logger.log(level, "request_finished", **log_kwargs)
        if isinstance(response, StreamingHttpResponse):
            context = structlog.contextvars.get_merged_contextvars(_request_logger)
            wrapper = (
                async_streaming_content_wrapper
                if response.is_async
                else sync_streaming_content_wrapper
            )
            response.streaming_content = wrapper(response.streaming_content, context)
        structlog.contextvars.clear_contextvars()
        return response

    def _prepare(self, request) -> None:
        """The `request_started` line and its signal, as django-structlog's prepare."""
        log_kwargs = {
            "request": self.format_request(request),
            "user_agent": request.META.get("HTTP_USER_AGENT"),
        }
        request_signals.bind_extra_request_metadata.send(
            sender=self.__class__, request=request, logger=_request_logger, log_kwargs=log_kwargs
        )
        _request_logger.log(app_settings.STATUS_START_LOG_LEVEL, "request_started", **log_kwargs)

    def process_view(self, request, view_func, view_args, view_kwargs):
        user = request.__dict__.get("user")
        if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
            request.user = SimpleLazyObject(partial(_user_bound, user))
        else:
            self.bind_user_id(request)
        match = request.resolver_match
        fields = {"view": match.view_name} if match and match.view_name else {}
        for name, value in view_kwargs.items():
            if name.endswith("_id"):
                fields[name] = value
            elif name in _URL_FIELDS:
                fields[_URL_FIELDS[name]] = value
        if fields:
            structlog.contextvars.bind_contextvars(**fields)


def _listened(signal) -> bool:
    """Whether a receiver other than this module's own (below) is connected."""
    return len(signal.receivers) > 1


# The two receivers serve django-structlog's own path (RequestLogMiddleware.__call__ falls
# back to it); the fast path does their work inline.
@receiver(request_signals.bind_extra_request_metadata)
def _request_bind(sender, request, logger, log_kwargs, **kwargs) -> None:
    from config.api.throttling import client_ip

    request._log_started = getattr(request, "_log_started", None) or time.perf_counter()
    fields = {"ip": client_ip(request)}
    correlation_id = getattr(request, "correlation_id", None)
    if correlation_id:  # the ledger's id, not django-structlog's own
        fields["request_id"] = correlation_id
    structlog.contextvars.bind_contextvars(**fields)


@receiver(request_signals.bind_extra_request_finished_metadata)
def _request_finished(sender, request, logger, response, log_kwargs, **kwargs) -> None:
    started = getattr(request, "_log_started", None)
    if started is not None and "duration_ms" not in log_kwargs:
        log_kwargs["duration_ms"] = round((time.perf_counter() - started) * 1000, 1)


# What a task's lines inherit from whoever queued it: who and which request, not the
# request's view or ids (a relay task kicked by one order's write relays many orders).
_CARRIED_INTO_TASKS = ("request_id", "user_id", "ip", "parent_task_id")


@receiver(task_signals.modify_context_before_task_publish)
def _task_context(sender, context: dict, **kwargs) -> None:
    for key in [key for key in context if key not in _CARRIED_INTO_TASKS]:
        del context[key]


@receiver(task_signals.bind_extra_task_metadata)
def _task_bind(sender, task, logger, **kwargs) -> None:
    structlog.contextvars.bind_contextvars(task=task.name)


def user_bind(user) -> None:
    """Called by the API token authentication: DRF authenticates inside the view, after
    django-structlog's middleware bound the (anonymous) session user."""
    structlog.contextvars.bind_contextvars(user_id=user.pk)
