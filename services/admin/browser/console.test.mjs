// The admin console in a real browser: Playwright (playwright-core) drives the system's
// Chromium against the suite running on loopback (scripts/admin-browser-test.sh starts it with
// `cargo run -p sextant-admin --example admin_suite` and passes its address and token).
//
//   ADMIN_URL=… ADMIN_TOKEN=… [CHROMIUM=/usr/bin/chromium] [SCREENSHOT_DIR=dir] node --test console.test.mjs
//
// The screenshots are checked, not just taken: the full page and the model table must be real
// PNGs of a plausible size whose pixels are not one flat colour.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const URL_ = process.env.ADMIN_URL;
const TOKEN = process.env.ADMIN_TOKEN;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const SHOTS = process.env.SCREENSHOT_DIR || fs.mkdtempSync("/tmp/sextant-admin-shots-");
if (!URL_ || !TOKEN) throw new Error("ADMIN_URL and ADMIN_TOKEN are required");

let browser;
let page;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Root in CI containers: Chromium's sandbox needs user namespaces it may not have.
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.setDefaultTimeout(30_000);
});

after(async () => {
  if (browser) await browser.close();
});

async function signIn(token) {
  await page.goto(URL_ + "/");
  await page.fill("#token", token);
  await page.click("#login-form button[type=submit]");
}

/** PNG width and height from the IHDR chunk; throws when `buf` is not a PNG. */
function pngSize(buf) {
  const sig = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.ok(buf.subarray(0, 8).equals(sig), "not a PNG");
  assert.equal(buf.subarray(12, 16).toString("ascii"), "IHDR");
  return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
}

/** Share of pixels that differ from the most common colour, decoded by the browser itself. */
async function inkShare(png) {
  const probe = await browser.newPage();
  try {
    return await probe.evaluate(async (b64) => {
      const img = new Image();
      img.src = "data:image/png;base64," + b64;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = img.width;
      c.height = img.height;
      const ctx = c.getContext("2d");
      ctx.drawImage(img, 0, 0);
      const d = ctx.getImageData(0, 0, c.width, c.height).data;
      const counts = new Map();
      for (let i = 0; i < d.length; i += 4) {
        const k = (d[i] << 16) | (d[i + 1] << 8) | d[i + 2];
        counts.set(k, (counts.get(k) || 0) + 1);
      }
      const top = Math.max(...counts.values());
      return 1 - top / (d.length / 4);
    }, png.toString("base64"));
  } finally {
    await probe.close();
  }
}

test("a wrong token is refused and the console stays hidden", async () => {
  await signIn("not-the-admin-token-not-the-admin-token");
  await page.waitForSelector("#login-error:has-text('not accepted')");
  assert.equal(await page.isVisible("#console"), false);
});

test("signed in, the page shows the model table with metrics and states", async () => {
  await signIn(TOKEN);
  await page.waitForSelector("body[data-loaded=true]");
  const rows = page.locator("#models tbody tr[data-version]");
  await rows.first().waitFor();
  assert.ok((await rows.count()) >= 2, "two trained versions");
  const versions = await rows.evaluateAll((trs) => trs.map((t) => t.dataset.version));
  assert.ok(versions.includes("churn-v1"), versions.join(","));
  const cells = await rows.first().locator("td").allTextContents();
  const auc = Number(cells[3]);
  assert.ok(auc > 0.5 && auc <= 1, `ROC-AUC ${cells[3]}`);
  const states = await page.locator("#models tbody td:nth-child(2)").allTextContents();
  assert.equal(states.filter((s) => s === "current").length, 1, states.join(","));
  assert.match(await page.textContent("#gateway"), /ready\s*yes/);
  assert.match(await page.textContent("#gateway"), /scoring requests/);
});

test("the screenshots show the model table", async () => {
  const full = path.join(SHOTS, "admin-console.png");
  await page.screenshot({ path: full, fullPage: true });
  const fullPng = fs.readFileSync(full);
  const size = pngSize(fullPng);
  assert.ok(fullPng.length > 20_000, `full page PNG is ${fullPng.length} bytes`);
  assert.ok(size.width >= 1000 && size.height >= 500, JSON.stringify(size));

  const table = path.join(SHOTS, "admin-models.png");
  await page.locator("#models").screenshot({ path: table });
  const tablePng = fs.readFileSync(table);
  const t = pngSize(tablePng);
  assert.ok(t.height >= 60, `model table is ${t.height} px high`);
  const ink = await inkShare(tablePng);
  assert.ok(ink > 0.02, `model table screenshot is nearly blank (${(100 * ink).toFixed(2)} % ink)`);
});

test("plots of a model load as images", async () => {
  await page.locator("#models tbody tr[data-version] button", { hasText: "Plots" }).first().click();
  const img = page.locator("#plots img").first();
  await img.waitFor();
  await page.waitForFunction(() => {
    const i = document.querySelector("#plots img");
    return i && i.complete && i.naturalWidth > 0;
  });
  assert.ok((await page.locator("#plots img").count()) >= 2, "ROC and learning curve");
});

test("promote makes a candidate current, and an unknown version is answered 404", async () => {
  const target = page.locator("#models tbody tr[data-version]").filter({ has: page.locator("button.promote") }).first();
  const version = await target.getAttribute("data-version");
  await target.locator("button.promote").click();
  await page.waitForSelector(`#message:has-text('${version} is now current')`);
  await page.waitForFunction(
    (v) => document.querySelector(`#models tr[data-version="${v}"] td:nth-child(2)`)?.textContent === "current",
    version,
  );
  const status = await page.evaluate(async (token) => {
    const r = await fetch("/api/models/churn-v999/promote", {
      method: "POST",
      headers: { Authorization: "Bearer " + token },
    });
    return { status: r.status, body: await r.json() };
  }, TOKEN);
  assert.equal(status.status, 404);
  assert.equal(status.body.code, "not_found");
});

test("start a sync from the page and watch it in the sync table", async () => {
  await page.click("#start-sync");
  await page.waitForSelector("#message:has-text('started')");
  const id = (await page.textContent("#message")).match(/Sync (\S+) started/)[1];
  await page.waitForFunction(
    (i) => [...document.querySelectorAll("#syncs tbody tr")].some((tr) => tr.firstChild?.textContent === i),
    id,
  );
  // While a sync runs, a second start is refused by the connector, and the page says why.
  await page.click("#start-sync");
  await page.waitForFunction(() => /started|did not start/.test(document.querySelector("#message").textContent));
  await page.waitForFunction(
    (i) => {
      const tr = [...document.querySelectorAll("#syncs tbody tr")].find((r) => r.firstChild?.textContent === i);
      return tr && tr.children[1].textContent === "succeeded";
    },
    id,
    { timeout: 300_000, polling: 1000 },
  );
  assert.match(await page.textContent("#budget"), /API/);
  await page.screenshot({ path: path.join(SHOTS, "admin-after-sync.png"), fullPage: true });
});

test("signing out forgets the token", async () => {
  await page.click("#logout");
  assert.equal(await page.isVisible("#login"), true);
  assert.equal(await page.evaluate(() => sessionStorage.getItem("sextant-admin-token")), null);
});
