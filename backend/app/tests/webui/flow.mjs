// The web UI's browser flow, run by tests/webui.rs. It prints "STEP <name>" when it needs the
// test to act on the backend or the agent (start it, make its check fail or recover, create a
// silence or a check through the API, stop it) and waits for "ok" on stdin. Any failed
// expectation throws, and node exits non-zero.
import { createInterface } from "node:readline";
import { readFileSync } from "node:fs";
import { strict as assert } from "node:assert";
import path from "node:path";
import { axeViolations, contrastPairs, focusRing } from "./a11y.mjs";

const { chromium } = await import(process.env.PLAYWRIGHT_CORE);
const AXE = readFileSync(process.env.AXE_CORE, "utf8");
const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS;
const ADMIN = [process.env.ADMIN_USER, process.env.ADMIN_PASS];
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

async function step(name) {
  console.log(`STEP ${name}`);
  const { value } = await lines.next();
  assert.equal(value, "ok", `the test answered step ${name}`);
}

const WIDTHS = { desktop: { width: 1280, height: 800 }, phone: { width: 390, height: 844 } };
async function shot(page, name, width) {
  await page.screenshot({ path: path.join(SHOTS, `${name}-${width}.png`), fullPage: true });
}

// Live updates must not reload the page: a mark set on the window survives only without one.
async function markPage(page) {
  await page.evaluate(() => { window.__notReloaded = true; });
}
async function assertNotReloaded(page, what) {
  assert.equal(await page.evaluate(() => window.__notReloaded), true, `${what}: updated without reload`);
}

// Every contrast pair seen, with its worst ratio, and every axe violation, per page.
const pairs = new Map();
const problems = [];
async function audit(page, label) {
  for (const v of await axeViolations(page, AXE)) {
    const line = `${label}: axe ${v.impact} ${v.id} (${v.help}): ${v.nodes.join(" | ")}`;
    console.log(`A11Y ${line}`);
    if (v.impact === "serious" || v.impact === "critical") problems.push(line);
  }
  for (const p of await contrastPairs(page)) {
    const key = `${p.kind}: ${p.fg} on ${p.bg}`;
    const seen = pairs.get(key);
    if (!seen || p.ratio < seen.ratio) pairs.set(key, { ...p, page: label });
    if (p.ratio + 1e-9 < p.need) {
      problems.push(`${label}: ${p.kind} ${p.fg} on ${p.bg} is ${p.ratio.toFixed(2)}:1 < ${p.need}:1 (${p.sample})`);
    }
  }
}

const browser = await chromium.launchPersistentContext(process.env.PROFILE, {
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
  viewport: WIDTHS.desktop,
});

async function login(page, user, pass) {
  await page.goto(`${BASE}/ui`);
  assert.match(page.url(), /\/ui\/login$/);
  await page.getByLabel("Username").fill(user);
  await page.getByLabel("Password").fill(pass);
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL(/\/ui\/ns\/[^/]+\/events$/);
}

async function nav(page, name) {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true }).click();
}

// Tab until `done` says the focused element is the one wanted; every stop must show a focus
// ring of at least 2 px and 3:1 against its surroundings.
const rings = new Map();
async function tabTo(page, what, done, limit = 40) {
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press("Tab");
    const ring = await focusRing(page);
    assert.ok(ring, `tab stop ${i + 1} towards ${what} has focus`);
    assert.notEqual(ring.style, "none", `focus ring on ${ring.element} ${ring.text}`);
    assert.ok(ring.width >= 2, `focus ring width on ${ring.element}: ${ring.width}`);
    const key = `focus ring: ${ring.fg} on ${ring.bg}`;
    if (!rings.has(key) || ring.ratio < rings.get(key).ratio) rings.set(key, { ...ring, need: 3 });
    assert.ok(ring.ratio >= 3, `focus ring ${ring.fg} on ${ring.bg} of ${ring.element}: ${ring.ratio.toFixed(2)}:1`);
    if (await page.evaluate(done)) return i + 1;
  }
  throw new Error(`${what} not reached in ${limit} tab stops`);
}

