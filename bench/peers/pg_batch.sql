-- pgbench: 100 events per transaction.
\set n random(1, 1000000000)
INSERT INTO peer_chain.events (org, event)
SELECT 'bench-org', jsonb_build_object(
    'organization_id', 'bench-org', 'project_id', 'proj-' || ((:n + g) % 7), 'event_category', 'data',
    'event_type', 'trace.deleted', 'resource_type', 'trace', 'resource_id', 'trace-' || (:n + g),
    'action', 'delete', 'actor_type', 'user', 'actor_id', 'user-' || ((:n + g) % 13),
    'actor_email', 'user' || ((:n + g) % 13) || '@example.com',
    'metadata', jsonb_build_object('reason', 'scheduled cleanup #' || (:n + g), 'spans', (:n + g) % 97))
FROM generate_series(1, 100) AS g;
