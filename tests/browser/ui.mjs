// Drives scanhook's web UI in Debian's headless Chromium, as a person would: labels, buttons
// and links by their visible names. Started by tests/it/ui_browser.rs, which owns the
// server, the receiver and the `semgrep ci` run between the two phases:
//
//   PHASE=setup       sign in (keyboard only); Settings > Integrations > Add Integration >
//                     Webhook: a failing Test (closed port), a successful Test (receiver),
//                     Save; reveal the secret; upload a rule file; change a rule's mode in
//                     place; Rule Modes > Block > Edit: notify the integration; Add
//                     Integration > Slack: Test, Save (the URL shown masked).
//                     Prints {"integration": ID, "secret": WHSEC} as its last line.
//   PHASE=after-scan  the scan page and its messages; the delivery log and a delivery's
//                     attempts; Resend; triage Ignore hides the finding; the integration's
//                     Events, Filters and their preview; a narrow screen.
//
// Every wait is for a condition, with a deadline. Screenshots go to $SCREENSHOTS.

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const BASE = env("BASE_URL");
const TOKEN = env("ADMIN_TOKEN");
const PHASE = env("PHASE");
const SHOTS = env("SCREENSHOTS");
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
page.setDefaultTimeout(30_000);
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
page.on("console", (m) => { if (m.type() === "error") problems.push(`console: ${m.text()}`); });

let shot = 0;
async function screenshot(name) {
  shot += 1;
  const file = `${SHOTS}/${PHASE}-${String(shot).padStart(2, "0")}-${name}.png`;
  await page.screenshot({ path: file, fullPage: true });
}

async function heading() {
  return (await page.locator("h1").innerText()).trim();
}

async function nav(name) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name }).click();
  await page.waitForLoadState();
}

/// Clicks a button whose form redirects to a URL matching `url`, and waits for that page.
async function submit(button, url) {
  await Promise.all([page.waitForURL(url), button.click()]);
}

/// Reloads until `check()` holds, for at most `seconds`.
async function eventually(what, seconds, check) {
  const deadline = Date.now() + seconds * 1000;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
    await page.waitForTimeout(250);
    await page.reload();
  }
}

async function signIn(startAt) {
  await page.goto(`${BASE}${startAt}`);
  assert.match(page.url(), /\/login\?next=/, "a page without a session sends you to sign in");
  assert.equal(await heading(), "Sign in");
  await screenshot("sign-in");
  // Keyboard only: the token field has focus, Enter submits.
  assert.equal(await page.evaluate(() => document.activeElement.id), "token");
  await page.keyboard.type(TOKEN);
  await page.keyboard.press("Enter");
  await page.waitForURL(`${BASE}${startAt}`);
}

