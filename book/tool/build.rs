//! Finds the two JavaScript files that make Mermaid diagrams render in the browser.
//!
//! They ship inside the `mdbook-mermaid` crate's source (its `mdbook-mermaid install` command
//! copies them into a book), but its library does not export them. Rather than commit 2.6 MB of
//! minified JavaScript, we ask Cargo where it unpacked that very package and hand the directory to
//! the crate as `MERMAID_ASSETS_DIR`; `src/lib.rs` embeds the files with `include_bytes!` and
//! writes them into the book before each build.

use std::{
    env,
    error::Error,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

/// The dependency whose source holds the files, as it is named in a resolve graph.
const PACKAGE: &str = "mdbook-mermaid";
/// Where the files sit inside that package.
const ASSETS: &str = "src/bin/assets";
const FILES: [&str; 2] = ["mermaid.min.js", "mermaid-init.js"];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=../../Cargo.lock");

    let assets = find_package_dir()?.join(ASSETS);
    for file in FILES {
        let path = assets.join(file);
        if !path.is_file() {
            return Err(format!(
                "{PACKAGE} no longer ships {file} at {}: see book/tool/build.rs",
                path.display()
            )
            .into());
        }
        println!("cargo::rerun-if-changed={}", path.display());
    }
    println!("cargo::rustc-env=MERMAID_ASSETS_DIR={}", assets.display());
    Ok(())
}

/// The directory of the `mdbook-mermaid` package this crate depends on, from `cargo metadata`.
fn find_package_dir() -> Result<PathBuf, Box<dyn Error>> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = Path::new(&env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    let mut command = Command::new(cargo);
    command
        .arg("metadata")
        .arg("--format-version=1")
        .arg("--manifest-path")
        .arg(&manifest);
    // Resolve for the platform we build for only, so Cargo needs no package it has not already
    // fetched for this build.
    if let Ok(target) = env::var("TARGET") {
        command.arg("--filter-platform").arg(target);
    }
    let output = command.output()?;
    if !output.status.success() {
        return Err(format!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    let metadata: Value = serde_json::from_slice(&output.stdout)?;

    // Follow the resolve graph from this crate to its `mdbook-mermaid`, so that with several
    // versions in the lock file we still pick the one we are built against.
    let this_package = env::var("CARGO_PKG_NAME")?;
    let nodes = metadata["resolve"]["nodes"]
        .as_array()
        .ok_or("`cargo metadata` printed no resolve graph")?;
    let packages = metadata["packages"]
        .as_array()
        .ok_or("`cargo metadata` printed no packages")?;
    let package_by_id = |id: &str| packages.iter().find(|package| package["id"] == id);
    let dependency_id = nodes
        .iter()
        .filter(|node| {
            node["id"]
                .as_str()
                .and_then(package_by_id)
                .is_some_and(|package| package["name"] == this_package.as_str())
        })
        .flat_map(|node| node["deps"].as_array().into_iter().flatten())
        .filter_map(|dep| dep["pkg"].as_str())
        .find(|id| package_by_id(id).is_some_and(|package| package["name"] == PACKAGE))
        .ok_or_else(|| format!("{this_package} does not depend on {PACKAGE}"))?;
    let manifest_path = package_by_id(dependency_id)
        .and_then(|package| package["manifest_path"].as_str())
        .ok_or_else(|| format!("`cargo metadata` gives no manifest path for {dependency_id}"))?;
    Path::new(manifest_path)
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| format!("{manifest_path} has no parent directory").into())
}
