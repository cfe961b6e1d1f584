//! What the workshop reads from Rust source, read with syn rather than guessed from the text:
//! where a file's inner attributes end, which suites a chapter's stage test runs, which scenarios
//! and unit tests exist (to check the tests a goal names), what a scenario's doc comment says,
//! and which `todo!`s a participant's file still has.
//!
//! Line numbers come from proc-macro2's `span-locations`; they are 1-based, as editors count.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    str::FromStr,
};

use proc_macro2::{TokenStream, TokenTree};
use syn::{
    AttrStyle, Expr, ExprLit, Ident, Item, Lit, LitStr, Meta, Token,
    parse::{ParseStream, Parser},
    spanned::Spanned,
    visit::{self, Visit},
};

use crate::{
    LineError,
    chapter::{self, Chapter},
};

/// Parses a whole file; a syntax error names its line.
pub fn parse_file(text: &str) -> Result<syn::File, LineError> {
    syn::parse_file(text).map_err(|err| LineError {
        line: err.span().start().line,
        message: format!("not valid Rust: {err}"),
    })
}

/// The last line of the file's leading inner attributes (`#![deny(..)]`), not counting inner doc
/// comments (`//!`), which syn also reads as attributes. `None` when there are none.
pub fn inner_attributes_end(file: &syn::File) -> Option<usize> {
    file.attrs
        .iter()
        .filter(|attr| matches!(attr.style, AttrStyle::Inner(_)) && !attr.path().is_ident("doc"))
        .map(|attr| attr.span().end().line)
        .max()
}

/// A path as written, without spaces: `stage_tests::echo::SCENARIOS`.
fn path_text(path: &syn::Path) -> String {
    path.segments
        .iter()
        .map(|segment| segment.ident.to_string())
        .collect::<Vec<_>>()
        .join("::")
}

/// What a chapter's `tests/stage.rs` runs, as the starter test needs to run it again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageTest {
    /// The suites it hands to `stage_tests::run`, e.g. `stage_tests::echo::SCENARIOS`.
    pub suites: Vec<String>,
    /// The fields its target sets beyond `target!`'s, as written: chapter 10's
    /// `stage_tests::Target { base_flags: Some(base_flags), ..stage_tests::target!(..) }` gives
    /// `base_flags: Some(base_flags)`. Empty for a plain `stage_tests::target!(..)`.
    pub fields: Vec<String>,
    /// The file's items but `main`, as written, doc comments included (the `use`s and the
    /// functions those fields name), for the starter test to carry along. Empty without fields.
    pub helpers: Vec<String>,
}

/// The suites a chapter's `tests/stage.rs` hands to `stage_tests::run`, which must be called as
/// `stage_tests::run(stage_tests::target!(chNN_name, "chNN-name"), &[suite, …])`.
pub fn stage_suites(text: &str, chapter: &Chapter) -> Result<Vec<String>, LineError> {
    stage_test(text, chapter).map(|stage| stage.suites)
}

