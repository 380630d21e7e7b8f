//! `cargo xtask`: the workflows around kiln. `bringup` runs the node job on
//! this machine, `test` installs what the tests need and runs them all,
//! `bench` measures kiln against the tools a user would otherwise run.

mod bench;
mod bench_image;
mod bench_inventory;
mod bringup;
mod fuzz;
mod sh;
mod test;
mod test_runner;

use std::process::ExitCode;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  bringup [--db PATH] [--platform P] [--burnin-duration D]
                     inspect, validate, burn in and report this machine as a
                     one-node rack (database: inventory/kiln.db)
  bringup --rack FILE [--db PATH] [--parallel N] [--burnin-duration D]
                     the rack pipeline: kiln rack validate, kiln rack burnin
                     on the nodes that passed, a status table
  test [--no-install] [-- ARGS]
                     install what the tests need (apt, pip) and run every test
  bench [--no-install] [--fleet-nodes N] [--only=node|image|fleet]
                     run the benchmarks, write docs/benchmarks.md
  tidy               check the architecture's boundaries in the source tree
                     (also a test of `cargo xtask test`)
  fixtures [DIR] [NAME...]
                     write the hand-built fixture trees (all, or the names
                     given) for kiln --root; DIR defaults to target/fixtures
  lab up [--nodes N] [--fixtures A,B,..] [--no-bmc] [--no-trust] | down | status
                     an emulated rack on this machine (network namespaces,
                     sshd, Redfish emulators); writes inventory/racks/lab.toml
  vm build [--controller URL]
                     the VM test's parts under target/vm/build: Debian's
                     cloud kernel, the imaging initrd, the deployable image
  dist [--target T]... [--out DIR] [--no-build]
                     node binaries per architecture for `kiln rack --dist`
                     (default: x86_64 and aarch64 Linux, where installed;
                     out: target/kiln-dist): stripped, packed, manifest.json
  bench-fleet [NODES]
                     only the rack fan-out benchmark (kiln vs pdsh)
  fuzz [TARGET] [--seconds N] [--list]
                     run the fuzz targets of tests/fuzz one at a time, N
                     seconds each (default 120); needs cargo-fuzz
";

/// `vm build`: what `tests/image_qemu.rs` boots, for looking at or booting by hand.
fn vm(args: &[String]) -> anyhow::Result<u8> {
    let mut controller = "http://10.77.9.1:8089".to_string();
    match args {
        [b] if b == "build" => {}
        [b, flag, url] if b == "build" && flag == "--controller" => controller = url.clone(),
        _ => {
            eprint!("{USAGE}");
            return Ok(2);
        }
    }
    let kiln = sh::build_kiln(false)?;
    let parts = xtask::vm::build(&xtask::vm::default_build(kiln, &controller)?)?;
    println!("kernel   {}", parts.kernel_package);
    println!("boot     {}", parts.boot_dir.display());
    println!("artifact {}", parts.manifest.display());
    println!("image    {} bytes, sha256 {}", parts.image_size, parts.image_sha256);
    println!("built in {:.1} s", parts.seconds);
    Ok(0)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match cmd.as_str() {
        "bringup" => bringup::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "lab" => xtask::lab::cli(rest).map(|()| 0),
        "dist" => xtask::dist::cli(rest),
        "fixtures" => xtask::fixtures::cli(&sh::root(), rest),
        "tidy" => xtask::tidy::cli(&sh::root()),
        "bench-fleet" => bench::fleet_only(rest),
        "vm" => vm(rest),
        "fuzz" => fuzz::run(rest),
        "help" | "--help" | "-h" => {
            print!("{USAGE}");
            Ok(0)
        }
        other => {
            eprintln!("xtask: unknown command {other:?}\n\n{USAGE}");
            Ok(2)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
