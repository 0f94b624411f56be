// The web UI's browser flow, run by tests/webui.rs. It prints "STEP <name>" when it needs the
// test to act on the backend (an agent connects, a check fails) and waits for "ok" on stdin.
// Any failed expectation throws, and node exits non-zero.
import { createInterface } from "node:readline";
import { strict as assert } from "node:assert";
import path from "node:path";

const { chromium } = await import(process.env.PLAYWRIGHT_CORE);
const BASE = process.env.BASE;
const SHOTS = process.env.SHOTS;
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

try {
  const page = browser.pages()[0] ?? await browser.newPage();
  page.setDefaultTimeout(20000);
  await page.goto(`${BASE}/ui`);
  await shot(page, "login", "desktop");
  await login(page, process.env.ADMIN_USER, process.env.ADMIN_PASS);
  assert.match(page.url(), /\/ui\/ns\/default\/events$/);

  // The switcher lists the namespaces the admin may see; choosing one navigates there.
  const options = await page.locator("#ns-select option").allTextContents();
  assert.deepEqual(options.sort(), ["default", "ops", "secret"]);
  await page.selectOption("#ns-select", "ops");
  await page.waitForURL(/\/ui\/ns\/ops\/events$/);
  await page.locator("#event-rows").getByText("No events match.").waitFor();

  // Live updates: the page is not reloaded while the agent and the failure appear.
  await page.evaluate(() => { window.__notReloaded = true; });
  await step("agent");
  await page.locator('#event-rows tr[data-entity="web1"][data-check="keepalive"]').waitFor();
  await step("fail");
  const failing = page.locator('#event-rows tr[data-entity="web1"][data-check="disk"]');
  await failing.waitFor();
  assert.equal(await page.evaluate(() => window.__notReloaded), true, "updated without reload");
  assert.match(await failing.getAttribute("class"), /s-critical/);
  // Sorted by severity: the critical event comes before the OK keepalive.
  assert.equal(await page.locator("#event-rows tr").first().getAttribute("data-check"), "disk");
  assert.equal(await page.locator("#event-count").textContent(), "2");
  await shot(page, "events", "desktop");

  // Filter by status.
  await page.selectOption('select[name="status"]', "critical");
  await page.getByRole("button", { name: "Filter" }).click();
  await page.waitForURL(/status=critical/);
  assert.equal(await page.locator("#event-rows tr").count(), 1);

  // The event page: output, history, occurrences; silence it.
  await failing.getByRole("link", { name: "disk" }).click();
  await page.waitForURL(/\/ui\/ns\/ops\/events\/web1\/disk$/);
  await page.getByText("DISK CRITICAL - / is 97% full").waitFor();
  assert.equal(await page.locator("ol.strip li.s-critical").count(), 1);
  await shot(page, "event", "desktop");
  await page.getByLabel("Reason").fill("disk swap planned");
  await page.getByRole("button", { name: "Silence" }).click();
  await page.getByText("Done: silence.").waitFor();
  // Re-run: an adhoc request to this entity (the test counts the agent's check requests).
  await page.getByRole("button", { name: "Re-run" }).click();
  await page.getByText("Done: rerun.").waitFor();

  await page.getByRole("link", { name: "Silences" }).click();
  const silence = page.locator("table.silences tbody tr", { hasText: "entity:web1" });
  await silence.waitFor();
  assert.match(await silence.textContent(), /disk swap planned/);

  // Resolve it: the event turns OK (eventd processes the resolution asynchronously).
  await page.goto(`${BASE}/ui/ns/ops/events/web1/disk`);
  await page.getByRole("button", { name: "Resolve" }).click();
  await page.getByText("Done: resolve.").waitFor();
  for (let i = 0; i < 50; i++) {
    if (await page.locator(".facts .badge.s-ok").count() === 1) break;
    await page.waitForTimeout(200);
    await page.reload();
  }
  await page.locator(".facts .badge.s-ok").waitFor();
  await page.getByText(`Resolved manually by ${process.env.ADMIN_USER}`).waitFor();

  // Entities, an entity with its system facts, checks with execute now.
  await page.getByRole("link", { name: "Entities", exact: true }).click();
  await page.locator("table.entities").getByRole("link", { name: "web1" }).waitFor();
  await shot(page, "entities", "desktop");
  await page.locator("table.entities").getByRole("link", { name: "web1" }).click();
  await page.getByText("web1.example").waitFor();
  await shot(page, "entity", "desktop");
  await page.getByRole("link", { name: "Checks", exact: true }).click();
  await page.getByRole("link", { name: "disk" }).click();
  await shot(page, "checks", "desktop");
  await page.getByRole("button", { name: "Execute now" }).click();
  await page.getByText("Done: execute.").waitFor();

  // Silences: create one through the form, delete both.
  await page.getByRole("link", { name: "Silences", exact: true }).click();
  await page.getByLabel("Subscription (e.g. entity:web1)").fill("linux");
  await page.getByLabel("Reason", { exact: true }).fill("kernel upgrade");
  await page.getByRole("button", { name: "Create silence" }).click();
  await page.getByText("Done: created.").waitFor();
  const rows = page.locator("table.silences tbody tr");
  assert.equal(await rows.count(), 2);
  await shot(page, "silences", "desktop");
  await page.getByRole("button", { name: "Delete silence linux:*" }).click();
  await page.getByText("Done: deleted.").waitFor();
  assert.equal(await rows.count(), 1);
  assert.match(await rows.first().textContent(), /entity:web1/);

  // Phone width: the same pages.
  await page.setViewportSize(WIDTHS.phone);
  for (const [name, url] of [["events", "/ui/ns/ops/events"], ["event", "/ui/ns/ops/events/web1/disk"],
    ["entities", "/ui/ns/ops/entities"], ["entity", "/ui/ns/ops/entities/web1"],
    ["checks", "/ui/ns/ops/checks/disk"], ["silences", "/ui/ns/ops/silences"]]) {
    await page.goto(`${BASE}${url}`);
    await shot(page, name, "phone");
  }

  // Keyboard: the skip link is the first tab stop and moves focus to the content.
  await page.goto(`${BASE}/ui/ns/ops/events`);
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.textContent), "Skip to content");

  // Log out: the session ends, and pages send the browser back to the login form.
  await page.getByRole("button", { name: "Log out" }).click();
  await page.waitForURL(/\/ui\/login$/);
  await shot(page, "login", "phone");
  await page.goto(`${BASE}/ui/ns/ops/events`);
  assert.match(page.url(), /\/ui\/login$/);

  // bob may only view ops: the switcher shows only ops, and other namespaces' pages are 403.
  await page.setViewportSize(WIDTHS.desktop);
  await login(page, "bob", "bob-password");
  assert.match(page.url(), /\/ui\/ns\/ops\/events$/);
  assert.deepEqual(await page.locator("#ns-select option").allTextContents(), ["ops"]);
  for (const url of ["/ui/ns/secret/events", "/ui/ns/default/events", "/ui/ns/secret/entities"]) {
    const resp = await page.goto(`${BASE}${url}`);
    assert.equal(resp.status(), 403, url);
    await page.getByText("403 Forbidden").waitFor();
  }
  console.log("DONE");
} finally {
  await browser.close();
}
// stdin stays open (the test's pipe): leave without waiting for it.
process.exit(0);
