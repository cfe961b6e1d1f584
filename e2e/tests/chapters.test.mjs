// Every chapter's server with a real browser on both ends: the page at `/` is opened in two
// browser contexts (two independent users), one of them types, and each test says what both
// should see. What a chapter is expected to do comes from its number and e2e/chapters.json.
//
// Screenshots land in e2e/output/<chapter>--<scenario>.png (both tabs side by side where two
// are involved), and <…>--FAILED.png when a scenario fails.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { chapters } from "../lib/chapters.mjs";
import {
  launch,
  logTexts,
  newTab,
  openChapterPage,
  pasteAndEnter,
  screenshot,
  screenshotSideBySide,
  statusText,
  typeAndEnter,
  WAIT_MS,
  waitForLogEntry,
  waitForLogEntryOfLength,
  waitForState,
} from "../lib/browser.mjs";
import { RedisServer } from "../lib/redis.mjs";
import { ChapterServer } from "../lib/server.mjs";

/** Per scenario, including starting the server and the browser contexts. */
const SCENARIO_TIMEOUT_MS = 45_000;

/**
 * How long a tab must stay quiet before "it received nothing" counts. Absence has no signal to
 * wait for, so this is a bounded look, not synchronisation: every positive step waits on the
 * page itself.
 */
const SILENCE_MS = 500;

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/**
 * Runs `body` against a fresh server of `chapter` with `tabCount` pages open on it (tab A, tab B,
 * …). Whatever happens, the contexts are closed and the server stopped; on failure a screenshot
 * of every tab is saved and the server's log is added to the error.
 */
async function withServer(chapter, scenario, tabCount, body) {
  const server = await ChapterServer.start(chapter.binary);
  const tabs = [];
  try {
    for (let i = 0; i < tabCount; i += 1) {
      const tab = await newTab(browser);
      tab.caption = `tab ${String.fromCharCode(65 + i)}`;
      tabs.push(tab);
      await openChapterPage(tab, server.url);
    }
    await body({ server, tabs });
  } catch (err) {
    const live = tabs.filter((tab) => !tab.page.isClosed());
    if (live.length > 0) {
      await screenshotSideBySide(
        browser,
        live.map((tab) => ({ page: tab.page, caption: tab.caption })),
        `${chapter.name}--${scenario}--FAILED`,
        `FAILED: ${chapter.name} ${scenario}`,
      ).catch(() => {});
    }
    err.message += `\n--- ${chapter.name} server log (stderr) ---\n${server.stderr}`;
    throw err;
  } finally {
    await Promise.all(tabs.map((tab) => tab.context.close().catch(() => {})));
    await server.stop();
  }
}

/**
 * Runs `body` against two servers of `chapter` that share a fresh redis-server (each started with
 * `--redis`), with tab A open on the first and tab B on the second, once each server has heard
 * from the other. Whatever happens, the tabs are closed and both servers and Redis stopped; on
 * failure a screenshot of both tabs is saved and both servers' logs are added to the error.
 */
async function withTwoServers(chapter, scenario, body) {
  const redis = await RedisServer.start();
  const servers = [];
  const tabs = [];
  try {
    for (let i = 0; i < 2; i += 1) {
      servers.push(await ChapterServer.start(chapter.binary, ["--redis", redis.url]));
    }
    for (const server of servers) await waitForPeers(server, 1);
    for (const [i, server] of servers.entries()) {
      const tab = await newTab(browser);
      tab.caption = `tab ${String.fromCharCode(65 + i)} on server ${i + 1}`;
      tabs.push(tab);
      await openChapterPage(tab, server.url);
    }
    await body({ servers, tabs });
  } catch (err) {
    const live = tabs.filter((tab) => !tab.page.isClosed());
    if (live.length > 0) {
      await screenshotSideBySide(
        browser,
        live.map((tab) => ({ page: tab.page, caption: tab.caption })),
        `${chapter.name}--${scenario}--FAILED`,
        `FAILED: ${chapter.name} ${scenario}`,
      ).catch(() => {});
    }
    for (const [i, server] of servers.entries()) {
      err.message += `\n--- ${chapter.name} server ${i + 1} log (stderr) ---\n${server.stderr}`;
    }
    throw err;
  } finally {
    await Promise.all(tabs.map((tab) => tab.context.close().catch(() => {})));
    await Promise.all(servers.map((server) => server.stop()));
    await redis.stop();
  }
}

