//! NAT for attachments (masquerade, port mappings) in nftables, spoken over
//! netlink. Every rule carries a comment naming its attachment, so DEL and GC
//! find them without a cache.

pub mod rules;
pub mod wire;

use rules::{encode, Chain, Family, RuleSpec};
use wire::{parse_attrs, Attrs, BatchMsg, NftError, NftSocket, NLM_F_APPEND, NLM_F_CREATE};

/// Our table (one per family: `ip polis`, `ip6 polis`).
pub const TABLE: &str = "polis";

const NEWTABLE: u16 = 0;
const NEWCHAIN: u16 = 3;
const GETCHAIN: u16 = 4;
const NEWRULE: u16 = 6;
const GETRULE: u16 = 7;
const DELRULE: u16 = 8;
const RULE_TABLE: u16 = 1;
const RULE_CHAIN: u16 = 2;
const RULE_HANDLE: u16 = 3;
const RULE_EXPRESSIONS: u16 = 4;
const RULE_USERDATA: u16 = 7;
const CHAIN_TABLE: u16 = 1;
const CHAIN_NAME: u16 = 3;
const CHAIN_HOOK: u16 = 4;
const CHAIN_TYPE: u16 = 7;
const HOOK_HOOKNUM: u16 = 1;
const HOOK_PRIORITY: u16 = 2;
/// NFTNL_UDATA_RULE_COMMENT: shown by `nft list` as `comment "..."`.
const UDATA_COMMENT: u8 = 0;

/// The firewall side effects, behind a trait so command logic can be tested
/// with a fake.
pub trait Firewall {
    /// Installs `rules`, each tagged `tag`, in one transaction.
    fn add(&mut self, tag: &str, rules: &[RuleSpec]) -> Result<(), NftError>;
    /// Removes every rule whose tag satisfies `doomed`; returns how many.
    fn remove(&mut self, doomed: &dyn Fn(&str) -> bool) -> Result<usize, NftError>;
    /// How many rules carry `tag`.
    fn count(&mut self, tag: &str) -> Result<usize, NftError>;
}

/// The tag of one attachment: `polis/<network>/<containerID>/<ifname>`.
pub fn tag(network: &str, container_id: &str, ifname: &str) -> String {
    format!("polis/{network}/{container_id}/{ifname}")
}

/// Splits a tag of `network` into (containerID, ifname).
pub fn parse_tag<'a>(network: &str, tag: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = tag
        .strip_prefix("polis/")?
        .strip_prefix(network)?
        .strip_prefix('/')?;
    rest.rsplit_once('/')
}

pub struct NftFirewall {
    sock: NftSocket,
}

impl NftFirewall {
    pub fn open() -> Result<Self, NftError> {
        Ok(NftFirewall {
            sock: NftSocket::open()?,
        })
    }

    /// Creates our table and those of its chains not in `present`.
    ///
    /// A NEWCHAIN for a chain that already exists is an update, which the
    /// kernel frees only after an RCU grace period; closing the socket then
    /// waits for that (5-10 ms). Existing chains are therefore left alone.
    /// NEWTABLE of an existing table without flags changes nothing.
    fn table_and_chains(family: Family, present: &[Chain], out: &mut Vec<BatchMsg>) {
        let mut t = Attrs::default();
        t.put_str(1, TABLE);
        out.push(BatchMsg {
            cmd: NEWTABLE,
            flags: NLM_F_CREATE,
            family: family.nfproto(),
            attrs: t,
            what: format!("create table {TABLE}"),
        });
        for chain in Chain::ALL.into_iter().filter(|c| !present.contains(c)) {
            let (hook, prio) = chain.hook();
            let mut c = Attrs::default();
            c.put_str(CHAIN_TABLE, TABLE)
                .put_str(CHAIN_NAME, chain.name());
            c.nest(CHAIN_HOOK, |h| {
                h.put_be32(HOOK_HOOKNUM, hook)
                    .put_be32(HOOK_PRIORITY, prio as u32);
            });
            c.put_be32(5, 1); // policy accept
            c.put_str(CHAIN_TYPE, "nat");
            out.push(BatchMsg {
                cmd: NEWCHAIN,
                flags: NLM_F_CREATE,
                family: family.nfproto(),
                attrs: c,
                what: format!("create chain {TABLE} {}", chain.name()),
            });
        }
    }