async function setup() {
  const RECEIVER = env("RECEIVER_URL");
  const CLOSED = env("CLOSED_URL");
  await signIn("/projects");
  assert.equal(await heading(), "Projects");
  const emptyState = await page.locator(".empty").innerText();
  assert.match(emptyState, /semgrep ci --oss-only/, "the empty state gives the semgrep ci command");
  assert.ok(emptyState.includes(`SEMGREP_APP_URL=${env("PUBLIC_URL")}`), "with this server's URL");
  await screenshot("projects-empty");

  // The seed's procedure: Settings > Integrations > Add Integration > Webhook.
  await nav("Settings › Integrations");
  assert.equal(await heading(), "Integrations");
  await screenshot("integrations-empty");
  await page.getByRole("link", { name: "Add Integration" }).click();
  assert.equal(await heading(), "Add Integration");
  await screenshot("add-integration");
  await page.getByRole("link", { name: "Webhook", exact: true }).click();
  assert.equal(await heading(), "Add Integration: Webhook");
  await page.getByLabel("Name").fill("Security alerts");

  // Test against a closed port: the error in words, shown in place.
  await page.getByLabel("Webhook URL").fill(CLOSED);
  await page.getByRole("button", { name: "Test" }).click();
  const result = page.locator("#test-result");
  await result.getByText("not delivered").waitFor();
  assert.match(await result.innerText(), /no response/);
  assert.match(await result.innerText(), /Error\s+\S+/);
  await screenshot("test-failed");

  // Test against the receiver: success, shown in place; the form keeps what was typed.
  await page.getByLabel("Webhook URL").fill(RECEIVER);
  await page.getByRole("button", { name: "Test" }).click();
  await result.getByText("Success").waitFor();
  assert.match(await result.innerText(), /Status\s+200/);
  assert.equal(await page.getByLabel("Name").inputValue(), "Security alerts");
  await screenshot("test-succeeded");

  await submit(page.getByRole("button", { name: "Save" }), /\/settings\/integrations\/int_\w+\?done=created/);
  assert.match(await page.locator(".notice").innerText(), /Integration saved/);
  const integration = page.url().match(/\/settings\/integrations\/(int_[A-Za-z0-9]+)/)[1];
  await page.getByRole("button", { name: "Reveal secret" }).click();
  const secret = (await page.locator("#secret").innerText()).trim();
  assert.match(secret, /^whsec_/);
  await screenshot("integration-saved");

  // Add Integration > Slack: Test, then Save; its URL is the credential, shown masked.
  await nav("Settings › Integrations");
  await page.getByRole("link", { name: "Add Integration" }).click();
  await page.getByRole("link", { name: "Slack", exact: true }).click();
  assert.equal(await heading(), "Add Integration: Slack");
  await page.getByLabel("Name").fill("Team chat");
  await page.getByLabel("Slack webhook URL").fill(env("SLACK_URL"));
  await page.getByRole("button", { name: "Test" }).click();
  await result.getByText("Success").waitFor();
  await screenshot("slack-test");
  await submit(page.getByRole("button", { name: "Save" }), /\/settings\/integrations\/int_\w+\?done=created/);
  const slack = page.url().match(/\/settings\/integrations\/(int_[A-Za-z0-9]+)/)[1];
  const shownUrl = await page.getByLabel("Slack webhook URL").inputValue();
  assert.ok(!shownUrl.includes("slack-credential"), `the saved URL is shown masked: ${shownUrl}`);
  assert.match(await page.locator("main").innerText(), /stored sealed and shown masked/);
  await screenshot("slack-saved");

  await nav("Settings › Integrations");
  const row = page.getByRole("row", { name: /Security alerts/ });
  assert.match(await row.innerText(), /enabled/);
  await screenshot("integrations-list");

  // Rules > Policies: upload a rule file, then change a rule's mode in place.
  await nav("Rules › Policies");
  assert.equal(await heading(), "Policies");
  await page.getByLabel("Rule files").setInputFiles(env("RULES_FILE"));
  await submit(page.getByRole("button", { name: "Upload" }), /done=uploaded-/);
  assert.match(await page.locator(".notice").innerText(), /rule\(s\) stored/);
  const ruleId = env("BLOCK_RULE");
  await page.getByLabel(`Mode of ${ruleId}`).selectOption("block");
  await submit(page.getByRole("row", { name: new RegExp(ruleId) }).getByRole("button", { name: "Change" }), /done=mode/);
  assert.match(await page.locator(".notice").innerText(), /Rule mode changed/);
  assert.equal(await page.getByLabel(`Mode of ${ruleId}`).inputValue(), "block");
  await screenshot("policies");

  // The seed's second procedure: Rules > Policies > Rule Modes > Edit (Block).
  await nav("Rule Modes");
  assert.equal(await heading(), "Rule Modes");
  await page.getByRole("link", { name: "Edit Block mode" }).click();
  assert.equal(await heading(), "Edit Rule Mode: Block");
  await page.getByRole("checkbox", { name: /Security alerts/ }).check();
  await screenshot("rule-mode-edit");
  await submit(page.getByRole("button", { name: "Save" }), /done=notify/);
  assert.match(await page.locator(".notice").innerText(), /Notifications saved/);
  const block = await page.getByRole("region", { name: "Block" }).innerText();
  assert.match(block, /Security alerts/, "the Block card lists the integration it notifies");
  await screenshot("rule-modes");
  return { integration, secret, slack };
}

