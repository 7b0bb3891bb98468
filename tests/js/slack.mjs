// Slack's Node SDK (@slack/web-api's WebClient) run against the Slack sandbox:
// `node slack.mjs calls|refusals|ratelimit` prints one JSON object of what the library returned
// and threw. Run by tests/connectors/test_third_party_js.py.
//
// Environment: SLACK_API_URL (the sandbox's Web API base, ending in /api/), SLACK_TOKEN (the bot
// token), SLACK_CHANNEL (a channel with the app in it), SLACK_USER and SLACK_EMAIL (a person).
import { LogLevel, WebClient, WebClientEvent } from "@slack/web-api";
import { attempt as tryCall, run } from "./judge.mjs";

const env = process.env;
// The library's defaults otherwise (retries, rejectRateLimitedCalls false): as an app runs it.
const client = new WebClient(env.SLACK_TOKEN, { slackApiUrl: env.SLACK_API_URL, logLevel: LogLevel.ERROR });
const channel = env.SLACK_CHANNEL;
const rateLimited = [];
client.on(WebClientEvent.RATE_LIMITED, (seconds, { url }) => {
  rateLimited.push({ seconds, method: url.split("/").pop() });
});

// What a rejected call threw, as the library classifies it.
function caught(error) {
  return {
    code: error?.code ?? null,
    message: String(error?.message ?? error),
    statusCode: error?.statusCode ?? null,
    error: error?.data?.error ?? null,
    detail: error?.data?.detail ?? null,
  };
}

const attempt = (call) => tryCall(call, caught);

function decision(text) {
  return [
    { type: "section", text: { type: "mrkdwn", text } },
    {
      type: "actions",
      block_id: "decision",
      elements: ["approve", "reject"].map((id) => ({
        type: "button",
        action_id: id,
        value: "prop-7",
        text: { type: "plain_text", text: id },
      })),
    },
  ];
}

async function calls() {
  const seen = { auth: await client.auth.test() };
  seen.posted = await client.chat.postMessage({ channel, text: "Proposal 7", blocks: decision("*Proposal 7*") });
  seen.updated = await client.chat.update({ channel, ts: seen.posted.ts, text: "Proposal 7: approved", blocks: [] });
  const doomed = await client.chat.postMessage({ channel, text: "A mistake" });
  seen.deleted = await client.chat.delete({ channel, ts: doomed.ts });
  seen.info = await client.conversations.info({ channel });
  seen.members = await client.conversations.members({ channel });
  // One channel a page: the library follows response_metadata.next_cursor to the end.
  seen.pages = [];
  const types = "public_channel,private_channel";
  for await (const page of client.paginate("conversations.list", { types, limit: 1 })) {
    seen.pages.push(page.channels.map((c) => c.id));
  }
  seen.user = await client.users.info({ user: env.SLACK_USER });
  // Two people a page, gathered by the library's reducer.
  const gather = (all, page) => [...(all ?? []), ...page.members];
  seen.users = await client.paginate("users.list", { limit: 2 }, () => false, gather);
  seen.byEmail = await client.users.lookupByEmail({ email: env.SLACK_EMAIL });
  return seen;
}

async function refusals() {
  return {
    // Slack serves these; the sandbox does not emulate them.
    reaction: await attempt(client.reactions.add({ channel, name: "eyes", timestamp: "1790000000.000100" })),
    pins: await attempt(client.pins.list({ channel })),
    // Slack's own refusals.
    noChannel: await attempt(client.conversations.info({ channel: "C0NOSUCH99" })),
    noUser: await attempt(client.users.lookupByEmail({ email: "nobody.by.this.name@example.org" })),
    noText: await attempt(client.chat.postMessage({ channel })),
  };
}

async function ratelimit() {
  // chat.postMessage: about one message a second per channel, short bursts allowed; one after the
  // other, the burst runs out and the library waits out Slack's Retry-After.
  const started = Date.now();
  const sent = [];
  for (let n = 0; n < 5; n++) {
    sent.push(await attempt(client.chat.postMessage({ channel, text: `Burst ${n}` })));
  }
  return { sent, rateLimited, seconds: (Date.now() - started) / 1000 };
}

await run("slack.mjs", { calls, refusals, ratelimit }, caught);
