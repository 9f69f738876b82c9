//! A build without the microVM stage (cargo feature `microvm` off): asking for it is refused
//! at create, saying so; nothing of the VMM is compiled in.

use std::path::Path;

use super::{initramfs, MicrovmError, Plan};

/// Why the stage is not available.
pub const WHY: &str = "this contain was built without the microVM stage (cargo feature `microvm`)";

/// The agent's initramfs with the rootfs in it (a block rootfs needs the stage).
pub fn guest_initramfs(
    plan: &Plan,
    rootfs: &Path,
    config: &initramfs::GuestConfig,
) -> Result<Vec<u8>, MicrovmError> {
    match plan.rootfs {
        super::RootfsMode::Initramfs => super::agent_initramfs(rootfs, config, &[], plan.memory),
        super::RootfsMode::Block => Err(MicrovmError::Unavailable(format!(
            "io.contain.microvm.rootfs block: {WHY}"
        ))),
    }
}

/// No VM can be prepared in this build: there is no value of this type.
pub enum Prepared {}

/// No VM can be built in this build.
pub enum Machine {}

/// Refused: the stage is not built in.
pub fn prepare(_: &Plan, _: &Path, _: &initramfs::GuestConfig) -> Result<Prepared, MicrovmError> {
    Err(MicrovmError::Unavailable(format!(
        "io.contain.isolation microvm: {WHY}"
    )))
}

impl Prepared {
    pub fn listen(&self, _: &Path) -> Result<(), MicrovmError> {
        match *self {}
    }

    pub fn attach_network(&self) -> Result<(), MicrovmError> {
        match *self {}
    }

    pub fn keep_fds(&self) -> Vec<i32> {
        match *self {}
    }

    pub fn machine_fds(&self, m: &Machine) -> Vec<i32> {
        match *m {}
    }

    pub fn describe(&self) -> String {
        match *self {}
    }

    pub fn seccomp_text(&self) -> String {
        match *self {}
    }

    pub fn build(&self) -> Result<Machine, MicrovmError> {
        match *self {}
    }

    pub fn run(&self, machine: Machine) -> ! {
        match machine {}
    }
}
