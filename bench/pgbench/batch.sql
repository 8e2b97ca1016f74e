-- The raw PostgreSQL limit for batched adjustments (bench/load.py, `make bench`): the write
-- of single.sql for 1,000 orders per transaction, in set-based statements. The 1,000
-- distinct orders are 1 + (:s + 7919 g) % 10000 for g < 1000 (7919 is prime, so no
-- repeats); each gets +1 on line :k. Orders are locked in id order (no deadlocks), then
-- one INSERT for the ledger, one UPDATE each for the orders and the lines, one INSERT for
-- the outbox (one event per order, as for single writes). Rows/s = tps x 1000. Needs the
-- rows bench/seed.py makes. Run with -M prepared.
-- The hash chain (issue 11), as in single.sql: each ledger row carries its order's head as
-- prev_hash and a new hash, sha256() of that head and the new version standing in for the
-- application's (history.chain, in Python), which the UPDATE makes the order's
-- ledger_head; reason code `unspecified`. The ledger row is inserted before the orders'
-- UPDATE so that it reads the old head (the UPDATE computes the same new one).
\set s random(0, 9999)
\set k random(0, 2)
BEGIN;
SELECT count(*) FROM (
  SELECT id FROM orders_order
  WHERE id IN (SELECT 1 + (:s + 7919 * g) % 10000 FROM generate_series(0, 999) AS g)
  ORDER BY id FOR UPDATE) AS locked;
INSERT INTO history_orderledgerentry (event_id, order_id, product_id, sku, version, event_type,
    delta, quantity_before, quantity_after, actor, source, reason_code, reason, occurred_at,
    correlation_id, idempotency_key, prev_hash, hash)
  SELECT md5('pgbench-' || o.id || '-' || (o.version + 1))::uuid, o.id, l.product_id, p.sku,
    o.version + 1, 'order.quantity_adjusted', 1, l.quantity, l.quantity + 1,
    'bench-integrator', 'api', 'unspecified', 'pgbench batch adjustment', now(),
    md5(random()::text), '', o.ledger_head, sha256(o.ledger_head || int4send(o.version + 1))
  FROM orders_order o
  JOIN orders_orderline l ON l.order_id = o.id AND l.product_id = 1 + (3 * o.id + :k) % 50
  JOIN inventory_product p ON p.id = l.product_id
  WHERE o.id IN (SELECT 1 + (:s + 7919 * g) % 10000 FROM generate_series(0, 999) AS g)
  ORDER BY o.id;
UPDATE orders_order SET version = version + 1, updated_at = now(),
    ledger_head = sha256(ledger_head || int4send(version + 1))
  WHERE id IN (SELECT 1 + (:s + 7919 * g) % 10000 FROM generate_series(0, 999) AS g);
UPDATE orders_orderline SET quantity = quantity + 1
  WHERE order_id IN (SELECT 1 + (:s + 7919 * g) % 10000 FROM generate_series(0, 999) AS g)
    AND product_id = 1 + (3 * order_id + :k) % 50;
INSERT INTO history_outboxevent (event_id, aggregate_type, aggregate_id, aggregate_version,
    event_type, payload, created_at, attempts, last_error)
  SELECT md5('pgbench-' || o.id || '-' || o.version)::uuid, 'order', o.id::text, o.version,
    'order.quantity_adjusted',
    jsonb_build_object('order_id', o.id, 'aggregate_version', o.version, 'status', o.status,
      'reference', o.reference, 'customer_id', o.customer_id,
      'changes', jsonb_build_array(jsonb_build_object('sku', p.sku,
        'before', l.quantity - 1, 'after', l.quantity, 'delta', 1)),
      'actor', 'bench-integrator', 'source', 'api', 'reason', 'pgbench batch adjustment',
      'reason_code', 'unspecified', 'correlation_id', md5(random()::text), 'occurred_at', now()),
    now(), 0, ''
  FROM orders_order o
  JOIN orders_orderline l ON l.order_id = o.id AND l.product_id = 1 + (3 * o.id + :k) % 50
  JOIN inventory_product p ON p.id = l.product_id
  WHERE o.id IN (SELECT 1 + (:s + 7919 * g) % 10000 FROM generate_series(0, 999) AS g)
  ORDER BY o.id;
END;
