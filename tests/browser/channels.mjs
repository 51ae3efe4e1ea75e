// Checks chat message bodies with the platforms' own published libraries (run by
// tests/it/channels.rs): `node channels.mjs FILE`, where FILE holds
// {"teams": [body, ...], "discord": [body, ...]} as scanhook sends them.
// - Teams: each card is parsed by Microsoft's `adaptivecards` (targeting 1.5); any parse
//   event, validation event or property the library does not know (dropped when the card
//   is serialised back) is a failure, and so is a body of 28 KB or more.
// - Discord: each embed goes through @discordjs/builders' validating setters; the embeds'
//   total (embedLength) must stay within 6,000, the content within 2,000, and
//   allowed_mentions.parse must be empty.
// Prints one JSON line of counts on success; exits 1 listing every problem otherwise.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { EmbedBuilder, embedLength } from "@discordjs/builders";

// adaptivecards' ES build imports files without their extensions, which Node refuses;
// its UMD bundle loads as it is, and parsing and validating need no DOM.
const AC = createRequire(import.meta.url)("adaptivecards/dist/adaptivecards.js");

const TEAMS_MAX_BYTES = 28_000;
const DISCORD_MAX_EMBEDS = 10;
const DISCORD_MAX_TOTAL = 6000;
const DISCORD_MAX_CONTENT = 2000;

const problems = [];
const fail = (where, what) => problems.push(`${where}: ${what}`);

/** Paths of the properties of `input` that `output` lacks. */
function lost(input, output, path, out) {
  if (Array.isArray(input)) {
    input.forEach((x, i) => lost(x, Array.isArray(output) ? output[i] : undefined, `${path}[${i}]`, out));
  } else if (input !== null && typeof input === "object") {
    for (const [k, v] of Object.entries(input)) {
      const o = output !== null && typeof output === "object" ? output[k] : undefined;
      if (o === undefined && v !== null) {
        out.push(`${path}.${k}`);
      } else {
        lost(v, o, `${path}.${k}`, out);
      }
    }
  }
  return out;
}

function checkTeams(body, where) {
  const bytes = Buffer.byteLength(JSON.stringify(body));
  if (bytes >= TEAMS_MAX_BYTES) fail(where, `${bytes} bytes (Teams refuses 28 KB)`);
  if (body.type !== "message") fail(where, `type is ${JSON.stringify(body.type)}, not "message"`);
  if (!Array.isArray(body.attachments) || body.attachments.length !== 1) {
    fail(where, "attachments must hold one card");
    return;
  }
  const a = body.attachments[0];
  if (a.contentType !== "application/vnd.microsoft.card.adaptive") fail(where, `contentType ${a.contentType}`);
  if (a.contentUrl !== null) fail(where, "contentUrl must be null");
  const content = a.content;
  if (content.version !== "1.5") fail(where, `card version ${content.version}`);

  const card = new AC.AdaptiveCard();
  const parsing = new AC.SerializationContext(AC.Versions.v1_5);
  card.parse(content, parsing);
  for (let i = 0; i < parsing.eventCount; i++) {
    fail(where, `parse: ${parsing.getEventAt(i).message}`);
  }
  for (const e of card.validateProperties().validationEvents) {
    fail(where, `validation: ${e.message}`);
  }
  const back = card.toJSON(new AC.SerializationContext(AC.Versions.v1_5));
  const unknown = lost(content, back, "card", []).filter((p) => p !== "card.$schema");
  for (const p of unknown) fail(where, `property unknown to adaptivecards: ${p}`);
}

/** A shapeshift error as people read it: each alternative's reason. */
function explain(err) {
  const parts = (err.errors ?? [err])
    .map((e) => [e.message, e.expected].filter(Boolean).join(": "))
    .filter((m) => m !== "Expected values to be equals");
  return parts.join("; ") || err.message;
}

function checkDiscord(body, where) {
  if (typeof body.content !== "string" || body.content.length > DISCORD_MAX_CONTENT) {
    fail(where, `content must be a string of at most ${DISCORD_MAX_CONTENT}`);
  }
  const parse = body.allowed_mentions?.parse;
  if (!Array.isArray(parse) || parse.length !== 0) fail(where, "allowed_mentions.parse must be []");
  const embeds = body.embeds ?? [];
  if (embeds.length > DISCORD_MAX_EMBEDS) fail(where, `${embeds.length} embeds (at most 10)`);
  let total = 0;
  embeds.forEach((e, i) => {
    const at = `${where}.embeds[${i}]`;
    const b = new EmbedBuilder();
    try {
      // Each setter validates its value (length, type, URL) and throws on a bad one.
      if (e.title !== undefined) b.setTitle(e.title);
      if (e.description !== undefined) b.setDescription(e.description);
      if (e.url !== undefined) b.setURL(e.url);
      if (e.color !== undefined) b.setColor(e.color);
      if (e.fields !== undefined) b.addFields(...e.fields);
      if (e.footer !== undefined) b.setFooter(e.footer);
      if (e.author !== undefined) b.setAuthor(e.author);
      if (e.timestamp !== undefined) b.setTimestamp(new Date(e.timestamp));
    } catch (err) {
      fail(at, `@discordjs/builders refused it: ${explain(err)}`);
      return;
    }
    const built = b.toJSON();
    for (const p of lost(e, built, "embed", [])) fail(at, `property the builder does not know: ${p}`);
    total += embedLength(built);
  });
  if (total > DISCORD_MAX_TOTAL) fail(where, `embeds total ${total} characters (at most ${DISCORD_MAX_TOTAL})`);
}

const file = process.argv[2];
if (!file) {
  console.error("usage: node channels.mjs FILE");
  process.exit(2);
}
const bodies = JSON.parse(readFileSync(file, "utf8"));
(bodies.teams ?? []).forEach((b, i) => checkTeams(b, `teams[${i}]`));
(bodies.discord ?? []).forEach((b, i) => checkDiscord(b, `discord[${i}]`));
if (problems.length > 0) {
  console.error(`${problems.length} problem(s):\n${problems.join("\n")}`);
  process.exit(1);
}
console.log(JSON.stringify({ teams: bodies.teams?.length ?? 0, discord: bodies.discord?.length ?? 0 }));
