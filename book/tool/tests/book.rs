//! Builds the book once, through the library, and checks what mdBook does not: mdBook logs a
//! broken `{{#include}}` as a warning and carries on, so a moved anchor or a renamed file would
//! otherwise ship as a page with a hole in it.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::OnceLock,
};

use fanout_book::{book_root, build_book, workspace_root};

/// The built book's directory, built on first use and shared by every test in this file (they
/// run in parallel, and two builds into one directory would trample each other).
fn built() -> &'static Path {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    match BUILT.get_or_init(|| build_book().map_err(|err| format!("{err:#}"))) {
        Ok(dir) => dir,
        Err(err) => panic!("the book should build: {err}"),
    }
}

/// One rendered page: its path relative to the build directory, and its HTML.
struct Page {
    name: String,
    html: String,
}

/// Every HTML page of the built book.
fn pages() -> Vec<Page> {
    let mut pages = Vec::new();
    collect_files(built(), "html", &mut pages);
    pages
        .into_iter()
        .map(|path| Page {
            name: relative(&path, built()),
            html: fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display())),
        })
        .collect()
}

/// The book's Markdown sources: (path relative to `book/src`, text).
fn sources() -> Vec<(String, String)> {
    let src = book_root().join("src");
    let mut files = Vec::new();
    collect_files(&src, "md", &mut files);
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
            (relative(&path, &src), text)
        })
        .collect()
}

fn collect_files(dir: &Path, extension: &str, into: &mut Vec<PathBuf>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|err| panic!("cannot list {}: {err}", dir.display()))
            .path();
        if path.is_dir() {
            collect_files(&path, extension, into);
        } else if path.extension().is_some_and(|ext| ext == extension) {
            into.push(path);
        }
    }
    into.sort();
}

fn relative(path: &Path, base: &Path) -> String {
    path.strip_prefix(base)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The contents of every `<code …>…</code>` element in `html`, still HTML-escaped.
fn code_blocks(html: &str) -> Vec<(&str, &str)> {
    let mut blocks = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<code") {
        let after_tag_name = &rest[start + "<code".len()..];
        // `<code>` or `<code class="…">`, but not e.g. `<codex>`.
        if !after_tag_name.starts_with(['>', ' ']) {
            rest = after_tag_name;
            continue;
        }
        let Some(tag_end) = after_tag_name.find('>') else {
            break;
        };
        let attributes = &after_tag_name[..tag_end];
        let body = &after_tag_name[tag_end + 1..];
        let Some(end) = body.find("</code>") else {
            break;
        };
        blocks.push((attributes, &body[..end]));
        rest = &body[end..];
    }
    blocks
}

fn unescape_html(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&amp;", "&")
}

/// How many fenced ```` ```mermaid ```` blocks a Markdown text has.
fn mermaid_fences(markdown: &str) -> usize {
    markdown
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            (line.starts_with("```") || line.starts_with("~~~"))
                && line.trim_start_matches(['`', '~']).trim() == "mermaid"
        })
        .count()
}

/// The HTML page mdBook renders from the Markdown file `source` (relative to `book/src`).
fn page_for(source: &str) -> String {
    let stem = source.strip_suffix(".md").unwrap_or(source);
    let stem = if stem == "README" || stem.ends_with("/README") {
        format!("{}index", stem.strip_suffix("README").unwrap_or_default())
    } else {
        stem.to_string()
    };
    format!("{stem}.html")
}

/// Every `{{#include …}}` (and its kin, `{{#rustdoc_include …}}`, `{{#playground …}}`) was
/// replaced by the file it names: none is left as text in a page.
#[test]
fn every_include_is_resolved() {
    let unresolved: Vec<String> = pages()
        .iter()
        .flat_map(|page| {
            page.html
                .lines()
                .filter(|line| {
                    ["{{#include", "{{#rustdoc_include", "{{#playground"]
                        .iter()
                        .any(|directive| line.contains(directive))
                })
                .map(move |line| format!("{}: {}", page.name, line.trim()))
        })
        .collect();
    assert!(
        unresolved.is_empty(),
        "these includes did not resolve (a file path that does not exist?):\n{}",
        unresolved.join("\n")
    );
}

