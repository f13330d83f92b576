-- pgbench: one event per transaction (the same members as the other peers).
\set n random(1, 1000000000)
INSERT INTO peer_chain.events (org, event) VALUES ('bench-org', jsonb_build_object(
    'organization_id', 'bench-org', 'project_id', 'proj-' || (:n % 7), 'event_category', 'data',
    'event_type', 'trace.deleted', 'resource_type', 'trace', 'resource_id', 'trace-' || :n,
    'action', 'delete', 'actor_type', 'user', 'actor_id', 'user-' || (:n % 13),
    'actor_email', 'user' || (:n % 13) || '@example.com',
    'metadata', jsonb_build_object('reason', 'scheduled cleanup #' || :n, 'spans', :n % 97)));
