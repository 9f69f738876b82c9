//! The guest's network interface, configured as the container's network namespace had it:
//! the VMM passes `contain.net=ADDRESS/PREFIX,GATEWAY,MTU` on the kernel command line (the
//! MAC comes with the virtio-net device). Loopback is brought up either way.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

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

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain data; all zeros is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    r
}

fn sockaddr(a: Ipv4Addr) -> libc::sockaddr {
    // SAFETY: sockaddr_in is plain data; all zeros is a valid value.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from_ne_bytes(a.octets());
    // SAFETY: sockaddr_in and sockaddr have the same size; the bytes are a valid sockaddr.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

fn ioctl<T>(sock: &OwnedFd, req: libc::c_ulong, arg: &mut T, what: &str) -> Result<(), String> {
    // SAFETY: `arg` is the structure the request reads or writes (an ifreq or an rtentry).
    if unsafe { libc::ioctl(sock.as_raw_fd(), req, arg as *mut T) } < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Bring `name` up.
fn up(sock: &OwnedFd, name: &str) -> Result<(), String> {
    let mut r = ifreq(name);
    ioctl(sock, libc::SIOCGIFFLAGS, &mut r, &format!("{name}: flags"))?;
    // SAFETY: SIOCGIFFLAGS filled the union's flags member.
    unsafe { r.ifr_ifru.ifru_flags |= libc::IFF_UP as i16 };
    ioctl(sock, libc::SIOCSIFFLAGS, &mut r, &format!("{name}: up"))
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
    // SAFETY: socket(2) with constant arguments; the descriptor is owned here.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return match config {
            // A kernel without IPv4: loopback is left as it is when nothing more is asked.
            None => Ok(()),
            Some(_) => Err(format!("socket: {e}")),
        };
    }
    // SAFETY: a new descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(fd) };
    let lo = up(&sock, "lo");
    let Some(c) = config else {
        return lo;
    };
    lo?;
    let name = interface()?;
    let mut r = ifreq(&name);
    r.ifr_ifru.ifru_mtu = c.mtu.into();
    ioctl(
        &sock,
        libc::SIOCSIFMTU,
        &mut r,
        &format!("{name}: MTU {}", c.mtu),
    )?;
    let mut r = ifreq(&name);
    r.ifr_ifru.ifru_addr = sockaddr(c.addr);
    ioctl(
        &sock,
        libc::SIOCSIFADDR,
        &mut r,
        &format!("{name}: address {}", c.addr),
    )?;
    let mask = Ipv4Addr::from(u32::MAX.checked_shl(32 - u32::from(c.prefix)).unwrap_or(0));
    let mut r = ifreq(&name);
    r.ifr_ifru.ifru_netmask = sockaddr(mask);
    ioctl(
        &sock,
        libc::SIOCSIFNETMASK,
        &mut r,
        &format!("{name}: netmask {mask}"),
    )?;
    up(&sock, &name)?;
    if let Some(gw) = c.gateway {
        // SAFETY: rtentry is plain data; all zeros is a valid value.
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sockaddr(gw);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        ioctl(
            &sock,
            libc::SIOCADDRT,
            &mut rt,
            &format!("default route via {gw}"),
        )?;
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
