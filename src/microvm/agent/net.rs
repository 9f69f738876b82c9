//! The guest's network interface, configured as the container's network namespace had it:
//! the VMM passes `contain.net=ADDRESS/PREFIX,GATEWAY,MTU` on the kernel command line (the
//! MAC comes with the virtio-net device). Loopback is brought up either way.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::sys::net;

/// How long the agent waits for the virtio-net interface to appear.
const WAIT: Duration = Duration::from_secs(10);

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mtu: u16,
}

/// `contain.net=` from a kernel command line; None when it is not there, an error when it is
/// malformed.
pub fn parse(cmdline: &str) -> Result<Option<Config>, String> {
    let Some(word) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("contain.net="))
    else {
        return Ok(None);
    };
    let bad = || format!("contain.net={word}: not ADDRESS/PREFIX,GATEWAY,MTU");
    let mut parts = word.split(',');
    let (a, p) = parts
        .next()
        .and_then(|s| s.split_once('/'))
        .ok_or_else(bad)?;
    let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
    let prefix: u8 = p.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
    let gateway = match parts.next().ok_or_else(bad)? {
        "" => None,
        g => Some(g.parse().map_err(|_| bad())?),
    };
    let mtu: u16 = parts
        .next()
        .and_then(|m| m.parse().ok())
        .filter(|m| *m >= 68)
        .ok_or_else(bad)?;
    Ok(Some(Config {
        addr,
        prefix,
        gateway,
        mtu,
    }))
}

/// `what` failed with `e`.
fn failed(what: &str) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The first interface other than loopback, waited for up to [`WAIT`].
fn interface() -> Result<String, String> {
    let start = Instant::now();
    loop {
        let found = std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n != "lo");
        if let Some(n) = found {
            return Ok(n);
        }
        if start.elapsed() > WAIT {
            return Err(format!(
                "no network interface appeared within {} s (the guest kernel needs virtio_net, \
                 built in or in the modules directory with failover and net_failover)",
                WAIT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Bring loopback up, and the guest's interface as `cmdline` asks.
pub fn configure(cmdline: &str) -> Result<(), String> {
    let config = parse(cmdline)?;
    let sock = match (net::inet_socket(), &config) {
        (Ok(sock), _) => sock,
        // A kernel without IPv4: loopback is left as it is when nothing more is asked.
        (Err(_), None) => return Ok(()),
        (Err(e), Some(_)) => return Err(format!("socket: {e}")),
    };
    let lo = net::up(&sock, "lo").map_err(failed("lo: up"));
    let Some(c) = config else {
        return lo;
    };
    lo?;
    let name = interface()?;
    let request = || net::ifreq(&name).map_err(failed(&name));
    let mut r = request()?;
    r.ifr_ifru.ifru_mtu = c.mtu.into();
    net::ioctl(&sock, libc::SIOCSIFMTU, &mut r)
        .map_err(failed(&format!("{name}: MTU {}", c.mtu)))?;
    let mut r = request()?;
    r.ifr_ifru.ifru_addr = net::sockaddr_in(c.addr);
    net::ioctl(&sock, libc::SIOCSIFADDR, &mut r)
        .map_err(failed(&format!("{name}: address {}", c.addr)))?;
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0));
    let mut r = request()?;
    r.ifr_ifru.ifru_netmask = net::sockaddr_in(mask);
    net::ioctl(&sock, libc::SIOCSIFNETMASK, &mut r)
        .map_err(failed(&format!("{name}: netmask {mask}")))?;
    net::up(&sock, &name).map_err(failed(&format!("{name}: up")))?;
    if let Some(gw) = c.gateway {
        // SAFETY: rtentry is plain data; all zeros is a valid value.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = net::sockaddr_in(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = net::sockaddr_in(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = net::sockaddr_in(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        net::ioctl(&sock, libc::SIOCADDRT, &mut rt)
            .map_err(failed(&format!("default route via {gw}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_word() {
        assert_eq!(parse("console=ttyS0 quiet").unwrap(), None);
        assert_eq!(
            parse("quiet contain.net=10.88.0.5/16,10.88.0.1,1500 x").unwrap(),
            Some(Config {
                addr: Ipv4Addr::new(10, 88, 0, 5),
                prefix: 16,
                gateway: Some(Ipv4Addr::new(10, 88, 0, 1)),
                mtu: 1500
            })
        );
        assert_eq!(
            parse("contain.net=10.0.0.2/24,,9000")
                .unwrap()
                .unwrap()
                .gateway,
            None
        );
        for bad in [
            "contain.net=10.0.0.2,,1500",
            "contain.net=10.0.0.2/33,,1500",
            "contain.net=10.0.0.2/24,x,1500",
            "contain.net=10.0.0.2/24,,",
            "contain.net=10.0.0.2/24,,20",
            "contain.net=",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
