//! The launcher's messages in a flat binary form. The launcher is forked from the shim and
//! every code page it touches is its own RSS: a few byte copies here keep serde_json's
//! (de)serializers out of it.
//!
//! Request: id u64, argc u32, envc u32, has_cwd u8, then NUL-terminated strings: argv,
//! cwd (if any), and each env entry as key and value. Reply: kind u8, id u64, pid i32,
//! status i32, then the error text for `ERROR`. Integers are little-endian.

use std::io;

pub const SPAWNED: u8 = 0;
pub const ERROR: u8 = 1;
pub const EXITED: u8 = 2;

#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub id: u64,
    pub argv: Vec<String>,
    pub cwd: Option<String>,
    pub env: Vec<(String, String)>,
}

#[derive(Debug, PartialEq, Eq)]
pub struct Reply {
    pub kind: u8,
    pub id: u64,
    pub pid: i32,
    pub status: i32,
    pub error: String,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("launcher message: {what}"),
    )
}

fn push_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    if s.as_bytes().contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("NUL byte in {s:?}"),
        ));
    }
    out.extend_from_slice(s.as_bytes());
    out.push(0);
    Ok(())
}

fn take<const N: usize>(data: &mut &[u8]) -> io::Result<[u8; N]> {
    if data.len() < N {
        return Err(bad("too short"));
    }
    let (head, rest) = data.split_at(N);
    *data = rest;
    Ok(head.try_into().expect("split_at gave N bytes"))
}

impl Request {
    pub fn encode(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&(self.argv.len() as u32).to_le_bytes());
        out.extend_from_slice(&(self.env.len() as u32).to_le_bytes());
        out.push(self.cwd.is_some() as u8);
        for a in &self.argv {
            push_str(&mut out, a)?;
        }
        if let Some(cwd) = &self.cwd {
            push_str(&mut out, cwd)?;
        }
        for (k, v) in &self.env {
            push_str(&mut out, k)?;
            push_str(&mut out, v)?;
        }
        Ok(out)
    }

    pub fn decode(mut data: &[u8]) -> io::Result<Self> {
        let id = u64::from_le_bytes(take(&mut data)?);
        let argc = u32::from_le_bytes(take(&mut data)?) as usize;
        let envc = u32::from_le_bytes(take(&mut data)?) as usize;
        let has_cwd = take::<1>(&mut data)?[0] != 0;
        let mut strings = data
            .strip_suffix(&[0])
            .unwrap_or(data)
            .split(|b| *b == 0)
            .map(|s| String::from_utf8(s.to_vec()).map_err(|_| bad("not UTF-8")));
        let mut next = || strings.next().unwrap_or_else(|| Err(bad("missing string")));
        let argv = (0..argc).map(|_| next()).collect::<io::Result<_>>()?;
        let cwd = if has_cwd { Some(next()?) } else { None };
        let env = (0..envc)
            .map(|_| Ok((next()?, next()?)))
            .collect::<io::Result<_>>()?;
        Ok(Self { id, argv, cwd, env })
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17 + self.error.len());
        out.push(self.kind);
        out.extend_from_slice(&self.id.to_le_bytes());
        out.extend_from_slice(&self.pid.to_le_bytes());
        out.extend_from_slice(&self.status.to_le_bytes());
        out.extend_from_slice(self.error.as_bytes());
        out
    }

    pub fn decode(mut data: &[u8]) -> io::Result<Self> {
        let kind = take::<1>(&mut data)?[0];
        let id = u64::from_le_bytes(take(&mut data)?);
        let pid = i32::from_le_bytes(take(&mut data)?);
        let status = i32::from_le_bytes(take(&mut data)?);
        let error = String::from_utf8_lossy(data).into_owned();
        Ok(Self {
            kind,
            id,
            pid,
            status,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trips_with_and_without_cwd_and_empty_strings() {
        for cwd in [None, Some("/run/b".to_string())] {
            let r = Request {
                id: 42,
                argv: vec!["/bin/polis-runc".into(), "".into(), "--root".into()],
                cwd,
                env: vec![("A".into(), "".into()), ("PATH".into(), "/bin".into())],
            };
            assert_eq!(Request::decode(&r.encode().unwrap()).unwrap(), r);
        }
    }

    #[test]
    fn request_with_nul_is_refused_and_truncated_request_is_an_error() {
        let r = Request {
            id: 1,
            argv: vec!["a\0b".into()],
            cwd: None,
            env: Vec::new(),
        };
        assert!(r.encode().is_err());
        let good = Request {
            id: 1,
            argv: vec!["x".into(), "y".into()],
            cwd: None,
            env: Vec::new(),
        }
        .encode()
        .unwrap();
        assert!(Request::decode(&good[..good.len() - 2]).is_err());
        assert!(Request::decode(&good[..5]).is_err());
    }

    #[test]
    fn reply_round_trips() {
        let r = Reply {
            kind: ERROR,
            id: 7,
            pid: -1,
            status: 137,
            error: "spawn: no such file".into(),
        };
        assert_eq!(Reply::decode(&r.encode()).unwrap(), r);
    }
}
