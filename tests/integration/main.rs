//! Integration tests: the real `contain` binary on busybox bundles the tests build, each
//! effect observed from inside the container. Tests that cannot run here (not root, no
//! busybox, no runc) are reported as ignored with the reason, never as passed.

mod audit;
mod bad_input;
mod cgroup2;
mod clients;
mod config;
mod conformance;
mod cri;
mod exec;
mod learn;
mod lifecycle;
mod microvm;
mod pod;
mod policy;
mod propagation;
mod seccomp;
mod security;
mod systemd;
mod util;

use libtest_mimic::{Arguments, Trial};

type TestFn = fn() -> util::R;

fn main() {
    // The binary run as a child by a test that needs a process of its own (see the function).
    if let Ok(what) = std::env::var(microvm::FILTERED_THREAD_ENV) {
        microvm::filtered_thread(&what);
    }
    let args = Arguments::from_args();
    let mut tests: Vec<(&str, TestFn)> = Vec::new();
    tests.extend(lifecycle::TESTS);
    tests.extend(config::TESTS);
    tests.extend(security::TESTS);
    tests.extend(seccomp::TESTS);
    tests.extend(policy::TESTS);
    tests.extend(pod::TESTS);
    tests.extend(cri::TESTS);
    tests.extend(exec::TESTS);
    tests.extend(bad_input::TESTS);
    tests.extend(clients::TESTS);
    tests.extend(audit::TESTS);
    tests.extend(learn::TESTS);
    tests.extend(microvm::TESTS);
    tests.extend(cgroup2::TESTS);
    tests.extend(systemd::TESTS);
    tests.extend(conformance::TESTS);
    tests.extend(propagation::TESTS);
    let missing = util::missing_prerequisite();
    let trials = tests
        .into_iter()
        .map(|(name, f)| {
            let missing = missing.clone();
            Trial::ignorable_test(name, move || match missing {
                Some(why) => util::skip(why),
                None => f(),
            })
        })
        .collect();
    libtest_mimic::run(&args, trials).exit();
}
