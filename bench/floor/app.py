"""The floor: the thinnest DRF server doing the SQL of one adjustment, a bulk batch and a read.

An APIView per path (a read, PATCH, adjust, and a bulk batch in set-based SQL as
bench/pgbench/batch.sql), no middleware, no authentication, permission, throttling, cache or
idempotency, no validation beyond reading the fields: what Django's handler, DRF's request
and response and psycopg cost at the least, for the same rows as the product writes and
reads. A single write is one transaction: lock the order (with its lines), update the line,
update the order (version, updated_at, ledger_head), insert the ledger row and the outbox
row, then answer the order as the product does. sha256(previous head || version) stands in
for the product's chain hash (history.chain), as in bench/pgbench/single.sql. It runs on a
copy of the bench database: its rows do not verify as a chain.
"""

import hashlib
import uuid

import orjson
from django.db import connection, transaction
from django.http import HttpResponse
from django.urls import path
from rest_framework.response import Response
from rest_framework.views import APIView

LOCK = (
    "SELECT o.version, o.status, o.reference, o.customer_id, o.ledger_head, o.created_at, "
    "o.updated_at, l.id, l.product_id, p.sku, l.quantity FROM orders_order o "
    "JOIN orders_orderline l ON l.order_id = o.id JOIN inventory_product p ON p.id = l.product_id "
    "WHERE o.id = %s ORDER BY l.id FOR UPDATE OF o"
)
READ = (
    "SELECT o.customer_id, o.reference, o.status, o.version, o.created_at, o.updated_at, "
    "p.sku, l.quantity FROM orders_order o JOIN orders_orderline l ON l.order_id = o.id "
    "JOIN inventory_product p ON p.id = l.product_id WHERE o.id = %s ORDER BY l.id"
)
UPDATE_LINE = "UPDATE orders_orderline SET quantity = %s WHERE id = %s"
UPDATE_ORDER = (
    "UPDATE orders_order SET version = %s, updated_at = now(), ledger_head = %s WHERE id = %s "
    "RETURNING updated_at"
)
INSERT_LEDGER = (
    "INSERT INTO history_orderledgerentry (event_id, order_id, product_id, sku, version, "
    "event_type, delta, quantity_before, quantity_after, actor, source, reason_code, reason, "
    "occurred_at, correlation_id, idempotency_key, prev_hash, hash) VALUES (%s, %s, %s, %s, %s, "
    "'order.quantity_adjusted', %s, %s, %s, 'bench-floor', 'api', 'unspecified', %s, now(), "
    "%s, '', %s, %s)"
)
INSERT_OUTBOX = (
    "INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id, aggregate_version, "
    "event_type, payload, created_at, attempts, last_error) VALUES (%s, 'order', %s, %s, "
    "'order.quantity_adjusted', %s::jsonb, now(), 0, '')"
)


