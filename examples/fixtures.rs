//! Writes the hand-built fixture trees (`kiln::hw::fixture::trees`) for `kiln --root`, the lab
//! and the benchmark: `cargo xtask fixtures [DIR] [NAME...]`, which runs this as
//! `cargo run --example fixtures -- DIR [NAME...]`. Every named tree when no name is given.

use std::path::PathBuf;
use std::process::ExitCode;

use kiln::hw::fixture::trees;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: fixtures DIR [NAME...]\nnames: {}", trees::NAMES.join(", "));
        return ExitCode::from(2);
    };
    let names: Vec<String> = args.collect();
    let names: Vec<&str> =
        if names.is_empty() { trees::NAMES.to_vec() } else { names.iter().map(String::as_str).collect() };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("fixtures: cannot create {}: {e}", dir.display());
        return ExitCode::from(1);
    }
    match trees::write(&names, &dir) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fixtures: {e}");
            ExitCode::from(if e.kind() == std::io::ErrorKind::InvalidInput { 2 } else { 1 })
        }
    }
}
