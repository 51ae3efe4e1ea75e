//! `scanhook upload FILE...`: another scanner's findings sent to a running server
//! (`POST /api/v1/uploads`), with the repository, ref, commit and author taken from the
//! CI's variables and the git checkout, as `semgrep ci` takes them. Exits 1 when the
//! upload opened a finding of a rule in Block mode (so it gates a build), 2 on an error.

use super::client::{Client, ClientArgs};
use crate::api::uploads::UploadOut;
use clap::Args;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct UploadArgs {
    /// SARIF 2.1.0 logs or `semgrep scan --json` output files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// What the files hold: auto, sarif or semgrep-json.
    #[arg(long, default_value = "auto", value_parser = ["auto", "sarif", "semgrep-json"])]
    pub format: String,
    /// The project (default: the CI's repository, else the git remote `origin`'s path).
    #[arg(long)]
    pub repo: Option<String>,
    /// The scanned ref (default: the CI's ref, else the checked-out branch).
    #[arg(long = "ref")]
    pub git_ref: Option<String>,
    /// The scanned commit (default: the CI's commit, else `HEAD`).
    #[arg(long)]
    pub commit: Option<String>,
    /// Makes the upload diff-aware against this ref: it closes nothing, and findings
    /// already known there neither notify as new nor fail the build.
    #[arg(long, env = "SEMGREP_BASELINE_REF")]
    pub baseline_ref: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// The exit code a command asks for, its message already printed.
#[derive(Debug)]
pub struct Exit(pub u8);

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {}", self.0)
    }
}

impl std::error::Error for Exit {}

#[derive(Serialize)]
struct Printed<'a> {
    uploads: &'a [UploadOut],
    blocking: i64,
}

pub async fn run(args: UploadArgs) -> anyhow::Result<()> {
    let outs = match upload_all(&args).await {
        Ok(outs) => outs,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Err(Exit(2).into());
        }
    };
    let blocking: i64 = outs.iter().map(|o| o.blocking).sum();
    if args.client.json {
        let printed = Printed {
            uploads: &outs,
            blocking,
        };
        println!("{}", serde_json::to_string(&printed)?);
    } else {
        for out in &outs {
            for s in &out.scans {
                let c = &s.scan.counts;
                println!(
                    "{}: {} open, {} new, {} fixed, {} blocking ({} {}) {}",
                    s.tool,
                    c.findings,
                    c.opened,
                    c.fixed,
                    c.blocking,
                    s.scan.repository,
                    s.scan.branch,
                    s.url
                );
            }
        }
    }
    if blocking > 0 {
        eprintln!("{blocking} finding(s) of rules in Block mode are new in this upload: failing");
        return Err(Exit(1).into());
    }
    Ok(())
}

async fn upload_all(args: &UploadArgs) -> anyhow::Result<Vec<UploadOut>> {
    let client = Client::new(&args.client)?;
    let here = std::env::current_dir()?;
    let git = Git::at(&here);
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let mut query = metadata(args, &env, &git)?;
    query.insert("format", args.format.clone());
    query.insert("changes", args.client.json.to_string());
    let root = git.toplevel().unwrap_or_else(|| here.display().to_string());
    query.insert("root", root);
    let mut outs = Vec::with_capacity(args.files.len());
    for file in &args.files {
        let bytes = std::fs::read(file)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
        // One id per file: the client's retries of it change nothing twice.
        query.insert("unique_id", crate::ids::random_base62(22));
        let path = format!("/api/v1/uploads?{}", encode(&query));
        let out: UploadOut = client
            .post_bytes(&path, bytes, 3, Duration::from_secs(30))
            .await
            .map_err(|e| e.context(format!("uploading {}", file.display())))?;
        outs.push(out);
    }
    Ok(outs)
}

/// The upload's metadata, flags first, then the CI's variables, then the checkout.
fn metadata(
    args: &UploadArgs,
    env: &dyn Fn(&str) -> Option<String>,
    git: &Git,
) -> anyhow::Result<BTreeMap<&'static str, String>> {
    let first = |keys: &[&str]| keys.iter().find_map(|k| env(k));
    let mut q = BTreeMap::new();
    let repo = args
        .repo
        .clone()
        .or_else(|| {
            first(&[
                "SEMGREP_REPO_NAME",
                "GITHUB_REPOSITORY",
                "CI_PROJECT_PATH",
                "BITBUCKET_REPO_FULL_NAME",
            ])
        })
        .or_else(|| git.run(&["remote", "get-url", "origin"]).and_then(|u| repo_name(&u)))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no repository name: pass --repo (no CI variable names one and the checkout has no `origin` remote)"
            )
        })?;
    q.insert("repository", repo);
    let git_ref = args
        .git_ref
        .clone()
        .or_else(|| {
            first(&[
                "SEMGREP_BRANCH",
                "GITHUB_REF",
                "CI_COMMIT_REF_NAME",
                "BITBUCKET_BRANCH",
            ])
        })
        .or_else(|| git.run(&["symbolic-ref", "--short", "-q", "HEAD"]));
    let commit = args
        .commit
        .clone()
        .or_else(|| {
            first(&[
                "SEMGREP_COMMIT",
                "GITHUB_SHA",
                "CI_COMMIT_SHA",
                "BITBUCKET_COMMIT",
            ])
        })
        .or_else(|| git.run(&["rev-parse", "HEAD"]));
    let pr = first(&["SEMGREP_PR_ID", "CI_MERGE_REQUEST_IID", "BITBUCKET_PR_ID"]).or_else(|| {
        env("GITHUB_REF").and_then(|r| {
            r.strip_prefix("refs/pull/")
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        })
    });
    let github = env("GITHUB_SERVER_URL").zip(env("GITHUB_REPOSITORY"));
    let job = env("SEMGREP_JOB_URL")
        .or_else(|| env("CI_JOB_URL"))
        .or_else(|| {
            let (server, repo) = github.clone()?;
            Some(format!(
                "{server}/{repo}/actions/runs/{}",
                env("GITHUB_RUN_ID")?
            ))
        });
    let repo_url = env("SEMGREP_REPO_URL")
        .or_else(|| env("CI_PROJECT_URL"))
        .or_else(|| github.map(|(server, repo)| format!("{server}/{repo}")));
    // The commit's own facts, when the checkout has it.
    let of_commit = |format: &str| {
        let rev = commit.as_deref().unwrap_or("HEAD");
        git.run(&["log", "-1", &format!("--format={format}"), rev, "--"])
    };
    let facts = [
        ("commit_title", of_commit("%s")),
        ("commit_author_name", of_commit("%an")),
        ("commit_author_email", of_commit("%ae")),
        ("commit_timestamp", of_commit("%cI")),
    ];
    let optional = [
        ("ref", git_ref),
        ("commit", commit.clone()),
        ("baseline_ref", args.baseline_ref.clone()),
        ("pull_request_id", pr),
        ("ci_job_url", job),
        ("repo_url", repo_url),
    ];
    for (key, value) in optional.into_iter().chain(facts) {
        if let Some(v) = value {
            q.insert(key, v);
        }
    }
    Ok(q)
}

