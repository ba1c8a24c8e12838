//! nf_tables netlink framing: attributes, messages, batches and dumps.
//!
//! Written against the kernel UAPI (`linux/netfilter/nf_tables.h`) because no
//! crate fits: `rustables` is GPL-3.0 (our binary is Apache-2.0) and `nftnl`
//! links the C libnftnl/libmnl. The subset here is small and unit-tested.

use std::os::fd::AsRawFd;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

pub const NLA_F_NESTED: u16 = 0x8000;
const NLMSG_HDRLEN: usize = 16;
const NFGEN_HDRLEN: usize = 4;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;

pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLM_F_APPEND: u16 = 0x800;
const NLM_F_DUMP_INTR: u16 = 0x10;
const MAX_DUMP_TRIES: usize = 20;

/// A growing list of netlink attributes (TLVs padded to 4 bytes).
#[derive(Debug, Default, Clone)]
pub struct Attrs(pub Vec<u8>);

impl Attrs {
    pub fn put(&mut self, ty: u16, data: &[u8]) -> &mut Self {
        let len = 4 + data.len();
        self.0.extend_from_slice(&(len as u16).to_ne_bytes());
        self.0.extend_from_slice(&ty.to_ne_bytes());
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len() + ((4 - len % 4) % 4), 0);
        self
    }

    /// nf_tables strings carry their NUL terminator.
    pub fn put_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut d = s.as_bytes().to_vec();
        d.push(0);
        self.put(ty, &d)
    }

    /// nf_tables integers are big-endian on the wire.
    pub fn put_be32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    pub fn put_be64(&mut self, ty: u16, v: u64) -> &mut Self {
        self.put(ty, &v.to_be_bytes())
    }

    pub fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Attrs)) -> &mut Self {
        let mut inner = Attrs::default();
        f(&mut inner);
        self.put(ty | NLA_F_NESTED, &inner.0)
    }
}

/// Iterates `(type without flags, payload)` over an attribute buffer.
pub fn parse_attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while buf.len() >= 4 {
        let len = u16::from_ne_bytes([buf[0], buf[1]]) as usize;
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & !NLA_F_NESTED;
        if len < 4 || len > buf.len() {
            break;
        }
        out.push((ty, &buf[4..len]));
        let adv = (len + 3) & !3;
        buf = &buf[adv.min(buf.len())..];
    }
    out
}

/// Appends one nfnetlink message (nlmsghdr + nfgenmsg + attributes).
pub fn push_msg(
    out: &mut Vec<u8>,
    ty: u16,
    flags: u16,
    seq: u32,
    family: u8,
    res_id: u16,
    attrs: &Attrs,
) {
    let len = NLMSG_HDRLEN + NFGEN_HDRLEN + attrs.0.len();
    out.extend_from_slice(&(len as u32).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(&flags.to_ne_bytes());
    out.extend_from_slice(&seq.to_ne_bytes());
    out.extend_from_slice(&0u32.to_ne_bytes());
    out.push(family);
    out.push(0); // NFNETLINK_V0
    out.extend_from_slice(&res_id.to_be_bytes());
    out.extend_from_slice(&attrs.0);
}

/// One message of a batch: an nf_tables command with its attributes.
#[derive(Debug, Clone)]
pub struct BatchMsg {
    pub cmd: u16,
    pub flags: u16,
    pub family: u8,
    pub attrs: Attrs,
    /// Shown in errors: which object the message is about.
    pub what: String,
}

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nftables {op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("nftables {op}: malformed reply")]
    Malformed { op: String },
}

impl NftError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NftError::Io { source, .. } => source.raw_os_error(),
            NftError::Malformed { .. } => None,
        }
    }
}

fn io(op: &str) -> impl FnOnce(std::io::Error) -> NftError + '_ {
    move |source| NftError::Io {
        op: op.to_string(),
        source,
    }
}

pub struct NftSocket {
    sock: Socket,
    seq: u32,
}

