// Starting and stopping a chapter's server binary, the way a reader does: `--addr 127.0.0.1:0`,
// then the URL from the `listening on http://…` line it prints. Each server runs in a fresh
// temporary directory of its own, so that what a chapter keeps in its working directory (from
// chapter 10 on, its history database) starts empty and is never shared between scenarios.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STARTUP_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 5_000;

/** Every server still running, so that none outlives the test process, even on a failure. */
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

export class ChapterServer {
  /** Whether the chapter's binary has been built. */
  static exists(binary) {
    return existsSync(binary);
  }

  /** Starts `binary --addr 127.0.0.1:0` and resolves once it printed where it listens. */
  static async start(binary, flags = []) {
    const workDir = mkdtempSync(join(tmpdir(), "fanout-e2e-"));
    const child = spawn(binary, ["--addr", "127.0.0.1:0", ...flags], {
      cwd: workDir,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? "info" },
    });
    running.add(child);
    const server = new ChapterServer(binary, child);
    server.workDir = workDir;
    try {
      server.url = await server.#readUrl();
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  constructor(binary, child) {
    this.binary = binary;
    this.child = child;
    this.url = null;
    /** The server's working directory, removed once it has stopped. */
    this.workDir = null;
    /** Everything the server wrote to stderr: its logs, shown when a test fails. */
    this.stderr = "";
    child.stderr.setEncoding("utf8");
    child.stderr.on("data", (chunk) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        running.delete(child);
        resolve({ code, signal });
      });
    });
    // Swallow spawn errors here; #readUrl reports them with context.
    child.once("error", () => {});
  }

  #readUrl() {
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: this.child.stdout });
      let settled = false;
      const fail = (why) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        lines.close();
        reject(new Error(`${this.binary}: ${why}\n--- its stderr ---\n${this.stderr}`));
      };
      const timer = setTimeout(
        () => fail(`printed no "listening on http://…" line within ${STARTUP_TIMEOUT_MS} ms`),
        STARTUP_TIMEOUT_MS,
      );
      this.child.once("error", (err) => fail(`cannot start: ${err.message}`));
      this.exited.then(({ code, signal }) =>
        fail(`exited (code ${code}, signal ${signal}) before printing where it listens`),
      );
      lines.on("line", (line) => {
        const match = line.match(/^listening on (http:\/\/\S+)$/);
        if (!match || settled) return;
        settled = true;
        clearTimeout(timer);
        // Keep draining stdout so a chatty server never blocks on a full pipe.
        lines.removeAllListeners("line");
        resolve(match[1]);
      });
    });
  }

  /** Sends `signal` and waits (bounded) for the process to exit; resolves to its exit status. */
  async signal(signal, timeoutMs = EXIT_TIMEOUT_MS) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.binary} did not exit within ${timeoutMs} ms of ${signal}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the server whatever state it is in: SIGTERM, then SIGKILL if it does not go. */
  async stop() {
    // A binary that never started (spawn failed) has no process to stop and never exits.
    if (this.child.pid !== undefined) {
      try {
        await this.signal("SIGTERM");
      } catch {
        this.child.kill("SIGKILL");
        await Promise.race([this.exited, once(this.child, "close")]);
      }
    }
    if (this.workDir) rmSync(this.workDir, { recursive: true, force: true });
  }
}
