//! The five capability sets of process.capabilities.

use std::collections::HashSet;

use caps::{CapSet, Capability};
use oci_spec::runtime::{Capabilities, LinuxCapabilities};

/// The kernel's name of an oci-spec capability ("CAP_SYS_ADMIN").
pub fn cap_name(c: &oci_spec::runtime::Capability) -> String {
    format!(
        "CAP_{}",
        c.to_string().to_uppercase().trim_start_matches("CAP_")
    )
}

/// Whether `name` ("CAP_CHOWN") is a capability.
pub fn is_known(name: &str) -> bool {
    name.parse::<Capability>().is_ok()
}

/// oci-spec's capability -> the caps crate's, through their shared name.
fn convert(set: &Option<Capabilities>, last: u8) -> Result<HashSet<Capability>, String> {
    let mut out = HashSet::new();
    for c in set.iter().flatten() {
        let name = cap_name(c);
        match name.parse::<Capability>() {
            Ok(cap) => {
                // A capability this kernel does not know cannot be granted; skip it as runc does.
                if cap.index() <= last {
                    out.insert(cap);
                }
            }
            Err(_) => return Err(format!("unknown capability {name}")),
        }
    }
    Ok(out)
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Set one capability set; when the kernel refuses, name what was asked for that this process
/// can never hold: capabilities outside its bounding set (config.json's bounding set, less what
/// the runtime itself was not given).
fn set_or_explain(set: CapSet, want: &HashSet<Capability>, name: &str) -> Result<(), String> {
    caps::set(None, set, want).map_err(|e| {
        let bounding = caps::read(None, CapSet::Bounding).unwrap_or_default();
        let mut outside: Vec<String> = want
            .difference(&bounding)
            .map(|c| c.to_string())
            .collect();
        outside.sort();
        if outside.is_empty() {
            format!("set {name} capabilities: {e}")
        } else {
            format!(
                "set {name} capabilities: {e}: {} not in the process's bounding set (config.json's bounding set, less what the runtime itself does not hold)",
                outside.join(", ")
            )
        }
    })
}

/// The sets, resolved against this kernel.
#[derive(Clone)]
pub struct CapPlan {
    /// The highest capability this kernel knows (read once).
    last: u8,
    bounding: HashSet<Capability>,
    effective: HashSet<Capability>,
    permitted: HashSet<Capability>,
    inheritable: HashSet<Capability>,
    ambient: HashSet<Capability>,
}

impl CapPlan {
    pub fn new(c: Option<&LinuxCapabilities>) -> Result<CapPlan, String> {
        let empty = LinuxCapabilities::default();
        let c = c.unwrap_or(&empty);
        let last = last_cap();
        Ok(CapPlan {
            last,
            bounding: convert(c.bounding(), last)?,
            effective: convert(c.effective(), last)?,
            permitted: convert(c.permitted(), last)?,
            inheritable: convert(c.inheritable(), last)?,
            ambient: convert(c.ambient(), last)?,
        })
    }

    /// No capability in any set (the microVM's VMM).
    pub fn none() -> CapPlan {
        CapPlan {
            last: last_cap(),
            bounding: HashSet::new(),
            effective: HashSet::new(),
            permitted: HashSet::new(),
            inheritable: HashSet::new(),
            ambient: HashSet::new(),
        }
    }

    /// The bounding set's names ("CAP_CHOWN"), sorted: what the process can ever hold.
    pub fn bounding_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.bounding.iter().map(|c| c.to_string()).collect();
        v.sort();
        v
    }

    /// Drop what the bounding set does not list (needs CAP_SETPCAP: before the uid changes).
    pub fn drop_bounding(&self) -> Result<(), String> {
        for cap in caps::all() {
            if cap.index() > self.last || self.bounding.contains(&cap) {
                continue;
            }
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| format!("drop {cap} from the bounding set: {e}"))?;
        }
        Ok(())
    }

    /// Set inheritable, effective and permitted, then raise the ambient ones (after the uid change).
    pub fn apply(&self) -> Result<(), String> {
        set_or_explain(CapSet::Inheritable, &self.inheritable, "inheritable")?;
        set_or_explain(CapSet::Effective, &self.effective, "effective")?;
        set_or_explain(CapSet::Permitted, &self.permitted, "permitted")?;
        caps::clear(None, CapSet::Ambient)
            .map_err(|e| format!("clear ambient capabilities: {e}"))?;
        // The kernel only keeps ambient capabilities that are permitted and inheritable; runc
        // warns and goes on when a config asks for others (its own `runc spec` does), so do we.
        for cap in self
            .ambient
            .iter()
            .filter(|c| self.permitted.contains(c) && self.inheritable.contains(c))
        {
            caps::raise(None, CapSet::Ambient, *cap)
                .map_err(|e| format!("raise ambient {cap}: {e}"))?;
        }
        Ok(())
    }
}
