//! An upload as kept between `/results` and the `/complete` that applies it.
//!
//! `/results` has parsed and checked the upload already; `/complete` used to decompress
//! and parse the same JSON again inside its transaction, on the single SQLite writer (a
//! sixth of a 10,000-finding first scan's `/complete`, docs/BENCHMARKS.md). What is kept
//! instead is what `/complete` reads, in a binary form that reads back in place: each
//! distinct rule-metadata text once (a rule's findings all carry the same), the findings
//! pointing at theirs by number, the strings borrowed from the stored bytes. The whole is
//! one LZ4 frame, as the raw upload used to be; an upload kept by an older version (the
//! JSON as sent) still reads back.

use crate::domain::ci::{Finding, Results, SkippedPath};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;

/// What a kept upload's bytes begin with, after decompression: no JSON text begins with a
/// NUL, so an older kept upload (the JSON as sent) is never mistaken for one.
const MARK: &[u8] = b"\0scanhook-kept-1\0";

#[derive(Serialize, Deserialize)]
struct Kept<'a> {
    #[serde(borrow)]
    metadata: Vec<&'a str>,
    #[serde(borrow)]
    findings: Vec<KeptFinding<'a>>,
    #[serde(borrow)]
    ignores: Vec<KeptFinding<'a>>,
    #[serde(borrow)]
    searched_paths: Vec<&'a str>,
    #[serde(borrow)]
    renamed_paths: Vec<&'a str>,
    #[serde(borrow)]
    skipped_paths: Vec<&'a str>,
    #[serde(borrow)]
    rule_ids: Vec<&'a str>,
}

#[derive(Serialize, Deserialize)]
struct KeptFinding<'a> {
    check_id: &'a str,
    path: &'a str,
    line: i64,
    column: i64,
    end_line: i64,
    end_column: i64,
    message: &'a str,
    severity: i64,
    index: i64,
    commit_date: Option<&'a str>,
    syntactic_id: &'a str,
    match_based_id: Option<&'a str>,
    /// Which of [`Kept::metadata`] (none: the finding had no metadata).
    metadata: Option<u32>,
    is_blocking: bool,
}

/// The bytes to keep for a checked upload.
pub(crate) fn keep<'r>(results: &'r Results<'r>) -> anyhow::Result<Vec<u8>> {
    let mut metadata = Numbered::default();
    let findings = metadata.list(&results.findings);
    let ignores = metadata.list(&results.ignores);
    let kept = Kept {
        metadata: metadata.texts,
        findings,
        ignores,
        searched_paths: strs(&results.searched_paths),
        renamed_paths: strs(&results.renamed_paths),
        skipped_paths: results
            .skipped_paths
            .iter()
            .map(SkippedPath::path)
            .collect(),
        rule_ids: strs(&results.rule_ids),
    };
    // Encoded straight into the compressor (buffered: postcard writes a field at a time),
    // so the uncompressed form is never held whole beside the upload.
    use std::io::Write;
    let frame = lz4_flex::frame::FrameEncoder::new(Vec::new());
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, frame);
    out.write_all(MARK)?;
    postcard::to_io(&kept, &mut out)?;
    let frame = out.into_inner().map_err(|e| e.into_error())?;
    Ok(frame.finish()?)
}

fn strs(strings: &[String]) -> Vec<&str> {
    strings.iter().map(String::as_str).collect()
}

/// The distinct metadata texts of an upload, numbered in the order first met.
#[derive(Default)]
struct Numbered<'r> {
    texts: Vec<&'r str>,
    numbers: HashMap<&'r str, u32>,
}

impl<'r> Numbered<'r> {
    fn list(&mut self, findings: &'r [Finding<'r>]) -> Vec<KeptFinding<'r>> {
        findings
            .iter()
            .map(|f| KeptFinding {
                check_id: &f.check_id,
                path: &f.path,
                line: f.line,
                column: f.column,
                end_line: f.end_line,
                end_column: f.end_column,
                message: &f.message,
                severity: f.severity,
                index: f.index,
                commit_date: f.commit_date.as_deref(),
                syntactic_id: &f.syntactic_id,
                match_based_id: f.match_based_id.as_deref(),
                metadata: f.raw_metadata.map(|m| self.number(m.get())),
                is_blocking: f.is_blocking,
            })
            .collect()
    }

    fn number(&mut self, text: &'r str) -> u32 {
        let next = self.texts.len() as u32;
        *self.numbers.entry(text).or_insert_with(|| {
            self.texts.push(text);
            next
        })
    }
}

