//! The guest's network, taken from the container's network namespace: the runtime (host root
//! in that namespace, before the container's user namespace exists) opens a packet socket on
//! the namespace's interface, reads its IPv4 address, MTU, MAC and default gateway, and takes
//! the address off the namespace's own stack, so that the guest, which gets the same MAC and
//! address, is the only one answering for it. Whatever the client connected to that
//! interface (a CNI bridge, podman's network) then reaches the guest unchanged.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};

use super::MicrovmError;
use crate::sys::net;

/// What the guest's interface is given, and the link that carries its frames.
pub struct Attached {
    pub socket: OwnedFd,
    pub iface: String,
    pub mac: [u8; 6],
    pub mtu: u16,
    pub addr: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
}

impl Attached {
    /// The guest kernel's command line word the agent configures the interface from.
    pub fn cmdline(&self) -> String {
        format!(
            "contain.net={}/{},{},{}",
            self.addr,
            self.prefix,
            self.gateway.map(|g| g.to_string()).unwrap_or_default(),
            self.mtu
        )
    }

    /// For `state`'s isolation annotation.
    pub fn describe(&self) -> String {
        format!(
            "virtio-net on {} ({}/{}{})",
            self.iface,
            self.addr,
            self.prefix,
            self.gateway
                .map(|g| format!(", gateway {g}"))
                .unwrap_or_default()
        )
    }
}

/// `cmdline` with the kernel word `word` added: before `--`, after which the words are the
/// init's arguments.
pub fn with_word(cmdline: &str, word: &str) -> String {
    match cmdline.split_once(" -- ") {
        Some((kernel, init)) => format!("{kernel} {word} -- {init}"),
        None => format!("{cmdline} {word}"),
    }
}

fn err(what: &str, e: impl std::fmt::Display) -> MicrovmError {
    MicrovmError::Unavailable(format!("the guest's network: {what}: {e}"))
}

/// An interface with an IPv4 address.
struct Found {
    name: String,
    addr: Ipv4Addr,
    prefix: u8,
    mac: [u8; 6],
}

/// The interface of the current network namespace (other than loopback) that is up and has
/// an IPv4 address; None when there is none (a new, empty namespace: the guest gets only its
/// loopback).
fn interface() -> Result<Option<Found>, MicrovmError> {
    use nix::net::if_::InterfaceFlags;
    let all: Vec<_> = nix::ifaddrs::getifaddrs()
        .map_err(|e| err("list the interfaces", e))?
        .collect();
    for a in &all {
        if a.flags.contains(InterfaceFlags::IFF_LOOPBACK)
            || !a.flags.contains(InterfaceFlags::IFF_UP)
        {
            continue;
        }
        let Some(addr) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) else {
            continue;
        };
        let prefix = a
            .netmask
            .as_ref()
            .and_then(|s| s.as_sockaddr_in())
            .map_or(32, |m| m.ip().to_bits().count_ones() as u8);
        let mac = all
            .iter()
            .filter(|l| l.interface_name == a.interface_name)
            .find_map(|l| l.address.as_ref().and_then(|s| s.as_link_addr()?.addr()))
            .ok_or_else(|| err(&a.interface_name, "no link-layer address (not Ethernet)"))?;
        return Ok(Some(Found {
            name: a.interface_name.clone(),
            addr: addr.ip(),
            prefix,
            mac,
        }));
    }
    Ok(None)
}

/// The default route's gateway through `iface`, from this thread's /proc/net/route.
fn gateway(iface: &str) -> Option<Ipv4Addr> {
    let text = std::fs::read_to_string("/proc/thread-self/net/route").ok()?;
    text.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        match f.as_slice() {
            [name, dest, gw, _, _, _, _, mask, ..]
                if *name == iface && hex(dest) == Some(0) && hex(mask) == Some(0) =>
            {
                // The kernel prints the address as the integer its network-order bytes make.
                hex(gw).map(|g| Ipv4Addr::from(g.to_ne_bytes()))
            }
            _ => None,
        }
    })
}

