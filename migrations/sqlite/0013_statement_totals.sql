-- The PostgreSQL twin of this migration makes its message_totals triggers statement-level.
-- SQLite has only row-level triggers, and its single writer never contends on the totals
-- row, so 0011's triggers stay; this file keeps the two folders numbered in step.
SELECT 1;
