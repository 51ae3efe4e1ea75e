-- The `semgrep_finding` array a scan notified, stored as an LZ4 frame: a scan of 100,000
-- findings wrote hundreds of megabytes of text into its row. Rows written before keep
-- theirs in `finding_payload`.
ALTER TABLE scans ADD COLUMN finding_payload_lz4 BYTEA;
-- Already compressed: TOAST would only try again.
ALTER TABLE scans ALTER COLUMN finding_payload_lz4 SET STORAGE EXTERNAL;
