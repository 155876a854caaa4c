//! The file commands that run nothing: `graph` (draw a protocol) and `import` (turn another
//! tool's document into a protocol file).

use super::exit;
use crate::graph::{self, Format};
use crate::import::speckit::{self, ImportOptions};
use muster_schemas::protocol::read_protocol;
use std::path::Path;

/// `muster graph FILE`: the protocol as Mermaid or Graphviz, on standard output or in a file.
pub fn graph(file: &Path, format: Format, output: Option<&Path>) -> u8 {
    match read_protocol(file) {
        Ok(protocol) => write_output(output, &graph::render(&protocol, format)),
        Err(err) => {
            eprintln!("{err}");
            exit::INVALID
        }
    }
}

/// `muster import speckit FILE`: the protocol as YAML; warnings about guesses go to stderr.
pub fn import_speckit(file: &Path, options: &ImportOptions, output: Option<&Path>) -> u8 {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {}: cannot read: {err}", file.display());
            return exit::INVALID;
        }
    };
    let (protocol, warnings) = match speckit::import(&text, options) {
        Ok(imported) => imported,
        Err(err) => {
            eprintln!("error: {}: {err}", file.display());
            return exit::INVALID;
        }
    };
    for warning in &warnings {
        eprintln!("warning: {}: {warning}", file.display());
    }
    match speckit::to_yaml(&protocol) {
        Ok(yaml) => {
            let header = format!(
                "# Imported from {} by `muster import speckit`: review owners and dependencies, then `muster validate`.\n",
                file.display()
            );
            write_output(output, &(header + &yaml))
        }
        Err(err) => {
            eprintln!("error: {err}");
            exit::INVALID
        }
    }
}

fn write_output(output: Option<&Path>, text: &str) -> u8 {
    let Some(path) = output else {
        print!("{text}");
        return exit::OK;
    };
    match std::fs::write(path, text) {
        Ok(()) => {
            eprintln!("wrote {}", path.display());
            exit::OK
        }
        Err(err) => {
            eprintln!("error: {}: cannot write: {err}", path.display());
            exit::INVALID
        }
    }
}
