// The web console in headless Chromium (run by tests/console.rs, which
// starts the gate and passes everything in the environment):
//   CONSOLE_URL, READ_TOKEN, METRICS_TOKEN, FRESH_BRAND, STALE_BRAND,
//   CHROMIUM (executable), PLAYWRIGHT_CORE (the package's folder),
//   USER_DATA_DIR (a fresh profile), SCREENSHOT (where the PNG goes).
// Exits non-zero with the failed check on stderr; prints
// "console: all checks passed" at the end.
import { createRequire } from "node:module";
import assert from "node:assert/strict";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set (run this through tests/console.rs)`);
  return v;
};
const URL_ = env("CONSOLE_URL");
const READ = env("READ_TOKEN");
const METRICS = env("METRICS_TOKEN");
const FRESH = env("FRESH_BRAND");
const STALE = env("STALE_BRAND");
const require = createRequire(env("PLAYWRIGHT_CORE") + "/");
const { chromium } = require(env("PLAYWRIGHT_CORE"));
const [freshIys, freshBrand] = FRESH.split("/");

const WAIT = 30000;
const origin = new URL(URL_).origin;
const step = (s) => console.log("console: " + s);

const context = await chromium.launchPersistentContext(env("USER_DATA_DIR"), {
  executablePath: env("CHROMIUM"),
  headless: true,
  timeout: 120000,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
  viewport: { width: 1360, height: 1000 },
});
const problems = [];
try {
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(WAIT);
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("console", (m) => {
    // A fetch answered 4xx is logged as a failed resource; the responses
    // are judged below. Anything else (a CSP violation, a script error) is
    // a problem.
    if (m.type() === "error" && !/status of (40[0134]|503)/.test(m.text())) {
      problems.push("console error: " + m.text());
    }
  });
  page.on("response", (r) => {
    // Refusals (401/403) are provoked here; a 404 is expected only from the
    // daily-report probe (hidden when the gate has no reports).
    const path = new URL(r.url()).pathname;
    if (r.status() >= 400 && ![401, 403].includes(r.status()) &&
        !(r.status() === 404 && path === "/v1/report") &&
        !(r.status() === 503 && path === "/readyz") &&
        !(r.status() === 400 && path === "/v1/check")) {
      problems.push(`HTTP ${r.status()} for ${r.url()}`);
    }
  });
  page.on("request", (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith("data:")) {
      problems.push("request to another origin: " + r.url());
    }
  });

  // The page loads and asks for a token.
  const resp = await page.goto(URL_);
  assert.equal(resp.status(), 200);
  assert.equal(await page.title(), "iys-gate console");
  await page.locator("#signin-panel").waitFor({ state: "visible" });
  assert.equal(await page.locator("#app").isVisible(), false);
  step("page loaded, sign-in shown");

  // A wrong token is refused, and so is one without the read role.
  await page.fill("#token", "not-a-token");
  await page.click("#signin button[type=submit]");
  const err = page.locator("#signin-error");
  await err.waitFor({ state: "visible" });
  assert.match(await err.textContent(), /Refused \(401\).*unknown bearer token/);
  assert.equal(await page.locator("#app").isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("iys-gate-token")), null);
  await page.fill("#token", METRICS);
  await page.click("#signin button[type=submit]");
  await page.waitForFunction(() => /403/.test(document.getElementById("signin-error").textContent));
  assert.match(await err.textContent(), /Refused \(403\).*role metrics/);
  assert.equal(await page.locator("#app").isVisible(), false);
  step("wrong token refused (401), metrics token refused (403)");

  // The read token signs in.
  await page.fill("#token", READ);
  await page.click("#signin button[type=submit]");
  await page.locator("#app").waitFor({ state: "visible" });
  assert.equal(await err.isVisible(), false);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("iys-gate-token")), READ);
  step("signed in");

  // Sync state: the stale brand in red and labelled, the other fresh.
  const staleRow = page.locator(`#brands tr[data-brand="${STALE}"]`);
  const freshRow = page.locator(`#brands tr[data-brand="${FRESH}"]`);
  await staleRow.waitFor();
  assert.match((await staleRow.getAttribute("class")) || "", /\bstale\b/, "the stale brand's row is marked stale");
  assert.match(await staleRow.textContent(), /stale/, "the stale brand's row says stale");
  assert.match(await staleRow.locator("td.age").textContent(), /^1[01] d /);
  const red = await staleRow.locator("td").first().evaluate((td) => getComputedStyle(td).backgroundColor);
  assert.equal(red, "rgb(253, 232, 230)", "the stale row's background");
  assert.doesNotMatch((await freshRow.getAttribute("class")) || "", /stale/);
  assert.match(await freshRow.textContent(), /fresh/);
  // The gate is not ready while a followed brand is stale, and says why.
  const ready = page.locator("#ready");
  await ready.waitFor({ state: "visible" });
  assert.equal(await ready.textContent(), "not ready");
  assert.match(await ready.getAttribute("title"), /max_data_age/);
  step(`brand ${STALE} shown stale, ${FRESH} fresh; the gate shown not ready`);

  // Consent checks: a consented and a withdrawn number.
  async function check(recipient) {
    await page.fill("#check input[name=iys_code]", freshIys);
    await page.fill("#check input[name=brand_code]", freshBrand);
    await page.fill("#check input[name=recipient]", recipient);
    await page.selectOption("#check select[name=channel]", "MESAJ");
    await page.selectOption("#check select[name=recipient_type]", "BIREYSEL");
    await page.evaluate(() => { document.getElementById("check-decision").textContent = ""; });
    await page.click("#check button[type=submit]");
    await page.waitForFunction(() => document.getElementById("check-decision").textContent !== "");
    return {
      decision: await page.locator("#check-decision").textContent(),
      reason: await page.locator("#check-reason").textContent(),
      age: await page.locator("#check-age").textContent(),
      version: await page.locator("#check-version").textContent(),
      recipient: await page.locator("#check-recipient").textContent(),
    };
  }
  const ok = await check("905300000001");
  assert.equal(ok.decision, "allow");
  assert.equal(ok.reason, "consent");
  assert.match(ok.age, /^\d+ s$/, "data age of the fresh brand");
  assert.match(ok.version, /^[1-9]\d*$/, "snapshot version");
  assert.doesNotMatch(ok.recipient, /905300000001/, "recipient shown masked");
  const gone = await check("905300000002");
  assert.equal(gone.decision, "refuse");
  assert.equal(gone.reason, "withdrawn");
  step(`checks: 905300000001 ${ok.decision}/${ok.reason} (age ${ok.age}, v${ok.version}), 905300000002 ${gone.decision}/${gone.reason}`);
  // A bad check names the field.
  await page.fill("#check input[name=recipient]", "not a number");
  await page.click("#check button[type=submit]");
  await page.locator("#check-error").waitFor({ state: "visible" });
  assert.match(await page.locator("#check-error").textContent(), /400.*recipient/);
  step("a bad recipient is answered with the field named");

  // The latest refusals, masked.
  const refusals = page.locator("#refusals tr");
  await page.waitForFunction(() => document.querySelectorAll("#refusals td.reason").length >= 2);
  const reasons = await page.locator("#refusals td.reason").allTextContents();
  assert.ok(reasons.includes("withdrawn"), "withdrawn refusal listed: " + reasons);
  assert.ok(reasons.includes("no_consent"), "no_consent refusal listed: " + reasons);
  for (const r of await page.locator("#refusals td.recipient").allTextContents()) {
    assert.match(r, /\*/, "masked recipient: " + r);
  }
  step(`${await refusals.count()} refusals listed, masked`);

  // Sessions: the sender the test keeps connected (and bound).
  await page.waitForFunction(() => {
    const td = document.querySelector('#sessions tr[data-gate="SMPP"] td.now');
    return td && td.textContent === "1";
  });
  step("SMPP: 1 sender connection");

  // Rates: the checks above show as a rate once the next poll compares.
  await page.waitForFunction(() => {
    for (const tr of document.querySelectorAll('#rates tr[data-series$="/check_api"]')) {
      const rate = parseFloat(tr.querySelector("td.rate").textContent);
      if (rate > 0) return true;
    }
    return false;
  }, null, { timeout: 40000 });
  const traffic = await page.locator('#rates tr[data-series="MESAJ/refuse/withdrawn/traffic"] td.total').textContent();
  assert.ok(Number(traffic) >= 1, "traffic refusals counted: " + traffic);
  step("decision rates shown");

  // The daily report panel: today's counts.
  // Reports count by Turkey day (UTC+3).
  const report = await page.evaluate(async (t) => {
    const d = new Date(Date.now() + 3 * 3600 * 1000).toISOString().slice(0, 10);
    const r = await fetch("/v1/report?date=" + d, { headers: { Authorization: "Bearer " + t } });
    return r.status;
  }, READ);
  assert.equal(report, 200, "today's report exists: the test sent SMPP traffic");
  await page.reload();
  await page.locator("#report-panel").waitFor({ state: "visible" });
  // The SMPP refusal this test sent is a row of today's report.
  const row = page.locator('#report tr[data-row$="/MESAJ/withdrawn"] td.total');
  await row.first().waitFor({ state: "visible" });
  assert.ok(Number(await row.first().textContent()) >= 1, "today's report counts the SMPP refusal");
  step("today's report shown with the SMPP refusal");

  // A reload keeps the session (this tab); the screenshot.
  await page.reload();
  await page.locator("#app").waitFor({ state: "visible" });
  await page.waitForFunction(() => document.querySelectorAll("#refusals td.reason").length >= 2);
  await page.fill("#check input[name=iys_code]", freshIys);
  await page.fill("#check input[name=brand_code]", freshBrand);
  await page.fill("#check input[name=recipient]", "905300000002");
  await page.click("#check button[type=submit]");
  await page.waitForFunction(() => document.getElementById("check-reason").textContent === "withdrawn");
  await page.screenshot({ path: env("SCREENSHOT"), fullPage: true });
  step("screenshot: " + env("SCREENSHOT"));

  // Sign out forgets the token.
  await page.click("#signout");
  await page.locator("#signin-panel").waitFor({ state: "visible" });
  assert.equal(await page.evaluate(() => sessionStorage.getItem("iys-gate-token")), null);
  step("signed out");

  assert.deepEqual(problems, [], "no script errors, CSP violations or foreign requests");
  step("all checks passed");
} catch (e) {
  // What the page showed, for the failure message.
  console.error("console: FAILED: " + (e && e.message));
  if (problems.length) console.error("console: problems seen:\n  " + problems.join("\n  "));
  try {
    const page = context.pages()[0];
    const failed = env("SCREENSHOT").replace(/\.png$/, "-failed.png");
    await page.screenshot({ path: failed, fullPage: true });
    console.error("console: screenshot of the failure: " + failed);
    console.error("console: page text:\n" + (await page.locator("body").innerText()));
  } catch (_) {
    // The page may be gone.
  }
  process.exitCode = 1;
} finally {
  await context.close();
}