fn set_option(sock: &OwnedFd, level: i32, name: i32, value: i32) -> std::io::Result<()> {
    // SAFETY: the option's value is an int, passed with its size.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// PACKET_VNET_HDR and PACKET_IGNORE_OUTGOING (linux/if_packet.h).
const PACKET_VNET_HDR: i32 = 15;
const PACKET_IGNORE_OUTGOING: i32 = 23;

/// Take the current network namespace's interface for the guest (see the module's text);
/// None when it has none with an IPv4 address.
pub fn attach() -> Result<Option<Attached>, MicrovmError> {
    let Some(Found {
        name: iface,
        addr,
        prefix,
        mac,
    }) = interface()?
    else {
        return Ok(None);
    };
    let ctl = net::inet_socket().map_err(|e| err("socket", e))?;
    let mut r = net::ifreq(&iface).map_err(|e| err(&iface, e))?;
    net::ioctl(&ctl, libc::SIOCGIFMTU, &mut r).map_err(|e| err(&format!("{iface}: MTU"), e))?;
    // SAFETY: SIOCGIFMTU filled the union's mtu member.
    let mtu = unsafe { r.ifr_ifru.ifru_mtu };
    let mtu = u16::try_from(mtu).map_err(|_| err(&iface, format!("MTU {mtu}")))?;
    let index = nix::net::if_::if_nametoindex(iface.as_str())
        .map_err(|e| err(&format!("{iface}: index"), e))?;
    let gateway = gateway(&iface);
    let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
    let sock = match net::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, proto) {
        Ok(s) => s,
        // Not privileged in the namespace (a rootless runtime in a namespace it does not
        // own): the guest runs without a network, as before the stage had one, and says so.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            crate::log::warn(&format!(
                "microvm: the guest gets no network: a packet socket on {iface} needs \
                 CAP_NET_RAW in the container's network namespace: {e}"
            ));
            return Ok(None);
        }
        Err(e) => return Err(err("a packet socket", e)),
    };
    set_option(&sock, libc::SOL_PACKET, PACKET_VNET_HDR, 1)
        .map_err(|e| err("PACKET_VNET_HDR", e))?;
    set_option(&sock, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        .map_err(|e| err("PACKET_IGNORE_OUTGOING", e))?;
    // SAFETY: sockaddr_ll is plain data; all zeros is a valid value.
    let mut ll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
    ll.sll_ifindex = index as i32;
    // SAFETY: `ll` is a valid sockaddr_ll, passed with its size.
    let bound = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&ll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(err(
            &format!("bind to {iface}"),
            std::io::Error::last_os_error(),
        ));
    }
    // The namespace's own stack lets go of the address (and the routes through it): setting
    // 0.0.0.0 deletes it. IPv6 is turned off on the interface: its link-local address,
    // made from the same MAC, would be the guest's.
    let mut r = net::ifreq(&iface).map_err(|e| err(&iface, e))?;
    r.ifr_ifru.ifru_addr = net::sockaddr_in(Ipv4Addr::UNSPECIFIED);
    net::ioctl(&ctl, libc::SIOCSIFADDR, &mut r)
        .map_err(|e| err(&format!("take {addr} off {iface}"), e))?;
    let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{iface}/disable_ipv6"), "1");
    if let Ok(Some(Found {
        name: other,
        addr: left,
        ..
    })) = interface()
    {
        if other == iface {
            return Err(err(
                &iface,
                format!("{left} is still on it (more than one IPv4 address is not supported)"),
            ));
        }
    }
    Ok(Some(Attached {
        socket: sock,
        iface,
        mac,
        mtu,
        addr,
        prefix,
        gateway,
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_word_goes_to_the_kernel_not_the_init() {
        assert_eq!(
            super::with_word(
                "console=ttyS0 rdinit=/.contain/init -- guest-agent",
                "contain.net=x"
            ),
            "console=ttyS0 rdinit=/.contain/init contain.net=x -- guest-agent"
        );
        assert_eq!(
            super::with_word("quiet", "contain.net=x"),
            "quiet contain.net=x"
        );
    }
}
