//! contain: a security-hardened, runc-compatible OCI container runtime.
//!
//! Dependencies point downwards: cli -> container -> oci and process -> ns, rootfs, caps,
//! cgroups -> sys. Parsing (oci) performs no syscalls.
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
pub mod log;
pub mod microvm;
pub mod ns;
pub mod oci;
pub mod policy;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod sys;
