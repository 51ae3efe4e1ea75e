-- Findings of other scanners (SARIF and `semgrep scan --json` uploads). A scan is the scan
-- of one tool, and its findings are kept per tool: a full scan closes only the findings of
-- its own tool on its ref. `semgrep ci` scans are tool `semgrep`.
ALTER TABLE scans ADD COLUMN tool TEXT NOT NULL DEFAULT 'semgrep';
ALTER TABLE findings ADD COLUMN tool TEXT NOT NULL DEFAULT 'semgrep';
CREATE INDEX findings_by_ref_tool ON findings (project_id, git_ref, tool);
-- Rules of other tools join the rule board (under a policy per tool) when an upload first
-- reports them. `served` rules are the ones `semgrep ci` is given as its config: those
-- added as rule files. A rule known only from uploads is on the board for its mode but
-- has no body a Semgrep engine could run.
ALTER TABLE rules ADD COLUMN tool TEXT NOT NULL DEFAULT 'semgrep';
ALTER TABLE rules ADD COLUMN served INTEGER NOT NULL DEFAULT 1;
-- Findings an upload opened of rules in Block mode: `scanhook upload` fails the build on
-- them, and a retried upload must answer the same.
ALTER TABLE scans ADD COLUMN n_blocking INTEGER NOT NULL DEFAULT 0;