/// The upload back from what [`keep`] kept, once decompressed: read in place, its strings
/// borrowed from `bytes`. An upload kept by an older version is the JSON as sent.
pub(crate) fn read<'b>(bytes: &'b [u8]) -> anyhow::Result<Results<'b>> {
    let Some(rest) = bytes.strip_prefix(MARK) else {
        return Ok(Results::parse(bytes)?);
    };
    let kept: Kept<'b> = postcard::from_bytes(rest)?;
    // Each distinct text is checked as JSON once, not once per finding.
    let metadata: Vec<&'b RawValue> = kept
        .metadata
        .iter()
        .map(|text| serde_json::from_str(text))
        .collect::<Result<_, _>>()?;
    let finding = |f: KeptFinding<'b>| -> anyhow::Result<Finding<'b>> {
        let raw_metadata = match f.metadata {
            None => None,
            Some(n) => Some(*metadata.get(n as usize).ok_or_else(|| {
                anyhow::anyhow!("a kept upload names metadata {n} of {}", metadata.len())
            })?),
        };
        Ok(Finding {
            check_id: Cow::Borrowed(f.check_id),
            path: Cow::Borrowed(f.path),
            line: f.line,
            column: f.column,
            end_line: f.end_line,
            end_column: f.end_column,
            message: Cow::Borrowed(f.message),
            severity: f.severity,
            index: f.index,
            commit_date: f.commit_date.map(Cow::Borrowed),
            syntactic_id: Cow::Borrowed(f.syntactic_id),
            match_based_id: f.match_based_id.map(Cow::Borrowed),
            raw_metadata,
            is_blocking: f.is_blocking,
        })
    };
    let owned = |v: Vec<&str>| -> Vec<String> { v.into_iter().map(str::to_string).collect() };
    Ok(Results {
        findings: kept
            .findings
            .into_iter()
            .map(finding)
            .collect::<anyhow::Result<_>>()?,
        ignores: kept
            .ignores
            .into_iter()
            .map(finding)
            .collect::<anyhow::Result<_>>()?,
        searched_paths: owned(kept.searched_paths),
        renamed_paths: owned(kept.renamed_paths),
        skipped_paths: kept
            .skipped_paths
            .into_iter()
            .map(|p| SkippedPath::Path(p.to_string()))
            .collect(),
        rule_ids: owned(kept.rule_ids),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::scans::decompress;
    use serde_json::{json, Value};

    fn finding(i: usize, metadata: Option<Value>) -> Value {
        let mut f = json!({
            "check_id": format!("rule-{}", i % 2), "path": format!("src/é{i}.py"), "line": i,
            "column": 1, "end_line": i, "end_column": 9,
            "message": "a \"quoted\"\nmessage", "severity": 2, "index": i,
            "syntactic_id": format!("s{i}"), "is_blocking": i == 1,
        });
        if i == 0 {
            f["match_based_id"] = json!("m0");
            f["commit_date"] = json!("2026-12-07T00:00:00");
        }
        if let Some(m) = metadata {
            f["metadata"] = m;
        }
        f
    }

    /// An upload whose findings share one metadata text, one has its own and one has none,
    /// with strings that JSON escapes, and every list filled.
    fn upload() -> Vec<u8> {
        let shared = json!({"category": "security", "cwe": ["CWE-798"], "n": [1, {"x": null}]});
        serde_json::to_vec(&json!({
            "findings": [
                finding(0, Some(shared.clone())), finding(1, Some(shared)),
                finding(2, Some(json!({"other": true}))), finding(3, None),
            ],
            "ignores": [finding(4, Some(json!({})))],
            "searched_paths": ["src/a.py", "src/b.py"], "renamed_paths": ["old.py"],
            "skipped_paths": ["big.min.js", {"path": "vendor/x.py", "reason": "excluded"}],
            "rule_ids": ["rule-0", "rule-1"],
        }))
        .unwrap()
    }

    /// Everything `/complete` reads of an upload, comparable.
    fn seen(r: &Results<'_>) -> Value {
        let skipped: Vec<&str> = r.skipped_paths.iter().map(SkippedPath::path).collect();
        json!({
            "findings": r.findings, "ignores": r.ignores, "searched": r.searched_paths,
            "renamed": r.renamed_paths, "skipped": skipped, "rules": r.rule_ids,
        })
    }

    #[test]
    fn a_kept_upload_reads_back_as_uploaded() {
        let body = upload();
        let uploaded = Results::parse(&body).unwrap();
        let stored = decompress(&keep(&uploaded).unwrap()).unwrap();
        let read = read(&stored).unwrap();
        assert_eq!(seen(&read), seen(&uploaded));
        assert!(read.findings[3].raw_metadata.is_none(), "none stays none");
        // The shared text is kept once, and both findings read the same back.
        assert_eq!(
            read.findings[0].metadata().get(),
            read.findings[1].metadata().get()
        );
        let shared = read.findings[0].metadata().get();
        assert_eq!(
            stored
                .windows(shared.len())
                .filter(|w| *w == shared.as_bytes())
                .count(),
            1
        );
    }

    #[test]
    fn an_upload_kept_by_an_older_version_reads_back() {
        // Before, the JSON as sent was kept (decompressed, it is the body).
        let body = upload();
        let read = read(&body).unwrap();
        assert_eq!(seen(&read), seen(&Results::parse(&body).unwrap()));
    }

    #[test]
    fn damaged_kept_bytes_are_an_error() {
        let body = upload();
        let stored = decompress(&keep(&Results::parse(&body).unwrap()).unwrap()).unwrap();
        for cut in [
            MARK.len(),
            MARK.len() + 1,
            stored.len() / 2,
            stored.len() - 1,
        ] {
            assert!(read(&stored[..cut]).is_err(), "cut at {cut}");
        }
        // Whatever a byte is changed to, reading answers; it never panics.
        for at in MARK.len()..stored.len() {
            let mut bad = stored.clone();
            bad[at] ^= 0x5a;
            let _ = read(&bad);
        }
    }

    #[test]
    fn a_metadata_number_past_the_texts_is_an_error() {
        let body = upload();
        let uploaded = Results::parse(&body).unwrap();
        let mut numbered = Numbered::default();
        let findings = numbered.list(&uploaded.findings);
        let kept = Kept {
            metadata: vec![],
            findings,
            ignores: vec![],
            searched_paths: vec![],
            renamed_paths: vec![],
            skipped_paths: vec![],
            rule_ids: vec![],
        };
        let bytes = postcard::to_extend(&kept, MARK.to_vec()).unwrap();
        let error = format!("{:#}", read(&bytes).unwrap_err());
        assert!(error.contains("names metadata 0 of 0"), "{error}");
    }
}
