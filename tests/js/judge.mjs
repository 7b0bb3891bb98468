// What discord.mjs and slack.mjs share: a call's outcome, and running the scenario named on the
// command line with one JSON line on stdout (tests/connectors/test_third_party_js.py reads it).

// A call's result, or what it threw as `caught` (each library's own classification) says.
export async function attempt(call, caught) {
  try {
    return { result: await call };
  } catch (error) {
    return { error: caught(error) };
  }
}

export async function run(script, scenarios, caught) {
  const scenario = scenarios[process.argv[2]];
  if (!scenario) {
    console.error(`usage: node ${script} ${Object.keys(scenarios).join("|")}`);
    process.exit(2);
  }
  try {
    process.stdout.write(`${JSON.stringify({ ok: true, ...(await scenario()) })}\n`);
  } catch (error) {
    process.stdout.write(`${JSON.stringify({ ok: false, error: caught(error), stack: error?.stack })}\n`);
  }
  // Clients keep timers (discord.js's sweepers); the answer is out.
  process.exit(0);
}
