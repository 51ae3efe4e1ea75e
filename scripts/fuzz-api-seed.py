"""Seeds a fresh scanhook for scripts/fuzz-api, so that every operation that reads or changes
something existing has it: a rule, an integration notified of Block findings, a completed
scan with findings and queued messages, and a scan still running. Prints the ids as shell
assignments, which scripts/fuzz-api.toml reads through the environment.

Usage: python fuzz-api-seed.py BASE_URL ADMIN_TOKEN DEPLOYMENT
"""

import json
import pathlib
import sys
import urllib.request
import uuid

base, token, deployment = sys.argv[1:4]
data = pathlib.Path(__file__).resolve().parent.parent / "tests" / "data"


def call(method, path, body=None):
    request = urllib.request.Request(
        base + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def fixture(name):
    return json.loads((data / name).read_text())


def start_scan():
    body = fixture("01-post-scans.request.json")
    unique_id = str(uuid.uuid4())
    body["scan_metadata"]["unique_id"] = unique_id
    return call("POST", "/api/cli/v2/scans", body)["info"]["id"], unique_id


rules = call(
    "POST",
    "/api/v1/rules",
    {
        "files": [{"name": "sample-rules.yml", "content": (data / "sample-rules.yml").read_text()}],
        "mode": "block",
    },
)
# `.invalid` never resolves (RFC 6761): nothing is ever sent anywhere.
integration = call(
    "POST", "/api/v1/integrations", {"name": "fuzz", "url": "https://hooks.fuzz.invalid/semgrep"}
)["id"]
call("POST", "/api/v1/modes/block/notify", {"integration_ids": [integration]})

done, _ = start_scan()
call("POST", f"/api/agent/scans/{done}/results", fixture("03-post-results.request.json"))
call("POST", f"/api/agent/scans/{done}/complete", fixture("04-post-complete.request.json"))
running, unique_id = start_scan()
message = call("GET", "/api/v1/deliveries?limit=1")["deliveries"][0]["id"]

print(f"FUZZ_RULE_ID={rules['rules'][0]}")
print(f"FUZZ_INTEGRATION_ID={integration}")
print(f"FUZZ_SCAN_ID={done}")
print(f"FUZZ_RUNNING_SCAN_ID={running}")
print(f"FUZZ_UNIQUE_ID={unique_id}")
print(f"FUZZ_MESSAGE_ID={message}")
print(f"FUZZ_DEPLOYMENT={deployment}")
