// The browser side: Debian's Chromium driven by playwright-core (no browser download), and small
// helpers that read the chapter page the way its tests need (the ids and classes are the page's
// contract: #status[data-state][data-code], #log li.sent / li.received / li.event with the text
// in .text (cut short past 160 characters) and the full length in data-length, #message).

import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

import { OUTPUT_DIR } from "./chapters.mjs";

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** How long any single wait on the page may take before the test fails. */
export const WAIT_MS = 10_000;

/** Headless Chromium as root in a container: the flags that are known to work here. */
export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    chromiumSandbox: false,
    timeout: 30_000,
    args: [
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** A fresh browser context (its own cookies and storage, like a second browser window). */
export async function newTab(browser, { width = 640, height = 520 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const problems = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console error: ${message.text()}`);
  });
  page.on("pageerror", (err) => problems.push(`uncaught exception: ${err.message}`));
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
  });
  page.on("requestfailed", (request) =>
    problems.push(`request failed: ${request.url()} (${request.failure()?.errorText})`),
  );
  return { context, page, problems };
}

/** Opens the chapter page and waits until its WebSocket is open. */
export async function openChapterPage(tab, url) {
  const response = await tab.page.goto(url, { waitUntil: "load", timeout: WAIT_MS });
  if (!response || response.status() !== 200) {
    throw new Error(`GET ${url} answered ${response ? response.status() : "nothing"}`);
  }
  await waitForState(tab.page, "open");
}

/** Waits until `#status` reports `state` ("connecting", "open" or "closed"). */
export async function waitForState(page, state, timeout = WAIT_MS) {
  try {
    await page.waitForSelector(`#status[data-state="${state}"]`, { state: "attached", timeout });
  } catch (err) {
    const now = await page.locator("#status").textContent().catch(() => "(unreadable)");
    throw new Error(`the page's status never became "${state}" (it shows "${now}")`, {
      cause: err,
    });
  }
}

/** Types `text` into the message box key by key and presses Enter, as a user would. */
export async function typeAndEnter(page, text) {
  const input = page.locator("#message");
  await input.click();
  await input.pressSequentially(text);
  await input.press("Enter");
}

/** Puts `text` into the message box in one go (a paste) and presses Enter. */
export async function pasteAndEnter(page, text) {
  const input = page.locator("#message");
  await input.fill(text);
  await input.press("Enter");
}

/** The texts of the log's entries of one kind ("sent", "received" or "event"), in order. */
export function logTexts(page, kind) {
  return page.$$eval(`#log li.${kind} .text`, (items) => items.map((item) => item.textContent));
}

/** Waits until the log has a `kind` entry whose text is exactly `text`. */
export async function waitForLogEntry(page, kind, text, timeout = WAIT_MS) {
  try {
    await page.waitForFunction(
      ([kind, text]) =>
        [...document.querySelectorAll(`#log li.${kind} .text`)].some(
          (item) => item.textContent === text,
        ),
      [kind, text],
      { timeout },
    );
  } catch (err) {
    const seen = await logTexts(page, kind).catch(() => []);
    throw new Error(
      `no ${kind} entry ${JSON.stringify(text)} in the log within ${timeout} ms; ${kind} entries: ${JSON.stringify(seen)}`,
      { cause: err },
    );
  }
}

/** Waits until the log has a `kind` entry for a message of exactly `length` characters. */
export async function waitForLogEntryOfLength(page, kind, length, timeout = WAIT_MS) {
  try {
    await page.waitForSelector(`#log li.${kind}[data-length="${length}"]`, {
      state: "attached",
      timeout,
    });
  } catch (err) {
    const seen = await page
      .$$eval(`#log li.${kind}`, (items) => items.map((item) => item.dataset.length))
      .catch(() => []);
    throw new Error(
      `no ${kind} entry of ${length} characters in the log within ${timeout} ms; lengths seen: ${JSON.stringify(seen)}`,
      { cause: err },
    );
  }
}

/** The status line as the user reads it, e.g. "closed 1001 going away". */
export async function statusText(page) {
  return (await page.locator("#status").textContent()).trim();
}

function outputPath(name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return path.join(OUTPUT_DIR, `${name}.png`);
}

/** Saves one page's screenshot as e2e/output/<name>.png and returns the path. */
export async function screenshot(page, name) {
  const file = outputPath(name);
  await page.screenshot({ path: file });
  return file;
}

/**
 * Saves one picture with every tab side by side, each under its caption, so a screenshot can
 * show what both ends saw at the same moment.
 */
export async function screenshotSideBySide(browser, tabs, name, title) {
  const shots = [];
  for (const { page, caption } of tabs) {
    const png = await page.screenshot();
    shots.push({ caption, src: `data:image/png;base64,${png.toString("base64")}` });
  }
  const { context, page } = await newTab(browser, { width: 1320, height: 640 });
  try {
    await page.setContent(`<!doctype html><meta charset="utf-8">
      <style>
        body { margin: 0; padding: 12px; font: 15px system-ui, sans-serif; background: #d9d9e0; }
        h1 { font-size: 16px; margin: 0 0 8px; }
        .row { display: flex; gap: 16px; align-items: flex-start; }
        figure { margin: 0; background: #fff; border: 2px solid #333; }
        figcaption { font-weight: 600; padding: 4px 8px; background: #333; color: #fff; }
        img { display: block; }
      </style>
      <h1 id="title"></h1>
      <div class="row"></div>`);
    await page.evaluate(
      ([title, shots]) => {
        document.getElementById("title").textContent = title;
        const row = document.querySelector(".row");
        for (const shot of shots) {
          const figure = document.createElement("figure");
          const caption = document.createElement("figcaption");
          caption.textContent = shot.caption;
          const img = document.createElement("img");
          img.src = shot.src;
          img.alt = shot.caption;
          figure.append(caption, img);
          row.append(figure);
        }
        return Promise.all([...document.images].map((img) => img.decode()));
      },
      [title, shots],
    );
    const file = outputPath(name);
    await page.screenshot({ path: file, fullPage: true });
    return file;
  } finally {
    await context.close();
  }
}
