//! contain: a security-hardened, runc-compatible OCI container runtime.
//!
//! Layers, from the top: `cli` -> `container` (the verbs over the state store) -> `policy` and
//! `audit` (pure planning over a config) and `process` (the forked stages) -> the mechanisms
//! (`rootfs`, `ns`, `cgroups`, `seccomp`, `landlock`, `caps`, `hooks`, `microvm`) -> `sys` (the
//! raw syscalls). `oci` parses and validates config.json with the mechanisms' own parsers
//! (mount options, seccomp profiles, Landlock rules) and performs no syscalls. Two cycles are
//! left, at module level only: `process` <-> `microvm` (the init becomes the VMM; the guest
//! agent reuses `process::exec`, `credentials` and `rlimits`, never the init) and `oci` <->
//! `rootfs`/`landlock` (validation uses their parsers; they take oci's types).
//!
//! `rootfs` reaches the system only through its `Syscalls` trait (the real calls, or a
//! recording fake in its unit tests). Module edges return typed errors (`ProcessError`,
//! `MicrovmError`, `LandlockError`, ...) that keep a failed syscall's `io::Error` as a
//! `sys::StepError`.
//!
//! Unsafe code lives only in `sys` (raw syscalls, each behind a safe function) and `microvm`
//! (KVM and guest memory); everywhere else it does not compile.

#![deny(unsafe_code)]

pub mod audit;
pub mod caps;
pub mod cgroups;
pub mod cli;
pub mod container;
pub mod hooks;
pub mod landlock;
pub mod learn;
pub mod log;
pub mod microvm;
pub mod ns;
pub mod oci;
pub mod policy;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sys;