/// A reply message: its type and the attributes after nfgenmsg.
pub struct Reply {
    pub ty: u16,
    pub attrs: Vec<u8>,
}

impl NftSocket {
    pub fn open() -> Result<Self, NftError> {
        let op = "open netlink socket";
        let mut sock = Socket::new(NETLINK_NETFILTER).map_err(io(op))?;
        sock.bind_auto().map_err(io(op))?;
        sock.connect(&SocketAddr::new(0, 0)).map_err(io(op))?;
        // A lost reply must not hang the runtime: give up after 10 s.
        let tv = libc::timeval {
            tv_sec: 10,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a pointer to a live timeval of the right size.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io(op)(std::io::Error::last_os_error()));
        }
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1);
        Ok(NftSocket { sock, seq: seed })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends `msgs` as one atomic transaction and waits for every ACK.
    pub fn batch(&mut self, msgs: &[BatchMsg]) -> Result<(), NftError> {
        if msgs.is_empty() {
            return Ok(());
        }
        let mut buf = Vec::new();
        let begin = self.next_seq();
        push_msg(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin,
            0,
            NFNL_SUBSYS_NFTABLES,
            &Attrs::default(),
        );
        let mut pending: Vec<(u32, &str)> = Vec::new();
        for m in msgs {
            let seq = self.next_seq();
            let ty = (NFNL_SUBSYS_NFTABLES << 8) | m.cmd;
            push_msg(
                &mut buf,
                ty,
                NLM_F_REQUEST | NLM_F_ACK | m.flags,
                seq,
                m.family,
                0,
                &m.attrs,
            );
            pending.push((seq, &m.what));
        }
        let end = self.next_seq();
        push_msg(
            &mut buf,
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end,
            0,
            NFNL_SUBSYS_NFTABLES,
            &Attrs::default(),
        );
        self.sock.send(&buf, 0).map_err(io("send batch"))?;
        while !pending.is_empty() {
            let (data, _) = self
                .sock
                .recv_from_full()
                .map_err(io("receive batch acks"))?;
            for Msg { ty, seq, body, .. } in split_msgs(&data) {
                if ty != NLMSG_ERROR || body.len() < 4 {
                    continue;
                }
                let errno = i32::from_ne_bytes([body[0], body[1], body[2], body[3]]);
                let Some(pos) = pending.iter().position(|(s, _)| *s == seq) else {
                    // An error for the batch framing itself (e.g. no
                    // nf_tables in this kernel): nothing else will come.
                    if errno != 0 && (seq == begin || seq == end) {
                        let e = std::io::Error::from_raw_os_error(-errno);
                        return Err(io("start nftables transaction")(e));
                    }
                    continue;
                };
                let (_, what) = pending.remove(pos);
                if errno != 0 {
                    return Err(io(what)(std::io::Error::from_raw_os_error(-errno)));
                }
            }
        }
        Ok(())
    }

    /// Dumps objects (`cmd` is a GET command) filtered by `attrs`. A dump
    /// that raced with a ruleset change (the kernel flags it
    /// NLM_F_DUMP_INTR, and entries may be missing) is repeated.
    pub fn dump(
        &mut self,
        cmd: u16,
        family: u8,
        attrs: &Attrs,
        op: &str,
    ) -> Result<Vec<Reply>, NftError> {
        for _ in 0..MAX_DUMP_TRIES {
            let (replies, interrupted) = self.exchange(cmd, NLM_F_DUMP, family, attrs, op)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        let e = std::io::Error::from_raw_os_error(libc::EINTR);
        Err(io(op)(e))
    }

    /// Gets one object (`cmd` is a GET command, `attrs` name it): its
    /// reply, or the kernel's error (ENOENT when it does not exist).
    pub fn get(
        &mut self,
        cmd: u16,
        family: u8,
        attrs: &Attrs,
        op: &str,
    ) -> Result<Vec<Reply>, NftError> {
        self.exchange(cmd, NLM_F_ACK, family, attrs, op)
            .map(|(replies, _)| replies)
    }

    /// Sends one request and collects its replies until NLMSG_DONE or the ACK.
    fn exchange(
        &mut self,
        cmd: u16,
        flags: u16,
        family: u8,
        attrs: &Attrs,
        op: &str,
    ) -> Result<(Vec<Reply>, bool), NftError> {
        let seq = self.next_seq();
        let mut buf = Vec::new();
        push_msg(
            &mut buf,
            (NFNL_SUBSYS_NFTABLES << 8) | cmd,
            NLM_F_REQUEST | flags,
            seq,
            family,
            0,
            attrs,
        );
        self.sock.send(&buf, 0).map_err(io(op))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(io(op))?;
            for m in split_msgs(&data) {
                if m.seq != seq {
                    continue;
                }
                interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
                match m.ty {
                    NLMSG_DONE => return Ok((out, interrupted)),
                    NLMSG_ERROR => {
                        if m.body.len() < 4 {
                            return Err(NftError::Malformed { op: op.to_string() });
                        }
                        let errno =
                            i32::from_ne_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]);
                        if errno == 0 {
                            return Ok((out, interrupted));
                        }
                        return Err(io(op)(std::io::Error::from_raw_os_error(-errno)));
                    }
                    _ if m.body.len() >= NFGEN_HDRLEN => out.push(Reply {
                        ty: m.ty & 0xff,
                        attrs: m.body[NFGEN_HDRLEN..].to_vec(),
                    }),
                    _ => {}
                }
            }
        }
    }
}

