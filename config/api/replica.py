from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError
from rest_framework.exceptions import ValidationError

from config import replica


class ReplicaReadMixin:
    # Mix into an API view whose GET only reads, before its base classes. With a replica
    # configured (config.replica), the GET's queries may be served by the replica: the whole
    # request after authentication, serialization and a streamed body included (querysets
    # are lazy). Authentication, permissions and throttling read the primary: a revoked
    # token must be refused at once. The response says where the reads went (X-Read-From).
    # A read the replica fails (it went away) is run once more on the primary. (A comment,
    # not a docstring: drf-spectacular would publish a docstring as the description.)

    _read_route: replica.ReadRoute | None = None
    _read_token = None

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD"):
            return
        try:
            route = replica.read_route(
                user_id=request.user.pk if request.user.is_authenticated else None,
                min_lsn_header=request.headers.get(replica.MIN_LSN_HEADER),
            )
        except ValueError:
            raise ValidationError(
                {
                    replica.MIN_LSN_HEADER: [
                        "Must be an LSN as X-Commit-LSN gives it, e.g. 0/16B3748."
                    ]
                }
            ) from None
        if route is not None:
            self._read_route = route
            self._read_token = replica.read_route_enter(route)

    def handle_exception(self, exc):
        route = self._read_route
        if route is None or route.alias != replica.REPLICA:
            return super().handle_exception(exc)
        if not isinstance(exc, OperationalError | InterfaceError):
            return super().handle_exception(exc)
        replica.replica_failed(exc)
        self._read_route = replica.ReadRoute(DEFAULT_DB_ALIAS, replica.REPLICA_FAILED)
        replica.read_route_enter(self._read_route)
        try:
            handler = getattr(self, self.request.method.lower())
            return handler(self.request, *self.args, **self.kwargs)
        except Exception as retry_exc:  # noqa: BLE001 - handled as the view's own would be
            return super().handle_exception(retry_exc)

    def dispatch(self, request, *args, **kwargs):
        try:
            response = super().dispatch(request, *args, **kwargs)
        finally:
            if self._read_token is not None:
                replica.read_route_leave(self._read_token)
        route = self._read_route
        if route is not None:
            replica.read_counted(route)
            response[replica.READ_FROM_HEADER] = route.database
            if route.alias == replica.REPLICA and response.streaming:
                response.streaming_content = replica.routed_stream(
                    response.streaming_content, route
                )
        return response