# A bulk batch in set-based statements, as bench/pgbench/batch.sql: the items' orders locked
# in id order, then one statement of data-modifying CTEs (ledger rows, lines, orders, outbox
# events). It assumes one item per order, as the load generator sends.
LOCK_MANY = "SELECT id FROM orders_order WHERE id = ANY(%s) ORDER BY id FOR UPDATE"
WRITE_MANY = """
WITH items AS (
  SELECT * FROM unnest(%s::bigint[], %s::text[], %s::int[]) AS i(order_id, sku, delta)
), targets AS (
  SELECT i.order_id, i.delta, l.id AS line_id, l.product_id, p.sku, l.quantity AS before,
    o.version + 1 AS version, o.ledger_head AS prev, o.status, o.reference, o.customer_id
  FROM items i JOIN orders_order o ON o.id = i.order_id
  JOIN inventory_product p ON p.sku = i.sku
  JOIN orders_orderline l ON l.order_id = i.order_id AND l.product_id = p.id
), ledger AS (
  INSERT INTO history_orderledgerentry (event_id, order_id, product_id, sku, version,
    event_type, delta, quantity_before, quantity_after, actor, source, reason_code, reason,
    occurred_at, correlation_id, idempotency_key, prev_hash, hash)
  SELECT gen_random_uuid(), order_id, product_id, sku, version, 'order.quantity_adjusted',
    delta, before, before + delta, 'bench-floor', 'api', 'unspecified', %s, now(),
    md5(random()::text), '', prev, sha256(prev || int4send(version))
  FROM targets ORDER BY order_id RETURNING 1
), lines AS (
  UPDATE orders_orderline l SET quantity = t.before + t.delta FROM targets t
  WHERE l.id = t.line_id RETURNING 1
), orders AS (
  UPDATE orders_order o SET version = t.version, updated_at = now(),
    ledger_head = sha256(t.prev || int4send(t.version))
  FROM targets t WHERE o.id = t.order_id RETURNING 1
), outbox AS (
  INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id, aggregate_version,
    event_type, payload, created_at, attempts, last_error)
  SELECT gen_random_uuid(), 'order', order_id::text, version, 'order.quantity_adjusted',
    jsonb_build_object('order_id', order_id, 'aggregate_version', version, 'status', status,
      'reference', reference, 'customer_id', customer_id,
      'changes', jsonb_build_array(jsonb_build_object('sku', sku, 'before', before,
        'after', before + delta, 'delta', delta)),
      'actor', 'bench-floor', 'source', 'api', 'reason', %s::text, 'reason_code', 'unspecified'),
    now(), 0, ''
  FROM targets ORDER BY order_id RETURNING 1
)
SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM ledger), (SELECT count(*) FROM outbox)
"""


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _order(order_id: int, head: tuple, lines: list[tuple[str, int]]) -> dict:
    customer, reference, status, version, created_at, updated_at = head
    return {
        "id": order_id,
        "customer": customer,
        "reference": reference,
        "status": status,
        "version": version,
        "created_at": _iso(created_at),
        "updated_at": _iso(updated_at),
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def order_write(order_id: int, sku: str, *, quantity=None, delta=None, reason: str = "") -> dict:
    """Lock the order, set one line (absolute quantity or delta), record it; one transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(LOCK, [order_id])
        rows = cursor.fetchall()
        if not rows:
            return None
        version, status, reference, customer, prev, created_at = rows[0][:6]
        line = next((r for r in rows if r[9] == sku), None)
        if line is None:
            return None
        line_id, product_id, before = line[7], line[8], line[10]
        after = quantity if quantity is not None else before + delta
        version += 1
        prev = bytes(prev)
        head = hashlib.sha256(prev + version.to_bytes(4, "big")).digest()
        event_id, correlation = uuid.uuid4(), uuid.uuid4().hex
        cursor.execute(UPDATE_LINE, [after, line_id])
        cursor.execute(UPDATE_ORDER, [version, head, order_id])
        (updated_at,) = cursor.fetchone()
        cursor.execute(
            INSERT_LEDGER,
            [event_id, order_id, product_id, sku, version, after - before, before, after,
             reason, correlation, prev, head],
        )  # fmt: skip
        payload = {
            "order_id": order_id,
            "aggregate_version": version,
            "status": status,
            "reference": reference,
            "customer_id": customer,
            "changes": [{"sku": sku, "before": before, "after": after, "delta": after - before}],
            "actor": "bench-floor",
            "source": "api",
            "reason": reason,
            "reason_code": "unspecified",
            "correlation_id": correlation,
        }
        cursor.execute(
            INSERT_OUTBOX, [event_id, str(order_id), version, orjson.dumps(payload).decode()]
        )
    lines = [(r[9], after if r[7] == line_id else r[10]) for r in rows]
    return _order(order_id, (customer, reference, status, version, created_at, updated_at), lines)


class OrderApi(APIView):
    def get(self, request, order_id: int):
        with connection.cursor() as cursor:
            cursor.execute(READ, [order_id])
            rows = cursor.fetchall()
        if not rows:
            return Response({"detail": "not found"}, status=404)
        return Response(_order(order_id, rows[0][:6], [r[6:] for r in rows]))

    def patch(self, request, order_id: int):
        data = request.data
        line = data["lines"][0]
        order = order_write(
            order_id, line["sku"], quantity=int(line["quantity"]), reason=data.get("reason", "")
        )
        return Response(order) if order else Response({"detail": "not found"}, status=404)


class OrderAdjustApi(APIView):
    def post(self, request, order_id: int):
        data = request.data
        order = order_write(
            order_id, data["sku"], delta=int(data["delta"]), reason=data.get("reason", "")
        )
        return Response(order) if order else Response({"detail": "not found"}, status=404)


class BulkAdjustApi(APIView):
    def post(self, request):
        data = request.data
        items, reason = data["items"], data.get("reason", "")
        orders = [int(item["order"]) for item in items]
        skus = [item["sku"] for item in items]
        deltas = [int(item["delta"]) for item in items]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(LOCK_MANY, [orders])
            cursor.execute(WRITE_MANY, [orders, skus, deltas, reason, reason])
            applied = cursor.fetchone()[0]
        return Response({"applied": applied, "failed": len(items) - applied})


def healthz(request):
    return HttpResponse(b'{"status":"ok"}', content_type="application/json")


urlpatterns = [
    path("healthz", healthz),
    path("api/v1/orders/<int:order_id>/", OrderApi.as_view()),
    path("api/v1/orders/<int:order_id>/adjust/", OrderAdjustApi.as_view()),
    path("api/v1/adjustments/bulk/", BulkAdjustApi.as_view()),
]
