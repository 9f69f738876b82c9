//! What counts as *set* in `linux.resources`, by runc's rule: a zero weight, share, quota,
//! period, limit or class id, an empty cpu or memory-node list and `disableOOMKiller: false`
//! mean "not set", and runc writes nothing for them. Clients rely on it: Docker sends
//! `blockIO.weight: 0`, `cpu.shares: 0` and `memory.disableOOMKiller: false` on every
//! container. contain drops those values once, when the bundle is read (and for `update`),
//! so that nothing downstream (the host check that fails closed, the cgroup writer, the
//! systemd unit, the audit) mistakes them for a request. Pure.

use oci_spec::runtime::{LinuxResources, LinuxWeightDeviceBuilder};

/// `res` with every value that means "not set" removed, and sections left empty dropped.
pub fn drop_unset(res: &mut LinuxResources) {
    let zero_i = |v: Option<i64>| v.filter(|&v| v != 0);
    let zero_u = |v: Option<u64>| v.filter(|&v| v != 0);
    let empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    if let Some(m) = res.memory_mut() {
        m.set_limit(zero_i(m.limit()));
        m.set_reservation(zero_i(m.reservation()));
        m.set_swap(zero_i(m.swap()));
        m.set_kernel(zero_i(m.kernel()));
        m.set_kernel_tcp(zero_i(m.kernel_tcp()));
        // runc reads a swappiness of -1 (u64::MAX once unsigned) as unset.
        m.set_swappiness(m.swappiness().filter(|&s| s != u64::MAX));
        m.set_disable_oom_killer(m.disable_oom_killer().filter(|&d| d));
        // Only meaningful beside a limit.
        if m.limit().is_none() {
            m.set_check_before_update(None);
        }
        let any = m.limit().is_some()
            || m.reservation().is_some()
            || m.swap().is_some()
            || m.kernel().is_some()
            || m.kernel_tcp().is_some()
            || m.swappiness().is_some()
            || m.disable_oom_killer().is_some()
            || m.use_hierarchy() == Some(false);
        if !any {
            res.set_memory(None);
        }
    }
    if let Some(c) = res.cpu_mut() {
        c.set_shares(zero_u(c.shares()));
        c.set_quota(zero_i(c.quota()));
        c.set_period(zero_u(c.period()));
        c.set_realtime_runtime(zero_i(c.realtime_runtime()));
        c.set_realtime_period(zero_u(c.realtime_period()));
        c.set_cpus(empty(c.cpus().clone()));
        c.set_mems(empty(c.mems().clone()));
        let any = c.shares().is_some()
            || c.quota().is_some()
            || c.period().is_some()
            || c.burst().is_some()
            || c.idle().is_some()
            || c.realtime_runtime().is_some()
            || c.realtime_period().is_some()
            || c.cpus().is_some()
            || c.mems().is_some();
        if !any {
            res.set_cpu(None);
        }
    }
    if res.pids().is_some_and(|p| p.limit() == 0) {
        res.set_pids(None);
    }
    if let Some(b) = res.block_io_mut() {
        b.set_weight(b.weight().filter(|&w| w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|&w| w != 0));
        if let Some(list) = b.weight_device().clone() {
            let kept: Vec<_> = list
                .into_iter()
                .filter_map(|d| {
                    let w = d.weight().filter(|&w| w != 0);
                    let leaf = d.leaf_weight().filter(|&w| w != 0);
                    if w.is_none() && leaf.is_none() {
                        return None;
                    }
                    let mut b = LinuxWeightDeviceBuilder::default()
                        .major(d.major())
                        .minor(d.minor());
                    if let Some(w) = w {
                        b = b.weight(w);
                    }
                    if let Some(l) = leaf {
                        b = b.leaf_weight(l);
                    }
                    b.build().ok()
                })
                .collect();
            b.set_weight_device((!kept.is_empty()).then_some(kept));
        }
        let lists = [
            b.throttle_read_bps_device(),
            b.throttle_write_bps_device(),
            b.throttle_read_iops_device(),
            b.throttle_write_iops_device(),
        ];
        let any = b.weight().is_some()
            || b.leaf_weight().is_some()
            || b.weight_device().is_some()
            || lists
                .iter()
                .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()));
        if !any {
            res.set_block_io(None);
        }
    }
    if let Some(n) = res.network_mut() {
        n.set_class_id(n.class_id().filter(|&c| c != 0));
        if n.class_id().is_none() && n.priorities().as_ref().is_none_or(|p| p.is_empty()) {
            res.set_network(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn normalized(v: serde_json::Value) -> serde_json::Value {
        let mut res: LinuxResources = serde_json::from_value(v).unwrap();
        drop_unset(&mut res);
        serde_json::to_value(res).unwrap()
    }

    /// Every field of linux.resources whose zero (or false, or empty) value runc reads as
    /// "not set", alone in its section: the section disappears.
    #[test]
    fn unset_values_are_not_requests() {
        let table = [
            json!({"memory": {"limit": 0}}),
            json!({"memory": {"reservation": 0}}),
            json!({"memory": {"swap": 0}}),
            json!({"memory": {"kernel": 0}}),
            json!({"memory": {"kernelTCP": 0}}),
            json!({"memory": {"disableOOMKiller": false}}),
            json!({"memory": {"checkBeforeUpdate": true}}),
            json!({"memory": {"useHierarchy": true}}),
            json!({"memory": {}}),
            json!({"cpu": {"shares": 0}}),
            json!({"cpu": {"quota": 0}}),
            json!({"cpu": {"period": 0}}),
            json!({"cpu": {"realtimeRuntime": 0}}),
            json!({"cpu": {"realtimePeriod": 0}}),
            json!({"cpu": {"cpus": ""}}),
            json!({"cpu": {"mems": ""}}),
            json!({"cpu": {}}),
            json!({"pids": {"limit": 0}}),
            json!({"blockIO": {"weight": 0}}),
            json!({"blockIO": {"leafWeight": 0}}),
            json!({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 0, "leafWeight": 0}]}}),
            json!({"blockIO": {"weightDevice": []}}),
            json!({"blockIO": {"throttleReadBpsDevice": []}}),
            json!({"blockIO": {}}),
            json!({"network": {"classID": 0}}),
            json!({"network": {"priorities": []}}),
            // What Docker 20.10 sends on every container.
            json!({"blockIO": {"weight": 0}, "cpu": {"shares": 0},
                   "memory": {"disableOOMKiller": false}}),
        ];
        for v in table {
            assert_eq!(normalized(v.clone()), json!({}), "{v}");
        }
    }

    /// The same fields with a value are requests and are kept, untouched.
    #[test]
    fn set_values_are_kept() {
        let table = [
            json!({"memory": {"limit": -1}}),
            json!({"memory": {"limit": 1048576, "checkBeforeUpdate": true}}),
            json!({"memory": {"reservation": 1}}),
            json!({"memory": {"swap": -1}}),
            json!({"memory": {"kernel": 4096}}),
            json!({"memory": {"kernelTCP": 4096}}),
            json!({"memory": {"swappiness": 0}}),
            json!({"memory": {"disableOOMKiller": true}}),
            json!({"memory": {"useHierarchy": false}}),
            json!({"cpu": {"shares": 2}}),
            json!({"cpu": {"quota": -1}}),
            json!({"cpu": {"period": 100000}}),
            json!({"cpu": {"burst": 0}}),
            json!({"cpu": {"idle": 0}}),
            json!({"cpu": {"realtimeRuntime": -1}}),
            json!({"cpu": {"cpus": "0"}}),
            json!({"cpu": {"mems": "0"}}),
            json!({"pids": {"limit": -1}}),
            json!({"pids": {"limit": 10}}),
            json!({"blockIO": {"weight": 10}}),
            json!({"blockIO": {"leafWeight": 10}}),
            json!({"blockIO": {"weightDevice": [{"major": 8, "minor": 0, "weight": 10}]}}),
            json!({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 0}]}}),
            json!({"network": {"classID": 1}}),
            json!({"network": {"priorities": [{"name": "lo", "priority": 1}]}}),
            json!({"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}),
            json!({"devices": [{"allow": false, "access": "rwm"}]}),
        ];
        for v in table {
            assert_eq!(normalized(v.clone()), v, "{v}");
        }
    }

    #[test]
    fn only_the_unset_parts_go() {
        let v = json!({"memory": {"limit": 0, "swap": 1048576}, "cpu": {"shares": 0, "quota": 5000},
            "blockIO": {"weight": 0, "weightDevice": [
                {"major": 8, "minor": 0, "weight": 0},
                {"major": 8, "minor": 16, "weight": 20}]}});
        assert_eq!(
            normalized(v),
            json!({"memory": {"swap": 1048576}, "cpu": {"quota": 5000},
                "blockIO": {"weightDevice": [{"major": 8, "minor": 16, "weight": 20}]}})
        );
    }
}
