// The built book (book/build/, written by `cargo run -p fanout-book -- build`) in a real browser,
// served from a local static server: every page loads without errors or failed requests, and
// every Mermaid diagram renders to an SVG (not to Mermaid's "Syntax error" picture).
//
// Screenshots: e2e/output/book--<page>--diagram-<n>.png, one per rendered diagram.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { REPO_ROOT } from "../lib/chapters.mjs";
import { WAIT_MS, launch, newTab } from "../lib/browser.mjs";
import { serveDirectory } from "../lib/static.mjs";

const BUILD_DIR = process.env.BOOK_BUILD_DIR ?? path.join(REPO_ROOT, "book", "build");

/** mdBook writes straight into build/ with one renderer, into build/html/ with several. */
const bookRoot = [BUILD_DIR, path.join(BUILD_DIR, "html")].find((dir) =>
  existsSync(path.join(dir, "index.html")),
);

/**
 * Pages a reader opens. Left out: 404.html (shown only for a missing page), toc.html (the
 * sidebar for browsers without JavaScript) and print.html (every page again, and it opens the
 * print dialog on load).
 */
const NOT_A_PAGE = new Set(["404.html", "toc.html", "print.html"]);

function htmlPages(dir, prefix = "") {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const relative = prefix + entry.name;
    if (entry.isDirectory()) return htmlPages(path.join(dir, entry.name), `${relative}/`);
    return entry.name.endsWith(".html") && !NOT_A_PAGE.has(relative) ? [relative] : [];
  });
}

/** How many diagrams the HTML holds before any script runs. */
function diagramsIn(file) {
  return (readFileSync(file, "utf8").match(/<pre class="mermaid"/g) ?? []).length;
}

if (!bookRoot) {
  const why = `${path.relative(REPO_ROOT, BUILD_DIR)}/index.html not found: build the book with \`cargo run -p fanout-book -- build\``;
  console.log(`skip: book: ${why}`);
  describe("book", { skip: why }, () => {});
} else {
  const pages = htmlPages(bookRoot).sort();

  describe("book", () => {
    let browser;
    let server;
    before(async () => {
      [browser, server] = await Promise.all([launch(), serveDirectory(bookRoot)]);
    });
    after(async () => {
      await Promise.all([browser?.close(), server?.close()]);
    });

    /** The book is worth opening: it has pages and at least one diagram to render. */
    it("has pages and Mermaid diagrams", () => {
      assert.ok(pages.includes("index.html"), `the book should have an index.html, has ${pages}`);
      const diagrams = pages.reduce((sum, page) => sum + diagramsIn(path.join(bookRoot, page)), 0);
      assert.ok(diagrams > 0, `the book should contain Mermaid diagrams; pages: ${pages}`);
    });

    for (const page of pages) {
      const expected = diagramsIn(path.join(bookRoot, page));
      const what = expected === 0 ? "" : ` and renders its ${expected} diagram(s)`;

      /** The page answers 200, logs no errors, fetches nothing that fails, renders its diagrams. */
      it(`${page} loads without errors${what}`, { timeout: 60_000 }, async () => {
        const tab = await newTab(browser, { width: 1100, height: 800 });
        try {
          const response = await tab.page.goto(`${server.url}/${page}`, {
            waitUntil: "load",
            timeout: WAIT_MS,
          });
          assert.equal(response?.status(), 200, `GET /${page}`);
          const text = await tab.page.locator("main").innerText();
          assert.ok(text.trim().length > 0, `${page} should have content in <main>`);
          assert.doesNotMatch(text, /\{\{#\w+/, `${page} has an mdBook directive left unexpanded`);

          const diagrams = tab.page.locator("pre.mermaid");
          assert.equal(await diagrams.count(), expected, "diagrams in the page");
          if (expected > 0) {
            await tab.page
              .waitForFunction(
                () =>
                  [...document.querySelectorAll("pre.mermaid")].every((pre) =>
                    pre.querySelector("svg"),
                  ),
                null,
                { timeout: WAIT_MS },
              )
              .catch((err) => {
                throw new Error(`not every diagram in ${page} became an SVG`, { cause: err });
              });
            for (let i = 0; i < expected; i += 1) {
              const svg = diagrams.nth(i).locator("svg").first();
              // The words of the drawing, without the stylesheet Mermaid puts inside the SVG.
              const svgText = await svg.evaluate((element) => {
                const copy = element.cloneNode(true);
                for (const style of copy.querySelectorAll("style")) style.remove();
                return copy.textContent.replace(/\s+/g, " ").trim();
              });
              assert.notEqual(
                await svg.getAttribute("aria-roledescription"),
                "error",
                `diagram ${i + 1} of ${page} is Mermaid's error picture: ${svgText}`,
              );
              assert.doesNotMatch(svgText, /Syntax error/i, `diagram ${i + 1} of ${page}`);
              const box = await svg.boundingBox();
              assert.ok(box && box.width > 20 && box.height > 20, `diagram ${i + 1} has a size`);
              await diagrams
                .nth(i)
                .screenshot({ path: outputFile(`book--${slug(page)}--diagram-${i + 1}`) });
            }
          }
          assert.deepEqual(tab.problems, [], `${page} should log no errors`);
        } finally {
          await tab.context.close();
        }
      });
    }
  });
}

function slug(page) {
  return page.replace(/\.html$/, "").replace(/[^a-zA-Z0-9-]+/g, "_");
}

function outputFile(name) {
  return path.join(process.env.E2E_OUTPUT_DIR ?? path.join(REPO_ROOT, "e2e", "output"), `${name}.png`);
}
