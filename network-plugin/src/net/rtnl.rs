//! A small synchronous rtnetlink client over `netlink-packet-route`.
//!
//! Synchronous on purpose: a CNI plugin makes a dozen requests per run, and a
//! blocking socket avoids starting an async executor (start-up cost is most of
//! a plugin's latency). The socket lives in the network namespace of the
//! thread that opened it.

use std::net::IpAddr;
use std::os::fd::RawFd;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge, InfoBridgePort, InfoData,
    InfoKind, InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::ipnet::IpNet;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{op}: {source}")]
    Kernel {
        op: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{op}: cannot decode netlink reply: {msg}")]
    Decode { op: String, msg: String },
}

impl NetError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetError::Kernel { source, .. } => source.raw_os_error(),
            NetError::Decode { .. } => None,
        }
    }
}

/// What we need to know about a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: String,
    pub mtu: u32,
    pub master: Option<u32>,
    pub up: bool,
    pub kind: Option<String>,
    pub alias: String,
}

impl Link {
    /// Off any bridge and down: how DEL leaves a host veth whose deletion it handed to a child.
    pub fn is_detached(&self) -> bool {
        self.master.is_none() && !self.up
    }
}

/// A route of the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
    pub oif: Option<u32>,
}

const MAX_DUMP_TRIES: usize = 20;

pub struct Rtnl {
    sock: Socket,
    seq: u32,
}

fn kernel(op: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Kernel {
        op: op.to_string(),
        source,
    }
}

