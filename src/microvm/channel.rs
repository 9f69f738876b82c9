//! The control channel between the runtime and the guest agent: `exec` and signals for the
//! guest's processes. On the host, each client (`contain exec`, `contain kill`) connects to
//! the VMM's socket in the container's state directory; the VMM multiplexes the connections
//! onto the virtio-console device, tagging each connection's bytes with its stream number;
//! the agent reads the console as /dev/hvc0. Both levels use one frame format:
//! `[stream: u32 LE][kind: u8][length: u32 LE][payload]`, a payload of at most
//! [`FRAME_MAX`] bytes. Between the VMM and the guest the kinds are [`DATA`], [`CLOSE`] and
//! [`ACK`]; inside one stream (client and agent; stream 0) they are the request and reply
//! kinds below.
//! Everything read from the guest is untrusted: a malformed frame ends the channel.

/// The socket in the container's state directory the VMM accepts clients on.
pub const SOCKET: &str = "vm.sock";

/// `f` on the socket's path in `dir` named through a descriptor of `dir` (a state
/// directory's path may be longer than a socket address holds).
fn in_dir<T>(
    dir: &std::path::Path,
    f: impl FnOnce(&std::path::Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    f(std::path::Path::new(&format!(
        "/proc/self/fd/{}/{SOCKET}",
        d.as_raw_fd()
    )))
}

/// The VMM's listening socket in the state directory `dir`, only root's (mode 0600).
pub fn bind(dir: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixListener> {
    in_dir(dir, |p| {
        let l = std::os::unix::net::UnixListener::bind(p)?;
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(l)
    })
}

/// A client's connection to the VMM of the container whose state directory is `dir`.
pub fn connect(dir: &std::path::Path) -> std::io::Result<std::os::unix::net::UnixStream> {
    in_dir(dir, |p| std::os::unix::net::UnixStream::connect(p))
}

/// The largest payload of one frame.
pub const FRAME_MAX: usize = 64 << 10;
const HEADER: usize = 9;

/// VMM and guest: a stream's bytes.
pub const DATA: u8 = 0;
/// VMM and guest: a stream has ended (its client left, or the agent is done with it).
pub const CLOSE: u8 = 1;
/// VMM to guest: the stream's client (for stream 0, the container's stdout and stderr) took
/// this many more of the bytes the agent sent on it (u32 LE). Flow control: the agent holds at
/// most [`WINDOW`] of a stream's bytes unacknowledged and stops reading the process's output
/// until the VMM acknowledges more, so that a client that reads slowly slows its own process,
/// never the channel's other streams.
pub const ACK: u8 = 2;

/// The most of a stream's bytes the agent sends before the VMM acknowledges them.
pub const WINDOW: usize = 1 << 20;
/// What the VMM holds for one client before it takes the guest to ignore [`WINDOW`] and ends
/// that client (the agent may overshoot the window by one read of a pipe, plus framing).
pub const CLIENT_HELD_MAX: usize = 2 * WINDOW;

/// Client to agent: run a process (JSON [`ExecRequest`]).
pub const EXEC: u8 = 16;
/// Client to agent: bytes for the process's stdin.
pub const STDIN: u8 = 17;
/// Client to agent: the process's stdin has ended.
pub const STDIN_EOF: u8 = 18;
/// Client to agent: send the signal (u32 LE) to the process this stream started.
pub const SIGNAL: u8 = 19;
/// Client to agent: send the signal (u32 LE) to the container's own process.
pub const SIGNAL_INIT: u8 = 20;
/// Client to agent: the terminal's new size (rows, cols: u16 LE each).
pub const RESIZE: u8 = 21;

/// Agent to client: the process started (its guest pid, u32 LE).
pub const STARTED: u8 = 32;
/// Agent to client: the process's stdout.
pub const STDOUT: u8 = 33;
/// Agent to client: the process's stderr.
pub const STDERR: u8 = 34;
/// Agent to client: the process ended: its status (i32 LE; 128+N for signal N).
pub const EXIT: u8 = 35;
/// Agent to client: the request failed (UTF-8 message); the stream is done.
pub const ERROR: u8 = 36;
/// Agent to client: the signal was delivered.
pub const SIGNALLED: u8 = 37;

/// What `exec` asks the agent to run.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct ExecRequest {
    pub process: oci_spec::runtime::Process,
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: u32,
    pub kind: u8,
    pub data: Vec<u8>,
}

impl Frame {
    pub fn new(stream: u32, kind: u8, data: &[u8]) -> Frame {
        Frame {
            stream,
            kind,
            data: data.to_vec(),
        }
    }

    /// The frame's bytes; a payload over FRAME_MAX is the caller's bug (split it first).
    pub fn encode(&self) -> Vec<u8> {
        debug_assert!(self.data.len() <= FRAME_MAX);
        let mut v = Vec::with_capacity(HEADER + self.data.len());
        v.extend(self.stream.to_le_bytes());
        v.push(self.kind);
        v.extend((self.data.len() as u32).to_le_bytes());
        v.extend(&self.data);
        v
    }

    /// The payload as a u32 (a pid, a signal), if it is one.
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_le_bytes(self.data.as_slice().try_into().ok()?))
    }
}

/// Frames of `kind` carrying `data`, split at FRAME_MAX (one empty frame for no data).
pub fn frames(stream: u32, kind: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if data.is_empty() {
        out.extend(Frame::new(stream, kind, &[]).encode());
    }
    for chunk in data.chunks(FRAME_MAX) {
        out.extend(Frame::new(stream, kind, chunk).encode());
    }
    out
}

/// Frames from a byte stream that arrives in pieces.
#[derive(Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame; None until one has arrived; an error for a frame no peer of
    /// ours would send (a payload over FRAME_MAX), after which the stream is unusable.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, String> {
        if self.buf.len() < HEADER {
            return Ok(None);
        }
        let stream = u32::from_le_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]);
        let kind = self.buf[4];
        let len = u32::from_le_bytes([self.buf[5], self.buf[6], self.buf[7], self.buf[8]]) as usize;
        if len > FRAME_MAX {
            return Err(format!(
                "a frame of {len} bytes (at most {FRAME_MAX}): the channel is broken"
            ));
        }
        if self.buf.len() < HEADER + len {
            return Ok(None);
        }
        let data = self.buf[HEADER..HEADER + len].to_vec();
        self.buf.drain(..HEADER + len);
        Ok(Some(Frame { stream, kind, data }))
    }

    /// Bytes held that are not a whole frame yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_in_pieces_and_refuse_oversized() {
        let mut bytes = frames(7, DATA, b"hello");
        bytes.extend(frames(9, CLOSE, &[]));
        bytes.extend(frames(1, STDOUT, &vec![b'x'; FRAME_MAX + 3]));
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for piece in bytes.chunks(5) {
            d.push(piece);
            while let Some(f) = d.next_frame().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Frame::new(7, DATA, b"hello"));
        assert_eq!(got[1], Frame::new(9, CLOSE, &[]));
        assert_eq!(got[2].data.len(), FRAME_MAX);
        assert_eq!(got[3].data, b"xxx");
        assert_eq!(d.pending(), 0);
        let mut bad = Decoder::default();
        let mut h = 1u32.to_le_bytes().to_vec();
        h.push(DATA);
        h.extend((FRAME_MAX as u32 + 1).to_le_bytes());
        bad.push(&h);
        assert!(bad.next_frame().is_err());
        assert_eq!(Frame::new(0, SIGNAL, &15u32.to_le_bytes()).u32(), Some(15));
        assert_eq!(Frame::new(0, SIGNAL, b"abc").u32(), None);
    }
}