/// What a chapter's `tests/stage.rs` runs. It must call
/// `stage_tests::run(TARGET, &[suite, …])`, where `TARGET` is `stage_tests::target!(chNN_name,
/// "chNN-name")` or a `stage_tests::Target { field: value, …, ..stage_tests::target!(…) }` that
/// sets some fields itself (chapter 10's `base_flags`).
pub fn stage_test(text: &str, chapter: &Chapter) -> Result<StageTest, LineError> {
    /// The first call of `stage_tests::run` anywhere in the file.
    struct FindRun<'ast>(Option<&'ast syn::ExprCall>);
    impl<'ast> Visit<'ast> for FindRun<'ast> {
        fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
            if let Expr::Path(function) = &*call.func
                && path_text(&function.path) == "stage_tests::run"
                && self.0.is_none()
            {
                self.0 = Some(call);
            }
            visit::visit_expr_call(self, call);
        }
    }
    let file = parse_file(text)?;
    let mut finder = FindRun(None);
    finder.visit_file(&file);
    let Some(call) = finder.0 else {
        return Err(LineError {
            line: 1,
            message: "expected a call to `stage_tests::run(target, &[suites])`".to_string(),
        });
    };
    let line = call.span().start().line;
    let shape = || LineError {
        line,
        message: "expected `stage_tests::run(stage_tests::target!(..), &[suites])`".to_string(),
    };
    let mut args = call.args.iter();
    let (Some(target), Some(Expr::Reference(suites)), None) =
        (args.next(), args.next(), args.next())
    else {
        return Err(shape());
    };
    // A target of its own: `stage_tests::Target { fields, ..stage_tests::target!(..) }`.
    let (target, fields) = match target {
        Expr::Macro(target) => (target, Vec::new()),
        Expr::Struct(own)
            if path_text(&own.path) == "stage_tests::Target"
                && let Some(Expr::Macro(target)) = own.rest.as_deref() =>
        {
            let fields = own
                .fields
                .iter()
                .map(|field| source_of(text, field.span()))
                .collect();
            (target, fields)
        }
        _ => {
            return Err(LineError {
                line,
                message: "expected the target `stage_tests::target!(..)`, or \
                          `stage_tests::Target { field: value, ..stage_tests::target!(..) }`"
                    .to_string(),
            });
        }
    };
    let expected = format!(
        "stage_tests::target!({}, \"{}\")",
        chapter.chapter_crate(),
        chapter.chapter_package()
    );
    let target_args = (|input: ParseStream| {
        let krate: Ident = input.parse()?;
        input.parse::<Token![,]>()?;
        let package: LitStr = input.parse()?;
        Ok((krate.to_string(), package.value()))
    })
    .parse2(target.mac.tokens.clone());
    let found_target = match target_args {
        Ok((krate, package)) if path_text(&target.mac.path) == "stage_tests::target" => {
            format!("stage_tests::target!({krate}, \"{package}\")")
        }
        _ => format!("{}!({})", path_text(&target.mac.path), target.mac.tokens),
    };
    if found_target != expected {
        return Err(LineError {
            line,
            message: format!("expected the target `{expected}`, found `{found_target}`"),
        });
    }
    let Expr::Array(list) = &*suites.expr else {
        return Err(shape());
    };
    let mut names = Vec::new();
    for suite in &list.elems {
        let Expr::Path(path) = suite else {
            return Err(LineError {
                line: suite.span().start().line,
                message: "a suite is named by its path, e.g. `stage_tests::echo::SCENARIOS`"
                    .to_string(),
            });
        };
        names.push(path_text(&path.path));
    }
    if names.is_empty() {
        return Err(LineError {
            line,
            message: "the stage test runs no suite".to_string(),
        });
    }
    let helpers = if fields.is_empty() {
        Vec::new()
    } else {
        file.items
            .iter()
            .filter(|item| !matches!(item, Item::Fn(function) if function.sig.ident == "main"))
            .map(|item| source_of(text, item.span()))
            .collect()
    };
    Ok(StageTest {
        suites: names,
        fields,
        helpers,
    })
}

/// The text of `text` that `span` covers, as written (comments and layout kept).
fn source_of(text: &str, span: proc_macro2::Span) -> String {
    let offset = |at: proc_macro2::LineColumn| {
        let line_start: usize = text
            .split_inclusive('\n')
            .take(at.line.saturating_sub(1))
            .map(str::len)
            .sum();
        let line = text.get(line_start..).unwrap_or_default();
        line_start
            + line
                .char_indices()
                .nth(at.column)
                .map_or(line.len(), |(index, _)| index)
    };
    let (start, end) = (offset(span.start()), offset(span.end()));
    text.get(start..end).unwrap_or_default().to_string()
}

