// A real `redis-server` for the scenarios of chapter 11 on, as the stage tests start theirs
// (tests/src/redis.rs): on a free port of 127.0.0.1, in a temporary directory of its own, saving
// nothing, stopped (and its directory removed) at the end of the scenario.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const STARTUP_TIMEOUT_MS = 10_000;
const EXIT_TIMEOUT_MS = 5_000;
/**
 * Ports drawn from below Linux's ephemeral range (32768 and up), from which the OS picks the
 * ports of outgoing connections: a port free now stays free until redis-server takes it.
 */
const PORTS = { first: 20_000, count: 12_000 };
/** How many ports to try before giving up: another process may take one between look and use. */
const ATTEMPTS = 5;

/** Every redis-server still running, so that none outlives the test process, even on a failure. */
const running = new Set();
process.on("exit", () => {
  for (const child of running) child.kill("SIGKILL");
});

/** Whether something already listens on `port` of 127.0.0.1 (a listener of ours cannot bind). */
function portIsFree(port) {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

async function freePort() {
  for (let tries = 0; tries < 100; tries += 1) {
    const port = PORTS.first + Math.floor(Math.random() * PORTS.count);
    if (await portIsFree(port)) return port;
  }
  throw new Error(`no free port for redis-server from ${PORTS.first}`);
}

export class RedisServer {
  /** Starts a redis-server and resolves once it accepts connections. */
  static async start() {
    let lastError;
    for (let attempt = 0; attempt < ATTEMPTS; attempt += 1) {
      const server = new RedisServer(await freePort());
      try {
        await server.#ready();
        return server;
      } catch (err) {
        lastError = err;
        await server.stop();
      }
    }
    throw lastError;
  }

  constructor(port) {
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), "fanout-e2e-redis-"));
    /** What redis-server printed, shown when it does not start. */
    this.output = "";
    this.child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--dir", this.dir, "--save", "", "--appendonly", "no"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    running.add(this.child);
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        this.output += chunk;
      });
    }
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => {
        running.delete(this.child);
        resolve({ code, signal });
      });
    });
    this.spawnError = new Promise((resolve) => this.child.once("error", resolve));
  }

  /** The URL the chapter's `--redis` flag takes. */
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Resolves once the server says it accepts connections; rejects if it exits or fails first. */
  #ready() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (fn, value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(poll);
        fn(value);
      };
      const fail = (why) =>
        settle(reject, new Error(`redis-server on port ${this.port}: ${why}\n--- its output ---\n${this.output}`));
      const timer = setTimeout(() => fail(`not ready within ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
      const poll = setInterval(() => {
        if (this.output.includes("Ready to accept connections")) settle(resolve);
      }, 20);
      this.spawnError.then((err) =>
        fail(`cannot start (${err.message}): install redis-server (see the README)`),
      );
      this.exited.then(({ code, signal }) => fail(`exited (code ${code}, signal ${signal})`));
    });
  }

  /** Stops the server (SIGTERM, then SIGKILL if it does not go) and removes its directory. */
  async stop() {
    if (this.child.pid !== undefined && this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
      let timer;
      const late = new Promise((resolve) => {
        timer = setTimeout(() => resolve("late"), EXIT_TIMEOUT_MS);
      });
      if ((await Promise.race([this.exited, late])) === "late") {
        this.child.kill("SIGKILL");
        await this.exited;
      }
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