    /// Our base chains that exist in `family` as we create them. A chain of
    /// that name with another hook, priority or type counts as missing, so
    /// the NEWCHAIN sent for it fails as it always did. Each chain is asked
    /// for by name: a dump would list every chain of the family, thousands
    /// on a host with kube-proxy rules (5 ms more per ADD with 5,000).
    fn present_chains(&mut self, family: Family) -> Result<Vec<Chain>, NftError> {
        let mut out = Vec::new();
        for chain in Chain::ALL {
            let mut q = Attrs::default();
            q.put_str(CHAIN_TABLE, TABLE)
                .put_str(CHAIN_NAME, chain.name());
            let op = format!("get chain {TABLE} {}", chain.name());
            let replies = match self.sock.get(GETCHAIN, family.nfproto(), &q, &op) {
                Ok(r) => r,
                Err(e) if e.errno() == Some(libc::ENOENT) => continue,
                Err(e) => return Err(e),
            };
            if replies.iter().any(|r| is_our_base_chain(&r.attrs, chain)) {
                out.push(chain);
            }
        }
        Ok(out)
    }

    /// Lists (chain, handle, tag) of our rules in one family.
    fn list(&mut self, family: Family) -> Result<Vec<(String, u64, String)>, NftError> {
        let mut filter = Attrs::default();
        filter.put_str(RULE_TABLE, TABLE);
        let replies = match self.sock.dump(
            GETRULE,
            family.nfproto(),
            &filter,
            "list rules of table polis",
        ) {
            Ok(r) => r,
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(vec![]),
            Err(e) => return Err(e),
        };
        let mut out = Vec::new();
        for r in replies {
            let (mut chain, mut handle, mut tag, mut table) =
                (String::new(), None, String::new(), String::new());
            for (ty, data) in parse_attrs(&r.attrs) {
                match ty {
                    RULE_TABLE => table = cstr(data),
                    RULE_CHAIN => chain = cstr(data),
                    RULE_HANDLE if data.len() == 8 => {
                        handle = Some(u64::from_be_bytes(data.try_into().unwrap_or([0; 8])))
                    }
                    RULE_USERDATA => tag = comment_of(data).unwrap_or_default(),
                    _ => {}
                }
            }
            if let (Some(h), true) = (handle, table == TABLE) {
                out.push((chain, h, tag));
            }
        }
        Ok(out)
    }

    /// One transaction adding `rules`; with `look`, chains that already
    /// exist are not sent again.
    fn add_once(&mut self, tag: &str, rules: &[RuleSpec], look: bool) -> Result<(), NftError> {
        let mut msgs = Vec::new();
        for family in [Family::V4, Family::V6] {
            let mine: Vec<&RuleSpec> = rules.iter().filter(|r| r.family == family).collect();
            if mine.is_empty() {
                continue;
            }
            let present = if look {
                self.present_chains(family)?
            } else {
                vec![]
            };
            if present.len() < Chain::ALL.len() {
                Self::table_and_chains(family, &present, &mut msgs);
            }
            for r in mine {
                let mut a = Attrs::default();
                a.put_str(RULE_TABLE, TABLE)
                    .put_str(RULE_CHAIN, r.chain.name());
                a.put(RULE_EXPRESSIONS | wire::NLA_F_NESTED, &encode(r).0);
                a.put(RULE_USERDATA, &comment_udata(tag));
                msgs.push(BatchMsg {
                    cmd: NEWRULE,
                    flags: NLM_F_CREATE | NLM_F_APPEND,
                    family: family.nfproto(),
                    attrs: a,
                    what: format!("add rule for {tag} to chain {}", r.chain.name()),
                });
            }
        }
        self.sock.batch(&msgs)
    }

    fn remove_once(&mut self, doomed: &dyn Fn(&str) -> bool) -> Result<usize, NftError> {
        let mut msgs = Vec::new();
        for family in [Family::V4, Family::V6] {
            for (chain, handle, tag) in self.list(family)? {
                if tag.is_empty() || !doomed(&tag) {
                    continue;
                }
                let mut a = Attrs::default();
                a.put_str(RULE_TABLE, TABLE)
                    .put_str(RULE_CHAIN, &chain)
                    .put_be64(RULE_HANDLE, handle);
                msgs.push(BatchMsg {
                    cmd: DELRULE,
                    flags: 0,
                    family: family.nfproto(),
                    attrs: a,
                    what: format!("delete rule {handle} ({tag}) in chain {chain}"),
                });
            }
        }
        self.sock.batch(&msgs)?;
        Ok(msgs.len())
    }
}

fn cstr(data: &[u8]) -> String {
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    String::from_utf8_lossy(&data[..end]).into_owned()
}

