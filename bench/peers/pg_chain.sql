SET client_min_messages = warning;
-- The PostgreSQL peer of issue 18's benchmark, written here: a hash-chained
-- audit table as one would build it in plain PostgreSQL. A BEFORE INSERT
-- trigger numbers each event and links it to the previous one, holding the
-- organization's head row FOR UPDATE, so concurrent writers of one
-- organization serialise on that row (as they must for a chain).
DROP SCHEMA IF EXISTS peer_chain CASCADE;
CREATE SCHEMA peer_chain;

CREATE TABLE peer_chain.head (
    org  text PRIMARY KEY,
    seq  bigint NOT NULL,
    hash bytea NOT NULL
);

CREATE TABLE peer_chain.events (
    org           text NOT NULL,
    seq           bigint NOT NULL,
    ts            timestamptz NOT NULL DEFAULT clock_timestamp(),
    event         jsonb NOT NULL,
    previous_hash bytea NOT NULL,
    hash          bytea NOT NULL,
    PRIMARY KEY (org, seq)
);

CREATE FUNCTION peer_chain.link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    h peer_chain.head%ROWTYPE;
BEGIN
    INSERT INTO peer_chain.head VALUES (NEW.org, -1, decode(repeat('00', 32), 'hex')) ON CONFLICT DO NOTHING;
    SELECT * INTO h FROM peer_chain.head WHERE org = NEW.org FOR UPDATE;
    NEW.seq := h.seq + 1;
    NEW.previous_hash := h.hash;
    NEW.hash := sha256(h.hash || convert_to(NEW.seq::text || NEW.ts::text || NEW.event::text, 'UTF8'));
    UPDATE peer_chain.head SET seq = NEW.seq, hash = NEW.hash WHERE org = NEW.org;
    RETURN NEW;
END $$;

CREATE TRIGGER link BEFORE INSERT ON peer_chain.events
    FOR EACH ROW EXECUTE FUNCTION peer_chain.link();