/// `owner/name` from a remote URL (`git@host:owner/name.git`, `https://host/owner/name`).
fn repo_name(url: &str) -> Option<String> {
    let url = url.trim().trim_end_matches('/');
    let url = url.strip_suffix(".git").unwrap_or(url);
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.split_once('/')?.1,
        None => url.rsplit_once(':').map_or(url, |(_, p)| p),
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    match parts.as_slice() {
        [.., owner, name] => Some(format!("{owner}/{name}")),
        [name] => Some((*name).to_string()),
        [] => None,
    }
}

fn encode(query: &BTreeMap<&str, String>) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    query
        .iter()
        .map(|(k, v)| format!("{k}={}", utf8_percent_encode(v, NON_ALPHANUMERIC)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The git checkout the command runs in, if any.
struct Git<'a> {
    dir: &'a Path,
}

impl<'a> Git<'a> {
    fn at(dir: &'a Path) -> Git<'a> {
        Git { dir }
    }

    /// A git command's trimmed output, `None` when it fails or prints nothing.
    fn run(&self, args: &[&str]) -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(self.dir)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let text = String::from_utf8(out.stdout).ok()?;
        let text = text.trim();
        (out.status.success() && !text.is_empty()).then(|| text.to_string())
    }

    fn toplevel(&self) -> Option<String> {
        self.run(&["rev-parse", "--show-toplevel"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_names_from_remote_urls() {
        for (url, name) in [
            ("git@github.com:acme/api.git", "acme/api"),
            ("https://github.com/acme/api", "acme/api"),
            ("https://gitlab.example.com/group/sub/api.git/", "sub/api"),
            ("ssh://git@host:2222/acme/api.git", "acme/api"),
            ("/srv/git/api.git", "git/api"),
        ] {
            assert_eq!(repo_name(url).as_deref(), Some(name), "{url}");
        }
    }

    #[test]
    fn flags_win_over_ci_variables_which_win_over_the_checkout() {
        let args = UploadArgs {
            files: vec![],
            format: "auto".into(),
            repo: None,
            git_ref: Some("feature".into()),
            commit: None,
            baseline_ref: None,
            client: ClientArgs {
                server: String::new(),
                token: None,
                json: false,
            },
        };
        let vars = |k: &str| match k {
            "GITHUB_REPOSITORY" => Some("acme/api".to_string()),
            "GITHUB_REF" => Some("refs/pull/7/merge".to_string()),
            "GITHUB_SHA" => Some("abc123".to_string()),
            "GITHUB_SERVER_URL" => Some("https://github.com".to_string()),
            "GITHUB_RUN_ID" => Some("99".to_string()),
            _ => None,
        };
        let nowhere = Git::at(Path::new("/nonexistent-scanhook-dir"));
        let q = metadata(&args, &vars, &nowhere).unwrap();
        assert_eq!(q["repository"], "acme/api");
        assert_eq!(q["ref"], "feature");
        assert_eq!(q["commit"], "abc123");
        assert_eq!(q["pull_request_id"], "7");
        assert_eq!(
            q["ci_job_url"],
            "https://github.com/acme/api/actions/runs/99"
        );
        assert_eq!(q["repo_url"], "https://github.com/acme/api");
        assert!(
            !q.contains_key("commit_title"),
            "no checkout, no commit facts"
        );
    }

    #[test]
    fn without_a_name_anywhere_the_error_says_to_pass_repo() {
        let args = UploadArgs {
            files: vec![],
            format: "auto".into(),
            repo: None,
            git_ref: None,
            commit: None,
            baseline_ref: None,
            client: ClientArgs {
                server: String::new(),
                token: None,
                json: false,
            },
        };
        let nowhere = Git::at(Path::new("/nonexistent-scanhook-dir"));
        let e = metadata(&args, &|_| None, &nowhere).unwrap_err();
        assert!(e.to_string().contains("--repo"), "{e}");
    }
}