/// Whether a chain's attributes describe `chain` as we create it.
fn is_our_base_chain(attrs: &[u8], chain: Chain) -> bool {
    let (mut table, mut name, mut kind, mut hook) =
        (String::new(), String::new(), String::new(), None);
    for (ty, data) in parse_attrs(attrs) {
        match ty {
            CHAIN_TABLE => table = cstr(data),
            CHAIN_NAME => name = cstr(data),
            CHAIN_TYPE => kind = cstr(data),
            CHAIN_HOOK => hook = hook_of(data),
            _ => {}
        }
    }
    table == TABLE && name == chain.name() && kind == "nat" && hook == Some(chain.hook())
}

/// (hook number, priority) of an NFTA_CHAIN_HOOK nest.
fn hook_of(nest: &[u8]) -> Option<(u32, i32)> {
    let (mut num, mut prio) = (None, None);
    for (ty, data) in parse_attrs(nest) {
        let v = <[u8; 4]>::try_from(data).ok().map(u32::from_be_bytes);
        match ty {
            HOOK_HOOKNUM => num = v,
            HOOK_PRIORITY => prio = v.map(|p| p as i32),
            _ => {}
        }
    }
    Some((num?, prio?))
}

fn comment_of(udata: &[u8]) -> Option<String> {
    let mut i = 0;
    while i + 2 <= udata.len() {
        let (ty, len) = (udata[i], udata[i + 1] as usize);
        let val = udata.get(i + 2..i + 2 + len)?;
        if ty == UDATA_COMMENT {
            return Some(cstr(val));
        }
        i += 2 + len;
    }
    None
}

fn comment_udata(tag: &str) -> Vec<u8> {
    let mut v = tag.as_bytes()[..tag.len().min(250)].to_vec();
    v.push(0);
    let mut out = vec![UDATA_COMMENT, v.len() as u8];
    out.extend(v);
    out
}

impl Firewall for NftFirewall {
    fn add(&mut self, tag: &str, rules: &[RuleSpec]) -> Result<(), NftError> {
        // The chains may vanish between listing and batch (someone deleted
        // the table): the rules then fail with ENOENT and everything is
        // created in a second batch.
        match self.add_once(tag, rules, true) {
            Err(e) if e.errno() == Some(libc::ENOENT) => self.add_once(tag, rules, false),
            other => other,
        }
    }

    fn remove(&mut self, doomed: &dyn Fn(&str) -> bool) -> Result<usize, NftError> {
        // A concurrent DEL of the same attachment may delete a rule between our
        // listing and our batch (ENOENT aborts the batch): list again.
        let mut last = None;
        for _ in 0..3 {
            match self.remove_once(doomed) {
                Err(e) if e.errno() == Some(libc::ENOENT) => last = Some(e),
                other => return other,
            }
        }
        Err(last.expect("loop ran"))
    }

    fn count(&mut self, tag: &str) -> Result<usize, NftError> {
        let mut n = 0;
        for family in [Family::V4, Family::V6] {
            n += self
                .list(family)?
                .iter()
                .filter(|(_, _, t)| t == tag)
                .count();
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        let t = tag("net1", "abc123", "eth0");
        assert_eq!(parse_tag("net1", &t), Some(("abc123", "eth0")));
        assert_eq!(parse_tag("net", &t), None);
        assert_eq!(comment_of(&comment_udata(&t)).as_deref(), Some(t.as_str()));
    }

    fn chain_attrs(table: &str, name: &str, hook: u32, prio: i32, kind: &str) -> Vec<u8> {
        let mut a = Attrs::default();
        a.put_str(CHAIN_TABLE, table).put_str(CHAIN_NAME, name);
        a.nest(CHAIN_HOOK, |h| {
            h.put_be32(HOOK_HOOKNUM, hook)
                .put_be32(HOOK_PRIORITY, prio as u32);
        });
        a.put_str(CHAIN_TYPE, kind);
        a.0
    }

    #[test]
    fn only_chains_as_we_create_them_count_as_ours() {
        let c = Chain::Output;
        assert!(is_our_base_chain(
            &chain_attrs(TABLE, "output", 3, -100, "nat"),
            c
        ));
        assert!(!is_our_base_chain(
            &chain_attrs(TABLE, "output", 3, 50, "nat"),
            c
        ));
        assert!(!is_our_base_chain(
            &chain_attrs(TABLE, "output", 1, -100, "nat"),
            c
        ));
        assert!(!is_our_base_chain(
            &chain_attrs(TABLE, "output", 3, -100, "filter"),
            c
        ));
        assert!(!is_our_base_chain(
            &chain_attrs("other", "output", 3, -100, "nat"),
            c
        ));
        assert!(!is_our_base_chain(
            &chain_attrs(TABLE, "prerouting", 3, -100, "nat"),
            c
        ));
    }
}