try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${BASE}/ui`);
  await shot(page, "login", "desktop");
  await audit(page, "login");
  await page.goto(`${BASE}/ui/login?error=Wrong%20username%20or%20password.`);
  await audit(page, "login error");
  await login(page, ...ADMIN);
  assert.match(page.url(), /\/ui\/ns\/default\/events$/);

  // The switcher lists the namespaces the admin may see; choosing one navigates there.
  const options = await page.locator("#ns-select option").allTextContents();
  assert.deepEqual(options.sort(), ["default", "ops", "secret"]);
  await page.selectOption("#ns-select", "ops");
  await page.waitForURL(/\/ui\/ns\/ops\/events$/);
  await page.locator("#event-rows").getByText("No events match.").waitFor();

  // 1. Entities: a real agent starts; it appears live, and its last-seen time moves on.
  await nav(page, "Entities");
  await page.locator("#entity-rows").getByText("No entities.").waitFor();
  await page.locator("[data-live-note]").first().waitFor({ state: "visible" });
  await markPage(page);
  await step("agent");
  const agentRow = page.locator('#entity-rows tr[data-entity="web1"]');
  await agentRow.waitFor({ timeout: 30000 });
  await agentRow.locator("td.keepalive .badge.s-ok").waitFor();
  assert.equal(await page.locator("#entity-count").textContent(), "1 entity");
  const seen = await agentRow.locator("td.seen time").getAttribute("data-unix");
  await page.waitForFunction((s) => {
    const t = document.querySelector('#entity-rows tr[data-entity="web1"] td.seen time');
    return t && t.dataset.unix !== s;
  }, seen);
  await assertNotReloaded(page, "entities list");
  await shot(page, "entities", "desktop");

  // 2. The entity page: the real agent's system facts, and its events.
  await agentRow.getByRole("link", { name: "web1" }).click();
  await page.waitForURL(/\/ui\/ns\/ops\/entities\/web1$/);
  await page.locator("#entity-facts dd", { hasText: /^linux$/ }).first().waitFor();
  await page.locator('#entity-events tr[data-check="disk"].s-ok').waitFor();
  await shot(page, "entity", "desktop");

  // 3. Events: the agent's check starts failing; the failure appears live.
  await nav(page, "Events");
  await page.locator('#event-rows tr[data-check="disk"].s-ok').waitFor();
  await markPage(page);
  await step("fail");
  const failing = page.locator('#event-rows tr[data-entity="web1"][data-check="disk"]');
  await page.locator('#event-rows tr[data-entity="web1"][data-check="disk"].s-critical').waitFor();
  await assertNotReloaded(page, "events list");
  // Sorted by severity: the critical event comes before the OK keepalive.
  assert.equal(await page.locator("#event-rows tr").first().getAttribute("data-check"), "disk");
  assert.equal(await page.locator("#event-count").textContent(), "2 events");
  await shot(page, "events", "desktop");

  // Filter by status.
  await page.selectOption('select[name="status"]', "critical");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/status=critical/);
  assert.equal(await page.locator("#event-rows tr").count(), 1);

  // 4. The event page: output; occurrences and the history strip grow live as the agent
  // reports the failure again.
  await failing.getByRole("link", { name: "disk" }).click();
  await page.waitForURL(/\/ui\/ns\/ops\/events\/web1\/disk$/);
  await page.locator("#event-output").getByText("DISK CRITICAL - / is 97% full").waitFor();
  await markPage(page);
  const occurrences = Number(await page.locator("#event-summary .occurrences").textContent());
  const lastRun = await page.locator("#event-history li").last().getAttribute("title");
  await page.waitForFunction(([o, t]) => {
    const strip = document.querySelectorAll("#event-history li");
    return Number(document.querySelector("#event-summary .occurrences").textContent) > o
      && strip[strip.length - 1].title !== t;
  }, [occurrences, lastRun]);
  assert.ok(await page.locator("#event-history li.s-critical").count() >= 2);
  await assertNotReloaded(page, "event page");
  await shot(page, "event", "desktop");

  // Silence it; re-run it (an adhoc request to entity:web1, which the test also receives).
  await page.getByLabel("Reason").fill("disk swap planned");
  await page.getByRole("button", { name: "Silence" }).click();
  await page.getByText("Done: silence.").waitFor();
  await page.getByRole("button", { name: "Re-run" }).click();
  await page.getByText("Done: rerun.").waitFor();

  // 5. Silences: the one just made, then one created elsewhere (the API) appears live.
  await nav(page, "Silences");
  const silence = page.locator("#silence-rows tr", { hasText: "entity:web1" });
  await silence.waitFor();
  assert.match(await silence.textContent(), /disk swap planned/);
  await markPage(page);
  await step("silence");
  await page.locator("#silence-rows tr", { hasText: "entity:db1" }).waitFor();
  assert.match(await page.locator("#silence-rows tr", { hasText: "entity:db1" }).textContent(), /db maintenance/);
  await assertNotReloaded(page, "silences list");

  // 6. The entity page: the check recovers on the agent; its events turn OK live.
  await page.goto(`${BASE}/ui/ns/ops/entities/web1`);
  await page.locator('#entity-events tr[data-check="disk"].s-critical').waitFor();
  await markPage(page);
  await step("fix");
  await page.locator('#entity-events tr[data-check="disk"].s-ok').waitFor();
  await assertNotReloaded(page, "entity page");

  // 7. The event page: it fails again; status, history strip and output change live.
  await page.goto(`${BASE}/ui/ns/ops/events/web1/disk`);
  await page.locator("#event-summary .badge.s-ok").waitFor();
  await markPage(page);
  await step("fail");
  await page.locator("#event-summary .badge.s-critical").waitFor();
  await page.locator("#event-history li.s-critical:last-child").waitFor();
  await page.locator("#event-output").getByText("DISK CRITICAL").waitFor();
  await assertNotReloaded(page, "event page status");

  // 8. Checks: a check created elsewhere appears live; "Execute now" runs it on the agent.
  await nav(page, "Checks");
  await page.locator('#check-rows tr[data-check="disk"]').waitFor();
  await markPage(page);
  await step("check");
  const load = page.locator('#check-rows tr[data-check="load"]');
  await load.waitFor();
  await assertNotReloaded(page, "checks list");
  await shot(page, "checks", "desktop");
  await load.getByRole("link", { name: "load" }).click();
  await page.waitForURL(/\/ui\/ns\/ops\/checks\/load$/);
  await shot(page, "check", "desktop");
  await page.getByRole("button", { name: "Execute now" }).click();
  await page.getByText("Done: execute.").waitFor();
  await page.goto(`${BASE}/ui/ns/ops/entities/web1`);
  await page.locator('#entity-events tr[data-check="load"].s-ok').waitFor();

  // 9. Entities: the agent is killed; its keepalive turns to warning live after its timeout.
  await nav(page, "Entities");
  await agentRow.locator("td.keepalive .badge.s-ok").waitFor();
  await markPage(page);
  await step("stop");
  await agentRow.locator("td.keepalive .badge.s-warning").waitFor({ timeout: 40000 });
  await assertNotReloaded(page, "keepalive state");

  // 10. Resolve the failing event (the agent is gone, so nothing reports it again); the
  // event page turns OK without a reload.
  await page.goto(`${BASE}/ui/ns/ops/events/web1/disk`);
  await page.getByRole("button", { name: "Resolve" }).click();
  await page.getByText("Done: resolve.").waitFor();
  await page.locator("#event-summary .badge.s-ok").waitFor();
  await page.locator("#event-output").getByText(`Resolved manually by ${ADMIN[0]}`).waitFor();

  // 11. Silences: create one through the form, delete it.
  await nav(page, "Silences");
  await page.getByLabel("Subscription (e.g. entity:web1)").fill("linux");
  await page.getByLabel("Reason", { exact: true }).fill("kernel upgrade");
  await page.getByRole("button", { name: "Create silence" }).click();
  await page.getByText("Done: created.").waitFor();
  const rows = page.locator("#silence-rows tr");
  assert.equal(await rows.count(), 3);
  await shot(page, "silences", "desktop");
  await audit(page, "silences (flash)");
  await page.getByRole("button", { name: "Delete silence linux:*" }).click();
  await page.getByText("Done: deleted.").waitFor();
  assert.equal(await rows.count(), 2);
  assert.equal(await page.locator("#silence-rows tr", { hasText: "linux:*" }).count(), 0);

  // Every page at both widths: screenshots (phone) and the accessibility audit.
  const pages = [["events", "/ui/ns/ops/events"], ["event", "/ui/ns/ops/events/web1/disk"],
    ["entities", "/ui/ns/ops/entities"], ["entity", "/ui/ns/ops/entities/web1"],
    ["checks", "/ui/ns/ops/checks"], ["check", "/ui/ns/ops/checks/disk"],
    ["silences", "/ui/ns/ops/silences"], ["all statuses", "/ui/ns/default/events"],
    ["proxy entity", "/ui/ns/default/entities/lab"],
    ["warning event", "/ui/ns/default/events/lab/s1"], ["unknown event", "/ui/ns/default/events/lab/s3"]];
  for (const [width, size] of Object.entries(WIDTHS)) {
    await page.setViewportSize(size);
    for (const [name, url] of pages) {
      await page.goto(`${BASE}${url}`);
      if (width === "phone" && !name.includes(" ")) await shot(page, name, "phone");
      await audit(page, `${name} (${width})`);
    }
  }
  await page.setViewportSize(WIDTHS.desktop);

  // Keyboard only: log in, reach an event from the events list, and resolve it.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/ui\/login$/);
  await page.setViewportSize(WIDTHS.phone);
  await shot(page, "login", "phone");
  await audit(page, "login (phone)");
  await page.setViewportSize(WIDTHS.desktop);
  await page.goto(`${BASE}/ui/ns/ops/events`);
  assert.match(page.url(), /\/ui\/login$/, "logged out: pages send the browser to the login form");
  // The form focuses the username field itself (autofocus, once the page has rendered).
  await page.waitForFunction(() => document.activeElement.id === "username");
  await page.keyboard.type(ADMIN[0]);
  await tabTo(page, "password", () => document.activeElement.id === "password", 1);
  await page.keyboard.type(ADMIN[1]);
  await tabTo(page, "Log in", () => document.activeElement.textContent === "Log in", 1);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/ui\/ns\/default\/events$/);
  // The skip link is the first stop and moves focus to the content.
  await tabTo(page, "skip link", () => document.activeElement.textContent === "Skip to content", 1);
  await page.keyboard.press("Enter");
  assert.equal(await page.evaluate(() => document.activeElement.id), "main");
  const stops = await tabTo(page, "the critical event's link",
    () => (document.activeElement.getAttribute("href") || "").endsWith("/events/lab/s2"));
  console.log(`KEYBOARD events page: the critical event's link after ${stops} tab stops from the skip link`);
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/ui\/ns\/default\/events\/lab\/s2$/);
  const toResolve = await tabTo(page, "Resolve", () => document.activeElement.textContent === "Resolve");
  console.log(`KEYBOARD event page: Resolve after ${toResolve} tab stops`);
  await page.keyboard.press("Enter");
  await page.getByText("Done: resolve.").waitFor();
  await page.locator("#event-summary .badge.s-ok").waitFor();
  // Focus survives a live update: the stopped agent's keepalive failure repeats, so the
  // events table of ops is swapped while a link in it has keyboard focus.
  await page.goto(`${BASE}/ui/ns/ops/events`);
  await tabTo(page, "web1's disk event",
    () => (document.activeElement.getAttribute("href") || "").endsWith("/events/web1/disk"));
  await page.evaluate(() => {
    window.__swapped = false;
    new MutationObserver(() => { window.__swapped = true; })
      .observe(document.getElementById("event-rows"), { childList: true });
  });
  await page.waitForFunction(() => window.__swapped, null, { timeout: 30000 });
  assert.ok((await page.evaluate(() => document.activeElement.getAttribute("href") || ""))
    .endsWith("/events/web1/disk"), "focus kept across a live update");
  // The header's controls too (the namespace switcher and Log out), on the dark background.
  await page.goto(`${BASE}/ui/ns/default/events`);
  await tabTo(page, "Log out", () => document.activeElement.textContent === "Log out");

  // Log out: the session ends, and pages send the browser back to the login form.
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/ui\/login$/);

  // bob may only view ops: the switcher shows only ops, and other namespaces' pages are 403.
  await login(page, "bob", "bob-password");
  assert.match(page.url(), /\/ui\/ns\/ops\/events$/);
  assert.deepEqual(await page.locator("#ns-select option").allTextContents(), ["ops"]);
  for (const url of ["/ui/ns/secret/events", "/ui/ns/default/events", "/ui/ns/secret/entities"]) {
    const resp = await page.goto(`${BASE}${url}`);
    assert.equal(resp.status(), 403, url);
    await page.getByText("403 Forbidden").waitFor();
  }
  await audit(page, "403 page");
  // ... and their live updates neither.
  const live = await page.evaluate(async (u) => {
    const r = await fetch(u);
    return [r.status, (await r.json()).message];
  }, `${BASE}/ui/ns/secret/entities?live=1`);
  assert.equal(live[0], 403, `live update of another namespace: ${live[1]}`);

  for (const [key, p] of [...pairs.entries(), ...rings.entries()].sort()) {
    console.log(`CONTRAST ${key} = ${p.ratio.toFixed(2)}:1 (needs ${p.need}:1) e.g. ${p.sample ?? p.element} on ${p.page ?? "focus"}`);
  }
  assert.deepEqual(problems, [], "accessibility problems");
  console.log("DONE");
} finally {
  await browser.close();
}
// stdin stays open (the test's pipe): leave without waiting for it.
process.exit(0);
