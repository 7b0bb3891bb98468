// discord.js's REST client (@discordjs/rest, routes from discord-api-types) run against the
// Discord sandbox: `node discord.mjs calls|refusals|burst` prints one JSON object of what the
// library returned and threw. Run by tests/connectors/test_third_party_js.py.
//
// Environment: DISCORD_API (the base up to /api: the library appends /v10), DISCORD_TOKEN,
// DISCORD_GUILD_ID, DISCORD_CHANNEL_ID, DISCORD_MEMBER_ID, DISCORD_ROLE_ID (a role the bot may
// grant), DISCORD_HIGH_ROLE_ID (one above the bot's).
import { DiscordAPIError, HTTPError, REST } from "@discordjs/rest";
import {
  ButtonStyle,
  ComponentType,
  GuildScheduledEventEntityType,
  GuildScheduledEventPrivacyLevel,
  Routes,
} from "discord-api-types/v10";
import { attempt as tryCall, run } from "./judge.mjs";

const env = process.env;
const rest = new REST({ version: "10", api: env.DISCORD_API }).setToken(env.DISCORD_TOKEN);
const guild = env.DISCORD_GUILD_ID;
const channel = env.DISCORD_CHANNEL_ID;
const member = env.DISCORD_MEMBER_ID;
const rateLimited = [];
rest.on("rateLimited", ({ route, retryAfter, scope }) => rateLimited.push({ route, retryAfter, scope }));
// A server error's body, which HTTPError does not keep: every attempt the library made.
const serverErrors = [];
rest.on("response", (request, response) => {
  if (response.status >= 500) {
    const { method, path } = request;
    serverErrors.push(response.text().then((body) => ({ method, path, status: response.status, body })));
  }
});

// What a rejected call threw, as the library classifies it.
function caught(error) {
  if (error instanceof DiscordAPIError) {
    return { kind: "DiscordAPIError", status: error.status, code: error.code, message: error.message };
  }
  if (error instanceof HTTPError) {
    return { kind: "HTTPError", status: error.status, message: error.message };
  }
  return { kind: error?.constructor?.name ?? typeof error, message: String(error?.message ?? error) };
}

const attempt = (call) => tryCall(call, caught);

async function calls() {
  const seen = { me: await rest.get(Routes.user("@me")) };
  seen.application = await rest.get(Routes.currentApplication());
  seen.guild = await rest.get(Routes.guild(guild));
  seen.roles = await rest.get(Routes.guildRoles(guild));
  seen.channels = await rest.get(Routes.guildChannels(guild));
  seen.member = await rest.get(Routes.guildMember(guild, member));
  await rest.put(Routes.guildMemberRole(guild, member, env.DISCORD_ROLE_ID), { reason: "Appointed by the WG: café" });
  seen.granted = await rest.get(Routes.guildMember(guild, member));
  await rest.delete(Routes.guildMemberRole(guild, member, env.DISCORD_ROLE_ID), { reason: "Term ended" });
  const buttons = {
    type: ComponentType.ActionRow,
    components: [
      { type: ComponentType.Button, style: ButtonStyle.Primary, custom_id: "agree", label: "Agree" },
      { type: ComponentType.Button, style: ButtonStyle.Secondary, custom_id: "later", label: "Later" },
    ],
  };
  seen.sent = await rest.post(Routes.channelMessages(channel), {
    body: { content: "Hello from discord.js", components: [buttons] },
  });
  seen.edited = await rest.patch(Routes.channelMessage(channel, seen.sent.id), { body: { content: "Hello, edited" } });
  seen.file = await rest.post(Routes.channelMessages(channel), {
    body: { content: "Minutes attached" },
    files: [{ name: "minutes.txt", data: Buffer.from("The minutes.") }],
  });
  seen.history = await rest.get(Routes.channelMessages(channel), { query: new URLSearchParams({ limit: "10" }) });
  await rest.delete(Routes.channelMessage(channel, seen.file.id), { reason: "Cleaning up" });
  seen.dmChannel = await rest.post(Routes.userChannels(), { body: { recipient_id: member } });
  seen.dm = await rest.post(Routes.channelMessages(seen.dmChannel.id), { body: { content: "A direct message" } });
  seen.thread = await rest.post(Routes.threads(channel, seen.sent.id), {
    body: { name: "A thread", auto_archive_duration: 1440 },
  });
  await rest.put(Routes.threadMembers(seen.thread.id, member));
  seen.ownThread = await rest.post(Routes.threads(channel), { body: { name: "Agenda", type: 11 } });
  await rest.put(Routes.threadMembers(seen.ownThread.id, "@me"));
  const start = new Date(Date.UTC(2099, 0, 10, 18));
  seen.event = await rest.post(Routes.guildScheduledEvents(guild), {
    body: {
      name: "WG meeting",
      description: "Monthly",
      entity_type: GuildScheduledEventEntityType.External,
      privacy_level: GuildScheduledEventPrivacyLevel.GuildOnly,
      entity_metadata: { location: "Online" },
      scheduled_start_time: start.toISOString(),
      scheduled_end_time: new Date(start.getTime() + 3600e3).toISOString(),
    },
    reason: "Planned",
  });
  seen.audit = await rest.get(Routes.guildAuditLog(guild));
  const app = seen.application.id;
  seen.commands = await rest.put(Routes.applicationGuildCommands(app, guild), {
    body: [{ name: "idea", description: "File an idea", type: 1 }],
  });
  seen.listed = await rest.get(Routes.applicationGuildCommands(app, guild));
  return seen;
}

async function refusals() {
  return {
    // Discord serves these; the sandbox does not emulate them.
    pins: await attempt(rest.get(Routes.channelMessagesPins(channel))),
    editMember: await attempt(rest.patch(Routes.guildMember(guild, member), { body: { nick: "Cleo" } })),
    // Discord's own refusals.
    unknownUser: await attempt(rest.get(Routes.guildMember(guild, "1"))),
    emptyMessage: await attempt(rest.post(Routes.channelMessages(channel), { body: { content: "" } })),
    aboveTheBot: await attempt(rest.put(Routes.guildMemberRole(guild, member, env.DISCORD_HIGH_ROLE_ID))),
    serverErrors: await Promise.all(serverErrors),
  };
}

async function burst() {
  // Another process of the bot (plain fetch, not the library) spends the channel's message bucket
  // first, so that the library's first send meets a 429 it has not seen coming.
  const url = `${env.DISCORD_API}/v10${Routes.channelMessages(channel)}`;
  const headers = {
    Authorization: `Bot ${env.DISCORD_TOKEN}`,
    "User-Agent": "DiscordBot (https://example.org, 1.0)",
    "Content-Type": "application/json",
  };
  const others = [];
  for (let n = 0; n < 5; n++) {
    const answer = await fetch(url, { method: "POST", headers, body: JSON.stringify({ content: `Other ${n}` }) });
    others.push(answer.status);
  }
  const started = Date.now();
  const sends = Array.from({ length: 8 }, (_, n) =>
    attempt(rest.post(Routes.channelMessages(channel), { body: { content: `Burst ${n}` } })),
  );
  const sent = await Promise.all(sends);
  return { others, sent, rateLimited, seconds: (Date.now() - started) / 1000 };
}

await run("discord.mjs", { calls, refusals, burst }, caught);
