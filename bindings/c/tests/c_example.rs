//! `examples/issues.c` compiled with `cc` against the static library and the
//! committed header, run on every backend, and run again under valgrind
//! (required in CI; skipped with a note where valgrind is not installed).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The directory cargo put this crate's libraries in (`target/<profile>`).
fn artifacts() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

fn compile(out: &Path) {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // Cargo leaves the static library in `deps/` when it builds it for tests
    // and copies it up a level when it builds the crate on its own.
    let dir = artifacts();
    let lib = [
        dir.join("deps/librindle_ffi.a"),
        dir.join("librindle_ffi.a"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .unwrap_or_else(|| panic!("librindle_ffi.a was not built under {}", dir.display()));
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g"])
        .arg(crate_dir.join("examples/issues.c"))
        .arg("-I")
        .arg(crate_dir.join("include"))
        .arg(&lib)
        .args(["-lpthread", "-ldl", "-lm", "-o"])
        .arg(out)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
}

#[test]
fn the_c_example_compiles_runs_and_is_clean_under_valgrind() {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("issues");
    compile(&exe);

    let run = dir.path().join("plain");
    std::fs::create_dir(&run).unwrap();
    let out = Command::new(&exe)
        .arg(&run)
        .output()
        .expect("run the example");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    for backend in ["memory:", "redb:", "sqlite:"] {
        assert!(stdout.contains(backend), "{backend} did not run: {stdout}");
    }

    let valgrind = Command::new("valgrind").arg("--version").output();
    if valgrind.is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "valgrind is required in CI (.ci/run installs it)"
        );
        eprintln!("valgrind is not installed: the memory check was skipped");
        return;
    }
    let run = dir.path().join("valgrind");
    std::fs::create_dir(&run).unwrap();
    let out = Command::new("valgrind")
        .args([
            "--error-exitcode=99",
            "--leak-check=full",
            "--errors-for-leak-kinds=definite,indirect",
            "--quiet",
        ])
        .arg(&exe)
        .arg(&run)
        .output()
        .expect("run valgrind");
    assert!(
        out.status.success(),
        "valgrind found errors (exit {:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}
