-- The raw PostgreSQL limit for one quantity adjustment (bench/load.py, `make bench`): what
-- orders.services.order_set_quantities writes, as bare SQL on one connection per client.
-- Lock the order, read the line, update the line and the order, append the ledger row and
-- the outbox event. Needs the rows bench/seed.py makes: orders 1..10000 with three lines
-- each, line k on product 1 + (3 * order + k) % 50. Run with -M prepared.
-- The hash chain (issue 11): the ledger row carries the order's head as prev_hash and a new
-- 32-byte hash, which becomes the order's ledger_head, and the reason code the API records
-- when none is given (`unspecified`). The application computes that hash in Python
-- (history.chain); here sha256() of the previous head and the version stands in for it:
-- this script measures what PostgreSQL writes, not the encoding.
\set id random(1, 10000)
\set k random(0, 2)
\set q random(1, 100000)
BEGIN;
SELECT version + 1 AS v, status, reference, customer_id AS customer, ledger_head AS prev
  FROM orders_order WHERE id = :id FOR UPDATE \gset
SELECT l.id AS line, l.quantity AS before, l.product_id AS product, p.sku AS sku
  FROM orders_orderline l JOIN inventory_product p ON p.id = l.product_id
  WHERE l.order_id = :id AND l.product_id = 1 + (3 * :id + :k) % 50 \gset
UPDATE orders_orderline SET quantity = :q WHERE id = :line;
UPDATE orders_order SET version = :v, updated_at = now(),
    ledger_head = sha256(ledger_head || int4send(:v::int))
  WHERE id = :id RETURNING ledger_head AS head \gset
INSERT INTO history_orderledgerentry (event_id, order_id, product_id, sku, version, event_type,
    delta, quantity_before, quantity_after, actor, source, reason_code, reason, occurred_at,
    correlation_id, idempotency_key, prev_hash, hash)
  VALUES (md5('pgbench-' || :id || '-' || :v)::uuid, :id, :product, :sku::text, :v,
    'order.quantity_adjusted', :q::int - :before::int, :before, :q, 'bench-integrator', 'api',
    'unspecified', 'pgbench single adjustment', now(), md5(random()::text), '',
    :prev::bytea, :head::bytea);
INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id, aggregate_version,
    event_type, payload, created_at, attempts, last_error)
  VALUES (md5('pgbench-' || :id || '-' || :v)::uuid, 'order', :id, :v,
    'order.quantity_adjusted',
    jsonb_build_object('order_id', :id::bigint, 'aggregate_version', :v::int,
      'status', :status::text, 'reference', :reference::text, 'customer_id', :customer::bigint,
      'changes', jsonb_build_array(jsonb_build_object('sku', :sku::text, 'before', :before::int,
        'after', :q::int, 'delta', :q::int - :before::int)),
      'actor', 'bench-integrator', 'source', 'api', 'reason', 'pgbench single adjustment',
      'reason_code', 'unspecified', 'correlation_id', md5(random()::text),
      'occurred_at', now()),
    now(), 0, '');
END;