impl Rtnl {
    /// Opens a route socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetError> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(kernel("open rtnetlink socket"))?;
        sock.bind_auto().map_err(kernel("bind rtnetlink socket"))?;
        sock.connect(&SocketAddr::new(0, 0))
            .map_err(kernel("connect rtnetlink socket"))?;
        Ok(Rtnl { sock, seq: 1 })
    }

    /// Sends one request and collects replies until the ACK or end of dump.
    /// A dump the kernel flags as interrupted by a concurrent change (it may
    /// miss entries) is repeated.
    fn request(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        for _ in 0..MAX_DUMP_TRIES {
            let (replies, interrupted) = self.request_once(op, msg.clone(), flags)?;
            if !interrupted {
                return Ok(replies);
            }
        }
        Err(kernel(op)(std::io::Error::from_raw_os_error(libc::EINTR)))
    }

    fn request_once(
        &mut self,
        op: &str,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<(Vec<RouteNetlinkMessage>, bool), NetError> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        // Non-dump requests ask for an ACK so every exchange has a clear end.
        let ack = if flags & NLM_F_DUMP == NLM_F_DUMP {
            0
        } else {
            NLM_F_ACK
        };
        header.flags = NLM_F_REQUEST | ack | flags;
        header.sequence_number = self.seq;
        let mut nl = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        nl.finalize();
        let mut buf = vec![0u8; nl.buffer_len()];
        nl.serialize(&mut buf);
        self.sock.send(&buf, 0).map_err(kernel(op))?;
        let mut out = Vec::new();
        let mut interrupted = false;
        loop {
            let (data, _) = self.sock.recv_from_full().map_err(kernel(op))?;
            let mut off = 0;
            while off < data.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[off..])
                    .map_err(|e| NetError::Decode {
                        op: op.to_string(),
                        msg: e.to_string(),
                    })?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                off += (len + 3) & !3;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                interrupted |= reply.header.flags & NLM_F_DUMP_INTR != 0;
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok((out, interrupted)),
                    NetlinkPayload::Error(e) => match e.code {
                        None => return Ok((out, interrupted)),
                        Some(c) => {
                            return Err(kernel(op)(std::io::Error::from_raw_os_error(-c.get())))
                        }
                    },
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        self.get_link(&format!("get link {name}"), msg)
    }

    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = index;
        self.get_link(&format!("get link {index}"), msg)
    }

    /// The link a GETLINK request names; None when there is none (ENODEV).
    fn get_link(&mut self, op: &str, msg: LinkMessage) -> Result<Option<Link>, NetError> {
        match self.request(op, RouteNetlinkMessage::GetLink(msg), 0) {
            Ok(replies) => Ok(replies.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
                _ => None,
            })),
            Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn links(&mut self) -> Result<Vec<Link>, NetError> {
        let replies = self.request(
            "list links",
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(to_link(&l)),
                _ => None,
            })
            .collect())
    }

    /// Creates a bridge; EEXIST is returned to the caller (another ADD won the race).
    pub fn create_bridge(
        &mut self,
        name: &str,
        mtu: Option<u32>,
        vlan_filtering: bool,
    ) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let mut info = vec![LinkInfo::Kind(InfoKind::Bridge)];
        if vlan_filtering {
            info.push(LinkInfo::Data(InfoData::Bridge(vec![
                InfoBridge::VlanFiltering(true),
            ])));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(info));
        let op = format!("create bridge {name}");
        self.request(
            &op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Creates a veth pair whose peer is born inside the namespace `peer_netns`.
    /// (The kernel ignores an IFLA_IFALIAS in a NEWLINK that creates: the alias
    /// that names the owner is set with the port's SETLINK, see `set_link`.)
    pub fn create_veth(
        &mut self,
        host: &str,
        peer: &str,
        peer_netns: RawFd,
        mtu: Option<u32>,
    ) -> Result<(), NetError> {
        let mut peer_msg = LinkMessage::default();
        peer_msg
            .attributes
            .push(LinkAttribute::IfName(peer.to_string()));
        peer_msg.attributes.push(LinkAttribute::NetNsFd(peer_netns));
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(host.to_string()));
        if let Some(mtu) = mtu {
            msg.attributes.push(LinkAttribute::Mtu(mtu));
            peer_msg.attributes.push(LinkAttribute::Mtu(mtu));
        }
        // One queue each way, as the kernel ends up with anyway: without the
        // explicit counts veth is born with one queue per CPU and then cut
        // to one, and each cut waits for an RCU grace period (~1 ms each).
        for m in [&mut msg, &mut peer_msg] {
            m.attributes.push(LinkAttribute::NumTxQueues(1));
            m.attributes.push(LinkAttribute::NumRxQueues(1));
        }
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer_msg))),
        ]));
        let op = format!("create veth {host} (peer {peer})");
        self.request(
            &op,
            RouteNetlinkMessage::NewLink(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Brings a link up, optionally enslaving it, setting promiscuous mode and
    /// labelling it with `alias` (in the same message: a port on the bridge
    /// always carries the alias DEL and GC recognise it by).
    pub fn set_link(
        &mut self,
        link: &Link,
        master: Option<u32>,
        promisc: Option<bool>,
        alias: Option<&str>,
    ) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.header.flags = LinkFlags::Up;
        msg.header.change_mask = LinkFlags::Up;
        if let Some(p) = promisc {
            if p {
                msg.header.flags |= LinkFlags::Promisc;
            }
            msg.header.change_mask |= LinkFlags::Promisc;
        }
        if let Some(m) = master {
            msg.attributes.push(LinkAttribute::Controller(m));
        }
        if let Some(a) = alias {
            msg.attributes.push(LinkAttribute::IfAlias(a.to_string()));
        }
        let op = format!("set link {} up", link.name);
        self.request(&op, RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    pub fn set_hairpin(&mut self, link: &Link, on: bool) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
                on,
            )])),
        ]));
        let op = format!("set hairpin mode on {}", link.name);
        self.request(&op, RouteNetlinkMessage::NewLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// Makes `vid` the untagged PVID of a bridge port (needs bridge VLAN filtering).
    pub fn set_port_vlan(&mut self, link: &Link, vid: u16) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.interface_family = AddressFamily::Bridge;
        msg.header.index = link.index;
        msg.attributes
            .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
                BridgeVlanInfo {
                    flags: BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged,
                    vid,
                },
            )]));
        let op = format!("set vlan {vid} on {}", link.name);
        self.request(&op, RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// Takes a link off its bridge and down in one request: from then on no frame crosses it,
    /// which is what DEL needs before the addresses behind it are handed out again.
    pub fn detach_link(&mut self, link: &Link) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        msg.header.change_mask = LinkFlags::Up;
        msg.attributes.push(LinkAttribute::Controller(0));
        let op = format!("detach link {}", link.name);
        self.request(&op, RouteNetlinkMessage::SetLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    pub fn delete_link(&mut self, link: &Link) -> Result<(), NetError> {
        let mut msg = LinkMessage::default();
        msg.header.index = link.index;
        let op = format!("delete link {}", link.name);
        self.request(&op, RouteNetlinkMessage::DelLink(msg), NLM_F_ACK)?;
        Ok(())
    }

    /// Adds an address without duplicate address detection (the plugin owns the
    /// range, and DAD would leave IPv6 unusable for a second).
    pub fn add_address(&mut self, link: &Link, net: IpNet) -> Result<(), NetError> {
        let mut msg = AddressMessage::default();
        msg.header.family = family(net.addr);
        msg.header.prefix_len = net.prefix;
        msg.header.index = link.index;
        msg.attributes.push(AddressAttribute::Local(net.addr));
        msg.attributes.push(AddressAttribute::Address(net.addr));
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        let op = format!("add address {net} to {}", link.name);
        self.request(
            &op,
            RouteNetlinkMessage::NewAddress(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    pub fn addresses(&mut self, link: &Link) -> Result<Vec<IpNet>, NetError> {
        let op = format!("list addresses of {}", link.name);
        let replies = self.request(
            &op,
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) if a.header.index == link.index => {
                    a.attributes.iter().find_map(|at| match at {
                        AddressAttribute::Address(ip) => IpNet::new(*ip, a.header.prefix_len),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Adds a route through `link` in the main table.
    pub fn add_route(
        &mut self,
        link: &Link,
        dst: IpNet,
        gw: Option<IpAddr>,
    ) -> Result<(), NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = family(dst.addr);
        msg.header.destination_prefix_length = dst.prefix;
        msg.header.table = RouteHeader::RT_TABLE_MAIN;
        msg.header.protocol = RouteProtocol::Boot;
        msg.header.scope = if gw.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        msg.header.kind = RouteType::Unicast;
        if dst.prefix > 0 {
            msg.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    dst.network(),
                )));
        }
        if let Some(gw) = gw {
            msg.attributes
                .push(RouteAttribute::Gateway(RouteAddress::from(gw)));
        }
        msg.attributes.push(RouteAttribute::Oif(link.index));
        let op = format!("add route {dst} via {gw:?} dev {}", link.name);
        self.request(
            &op,
            RouteNetlinkMessage::NewRoute(msg),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        )?;
        Ok(())
    }

    /// Routes of the main table.
    pub fn routes(&mut self, v4: bool) -> Result<Vec<RouteEntry>, NetError> {
        let mut msg = RouteMessage::default();
        msg.header.address_family = if v4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let replies = self.request(
            "list routes",
            RouteNetlinkMessage::GetRoute(msg),
            NLM_F_DUMP,
        )?;
        let zero: IpAddr = if v4 {
            "0.0.0.0".parse().unwrap()
        } else {
            "::".parse().unwrap()
        };
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => Some(route_tuple(&r, zero)),
                _ => None,
            })
            .collect())
    }
}

fn route_tuple(r: &RouteMessage, zero: IpAddr) -> RouteEntry {
    let mut dst = zero;
    let mut gw = None;
    let mut oif = None;
    for a in &r.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = route_ip(d).unwrap_or(zero),
            RouteAttribute::Gateway(g) => gw = route_ip(g),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let dst = IpNet {
        addr: dst,
        prefix: r.header.destination_prefix_length,
    };
    RouteEntry { dst, gw, oif }
}

fn route_ip(a: &RouteAddress) -> Option<IpAddr> {
    match a {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

fn family(ip: IpAddr) -> AddressFamily {
    if ip.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn to_link(l: &LinkMessage) -> Link {
    let mut link = Link {
        index: l.header.index,
        name: String::new(),
        mac: String::new(),
        mtu: 0,
        master: None,
        up: l.header.flags.contains(LinkFlags::Up),
        kind: None,
        alias: String::new(),
    };
    for a in &l.attributes {
        match a {
            LinkAttribute::IfName(n) => link.name = n.clone(),
            LinkAttribute::Address(mac) => link.mac = format_mac(mac),
            LinkAttribute::Mtu(m) => link.mtu = *m,
            LinkAttribute::Controller(m) => link.master = Some(*m),
            LinkAttribute::IfAlias(a) => link.alias = a.clone(),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    if let LinkInfo::Kind(k) = i {
                        link.kind = Some(k.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

pub fn format_mac(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
