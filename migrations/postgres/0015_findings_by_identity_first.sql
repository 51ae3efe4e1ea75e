-- One B-tree fewer written per new finding (issue 14: a first scan's 10,000 findings): the
-- unique key leads with the identity, (project_id, identity, git_ref), and so also serves
-- the lookups of an identity across a project's refs that `findings_by_identity` served;
-- the ref's findings are read through `findings_by_ref_tool`.
ALTER TABLE findings ADD CONSTRAINT findings_identity_ref UNIQUE (project_id, identity, git_ref);
ALTER TABLE findings DROP CONSTRAINT findings_project_id_git_ref_identity_key;
DROP INDEX findings_by_identity;