/**
 * Waits (at most WAIT_MS) until `server`'s `/stats` says it has heard from `peers` other servers:
 * servers find each other through Redis on their own time, with nothing else to wait on.
 */
async function waitForPeers(server, peers) {
  const deadline = Date.now() + WAIT_MS;
  let last = null;
  while (Date.now() < deadline) {
    const response = await fetch(new URL("/stats", server.url));
    last = await response.json();
    if (last.peers === peers) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `${server.url} should hear from ${peers} other server(s) within ${WAIT_MS} ms; /stats: ${JSON.stringify(last)}`,
  );
}

/** The tab that should show a message sent by tab A: A itself (echo) or B (fan-out). */
function recipientOf(chapter, [a, b]) {
  if (chapter.behaviours.echo) return a;
  if (chapter.behaviours["fan-out"]) return b;
  throw new Error(`e2e/chapters.json gives ${chapter.name} neither "echo" nor "fan-out"`);
}

for (const chapter of chapters()) {
  if (!chapter.exists) {
    const why = `chapters/${chapter.name} does not exist yet`;
    console.log(`skip: chapter ${chapter.name}: ${why}`);
    describe(chapter.name, { skip: why }, () => {});
    continue;
  }

  describe(chapter.name, { timeout: SCENARIO_TIMEOUT_MS * 6 }, () => {
    it("has a built binary", () => {
      assert.ok(chapter.binary, `chapters/${chapter.name}/Cargo.toml should name its package`);
      assert.ok(
        chapter.binary && ChapterServer.exists(chapter.binary),
        `${chapter.binary} should exist: run \`cargo build --bins\` first (e2e/run.sh does)`,
      );
    });

    /** The page names the chapter in its title and header, connects, and logs no errors. */
    it("page names the chapter and connects without console errors", { timeout: SCENARIO_TIMEOUT_MS }, () =>
      withServer(chapter, "page", 1, async ({ tabs: [a] }) => {
        assert.equal(
          (await a.page.locator("#chapter").textContent()).trim(),
          chapter.name,
          "the page header should name the chapter that serves it",
        );
        assert.match(await a.page.title(), new RegExp(chapter.name), "the title should too");
        assert.equal(await statusText(a.page), "open", "the status should read open");
        assert.deepEqual(a.problems, [], "the page should log no errors");
        await screenshot(a.page, `${chapter.name}--page`);
      }));

    /** The Reconnect button drops the connection and opens a new one that works. */
    it("reconnect button opens a fresh connection", { timeout: SCENARIO_TIMEOUT_MS }, () =>
      withServer(chapter, "reconnect", 2, async ({ tabs }) => {
        const [a] = tabs;
        await a.page.getByRole("button", { name: "Reconnect" }).click();
        await waitForState(a.page, "open");
        const opens = (await logTexts(a.page, "event")).filter((t) => t.startsWith("connected"));
        assert.equal(opens.length, 2, `tab A should log two connections, logged ${opens}`);
        await typeAndEnter(a.page, "after reconnect");
        await waitForLogEntry(recipientOf(chapter, tabs).page, "received", "after reconnect");
        await screenshotSideBySide(
          browser,
          tabs.map((tab) => ({ page: tab.page, caption: tab.caption })),
          `${chapter.name}--reconnect`,
          `${chapter.name}: tab A pressed Reconnect, then sent a message`,
        );
      }));

    /**
     * A server that dies without a close handshake (SIGKILL) leaves the page showing
     * "closed 1006 abnormal", and the Send button disabled.
     */
    it("a killed server shows as closed 1006 abnormal", { timeout: SCENARIO_TIMEOUT_MS }, () =>
      withServer(chapter, "killed", 1, async ({ server, tabs: [a] }) => {
        await server.signal("SIGKILL");
        await waitForState(a.page, "closed");
        assert.equal(await statusText(a.page), "closed 1006 abnormal", "the status line");
        assert.equal(
          await a.page.locator("#status").getAttribute("data-code"),
          "1006",
          "#status carries the close code for scripts",
        );
        assert.ok(await a.page.locator("#send").isDisabled(), "Send is disabled once closed");
        await screenshot(a.page, `${chapter.name}--killed`);
      }));

    if (chapter.behaviours.echo) {
      /** Tab A's message comes back to tab A, marked received; tab B sees nothing at all. */
      it("a message is echoed to its sender and nobody else", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "echo", 2, async ({ tabs }) => {
          const [a, b] = tabs;
          const message = "hello from tab A";
          await typeAndEnter(a.page, message);
          await waitForLogEntry(a.page, "received", message);
          assert.deepEqual(await logTexts(a.page, "sent"), [message], "tab A logs what it sent");
          assert.deepEqual(
            await logTexts(a.page, "received"),
            [message],
            "tab A should get its message back exactly once",
          );
          await b.page.waitForTimeout(SILENCE_MS);
          assert.deepEqual(
            await logTexts(b.page, "received"),
            [],
            "tab B should receive nothing: an echo server answers only the sender",
          );
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: "tab A: sent, and got its echo" },
              { page: b.page, caption: "tab B: sees nothing" },
            ],
            `${chapter.name}--echo`,
            `${chapter.name}: tab A typed "${message}" and pressed Enter`,
          );
        }));
    }

    if (chapter.behaviours["fan-out"]) {
      /**
       * Tab A's message reaches tab B and never comes back to A. A short conversation proves the
       * "never" without waiting on a timer: had the server echoed A's first message, it would
       * have queued it for A before B's reply (B only replies after receiving it), so A's log
       * would show it first; likewise B's reply would reach B before A's last message.
       */
      it("a message reaches the other tab and is not echoed to its sender", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "fan-out", 2, async ({ tabs }) => {
          const [a, b] = tabs;
          await typeAndEnter(a.page, "hello from tab A");
          await waitForLogEntry(b.page, "received", "hello from tab A");
          await typeAndEnter(b.page, "hello back from tab B");
          await waitForLogEntry(a.page, "received", "hello back from tab B");
          await typeAndEnter(a.page, "bye from tab A");
          await waitForLogEntry(b.page, "received", "bye from tab A");
          assert.deepEqual(
            await logTexts(a.page, "received"),
            ["hello back from tab B"],
            "tab A should receive only B's message, never its own",
          );
          assert.deepEqual(
            await logTexts(b.page, "received"),
            ["hello from tab A", "bye from tab A"],
            "tab B should receive A's messages in order, never its own",
          );
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: "tab A" },
              { page: b.page, caption: "tab B" },
            ],
            `${chapter.name}--fan-out`,
            `${chapter.name}: each tab receives the other's messages, never its own`,
          );
        }));
    }

    if (chapter.behaviours["closes-1001-on-sigterm"]) {
      /** SIGTERM to the server: every open page shows "closed 1001 going away", the server exits 0. */
      it("SIGTERM closes every page with 1001 going away", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "sigterm", 2, async ({ server, tabs }) => {
          const exit = server.signal("SIGTERM");
          for (const tab of tabs) {
            await waitForState(tab.page, "closed");
            assert.match(
              await statusText(tab.page),
              /^closed 1001 going away\b/,
              `${tab.caption} should show the server's 1001 close`,
            );
          }
          assert.deepEqual(await exit, { code: 0, signal: null }, "the server should exit 0");
          await screenshotSideBySide(
            browser,
            tabs.map((tab) => ({ page: tab.page, caption: tab.caption })),
            `${chapter.name}--sigterm`,
            `${chapter.name}: after SIGTERM to the server`,
          );
        }));
    }

    if (chapter.behaviours["names-and-rooms"]) {
      /**
       * Two users name themselves with the name form; bob goes to "games" with the room form,
       * alice follows with the rooms list. What alice said in the lobby never reaches bob; what
       * she says in games does; a /msg shows among bob's private messages, not in the room.
       */
      it("names and rooms: a room's talk stays in it, a private message stays apart", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "rooms", 2, async ({ tabs }) => {
          const [a, b] = tabs;
          const whoami = (tab, text) =>
            tab.page.locator("#whoami").filter({ hasText: text }).waitFor();
          const submit = async (tab, field, value, button) => {
            await tab.page.locator(field).fill(value);
            await tab.page.getByRole("button", { name: button, exact: true }).click();
          };
          await submit(a, "#nick", "alice", "Set name");
          await whoami(a, "You are alice in lobby");
          await submit(b, "#nick", "bob", "Set name");
          await whoami(b, "You are bob in lobby");
          await submit(b, "#room", "games", "Join");
          await whoami(b, "You are bob in games");
          await typeAndEnter(a.page, "lobby only");
          await a.page.getByRole("button", { name: "games (1)" }).click();
          await whoami(a, "You are alice in games");
          await typeAndEnter(a.page, "hi games");
          await waitForLogEntry(b.page, "received", "hi games");
          assert.deepEqual(
            await logTexts(b.page, "received"),
            ["hi games"],
            "bob should hear alice in games only, never what she said in the lobby",
          );
          assert.deepEqual(
            await b.page.$$eval("#members li", (items) => items.map((item) => item.textContent)),
            ["alice", "bob (you)"],
            "bob's page should list who is in games",
          );
          await typeAndEnter(a.page, "/msg bob psst");
          await b.page.locator("#private li.private .text", { hasText: "psst" }).waitFor();
          assert.equal(
            (await logTexts(b.page, "received")).length,
            1,
            "a private message is shown apart, not in the room's log",
          );
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: "tab A: alice" },
              { page: b.page, caption: "tab B: bob" },
            ],
            `${chapter.name}--rooms`,
            `${chapter.name}: alice and bob in games, after a lobby message and a private one`,
          );
        }));
    }

    if (chapter.behaviours.history) {
      /**
       * What was said stays said: after alice has talked in the lobby, bob's `/history` brings it
       * back, marked on his page as history (dimmed, with its time) and apart from live talk.
       */
      it("history: /history brings back what was said, marked as history", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "history", 2, async ({ tabs: [a, b] }) => {
          await typeAndEnter(a.page, "remember this");
          await waitForLogEntry(b.page, "received", "remember this");
          await typeAndEnter(b.page, "/history");
          await waitForLogEntry(b.page, "history", "remember this");
          assert.deepEqual(
            await logTexts(b.page, "received:not(.history)"),
            ["remember this"],
            "the live message should appear once as live talk, and again only as history",
          );
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: "tab A: said something" },
              { page: b.page, caption: "tab B: heard it, then asked for /history" },
            ],
            `${chapter.name}--history`,
            `${chapter.name}: a message live, then again from /history, dimmed`,
          );
        }));
    }

    if (chapter.behaviours["many-servers"]) {
      /**
       * Two servers that share a Redis make one chat: alice on server 1 and bob on server 2 meet
       * in "games" by its name, each lists the other among its members, what one says there
       * reaches the other, and alice's /msg reaches bob across, apart from the room's talk.
       */
      it("many servers: two tabs on two servers chat in one room, and /msg reaches across", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withTwoServers(chapter, "many-servers", async ({ tabs }) => {
          const [a, b] = tabs;
          const whoami = (tab, text) =>
            tab.page.locator("#whoami").filter({ hasText: text }).waitFor();
          const submit = async (tab, field, value, button) => {
            await tab.page.locator(field).fill(value);
            await tab.page.getByRole("button", { name: button, exact: true }).click();
          };
          const members = (tab) =>
            tab.page.$$eval("#members li", (items) => items.map((item) => item.textContent));
          await submit(a, "#nick", "alice", "Set name");
          await whoami(a, "You are alice in lobby");
          await submit(b, "#nick", "bob", "Set name");
          await whoami(b, "You are bob in lobby");
          await submit(a, "#room", "games", "Join");
          await whoami(a, "You are alice in games");
          await submit(b, "#room", "games", "Join");
          await whoami(b, "You are bob in games");
          await typeAndEnter(a.page, "hello from server one");
          await waitForLogEntry(b.page, "received", "hello from server one");
          await typeAndEnter(b.page, "hello back from server two");
          await waitForLogEntry(a.page, "received", "hello back from server two");
          assert.deepEqual(
            await logTexts(b.page, "received:not(.history)"),
            ["hello from server one"],
            "bob should hear alice's words once, live",
          );
          assert.deepEqual(
            (await members(b)).sort(),
            ["alice", "bob (you)"],
            "bob's page should list alice, a client of the other server, in games",
          );
          assert.deepEqual(
            (await members(a)).sort(),
            ["alice (you)", "bob"],
            "alice's page should list bob, a client of the other server, in games",
          );
          await typeAndEnter(a.page, "/msg bob psst, across");
          await b.page.locator("#private li.private .text", { hasText: "psst, across" }).waitFor();
          assert.deepEqual(
            await logTexts(b.page, "received:not(.history)"),
            ["hello from server one"],
            "a private message is shown apart, not in the room's log",
          );
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: "tab A: alice on server 1" },
              { page: b.page, caption: "tab B: bob on server 2" },
            ],
            `${chapter.name}--many-servers`,
            `${chapter.name}: two servers sharing a Redis, one room, and a /msg across`,
          );
        }));
    }

    const oversized = chapter.behaviours["closes-1009-when-oversized"];
    if (oversized) {
      /**
       * A message of exactly the limit is delivered; one byte more closes the sender's connection
       * with 1009 message too big, and the server goes on serving everyone else.
       */
      it("a message over the size limit closes the sender with 1009", { timeout: SCENARIO_TIMEOUT_MS }, () =>
        withServer(chapter, "oversized", 2, async ({ tabs }) => {
          const [a, b] = tabs;
          const limit = oversized.max_message_bytes;
          const atLimit = "a".repeat(limit);
          await pasteAndEnter(a.page, atLimit);
          await waitForLogEntryOfLength(recipientOf(chapter, tabs).page, "received", limit);
          await pasteAndEnter(a.page, "b".repeat(limit + 1));
          await waitForLogEntryOfLength(a.page, "sent", limit + 1);
          await waitForState(a.page, "closed");
          assert.match(
            await statusText(a.page),
            /^closed 1009 message too big\b/,
            `a ${limit + 1}-byte message should close tab A with 1009`,
          );
          assert.equal(
            await b.page.locator("#status").getAttribute("data-state"),
            "open",
            "tab B should stay connected",
          );
          const c = await newTab(browser);
          try {
            await openChapterPage(c, a.page.url());
          } finally {
            await c.context.close();
          }
          await screenshotSideBySide(
            browser,
            [
              { page: a.page, caption: `tab A: pasted ${limit + 1} bytes` },
              { page: b.page, caption: "tab B: still open" },
            ],
            `${chapter.name}--oversized`,
            `${chapter.name}: a message over ${limit} bytes`,
          );
        }));
    }
  });
}