/// The names in a `scenarios![a, @binary b, …]` list.
fn scenario_list(tokens: TokenStream) -> syn::Result<Vec<String>> {
    (|input: ParseStream| {
        let mut names = Vec::new();
        while !input.is_empty() {
            if input.peek(Token![@]) {
                input.parse::<Token![@]>()?;
                input.parse::<Ident>()?;
            }
            names.push(input.parse::<Ident>()?.to_string());
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(names)
    })
    .parse2(tokens)
}

/// The scenario lists of the stage-tests crate, read from `tests_src` (`tests/src`): for each
/// `const LIST: &[Scenario] = scenarios![..]` in `tests/src/<suite>.rs`, the path a chapter's
/// stage test names it by (`stage_tests::<suite>::LIST`) and the scenario names as `cargo test`
/// prints them (`<suite>::<name>`).
pub fn scenario_lists(tests_src: &Path) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut lists = BTreeMap::new();
    let files = chapter::files_under(tests_src)
        .map_err(|err| format!("cannot list {}: {err}", tests_src.display()))?;
    for file in files {
        // Suites are the crate's top-level modules, one file each.
        if file.parent() != Some(Path::new("")) || file.extension().is_none_or(|ext| ext != "rs") {
            continue;
        }
        let Some(suite) = file.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let path = tests_src.join(&file);
        let text = chapter::read(&path)?;
        let parsed = parse_file(&text).map_err(|err| err.at(&path))?;
        for item in &parsed.items {
            let Item::Const(constant) = item else {
                continue;
            };
            let Expr::Macro(call) = &*constant.expr else {
                continue;
            };
            if call
                .mac
                .path
                .segments
                .last()
                .is_none_or(|last| last.ident != "scenarios")
            {
                continue;
            }
            let names = scenario_list(call.mac.tokens.clone()).map_err(|err| {
                format!(
                    "{}:{}: cannot read the scenarios! list: {err}",
                    path.display(),
                    err.span().start().line
                )
            })?;
            lists.insert(
                format!("stage_tests::{suite}::{}", constant.ident),
                names
                    .into_iter()
                    .map(|name| format!("{suite}::{name}"))
                    .collect(),
            );
        }
    }
    Ok(lists)
}

/// Whether an attribute marks a test: `#[test]`, `#[tokio::test]`.
fn is_test_attribute(attr: &syn::Attribute) -> bool {
    attr.path()
        .segments
        .last()
        .is_some_and(|last| last.ident == "test")
}

/// The unit tests of a library crate as `cargo test` names them (`broker::tests::name`), read
/// from every file under `src/` but the binary's.
pub fn unit_tests(crate_dir: &Path) -> Result<BTreeSet<String>, String> {
    fn collect(items: &[Item], module: &[String], tests: &mut BTreeSet<String>) {
        for item in items {
            match item {
                Item::Fn(function) if function.attrs.iter().any(is_test_attribute) => {
                    let mut path = module.to_vec();
                    path.push(function.sig.ident.to_string());
                    tests.insert(path.join("::"));
                }
                Item::Mod(inner) => {
                    if let Some((_, items)) = &inner.content {
                        let mut path = module.to_vec();
                        path.push(inner.ident.to_string());
                        collect(items, &path, tests);
                    }
                }
                _ => {}
            }
        }
    }
    let src = crate_dir.join("src");
    let mut tests = BTreeSet::new();
    let files = chapter::files_under(&src)
        .map_err(|err| format!("cannot list {}: {err}", src.display()))?;
    for file in files {
        if file.extension().is_none_or(|ext| ext != "rs")
            || file == Path::new("main.rs")
            || file.starts_with("bin")
        {
            continue;
        }
        // src/lib.rs is the crate root; src/a/mod.rs and src/a.rs are module `a`.
        let mut module: Vec<String> = file
            .with_extension("")
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect();
        if module.last().is_some_and(|last| last == "mod") || module == ["lib"] {
            module.pop();
        }
        let path = src.join(&file);
        let parsed = parse_file(&chapter::read(&path)?).map_err(|err| err.at(&path))?;
        collect(&parsed.items, &module, &mut tests);
    }
    Ok(tests)
}

/// The doc comment of the function `name` in `text`, its lines joined by spaces.
pub fn doc_comment(text: &str, name: &str) -> Option<String> {
    let file = syn::parse_file(text).ok()?;
    let function = file.items.iter().find_map(|item| match item {
        Item::Fn(function) if function.sig.ident == name => Some(function),
        _ => None,
    })?;
    let lines: Vec<String> = function
        .attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            Meta::NameValue(pair) => match &pair.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(line),
                    ..
                }) => Some(line.value().trim().to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    (!lines.is_empty()).then(|| lines.join(" "))
}