async function afterScan() {
  const BLOCK_RULE = env("BLOCK_RULE");
  await signIn("/scans");
  assert.equal(await heading(), "Scans");
  await screenshot("scans");
  await page.getByRole("row").nth(1).getByRole("link").first().click();
  assert.match(await heading(), /^Scan /);
  const facts = await page.locator("main").innerText();
  assert.match(facts, /repository\s+acme\/sample/, "the semgrep_scan metadata is shown");
  assert.match(facts, /semgrep_finding/, "the scan's messages are listed");
  await screenshot("scan");

  // The delivery log of the integration: the scan's finding message, delivered.
  await nav("Settings › Integrations");
  await page.getByRole("row", { name: /Security alerts/ }).getByRole("link", { name: "Delivery log" }).click();
  assert.match(await heading(), /^Deliveries: Security alerts/);
  const findingRow = page.getByRole("row", { name: /semgrep_finding/ });
  await eventually("the finding message is delivered", 60, async () =>
    /delivered/.test(await page.getByRole("row", { name: /semgrep_finding/ }).innerText()));
  await screenshot("deliveries");
  await findingRow.getByRole("link").click();
  assert.equal(await heading(), "Delivery");
  const attempts = page.getByRole("table");
  assert.match(await attempts.innerText(), /\b200\b/);
  assert.match(await page.locator("pre").innerText(), new RegExp(BLOCK_RULE));
  const webhookId = page.url().split("/").pop();

  // Resend: the same message goes out again and a second attempt is logged.
  await submit(page.getByRole("button", { name: "Resend" }), /done=resent/);
  assert.match(await page.locator(".notice").innerText(), /Queued again/);
  await eventually("the resent message is delivered again", 60, async () =>
    (await page.getByRole("table").getByRole("row").count()) === 3 &&
    /delivered/.test(await page.locator("dl").innerText()));
  await screenshot("delivery-resent");

  // Findings: triage Ignore hides the finding from the open list.
  await nav("Findings");
  assert.equal(await heading(), "Findings");
  const rows = page.locator("tr[id^=finding-]");
  const before = await rows.count();
  assert.ok(before >= 1, "the scan's findings are listed");
  await screenshot("findings");
  const target = page.locator("tr[id^=finding-]", { hasText: BLOCK_RULE }).first();
  const findingId = await target.getAttribute("id");
  await submit(target.getByRole("button", { name: /^Ignore finding/ }), /done=ignored/);
  assert.match(await page.locator(".notice").innerText(), /Finding ignored/);
  assert.equal(await page.locator(`#${findingId}`).count(), 0, "an ignored finding leaves the open list");
  assert.equal(await rows.count(), before - 1);
  await page.getByLabel("Status").selectOption("ignored");
  await submit(page.getByRole("button", { name: "Filter" }), /status=ignored/);
  assert.equal(await page.locator(`#${findingId}`).count(), 1, "and is listed under Ignored");
  await screenshot("findings-ignored");

  // The rule's page, which semgrep ci links to (semgrep.url).
  await page.locator(`#${findingId}`).getByRole("link", { name: BLOCK_RULE }).click();
  assert.equal(await heading(), `Rule ${BLOCK_RULE}`);
  assert.match(await page.locator("main").innerText(), /Block \(from /);
  await screenshot("rule");

  await nav("Projects");
  assert.match(await page.getByRole("table").innerText(), /acme\/sample/);
  await screenshot("projects");

  // Routing: the form's Events and Filters, and the preview of what the filters would have sent.
  await nav("Settings › Integrations");
  await page.getByRole("link", { name: "Security alerts" }).click();
  const events = page.getByRole("group", { name: "Events" });
  const box = (name) => events.getByRole("checkbox", { name: new RegExp(`^${name}\\b`) });
  assert.ok(await box("semgrep_scan").isChecked(), "the seed's two events by default");
  assert.ok(await box("semgrep_finding").isChecked());
  assert.ok(!(await box("finding_fixed").isChecked()));
  await box("finding_fixed").check();
  // Preview answers in place (a reload would lose the form): wait until the answer is in.
  // The click sets aria-busy before it returns, so an earlier answer is never mistaken for it.
  const preview = async (what, pattern) => {
    await page.getByRole("button", { name: "Preview" }).click();
    await page.waitForFunction((src) => {
      const region = document.getElementById("preview-result");
      return !region.hasAttribute("aria-busy") && new RegExp(src).test(region.innerText.trim());
    }, pattern.source, { timeout: 20_000 }).catch(() => { throw new Error(`gave up waiting: ${what}`); });
    return (await page.locator("#preview-result").innerText()).trim();
  };
  const matching = (text) => Number(text.split(" ")[0]);
  const unfiltered = await preview("the unfiltered preview", /^\d+ of the \d+ findings/);
  const everything = matching(unfiltered);
  assert.ok(everything >= 1, `every recent finding passes no filter: ${unfiltered}`);
  assert.match(unfiltered, /of them in a rule mode that notifies this integration/);
  await page.getByLabel("Rule ids").fill("no.such.rule");
  await preview("a filter that matches nothing", /^0 of the /);
  await page.getByLabel("Rule ids").fill(BLOCK_RULE);
  const one = await preview("the rule's findings", /^[1-9]\d* of the /);
  assert.ok(matching(one) <= everything, one);
  await page.getByLabel("Expression (CEL)").fill("finding.rule.startsWith(");
  const bad = await preview("an expression that does not compile", /No preview/);
  assert.match(bad, /expression/);
  await screenshot("integration-filters");
  await page.getByLabel("Expression (CEL)").fill("");
  await submit(page.getByRole("button", { name: "Save" }), /done=saved/);
  assert.ok(await box("finding_fixed").isChecked(), "the events are saved");
  assert.equal(await page.getByLabel("Rule ids").inputValue(), BLOCK_RULE, "and the filters");

  // Deleting asks first; Cancel keeps the integration.
  await nav("Settings › Integrations");
  await page.getByRole("link", { name: "Security alerts" }).click();
  await page.getByRole("link", { name: "Delete this integration…" }).click();
  assert.equal(await heading(), "Delete integration?");
  await screenshot("delete-confirm");
  await page.getByRole("link", { name: "Cancel" }).click();
  assert.equal(await heading(), "Integration: Security alerts");

  // A narrow screen: nothing wider than the viewport but scrollable tables.
  await page.setViewportSize({ width: 360, height: 780 });
  for (const path of ["/findings?status=any", "/settings/integrations", "/policies", `/deliveries/${webhookId}`]) {
    await page.goto(`${BASE}${path}`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `${path} is ${overflow}px wider than a 360px screen`);
  }
  await screenshot("narrow-delivery");

  // Sign out ends the session.
  await submit(page.getByRole("button", { name: "Sign out" }), /\/login/);
  await page.goto(`${BASE}/findings`);
  assert.match(page.url(), /\/login\?next=/);
  return { webhook_id: webhookId, ignored: Number(findingId.replace("finding-", "")) };
}

let out;
try {
  out = PHASE === "setup" ? await setup() : await afterScan();
  assert.deepEqual(problems, [], "no script errors or console errors on any page");
} catch (e) {
  await screenshot("failure").catch(() => {});
  console.error(`browser test failed at ${page.url()}:\n${e.stack}`);
  await browser.close();
  process.exit(1);
}
await browser.close();
console.log(JSON.stringify(out));
