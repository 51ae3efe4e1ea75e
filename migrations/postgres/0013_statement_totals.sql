-- message_totals (0011) kept by statement-level triggers: a statement that changes many
-- messages (a prune batch of 1,000, a batch of attempt records) updates the one totals row
-- once, not once per message. Per-row triggers left a dead version of that row per
-- message (a scrape after a big prune took 55 ms) and made every delivery wait on it.
-- A statement-level trigger sees the changed rows through transition tables; those cannot
-- be combined with a column list (`UPDATE OF status`) or WHEN, so the functions work out
-- whether the counts moved and touch the row only then.

DROP TRIGGER message_totals_insert ON messages;
DROP TRIGGER message_totals_update ON messages;
DROP TRIGGER message_totals_delete ON messages;
DROP FUNCTION message_totals_count();

-- Moves the totals by these amounts; the row is written only when one is not zero.
CREATE FUNCTION message_totals_add(d BIGINT, f BIGINT) RETURNS void LANGUAGE sql AS $$
    UPDATE message_totals SET delivered = delivered + d, failed = failed + f
    WHERE id = 1 AND (d <> 0 OR f <> 0);
$$;

CREATE FUNCTION message_totals_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_totals_add(
        COUNT(*) FILTER (WHERE status = 'delivered'),
        COUNT(*) FILTER (WHERE status = 'failed'))
    FROM new_rows;
    RETURN NULL;
END;
$$;

CREATE FUNCTION message_totals_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Both tables hold the same messages (before and after), so the change in each count
    -- is the difference of the two counts.
    PERFORM message_totals_add(
        (SELECT COUNT(*) FROM new_rows WHERE status = 'delivered')
            - (SELECT COUNT(*) FROM old_rows WHERE status = 'delivered'),
        (SELECT COUNT(*) FROM new_rows WHERE status = 'failed')
            - (SELECT COUNT(*) FROM old_rows WHERE status = 'failed'));
    RETURN NULL;
END;
$$;

CREATE FUNCTION message_totals_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM message_totals_add(
        -COUNT(*) FILTER (WHERE status = 'delivered'),
        -COUNT(*) FILTER (WHERE status = 'failed'))
    FROM old_rows;
    RETURN NULL;
END;
$$;

CREATE TRIGGER message_totals_insert AFTER INSERT ON messages
REFERENCING NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION message_totals_inserted();

CREATE TRIGGER message_totals_update AFTER UPDATE ON messages
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
FOR EACH STATEMENT EXECUTE FUNCTION message_totals_updated();

CREATE TRIGGER message_totals_delete AFTER DELETE ON messages
REFERENCING OLD TABLE AS old_rows
FOR EACH STATEMENT EXECUTE FUNCTION message_totals_deleted();
