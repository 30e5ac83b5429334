// Clicks through the gen_durable dashboard in Debian's headless chromium (playwright-core drives
// it; no browser is downloaded). Run by tests/dashboard_pgtest.cpp, which prepares the instances
// and checks the database afterwards:
//
//   GEN_DURABLE_DASHBOARD_TOKEN=T node dashboard.mjs URL --parked ID --signalled ID --failed ID
//       --parent ID --holder ID --stray ID [--read-only-url URL2] [--screenshots DIR]
//
// The dashboard at URL requires the token T, which the browser sends as the basic-auth password
// (so every action also carries the page's CSRF token); URL2 is a read-only dashboard with the
// same token.
//
// parked, signalled and stray await a signal; failed has failed; parent is done with 3 children;
// holder awaits its 2 children, which await a signal.
//
// Prints one line per check and exits 0 when every check passed, 1 otherwise.
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const url = args[0];
const opt = (name) => {
  const i = args.indexOf("--" + name);
  return i > 0 ? args[i + 1] : undefined;
};
const ids = {parked: opt("parked"), signalled: opt("signalled"), failed: opt("failed"),
             parent: opt("parent"), holder: opt("holder"), stray: opt("stray")};
const screenshots = opt("screenshots");
const readOnlyUrl = opt("read-only-url");
const token = process.env.GEN_DURABLE_DASHBOARD_TOKEN || "";
const httpCredentials = {username: "operator", password: token};
const timeout = 15000;

// Goes to `target` and waits until the dashboard has drawn that route. A change of the hash alone
// is a same-document navigation: goto returns before the page has drawn it, and the page of the
// previous route (whose links and buttons match the same selectors) is still on screen.
async function visit(target) {
  await page.goto(target);
  await drawn();
}

// Waits until the page on screen is the one of the current route (the app records the route it
// drew on #main).
async function drawn() {
  await page.waitForFunction(() => document.getElementById("main")?.dataset.route ===
    (location.hash || "#/"));
}

