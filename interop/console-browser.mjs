// Drives the console in Debian's Chromium (playwright-core) for the sign-in
// and approval test: the approver signs in at the OpenID provider, sees
// example D wait, approves each approval step with a note, watches the run
// reach its sign-off and finish, and finds the identity in the report; the
// bystander sees no button and a forged POST is refused; a POST without the
// CSRF token, a tampered session cookie and a replayed sign-in answer are
// refused; a session older than its length is sent to sign in again.
// Environment: CONSOLE_URL, SHORT_CONSOLE_URL (the same journal with a
// 2-second session), SHOTS (a directory for screenshots).
// Prints one line per check; exits 1 at the first failure.
import { chromium } from "playwright-core";

const consoleUrl = process.env.CONSOLE_URL.replace(/\/$/, "");
const shortUrl = process.env.SHORT_CONSOLE_URL.replace(/\/$/, "");
const shots = process.env.SHOTS;

function check(condition, what) {
  if (!condition) {
    console.log(`FAILED ${what}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

let callbackUrl = null;

async function signIn(context, base, who) {
  const page = await context.newPage();
  page.on("request", (request) => {
    if (request.url().includes("/auth/callback")) {
      callbackUrl = request.url();
    }
  });
  await page.goto(`${base}/sign-in?return=/`);
  // The provider's pages: its sign-in form, then (the first time) its consent.
  for (let step = 0; step < 10 && !page.url().startsWith(base); step++) {
    try {
      if (page.url().startsWith("chrome-error:")) {
        await page.goto(`${base}/sign-in?return=/`);
      } else if (await page.locator('input[name="login"]').count()) {
        await page.fill('input[name="login"]', who);
        await page.fill('input[name="password"]', "any password");
        await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
      } else if (await page.locator('button:has-text("Continue")').count()) {
        await Promise.all([page.waitForNavigation(), page.click('button:has-text("Continue")')]);
      } else {
        await page.waitForTimeout(250);
      }
    } catch (error) {
      console.log(`(retrying the sign-in: ${error.message.split("\n")[0]})`);
      await page.waitForTimeout(250);
    }
  }
  if (!page.url().startsWith(base)) {
    console.log(`FAILED signing in as ${who}: at ${page.url()}\n${await page.content()}`);
    process.exit(1);
  }
  return page;
}

/** Reloads `page` until `text` is on it (the live script may be reloading it too). */
async function waitFor(page, text, seconds = 90) {
  for (let tries = 0; tries < seconds * 2; tries++) {
    try {
      await page.waitForLoadState("load");
      if ((await page.content()).includes(text)) {
        return true;
      }
    } catch (error) {
      // The page is navigating: look again.
    }
    await page.waitForTimeout(500);
    await page.reload({ waitUntil: "load" }).catch(() => {});
  }
  return false;
}

const approverContext = await browser.newContext();
const approver = await signIn(approverContext, consoleUrl, "approver");
check((await approver.content()).includes("Signed in as Ada Approver"), "the approver is signed in with a display name");

check(await waitFor(approver, "data-owner-permission</a>"), "the run list shows the run waiting at data-owner-permission");
const runLink = await approver.locator('a[href^="/runs/"]').first().getAttribute("href");
const runId = decodeURIComponent(runLink.split("/")[2].split("#")[0]);
await approver.screenshot({ path: `${shots}/01-runs.png`, fullPage: true });

const bystanderContext = await browser.newContext();
const bystander = await signIn(bystanderContext, consoleUrl, "bystander");
await visit(bystander, `${consoleUrl}/runs/${encodeURIComponent(runId)}`);
check((await bystander.content()).includes("Waiting for approval: data-owner-permission"), "the bystander sees the waiting approval");
check((await bystander.locator('button:has-text("Approve as")').count()) === 0, "the bystander has no approve button");
await bystander.screenshot({ path: `${shots}/02-bystander.png`, fullPage: true });
const bystanderCsrf = await bystander.locator('nav input[name="csrf"]').getAttribute("value");
const forged = await bystanderContext.request.post(
  `${consoleUrl}/runs/${encodeURIComponent(runId)}/steps/data-owner-permission/decision`,
  { form: { csrf: bystanderCsrf, role: "data-owner", decision: "approve", note: "forged" }, maxRedirects: 0 },
);
check(forged.status() === 403, `a forged POST by the bystander is refused (${forged.status()})`);

const noToken = await approverContext.request.post(
  `${consoleUrl}/runs/${encodeURIComponent(runId)}/steps/data-owner-permission/decision`,
  { form: { role: "data-owner", decision: "approve", note: "no token" }, maxRedirects: 0 },
);
check(noToken.status() === 403, `a POST without the CSRF token is refused (${noToken.status()})`);

/** Opens `url`, again if the live script's reload interrupts the navigation. */
async function visit(page, url) {
  for (let tries = 0; tries < 5; tries++) {
    try {
      await page.goto(url, { waitUntil: "load" });
      return;
    } catch (error) {
      await page.waitForTimeout(300);
    }
  }
  await page.goto(url, { waitUntil: "load" });
}

async function approve(step, role, note) {
  const runUrl = `${consoleUrl}/runs/${encodeURIComponent(runId)}`;
  await visit(approver, runUrl);
  check(await waitFor(approver, `Waiting for approval: ${step}`), `the run waits at ${step}`);
  // The live script reloads the page when the wait changes: try again then.
  for (let tries = 0; tries < 5; tries++) {
    try {
      await approver.waitForLoadState("load");
      const form = approver.locator(`form:has(input[name="role"][value="${role}"])`);
      await form.locator("textarea").fill(note, { timeout: 5000 });
      if (tries === 0) {
        await approver.screenshot({ path: `${shots}/03-${step}-${role}.png`, fullPage: true });
      }
      await form.locator('button[value="approve"]').click({ timeout: 5000 });
      break;
    } catch (error) {
      await approver.waitForTimeout(300);
    }
  }
  await visit(approver, runUrl);
  check(
    await waitFor(approver, `${role} <strong>approved</strong> by Ada Approver`, 20),
    `${role} approved ${step} as Ada Approver`,
  );
}

await approve("data-owner-permission", "data-owner", "ticket 4411");
await approve("change-approval", "change-management", "CAB-2026-118");
await approve("sign-off", "test-lead", "acceptance tests passed");
await approve("sign-off", "client", "signed for the client");

await visit(approver, `${consoleUrl}/runs/${encodeURIComponent(runId)}`);
check(await waitFor(approver, '<span class="badge good">finished</span>'), "the run went on to its sign-off and finished");
await approver.screenshot({ path: `${shots}/04-finished.png`, fullPage: true });

await visit(approver, `${consoleUrl}/runs/${encodeURIComponent(runId)}/report`);
await approver.waitForLoadState("load");
const report = await approver.content();
check(report.includes("signed in as Ada Approver &lt;approver@example.org&gt;"), "the report names the approver's identity");
check(!report.includes("forged") && !report.includes("no token"), "nothing from the refused POSTs reached the journal");
await approver.screenshot({ path: `${shots}/05-report.png`, fullPage: true });

// A replayed sign-in answer (the same code and state again).
check(callbackUrl !== null, "the sign-in answer was seen");
const replay = await approverContext.request.get(callbackUrl, { maxRedirects: 0 });
check(replay.status() === 401, `a replayed authorization code is refused (${replay.status()})`);

// A tampered session cookie.
const cookies = await approverContext.cookies();
const session = cookies.find((cookie) => cookie.name === "cutover_session");
check(session && session.httpOnly && session.secure && session.sameSite === "Lax", "the session cookie is HttpOnly, Secure and SameSite=Lax");
const flipped = session.value.slice(0, 10) + (session.value[10] === "A" ? "B" : "A") + session.value.slice(11);
await approverContext.addCookies([{ ...session, value: flipped }]);
const tampered = await approverContext.request.get(`${consoleUrl}/runs/${encodeURIComponent(runId)}`, { maxRedirects: 0 });
check(tampered.status() === 401, `a tampered session cookie is refused (${tampered.status()})`);

// A session past its length (2 seconds on the second console).
const shortContext = await browser.newContext();
await signIn(shortContext, shortUrl, "approver");
const fresh = await shortContext.request.get(`${shortUrl}/`, { maxRedirects: 0 });
check(fresh.status() === 200, "a fresh session reads");
await new Promise((resolve) => setTimeout(resolve, 2500));
const expired = await shortContext.request.get(`${shortUrl}/runs/${encodeURIComponent(runId)}`, { maxRedirects: 0 });
check(
  expired.status() === 303 && (expired.headers()["location"] || "").startsWith("/sign-in?return="),
  `an expired session is sent to sign in again (${expired.status()} ${expired.headers()["location"]})`,
);

await browser.close();
console.log("all checks passed");
