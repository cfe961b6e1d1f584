//! The committed benchmark figures are what the plot tool draws from the committed results: a
//! results file changed without rerunning the plot tool (or a figure edited by hand) fails here.
//! Regenerate with `cargo run -p fanout-load --bin plot`.

use std::fs;

use fanout_load::{
    bench::{self, Results},
    plot,
};

/// Every figure and `table.md` in `book/src/bench/` matches a fresh rendering of `results.json`.
#[test]
fn committed_figures_match_the_committed_results() {
    let dir = bench::workspace_root().join("book/src/bench");
    let results = Results::load(&dir.join("results.json")).expect("reading the results file");
    assert!(
        !results.runs.is_empty(),
        "book/src/bench/results.json holds no run"
    );
    for output in plot::render(&results).expect("rendering") {
        let path = dir.join(output.file);
        let committed = fs::read_to_string(&path)
            .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
        assert!(
            committed == output.text,
            "{} is not what the plot tool draws from results.json; run \
             `cargo run -p fanout-load --bin plot`",
            path.display()
        );
    }
}

/// BENCHMARKS.md carries the same table, between its markers.
#[test]
fn benchmarks_md_carries_the_current_table() {
    let root = bench::workspace_root();
    let results =
        Results::load(&root.join("book/src/bench/results.json")).expect("reading the results");
    let page = fs::read_to_string(root.join("BENCHMARKS.md")).expect("reading BENCHMARKS.md");
    let expected = plot::with_table(&page, &plot::table(&results))
        .expect("BENCHMARKS.md has the table markers");
    assert!(
        page == expected,
        "BENCHMARKS.md's table is not the current one; run `cargo run -p fanout-load --bin plot`"
    );
}