function check(ok, what) {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) throw new Error(what);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--no-first-run"],
});
let failed = false;
const errors = [];
let page;
try {
  // Without credentials nothing is served, not even the page.
  const stranger = await browser.newContext();
  const refused = await stranger.request.get(url);
  check(refused.status() === 401 && (refused.headers()["www-authenticate"] || "").startsWith("Basic"),
        `no credentials: the page answers ${refused.status()} with a basic-auth challenge`);
  await stranger.close();

  page = await browser.newPage({viewport: {width: 1360, height: 900}, httpCredentials});
  page.setDefaultTimeout(timeout);
  page.on("pageerror", (e) => errors.push(e.message));
  // A Content-Security-Policy violation (an inline style or script) is a failure too.
  page.on("console", (m) => {
    if (m.type() === "error" && m.text().includes("Content Security Policy")) errors.push(m.text());
  });

  // The queue list: counts per status, and pause / resume.
  await visit(url);
  await page.waitForSelector('[data-test="queue-default"]');
  const done = await page.textContent('[data-test="count-default-done"]');
  check(Number(done) >= 3, `queue list shows default with ${done} done instances`);
  check(await page.locator('[data-test="node"]').count() === 1, "one live node listed");
  const nextFire = await page.locator('[data-test="next-fire-leap"]').textContent();
  check(nextFire.includes("-02-29T00:00:00Z"), `schedule listed with its next fire (${nextFire})`);
  await page.click('[data-test="pause-default"]');
  await page.waitForSelector('[data-test="resume-default"]');
  const overview = await (await page.request.get(url + "api/overview")).json();
  check(overview.queues.find((q) => q.name === "default").paused, "pause reached the database");
  await page.click('[data-test="resume-default"]');
  await page.waitForSelector('[data-test="pause-default"]');
  check((await page.textContent('[data-test="state-default"]')).includes("running"), "resumed");
  if (screenshots) await page.screenshot({path: screenshots + "/dashboard-queues.png", fullPage: true});

  // Search by status.
  await page.click('[data-test="nav-instances"]');
  await page.waitForFunction(() => location.hash.startsWith("#/instances"));
  await drawn();
  await page.selectOption('[data-test="filter-status"]', "failed");
  await page.click('[data-test="search-go"]');
  await page.waitForFunction(() => location.hash.includes("status=failed"));
  await drawn();
  const failedIds = await page.locator('[data-test="instance-link"]').allTextContents();
  check(failedIds.includes(ids.failed), `search by status finds the failed instance ${ids.failed}`);
  const statuses = await page.locator('[data-test="instance-row"] .badge').allTextContents();
  check(statuses.length > 0 && statuses.every((st) => st === "failed"),
        `search by status lists failed instances only (${[...new Set(statuses)].join(", ")})`);

  // The search results refresh themselves: an instance cancelled elsewhere leaves them.
  await visit(url + "#/instances?status=awaiting_signal");
  await page.waitForFunction((id) => [...document.querySelectorAll('[data-test="instance-link"]')]
    .some((a) => a.textContent === id), ids.stray);
  // A filter being edited (not yet submitted, and not focused, so refreshes go on) stays.
  await page.fill('[data-test="filter-fsm"]', "ui.check");
  await page.click("h1");
  const session = await (await page.request.get(url + "api/session")).json();
  check(session.access === "all" && session.csrf.length >= 32, "the session grants all access");
  const forged = await page.request.post(url + `api/instances/${ids.stray}/cancel`,
                                         {data: {reason: "no token"}});
  check(forged.status() === 403, `an action without the CSRF token is refused (${forged.status()})`);
  const cancelled = await page.request.post(url + `api/instances/${ids.stray}/cancel`,
                                            {data: {reason: "cancelled by the browser test"},
                                             headers: {"X-CSRF-Token": session.csrf}});
  check(cancelled.ok(), `instance ${ids.stray} cancelled through the API (${cancelled.status()} ${await cancelled.text()})`);
  await page.waitForFunction((id) => document.querySelector('[data-test="instance-row"]') &&
    ![...document.querySelectorAll('[data-test="instance-link"]')]
      .some((a) => a.textContent === id), ids.stray);
  const kept = await page.inputValue('[data-test="filter-fsm"]');
  check(kept === "ui.check",
        `the search results refreshed by themselves, the form kept its edit ("${kept}")`);

  // The instance page of a parent: state, history, children tree.
  await visit(url + "#/instance/" + ids.parent);
  await page.waitForSelector('[data-test="instance-title"]');
  await page.waitForFunction(() => document.querySelector('[data-test="fact-status"]')
    ?.textContent.includes("done"));
  const tree = await page.locator('[data-test="children"] a').count();
  check(tree === 4, `children tree shows the parent and its 3 children (${tree} links)`);
  check(await page.locator('[data-test="history-row"]').count() >= 2, "history rows shown");
  check((await page.textContent('[data-test="state"]')).includes("{"), "state shown");
  if (screenshots) {
    await page.screenshot({path: screenshots + "/dashboard-instance.png", fullPage: true});
  }

  // Cancel a parked instance.
  await visit(url + "#/instance/" + ids.parked);
  await page.waitForSelector('[data-test="cancel"]');
  await page.click('[data-test="cancel"]');
  await page.waitForFunction(() => document.querySelector('[data-test="fact-status"]')
    ?.textContent.includes("cancelled"));
  check(true, `parked instance ${ids.parked} cancelled`);

  // Cancel a parent with its children.
  await visit(url + "#/instance/" + ids.holder);
  await page.waitForSelector('[data-test="cancel"]');
  check(await page.locator('[data-test="children"] a').count() === 3, "holder shows 2 children");
  await page.check('[data-test="cascade"]');
  await page.click('[data-test="cancel"]');
  await page.waitForFunction(() => document.querySelector('[data-test="fact-status"]')
    ?.textContent.includes("cancelled"));
  const badges = await page.locator('[data-test="children"] .badge').allTextContents();
  check(badges.length === 3 && badges.every((b) => b === "cancelled"),
        `holder ${ids.holder} cancelled with its children (${badges.join(", ")})`);

  // Send a signal to an awaiting one.
  await visit(url + "#/instance/" + ids.signalled);
  await page.waitForSelector('[data-test="signal-name"]');
  await page.fill('[data-test="signal-name"]', "payment_confirmed");
  await page.fill('[data-test="signal-payload"]', '{"amount": 42}');
  await page.click('[data-test="signal"] button');
  await page.waitForFunction(() => !document.querySelector('[data-test="fact-status"]')
    ?.textContent.includes("awaiting_signal"));
  check(true, `signal woke instance ${ids.signalled}`);

  // Retry a failed one.
  await visit(url + "#/instance/" + ids.failed);
  await page.waitForSelector('[data-test="retry"]');
  await page.click('[data-test="retry"]');
  await page.waitForFunction(() => [...document.querySelectorAll('[data-test="history-row"]')]
    .some((r) => r.textContent.includes("retry")));
  check(true, `failed instance ${ids.failed} retried`);

  // A read-only dashboard: no button, and an action forced from the page is 403.
  if (readOnlyUrl) {
    await visit(readOnlyUrl);
    await page.waitForSelector('[data-test="queue-default"]');
    check(await page.locator("button").count() === 0, "read-only: no button on the queue page");
    await visit(readOnlyUrl + "#/instance/" + ids.signalled);
    await page.waitForSelector('[data-test="read-only"]');
    check(await page.locator('[data-test="cancel"]').count() === 0, "read-only: no cancel button");
    const status = await page.evaluate(async (id) => {
      const s = await (await fetch("api/session")).json();
      const r = await fetch(`api/instances/${id}/cancel`, {method: "POST",
        headers: {"Content-Type": "application/json", "X-CSRF-Token": s.csrf}, body: "{}"});
      return r.status;
    }, ids.signalled);
    check(status === 403, `read-only: an action forced from the page answers ${status}`);
  }

  check(errors.length === 0, "no script error in the page" + (errors.length ? ": " + errors : ""));
} catch (e) {
  failed = true;
  console.log("FAIL " + e.message);
  for (const message of errors) console.log("page error: " + message);
  if (page && process.env.GEN_DURABLE_FAILURE_SCREENSHOT) {
    await page.screenshot({path: process.env.GEN_DURABLE_FAILURE_SCREENSHOT, fullPage: true});
    console.log("page at the failure: " + process.env.GEN_DURABLE_FAILURE_SCREENSHOT);
  }
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