/// No listing is empty. An include whose anchor does not exist (a renamed or deleted
/// `// ANCHOR: name`) renders as an empty code block, so this catches stale anchors.
#[test]
fn no_listing_is_empty() {
    let empty: Vec<String> = pages()
        .iter()
        .flat_map(|page| {
            code_blocks(&page.html)
                .into_iter()
                .filter(|(_, body)| body.trim().is_empty())
                .map(move |(attributes, _)| format!("{}: <code{attributes}>", page.name))
        })
        .collect();
    assert!(
        empty.is_empty(),
        "these code blocks are empty (an include naming an anchor that does not exist?):\n{}",
        empty.join("\n")
    );
}

/// Every chapter crate (`chapters/NN-name`) has a page in the book that shows code from it: a
/// Markdown file including `../../chapters/NN-name/…`, listed in SUMMARY.md (so it is rendered),
/// whose rendered listings contain a line of that crate's source.
#[test]
fn every_chapter_crate_has_a_page_with_its_code() {
    let chapters_dir = workspace_root().join("chapters");
    let mut chapters: Vec<(String, PathBuf)> = fs::read_dir(&chapters_dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", chapters_dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .map(|path| (relative(&path, &chapters_dir), path))
        .collect();
    chapters.sort();
    assert!(
        !chapters.is_empty(),
        "found no chapter crates in {}",
        chapters_dir.display()
    );

    let sources = sources();
    let mut problems = Vec::new();
    for (chapter, chapter_dir) in &chapters {
        let include = format!("../../chapters/{chapter}/");
        let including: Vec<&String> = sources
            .iter()
            .filter(|(_, text)| text.contains(&include))
            .map(|(name, _)| name)
            .collect();
        if including.is_empty() {
            problems.push(format!(
                "chapters/{chapter}: no page in book/src includes code from it"
            ));
            continue;
        }
        let mut chapter_source = String::new();
        let mut rust_files = Vec::new();
        collect_files(&chapter_dir.join("src"), "rs", &mut rust_files);
        for file in rust_files {
            chapter_source.push_str(&fs::read_to_string(&file).unwrap_or_default());
        }
        let shown = including.iter().any(|source| {
            let Ok(html) = fs::read_to_string(built().join(page_for(source))) else {
                return false;
            };
            code_blocks(&html).iter().any(|(_, body)| {
                let code = unescape_html(body);
                code.lines()
                    .map(str::trim)
                    .find(|line| !line.is_empty())
                    .is_some_and(|first| chapter_source.contains(first))
            })
        });
        if !shown {
            problems.push(format!(
                "chapters/{chapter}: included by {including:?}, but no rendered page shows its \
                 code (is the page listed in SUMMARY.md?)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every ```` ```mermaid ```` block became a `<pre class="mermaid">` (which the browser turns
/// into a diagram), none was left as a plain code block: the preprocessor ran on every page.
#[test]
fn every_mermaid_block_becomes_a_diagram() {
    let mut problems = Vec::new();
    for page in pages() {
        if page.html.contains("language-mermaid") {
            problems.push(format!(
                "{}: a mermaid block was rendered as code, not as a diagram",
                page.name
            ));
        }
    }
    for (source, markdown) in sources() {
        let fences = mermaid_fences(&markdown);
        if fences == 0 {
            continue;
        }
        let page = page_for(&source);
        let Ok(html) = fs::read_to_string(built().join(&page)) else {
            // A file not listed in SUMMARY.md is not rendered; the other tests speak for those
            // that matter.
            continue;
        };
        let diagrams = html.matches("<pre class=\"mermaid\">").count();
        if diagrams != fences {
            problems.push(format!(
                "{page}: {source} has {fences} mermaid block(s), the page has {diagrams} diagram(s)"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Both Mermaid scripts are in the built book, non-empty, and every page loads them from there,
/// so diagrams render offline.
#[test]
fn mermaid_scripts_are_in_the_book() {
    let mut problems = Vec::new();
    // `toc.html` is the sidebar alone (for browsers without JavaScript); every page with content
    // has a `<main>`.
    for page in pages()
        .into_iter()
        .filter(|page| page.html.contains("<main"))
    {
        for script in ["mermaid.min.js", "mermaid-init.js"] {
            // mdBook puts a content hash in the name: `generated/mermaid-3f2a….min.js`.
            let (stem, extension) = script
                .split_once('.')
                .expect("script names have an extension");
            let src = page
                .html
                .split("<script src=\"")
                .skip(1)
                .filter_map(|rest| rest.split('"').next())
                .find(|src| {
                    let file = src.rsplit('/').next().unwrap_or(src);
                    file.starts_with(stem) && file.ends_with(extension)
                        // `mermaid-init-….js` also starts with `mermaid`.
                        && (stem != "mermaid" || !file.starts_with("mermaid-init"))
                });
            let Some(src) = src else {
                problems.push(format!("{}: does not load {script}", page.name));
                continue;
            };
            // Pages in subdirectories load scripts through `../`.
            let target = page_dir(&page.name).join(src);
            match fs::metadata(built().join(&target)) {
                Ok(meta) if meta.len() > 0 => {}
                Ok(_) => problems.push(format!("{}: {src} is empty", page.name)),
                Err(_) => problems.push(format!(
                    "{}: loads {src}, which is not in the built book",
                    page.name
                )),
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn page_dir(page: &str) -> PathBuf {
    Path::new(page)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Chapter pages written before the second edition's layout (exercise before solution, recorded
/// runs, recap) and being rewritten elsewhere: the checks below skip them. A page listed here that
/// no longer exists fails `exempt_pages_still_exist`, so the list cannot outlive its reason.
const NOT_YET_REVISED: &[&str] = &[];

/// The chapter pages: `book/src/NN-name.md`, as (file name, Markdown), without the exempt ones.
fn chapter_pages() -> Vec<(String, String)> {
    sources()
        .into_iter()
        .filter(|(name, _)| {
            !name.contains('/')
                && name.len() > 3
                && name.as_bytes()[..2].iter().all(u8::is_ascii_digit)
                && name.as_bytes()[2] == b'-'
        })
        .filter(|(name, _)| !NOT_YET_REVISED.contains(&name.as_str()))
        .collect()
}

/// Every page exempted from the layout checks still exists.
#[test]
fn exempt_pages_still_exist() {
    let src = book_root().join("src");
    let gone: Vec<&&str> = NOT_YET_REVISED
        .iter()
        .filter(|page| !src.join(page).is_file())
        .collect();
    assert!(
        gone.is_empty(),
        "these pages are exempt from the layout checks but no longer exist; remove them from \
         NOT_YET_REVISED in book/tool/tests/book.rs: {gone:?}"
    );
}

/// A participant who reads a chapter up to its "Your turn" heading sees at most a quarter of the
/// exercise's answer (the lines in the chapter's `exercise-*` regions) in unfolded listings; the
/// page includes the exercise there and has "The chapter's solution" after it.
#[test]
fn no_chapter_page_gives_away_more_than_a_quarter_of_its_exercise() {
    let root = workspace_root();
    let mut problems = Vec::new();
    for (name, markdown) in chapter_pages() {
        let page = book_root().join("src").join(&name);
        let measure = fanout_book::answers::measure(&root, &page, fanout_book::answers::YOUR_TURN)
            .unwrap_or_else(|err| panic!("cannot measure {name}: {err:#}"));
        let Some(measure) = measure else {
            problems.push(format!("{name}: includes no chapter's code"));
            continue;
        };
        if !measure.has_exercise_heading {
            problems.push(format!("{name}: has no \"## Your turn\" heading"));
            continue;
        }
        if measure.percent() > 25.0 {
            let shown: Vec<String> = measure
                .visible
                .iter()
                .map(|(file, line)| format!("{}:{line}", file.display()))
                .collect();
            problems.push(format!(
                "{name}: shows {} of {} answer lines ({:.0} %) before \"Your turn\": {}",
                measure.visible.len(),
                measure.answer_lines.len(),
                measure.percent(),
                shown.join(", ")
            ));
        }
        let after = markdown
            .split_once("## Your turn")
            .map(|(_, after)| after)
            .unwrap_or_default();
        if !after.contains("{{#include exercises/") {
            problems.push(format!(
                "{name}: \"Your turn\" does not include the exercise page"
            ));
        }
        if !after.contains("## The chapter's solution") {
            problems.push(format!(
                "{name}: no \"## The chapter's solution\" after \"Your turn\""
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// How a script's recording (`book/runs/NAME.log`) begins: with the version of what it measured,
/// as `rustc --version` or `redis-server --version` print it.
const VERSION_LINES: &[&str] = &["rustc ", "Redis server "];

/// Every terminal output a chapter page shows is a section of a recording in `book/runs/`, made by
/// a run the page names (`fanout-book -- run NAME`): a `text` or `console` block holds only
/// commands (`$ …`) and includes of recordings, every included section exists, and so does its run.
/// The one other kind of recording is a script's output (`book/runs/NAME.log` from
/// `book/runs/NAME.sh`), shown whole, with the script named on the page, beginning with the
/// version of what it measured.
#[test]
fn every_output_block_in_a_chapter_page_comes_from_a_recorded_run() {
    let mut problems = Vec::new();
    for (name, markdown) in chapter_pages() {
        // For each run the page shows: the sections it includes.
        let mut shown: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        let mut fence: Option<String> = None;
        for (number, line) in markdown.lines().enumerate() {
            let trimmed = line.trim();
            if trimmed.starts_with("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(trimmed.trim_start_matches('`').to_string()),
                };
                continue;
            }
            let Some(language) = fence.as_deref() else {
                continue;
            };
            if !matches!(language, "" | "text" | "console" | "sh" | "shell") {
                continue;
            }
            if trimmed.is_empty() || trimmed.starts_with("$ ") {
                continue;
            }
            let at = format!("{name}:{}", number + 1);
            let Some(include) = trimmed
                .strip_prefix("{{#include ../runs/")
                .and_then(|rest| rest.strip_suffix("}}"))
            else {
                problems.push(format!(
                    "{at}: output typed into the page, not included from a recording: {trimmed}"
                ));
                continue;
            };
            let (file, section) = include.split_once(':').unwrap_or((include, ""));
            // What a script printed (`book/runs/NAME.log`, written by `book/runs/NAME.sh`): for
            // an experiment no test can repeat (it needs the network and many release builds).
            // The page names the script, and the recording exists and says which version ran.
            if let Some(script) = file.strip_suffix(".log") {
                let log = fanout_book::runs::recordings_dir().join(file);
                let text = fs::read_to_string(&log).unwrap_or_default();
                if !section.is_empty() {
                    problems.push(format!("{at}: {file} has no sections; include it whole"));
                }
                if !fanout_book::runs::recordings_dir()
                    .join(format!("{script}.sh"))
                    .is_file()
                {
                    problems.push(format!("{at}: {file} has no script book/runs/{script}.sh"));
                }
                if !markdown.contains(&format!("book/runs/{script}.sh")) {
                    problems.push(format!(
                        "{at}: shows {file} but never names its script (book/runs/{script}.sh)"
                    ));
                }
                if !text
                    .lines()
                    .next()
                    .is_some_and(|line| VERSION_LINES.iter().any(|tool| line.starts_with(tool)))
                {
                    problems.push(format!(
                        "{at}: book/runs/{file} is missing, or does not begin with the version \
                         of what made it (a line starting with one of {VERSION_LINES:?})"
                    ));
                }
                continue;
            }
            let run = file.strip_suffix(".txt").unwrap_or(file);
            if fanout_book::runs::find(run).is_none() {
                problems.push(format!("{at}: no run called {run}"));
                continue;
            }
            if !markdown.contains(&format!("fanout-book -- run {run}")) {
                problems.push(format!(
                    "{at}: shows run {run} but never names it (`cargo run -p fanout-book -- run {run}`)"
                ));
            }
            let recording =
                fs::read_to_string(fanout_book::runs::recording_path(run)).unwrap_or_default();
            let sections = fanout_book::runs::parse(&recording).unwrap_or_default();
            if section.is_empty() || !sections.contains_key(section) {
                problems.push(format!(
                    "{at}: book/runs/{file} has no section `{section}` (include one by name)"
                ));
            }
            shown
                .entry(run.to_string())
                .or_default()
                .extend(sections.get(section).cloned().unwrap_or_default());
        }
        // A run that measures names the machine, and the page shows that line.
        for (run, lines) in &shown {
            let measures = fanout_book::runs::find(run).is_some_and(|run| run.measures);
            if measures
                && !lines
                    .iter()
                    .any(|line| line.contains(fanout_book::runs::MEASURED_ON))
            {
                problems.push(format!(
                    "{name}: shows figures of run {run}, which depend on the machine, but not the \
                     `{}` line that says where they were measured",
                    fanout_book::runs::MEASURED_ON
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every listing of a chapter page says which file it comes from: the path
/// (`chapters/NN-name/src/file.rs`) is named in the lines just above the include.
#[test]
fn every_listing_names_the_file_it_comes_from() {
    let mut problems = Vec::new();
    for (name, markdown) in chapter_pages() {
        let lines: Vec<&str> = markdown.lines().collect();
        for (number, line) in lines.iter().enumerate() {
            let Some(rest) = line.trim().strip_prefix("{{#include ../../") else {
                continue;
            };
            let path = rest
                .trim_end_matches("}}")
                .split(':')
                .next()
                .unwrap_or_default();
            let above = &lines[number.saturating_sub(8)..number];
            if !above.iter().any(|line| line.contains(path)) {
                problems.push(format!(
                    "{name}:{}: the listing from {path} does not name its file just above it",
                    number + 1
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every chapter page ends with "What you learned" and then "Further reading", which has links.
#[test]
fn every_chapter_page_ends_with_a_recap_and_further_reading() {
    let mut problems = Vec::new();
    for (name, markdown) in chapter_pages() {
        let headings: Vec<&str> = markdown
            .lines()
            .filter_map(|line| line.strip_prefix("## "))
            .collect();
        if !headings.ends_with(&["What you learned", "Further reading"]) {
            problems.push(format!(
                "{name}: the last sections are {:?}, not \"What you learned\" and \"Further reading\"",
                headings.iter().rev().take(2).rev().collect::<Vec<_>>()
            ));
            continue;
        }
        let reading = markdown
            .rsplit_once("## Further reading")
            .map(|(_, reading)| reading)
            .unwrap_or_default();
        if !reading.contains("<https://") {
            problems.push(format!("{name}: \"Further reading\" has no link"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A participant can write the exercise from what the page shows before its solution: every name
/// the answer uses (the identifiers in the chapter's `exercise-*` regions, comments and strings
/// left out) appears in the rendered page above "The chapter's solution", counting the prose, the
/// unfolded listings, the tasks and their hints, but not the folded "The chapter's code" blocks.
/// Logging names are left out (log lines are not what the stage tests check), and so are a few
/// methods of `std` that the book assumes its readers know.
#[test]
fn every_name_the_exercise_needs_is_introduced_before_the_solution() {
    const NOT_NEEDED: &[&str] = &[
        "tracing", "info", "warn", "debug", "trace", "is_err", "is_ok", "clone", "into",
    ];
    let root = workspace_root();
    let mut problems = Vec::new();
    for (name, _) in chapter_pages() {
        let page = book_root().join("src").join(&name);
        let Some(measure) =
            fanout_book::answers::measure(&root, &page, fanout_book::answers::YOUR_TURN)
                .unwrap_or_else(|err| panic!("cannot measure {name}: {err:#}"))
        else {
            continue;
        };
        let mut names = std::collections::BTreeSet::new();
        for (file, number) in &measure.answer_lines {
            let text = fs::read_to_string(root.join(file)).unwrap_or_default();
            let line = text.lines().nth(number - 1).unwrap_or_default();
            let code = line.split("//").next().unwrap_or_default();
            let code: String = code.split('"').step_by(2).collect::<Vec<_>>().join(" ");
            for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
                if word.len() > 2
                    && word.starts_with(|c: char| c.is_alphabetic() || c == '_')
                    && !RUST_WORDS.contains(&word)
                    && !NOT_NEEDED.contains(&word)
                {
                    names.insert(word.to_string());
                }
            }
        }
        let html = fs::read_to_string(built().join(page_for(&name)))
            .unwrap_or_else(|err| panic!("cannot read the built {name}: {err}"));
        let before = html
            .split("The chapter’s solution")
            .next()
            .unwrap_or_default();
        let readable = without_chapter_code(before);
        let text = unescape_html(&strip_tags(&readable));
        let words: std::collections::BTreeSet<&str> = text
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .collect();
        let missing: Vec<&String> = names
            .iter()
            .filter(|name| !words.contains(name.as_str()))
            .collect();
        if !missing.is_empty() {
            problems.push(format!(
                "{name}: the exercise's answer uses names the page introduces only in its \
                 solution: {missing:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

const RUST_WORDS: &[&str] = &[
    "let", "mut", "else", "match", "while", "for", "loop", "break", "continue", "return", "pub",
    "use", "self", "Self", "Some", "None", "Ok", "Err", "true", "false", "move", "async", "await",
    "impl", "struct", "enum", "mod", "crate", "super", "where", "ref",
];

/// `html` without the folded blocks whose summary is "The chapter's code".
fn without_chapter_code(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<details>") {
        let (head, tail) = rest.split_at(start);
        out.push_str(head);
        let end = tail
            .find("</details>")
            .map_or(tail.len(), |end| end + "</details>".len());
        let block = &tail[..end];
        if !block.contains("The chapter’s code") && !block.contains("The chapter's code") {
            out.push_str(block);
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every `// ANCHOR: name` in a chapter crate (`chapters/NN-name/src` and `tests`) is shown by some
/// page of the book: a page includes `../../chapters/NN-name/FILE:name`, the whole file, or an
/// anchor of the same file that encloses it. An anchor nobody includes is a listing the book
/// forgot, or a marker left over from one. The workshop's `exercise-*` regions are the
/// generator's, not the book's, and are left out.
#[test]
fn every_anchor_is_included_by_a_page() {
    // (file relative to the workspace root, anchor or "" for the whole file)
    let mut included: Vec<(String, String)> = Vec::new();
    for (_, text) in sources() {
        for piece in text.split("{{#include ../../").skip(1) {
            let Some(end) = piece.find("}}") else {
                continue;
            };
            let target = piece[..end].trim();
            let (file, anchor) = target.split_once(':').unwrap_or((target, ""));
            included.push((file.to_string(), anchor.to_string()));
        }
    }
    let root = workspace_root();
    let chapters_dir = root.join("chapters");
    let mut files = Vec::new();
    for entry in fs::read_dir(&chapters_dir)
        .unwrap_or_else(|err| panic!("cannot list {}: {err}", chapters_dir.display()))
        .filter_map(Result::ok)
    {
        for dir in ["src", "tests"] {
            let dir = entry.path().join(dir);
            if dir.is_dir() {
                collect_files(&dir, "rs", &mut files);
            }
        }
    }
    let mut unused = Vec::new();
    for file in files {
        let name = relative(&file, &root);
        let text = fs::read_to_string(&file).unwrap_or_default();
        // Each anchor's first and last line.
        let mut spans: Vec<(String, usize, usize)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if let Some(anchor) = line.trim().strip_prefix("// ANCHOR: ") {
                spans.push((anchor.trim().to_string(), number, usize::MAX));
            } else if let Some(anchor) = line.trim().strip_prefix("// ANCHOR_END: ")
                && let Some(span) = spans
                    .iter_mut()
                    .rev()
                    .find(|(open, _, end)| open == anchor.trim() && *end == usize::MAX)
            {
                span.2 = number;
            }
        }
        let shown = |anchor: &str| {
            included
                .iter()
                .any(|(file, shown)| file == &name && (shown.is_empty() || shown == anchor))
        };
        for (anchor, begin, end) in &spans {
            if anchor.starts_with("exercise-") || shown(anchor) {
                continue;
            }
            let enclosed = spans.iter().any(|(outer, outer_begin, outer_end)| {
                outer_begin < begin && outer_end > end && shown(outer)
            });
            if !enclosed {
                unused.push(format!("{name}:{anchor}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "these anchors are included by no page of the book (include them, or remove the \
         markers):\n{}",
        unused.join("\n")
    );
}
