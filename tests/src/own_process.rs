//! A test that needs a process of its own, inside a binary it shares.
//!
//! edge-host's metrics and access log belong to the process: the first
//! `metrics::install` and `access_log::open` win, and every edge in the
//! process counts into them. A test asserting exact counters cannot share
//! its process with another edge, yet a test binary of its own links
//! wasmtime once more. So such a test begins with [`ran_in_own_process`]:
//! in the test harness's process it runs the test binary again for that
//! one test and takes its result; in that child it lets the body run.

use std::process::Command;

/// Set in the child to the name of the test it runs.
const CHILD: &str = "EDGE_TEST_OWN_PROCESS";

/// Runs the calling test alone in a child process (this test binary again,
/// `--exact` its name) and fails if it fails there; `true` once it has,
/// and the caller returns. In that child it returns `false` and the caller
/// goes on with its body. The test is found by its thread's name, which
/// libtest gives each test.
pub fn ran_in_own_process() -> bool {
    let thread = std::thread::current();
    let test = thread
        .name()
        .expect("libtest names a test's thread after the test");
    if std::env::var(CHILD).as_deref() == Ok(test) {
        return false;
    }
    let binary = std::env::current_exe().expect("the test binary's path");
    let output = Command::new(binary)
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, test)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&output.stdout);
    // What the child said, shown with this test's output.
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "`{test}` failed in its own process ({})",
        output.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed"),
        "`{test}` did not run in its own process"
    );
    true
}