/// One message of a receive buffer.
struct Msg<'a> {
    ty: u16,
    flags: u16,
    seq: u32,
    /// The payload after nlmsghdr.
    body: &'a [u8],
}

/// Splits a receive buffer into messages.
fn split_msgs(mut data: &[u8]) -> Vec<Msg<'_>> {
    let mut out = Vec::new();
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        if len < NLMSG_HDRLEN || len > data.len() {
            break;
        }
        out.push(Msg {
            ty: u16::from_ne_bytes([data[4], data[5]]),
            flags: u16::from_ne_bytes([data[6], data[7]]),
            seq: u32::from_ne_bytes([data[8], data[9], data[10], data[11]]),
            body: &data[NLMSG_HDRLEN..len],
        });
        let adv = (len + 3) & !3;
        data = &data[adv.min(data.len())..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_and_parse_back() {
        let mut a = Attrs::default();
        a.put_str(1, "polis").put_be32(2, 7).nest(3, |n| {
            n.put(1, &[0xaa]);
        });
        // "polis\0" = 6 bytes + 4 header = 10, padded to 12.
        assert_eq!(
            &a.0[0..4],
            &[10u16.to_ne_bytes()[0], 10u16.to_ne_bytes()[1], 1, 0]
        );
        let parsed = parse_attrs(&a.0);
        assert_eq!(parsed.len(), 3);
        assert_eq!(parsed[0], (1, &b"polis\0"[..]));
        assert_eq!(parsed[1], (2, &[0, 0, 0, 7][..]));
        assert_eq!(parsed[2].0, 3);
        assert_eq!(parse_attrs(parsed[2].1), vec![(1, &[0xaa][..])]);
    }

    #[test]
    fn message_header_layout() {
        let mut buf = Vec::new();
        push_msg(
            &mut buf,
            0x0a06,
            NLM_F_REQUEST,
            9,
            2,
            NFNL_SUBSYS_NFTABLES,
            &Attrs::default(),
        );
        assert_eq!(buf.len(), 20);
        assert_eq!(u32::from_ne_bytes(buf[0..4].try_into().unwrap()), 20);
        assert_eq!(buf[16], 2);
        assert_eq!(&buf[18..20], &[0, 10]);
        let msgs = split_msgs(&buf);
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, 0x0a06);
        assert_eq!(msgs[0].flags, NLM_F_REQUEST);
        assert_eq!(msgs[0].seq, 9);
    }
}
