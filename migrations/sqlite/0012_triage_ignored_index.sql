-- `/config` sends the ids of a project's triage-ignored findings with every scan. Without
-- this index that read walked every identity the project ever had (issue 14: not flat
-- with history); the ignored ones are few.
CREATE INDEX identities_ignored ON identities (project_id) WHERE triage_state = 'ignored';