/// A `todo!(..)` in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Todo {
    pub line: usize,
    /// Its message as written between the quotes (a format string), if it has one.
    pub message: Option<String>,
}

/// Every `todo!(..)` in `text`, including those inside other macros' input (`select!`), which
/// syn leaves as tokens. Needs only the tokens, so it works on a half-written file as long as
/// its brackets balance; `None` when they do not.
pub fn todos(text: &str) -> Option<Vec<Todo>> {
    fn walk(tokens: TokenStream, found: &mut Vec<Todo>) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (index, tree) in trees.iter().enumerate() {
            match (tree, trees.get(index + 1), trees.get(index + 2)) {
                (
                    TokenTree::Ident(name),
                    Some(TokenTree::Punct(bang)),
                    Some(TokenTree::Group(args)),
                ) if name == "todo" && bang.as_char() == '!' => {
                    let message = (|input: ParseStream| {
                        let message: LitStr = input.parse()?;
                        input.parse::<TokenStream>()?;
                        Ok(message.value())
                    })
                    .parse2(args.stream())
                    .ok();
                    found.push(Todo {
                        line: name.span().start().line,
                        message,
                    });
                }
                (TokenTree::Group(group), _, _) => walk(group.stream(), found),
                _ => {}
            }
        }
    }
    let tokens = TokenStream::from_str(text).ok()?;
    let mut found = Vec::new();
    walk(tokens, &mut found);
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo() -> Chapter {
        Chapter::from_slug("01-echo").expect("a chapter name")
    }

    /// The suites come out of a stage test written the way every chapter writes it.
    #[test]
    fn suites_come_from_the_stage_test() {
        let stage = "fn main() -> std::process::ExitCode {\n    stage_tests::run(\n        \
                     stage_tests::target!(ch01_echo, \"ch01-echo\"),\n        &[\n            \
                     stage_tests::contract::SCENARIOS,\n            stage_tests::echo::SCENARIOS,\n        \
                     ],\n    )\n}\n";
        assert_eq!(
            stage_suites(stage, &echo()),
            Ok(vec![
                "stage_tests::contract::SCENARIOS".to_string(),
                "stage_tests::echo::SCENARIOS".to_string()
            ])
        );
    }

    /// A target of the stage test's own (chapter 10's: a temporary database per server) gives
    /// its fields and the items the starter test needs to set them, as written; `main` stays.
    #[test]
    fn a_target_of_its_own_brings_its_fields_and_helpers() {
        let stage = "use std::path::Path;\n\n/// The flags.\nfn base_flags(dir: &Path) -> \
                     Vec<String> {\n    // Why: a comment.\n    vec![dir.display().to_string()]\n}\n\n\
                     fn main() -> std::process::ExitCode {\n    stage_tests::run(\n        \
                     stage_tests::Target {\n            base_flags: Some(base_flags),\n            \
                     ..stage_tests::target!(ch01_echo, \"ch01-echo\")\n        },\n        \
                     &[stage_tests::echo::SCENARIOS],\n    )\n}\n";
        let found = stage_test(stage, &echo()).expect("a target of its own is a stage test");
        assert_eq!(found.suites, ["stage_tests::echo::SCENARIOS"]);
        assert_eq!(found.fields, ["base_flags: Some(base_flags)"]);
        assert_eq!(
            found.helpers,
            [
                "use std::path::Path;",
                "/// The flags.\nfn base_flags(dir: &Path) -> Vec<String> {\n    // Why: a \
                 comment.\n    vec![dir.display().to_string()]\n}"
            ]
        );
        let plain = "fn main() { stage_tests::run(stage_tests::target!(ch01_echo, \"ch01-echo\"), \
                     &[stage_tests::echo::SCENARIOS]) }";
        let found = stage_test(plain, &echo()).expect("a plain target");
        assert!(
            found.fields.is_empty() && found.helpers.is_empty(),
            "{found:?}"
        );
        let other = "fn main() { stage_tests::run(Other { ..stage_tests::target!(ch01_echo, \
                     \"ch01-echo\") }, &[a]) }";
        let error = stage_test(other, &echo()).expect_err("not stage_tests::Target");
        assert!(error.message.contains("stage_tests::Target {"), "{error:?}");
    }

    /// A stage test of another shape, or for another crate, is an error the author can act on,
    /// at the line of the call.
    #[test]
    fn odd_stage_tests_are_errors() {
        let other_crate = "fn main() {\n    stage_tests::run(stage_tests::target!(ch02_split, \"ch02-split\"), &[a])\n}";
        let error = stage_suites(other_crate, &echo()).expect_err("the wrong target");
        assert_eq!(error.line, 2, "{error:?}");
        assert!(
            error.message.contains(
                "expected the target `stage_tests::target!(ch01_echo, \"ch01-echo\")`, found \
                 `stage_tests::target!(ch02_split, \"ch02-split\")`"
            ),
            "{error:?}"
        );
        let no_suites =
            "fn main() { stage_tests::run(stage_tests::target!(ch01_echo, \"ch01-echo\"), &[]) }";
        let error = stage_suites(no_suites, &echo()).expect_err("no suites");
        assert!(error.message.contains("runs no suite"), "{error:?}");
        let no_run = "fn main() {}";
        let error = stage_suites(no_run, &echo()).expect_err("no run");
        assert!(error.message.contains("expected a call"), "{error:?}");
        let not_rust = "fn main() {";
        let error = stage_suites(not_rust, &echo()).expect_err("not Rust");
        assert!(error.message.contains("not valid Rust"), "{error:?}");
    }

    /// A `scenarios!` list gives its names, `@binary` marks and all.
    #[test]
    fn scenario_lists_read_the_macro_input() {
        let tokens = TokenStream::from_str("a, @binary b, c,").expect("tokens");
        assert_eq!(
            scenario_list(tokens).ok(),
            Some(vec!["a".to_string(), "b".to_string(), "c".to_string()])
        );
        let tokens = TokenStream::from_str("a b").expect("tokens");
        assert!(scenario_list(tokens).is_err(), "names need commas between");
    }

    /// The real stage-tests crate's lists are found by the path a stage test names them by.
    #[test]
    fn the_stage_tests_lists_are_found() {
        let lists = scenario_lists(&chapter::workspace_root().join("tests/src"))
            .expect("tests/src can be read");
        let echo = lists
            .get("stage_tests::echo::SCENARIOS")
            .expect("the echo suite");
        assert!(
            echo.contains(&"echo::echoes_text_as_text".to_string()),
            "{echo:?}"
        );
        assert!(
            lists.contains_key("stage_tests::heartbeat::WITH_ECHO"),
            "a second list in one file: {:?}",
            lists.keys()
        );
    }

    /// Inner doc comments are not the attributes the starter's allow must follow.
    #[test]
    fn inner_attributes_end_after_the_last_real_one() {
        let file =
            parse_file("//! Docs.\n#![deny(\n    clippy::todo\n)]\n//! More.\n\nfn f() {}\n")
                .expect("valid Rust");
        assert_eq!(inner_attributes_end(&file), Some(4));
        let file = parse_file("//! Only docs.\nfn f() {}\n").expect("valid Rust");
        assert_eq!(inner_attributes_end(&file), None);
    }

    /// A function's doc comment comes back as one line.
    #[test]
    fn doc_comments_are_read_from_attributes() {
        let text = "/// What it\n/// proves.\n#[allow(dead_code)]\nasync fn proves() {}\n";
        assert_eq!(
            doc_comment(text, "proves").as_deref(),
            Some("What it proves.")
        );
        assert_eq!(doc_comment(text, "other"), None);
    }

    /// `todo!`s are found with their messages, inside other macros too; unbalanced brackets
    /// give `None`.
    #[test]
    fn todos_are_found_in_tokens() {
        let text = "fn f() {\n    todo!(\"first {{x}}\");\n    select! { _ = a => todo!(\"second\"), }\n    todo!()\n}\n";
        assert_eq!(
            todos(text),
            Some(vec![
                Todo {
                    line: 2,
                    message: Some("first {{x}}".to_string())
                },
                Todo {
                    line: 3,
                    message: Some("second".to_string())
                },
                Todo {
                    line: 4,
                    message: None
                },
            ])
        );
        assert_eq!(todos("fn f() { todo!(\"x\")"), None);
    }
}
