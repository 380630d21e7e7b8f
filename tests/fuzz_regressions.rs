//! Every input the fuzzers found a crash, hang or panic with (`tests/fuzz/regressions/TARGET/`),
//! replayed through its target: the regression suite of `cargo xtask fuzz`, without a fuzzer.

#[path = "fuzz/src/lib.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_committed_fuzz_input_is_handled() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/regressions");
    let mut replayed = 0;
    for (name, target) in targets::TARGETS {
        let Ok(entries) = std::fs::read_dir(dir.join(name)) else { continue };
        for entry in entries {
            let path = entry.expect("list regressions").path();
            let data = std::fs::read(&path).expect("read a regression input");
            target(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no regression inputs under {}", dir.display());
}

#[test]
fn every_target_takes_empty_and_garbage_input() {
    for (_, target) in targets::TARGETS {
        for data in [&b""[..], b"\xff\xfe", b"{", b"[[", b"\0"] {
            target(data);
        }
    }
}
