//! The ttrpc connections containerd opens to the shim, each request served on the thread
//! that read it.
//!
//! ttrpc's own sync server hands every request from a reader thread to a worker pool and
//! every response from the worker to a writer thread: three thread wake-ups per call, each a
//! cross-CPU wake-up on a busy node, and most of a State call's round trip. Here the threads
//! of a connection take turns at reading (leader/followers): the one that read a request
//! answers it itself and writes the response, while another thread, already waiting, reads
//! the next one. A request costs one wake-up, that of the thread blocked in `read`.
//!
//! The dispatch, the messages and the handlers are ttrpc's (`MethodHandler`, `TtrpcContext`,
//! `Request`/`Response`); only the loop around them is ours. Requests that block (a `Wait`
//! lasts as long as its container) hold their thread: a connection always keeps one thread
//! reading, and at most [`READY_MAX`] waiting to read, beside its busy ones.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use containerd_shim_protos::protobuf::Message;
use containerd_shim_protos::ttrpc::proto::{
    MESSAGE_HEADER_LENGTH, MESSAGE_LENGTH_MAX, MESSAGE_TYPE_REQUEST,
};
use containerd_shim_protos::ttrpc::{
    context, get_status, send_response, Code, ConnectionContext, MessageHeader, MethodHandler,
    Request, Response, TtrpcContext,
};

pub type Methods = HashMap<String, Box<dyn MethodHandler + Send + Sync>>;

/// Threads of one connection that may wait to read at once (one reading, one behind it):
/// enough that a sequence of requests never waits for a thread to be created.
const READY_MAX: usize = 2;

/// Accepts connections on `listener` for as long as the process lives.
pub fn serve(listener: UnixListener, methods: Methods) -> io::Result<()> {
    let methods = Arc::new(methods);
    std::thread::Builder::new()
        .name("rpc-accept".into())
        .spawn(move || accept_loop(listener, methods))?;
    Ok(())
}

fn accept_loop(listener: UnixListener, methods: Arc<Methods>) {
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = start_connection(stream, methods.clone()) {
                    tracing::error!(error = %e, "no thread for a new ttrpc connection");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of fds or memory: the connection waits in the backlog until some is freed.
            Err(e) => {
                tracing::warn!(error = %e, "ttrpc accept failed");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Serves `stream` until the client closes it; the connection lives as long as its threads.
fn start_connection(stream: UnixStream, methods: Arc<Methods>) -> io::Result<Weak<Connection>> {
    let conn = Arc::new(Connection::new(stream, methods));
    let weak = Arc::downgrade(&conn);
    conn.ready.fetch_add(1, Ordering::SeqCst);
    spawn_worker(conn)?;
    Ok(weak)
}

struct Connection {
    stream: UnixStream,
    /// Held by the thread reading the next request.
    reader: Mutex<()>,
    /// Held while a response frame is written, so frames never interleave.
    writer: Mutex<Vec<u8>>,
    /// Threads reading or waiting to read (not serving a request).
    ready: AtomicUsize,
    methods: Arc<Methods>,
    /// Dropped when the client has gone: handlers' `cancel_rx` then reports it.
    cancel: Mutex<Option<crossbeam_channel::Sender<()>>>,
    cancel_rx: crossbeam_channel::Receiver<()>,
    ctx: Arc<ConnectionContext>,
}

/// What one read from the connection gave.
enum Incoming {
    Request(MessageHeader, Vec<u8>),
    /// A frame longer than ttrpc allows: its body was skipped, the client gets an error.
    Oversize(MessageHeader),
    /// The client closed the connection or the stream failed.
    Closed,
}

impl Connection {
    fn new(stream: UnixStream, methods: Arc<Methods>) -> Self {
        let (tx, rx) = crossbeam_channel::bounded(0);
        Connection {
            stream,
            reader: Mutex::new(()),
            writer: Mutex::new(Vec::new()),
            ready: AtomicUsize::new(0),
            methods,
            cancel: Mutex::new(Some(tx)),
            cancel_rx: rx,
            ctx: Arc::new(ConnectionContext::default()),
        }
    }

    fn read(&self) -> Incoming {
        let _turn = self.reader.lock().unwrap_or_else(|p| p.into_inner());
        let mut head = [0u8; MESSAGE_HEADER_LENGTH];
        if (&self.stream).read_exact(&mut head).is_err() {
            return Incoming::Closed;
        }
        let mh = MessageHeader::from(head);
        let len = mh.length as usize;
        if len > MESSAGE_LENGTH_MAX {
            let skipped = io::copy(&mut (&self.stream).take(len as u64), &mut io::sink());
            return match skipped {
                Ok(n) if n == len as u64 => Incoming::Oversize(mh),
                _ => Incoming::Closed,
            };
        }
        let mut body = vec![0u8; len];
        match (&self.stream).read_exact(&mut body) {
            Ok(()) => Incoming::Request(mh, body),
            Err(_) => Incoming::Closed,
        }
    }

    fn close(&self) {
        self.cancel.lock().unwrap_or_else(|p| p.into_inner()).take();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    fn write(&self, mh: MessageHeader, payload: &[u8]) -> io::Result<()> {
        let mut buf = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        buf.clear();
        put_header(&mut buf, &mh);
        buf.extend_from_slice(payload);
        let r = (&self.stream).write_all(&buf);
        // A large response's buffer is not kept for the connection's life.
        if buf.capacity() > 64 << 10 {
            *buf = Vec::new();
        }
        r
    }

    /// Decodes and dispatches one request; its responses arrive on `tx`.
    fn dispatch(&self, mh: MessageHeader, body: &[u8], tx: &Sender<(MessageHeader, Vec<u8>)>) {
        if mh.type_ != MESSAGE_TYPE_REQUEST {
            return;
        }
        let req = match Request::parse_from_bytes(body) {
            Ok(r) => r,
            Err(e) => return self.fail(mh.stream_id, Code::INVALID_ARGUMENT, e.to_string(), tx),
        };
        let path = format!("/{}/{}", req.service, req.method);
        let Some(method) = self.methods.get(&path) else {
            let msg = format!("{path} does not exist");
            return self.fail(mh.stream_id, Code::INVALID_ARGUMENT, msg, tx);
        };
        let ctx = TtrpcContext {
            fd: self.stream.as_raw_fd(),
            cancel_rx: self.cancel_rx.clone(),
            mh,
            res_tx: tx.clone(),
            metadata: context::from_pb(&req.metadata),
            timeout_nano: req.timeout_nano,
            conn_ctx: self.ctx.clone(),
        };
        // Generated handlers fail only when their answer could not be sent (ttrpc's own
        // server then drops the whole connection, and every call on it): this call alone gets
        // an error, so its client does not wait forever.
        if let Err(e) = method.handler(ctx, req) {
            tracing::warn!(method = path, error = ?e, "ttrpc handler failed");
            self.fail(mh.stream_id, Code::INTERNAL, format!("{path}: {e:?}"), tx);
        }
    }

    fn fail(&self, stream_id: u32, code: Code, msg: String, tx: &Sender<(MessageHeader, Vec<u8>)>) {
        let mut res = Response::new();
        res.set_status(get_status(code, msg));
        if let Err(e) = send_response(stream_id, res, tx.clone(), &self.ctx) {
            tracing::warn!(error = ?e, "ttrpc error response not sent");
        }
    }

    /// Writes what the handler answered; false once the client is gone.
    fn flush(&self, rx: &Receiver<(MessageHeader, Vec<u8>)>) -> bool {
        while let Ok((mh, payload)) = rx.try_recv() {
            if let Err(e) = self.write(mh, &payload) {
                tracing::debug!(error = %e, "ttrpc response not written");
                return false;
            }
        }
        true
    }
}

fn spawn_worker(conn: Arc<Connection>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("rpc".into())
        .spawn(move || worker(conn))
        .map(drop)
}

/// One thread of a connection. It was counted `ready` by whoever started it.
fn worker(conn: Arc<Connection>) {
    let (tx, rx) = channel();
    loop {
        let incoming = conn.read();
        // Another thread must be reading while this one serves, or a request blocking here
        // (Wait) would stall the connection.
        if conn.ready.fetch_sub(1, Ordering::SeqCst) == 1 {
            if let Incoming::Request(..) | Incoming::Oversize(_) = incoming {
                conn.ready.fetch_add(1, Ordering::SeqCst);
                if let Err(e) = spawn_worker(conn.clone()) {
                    // This thread reads again once it has answered.
                    conn.ready.fetch_sub(1, Ordering::SeqCst);
                    tracing::warn!(error = %e, "no thread to read the next ttrpc request");
                }
            }
        }
        match incoming {
            Incoming::Request(mh, body) => conn.dispatch(mh, &body, &tx),
            Incoming::Oversize(mh) => {
                let msg = format!(
                    "message length {} exceed maximum message size of {MESSAGE_LENGTH_MAX}",
                    mh.length
                );
                conn.fail(mh.stream_id, Code::RESOURCE_EXHAUSTED, msg, &tx);
            }
            Incoming::Closed => return conn.close(),
        }
        if !conn.flush(&rx) {
            return conn.close();
        }
        if conn.ready.fetch_add(1, Ordering::SeqCst) >= READY_MAX {
            conn.ready.fetch_sub(1, Ordering::SeqCst);
            return;
        }
    }
}

/// ttrpc's header encoder (`into_buf`) is private and its `Vec` conversion allocates: the same
/// 10 bytes, big-endian, straight into the connection's buffer.
fn put_header(buf: &mut Vec<u8>, mh: &MessageHeader) {
    buf.extend_from_slice(&mh.length.to_be_bytes());
    buf.extend_from_slice(&mh.stream_id.to_be_bytes());
    buf.extend_from_slice(&[mh.type_, mh.flags]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::ttrpc::sync::Client;
    use containerd_shim_protos::ttrpc::{Error, Result as TtrpcResult};
    use std::os::fd::IntoRawFd;
    use std::time::Instant;

    /// Answers with the request's payload, once `gate` (if any) lets it.
    struct Echo(Option<Mutex<Receiver<()>>>);

    impl MethodHandler for Echo {
        fn handler(&self, ctx: TtrpcContext, req: Request) -> TtrpcResult<()> {
            if let Some(gate) = &self.0 {
                gate.lock().unwrap().recv().unwrap();
            }
            let mut res = Response::new();
            res.payload = req.payload;
            ctx.respond(ctx.mh.stream_id, res)
        }
    }

    /// Fails without answering, as a generated handler does when its answer cannot go out.
    struct Mute;

    impl MethodHandler for Mute {
        fn handler(&self, _: TtrpcContext, _: Request) -> TtrpcResult<()> {
            Err(Error::Others("answer not encoded".into()))
        }
    }

    /// A connection served with methods `/t.T/Echo` and `/t.T/Gated` (answers once `gate`
    /// lets it); the other end of its socket.
    fn serve_pair(gate: Receiver<()>) -> (UnixStream, Weak<Connection>) {
        let mut methods = Methods::new();
        methods.insert("/t.T/Echo".into(), Box::new(Echo(None)));
        methods.insert("/t.T/Gated".into(), Box::new(Echo(Some(Mutex::new(gate)))));
        methods.insert("/t.T/Mute".into(), Box::new(Mute));
        let (ours, theirs) = UnixStream::pair().unwrap();
        (theirs, start_connection(ours, Arc::new(methods)).unwrap())
    }

    fn request(method: &str, payload: &[u8]) -> Request {
        let mut req = Request::new();
        req.service = "t.T".into();
        req.method = method.into();
        req.payload = payload.to_vec();
        req
    }

    fn call(client: &Client, method: &str, payload: &[u8]) -> TtrpcResult<Response> {
        client.request(request(method, payload))
    }

    /// Sends a request frame by hand, as a client that does not wait for the answer.
    fn send(stream: &mut UnixStream, id: u32, method: &str, payload: &[u8]) {
        let body = request(method, payload).write_to_bytes().unwrap();
        let mut frame = Vec::<u8>::from(MessageHeader::new_request(id, body.len() as u32));
        frame.extend(body);
        stream.write_all(&frame).unwrap();
    }

    fn receive(stream: &mut UnixStream) -> (u32, Response) {
        let mut head = [0u8; MESSAGE_HEADER_LENGTH];
        stream.read_exact(&mut head).unwrap();
        let mh = MessageHeader::from(head);
        let mut body = vec![0u8; mh.length as usize];
        stream.read_exact(&mut body).unwrap();
        (mh.stream_id, Response::parse_from_bytes(&body).unwrap())
    }

    fn gone_within_5s(conn: &Weak<Connection>) -> bool {
        let start = Instant::now();
        while conn.upgrade().is_some() {
            if start.elapsed() > Duration::from_secs(5) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    #[test]
    fn header_bytes_are_ttrpcs() {
        let mh = MessageHeader {
            length: 0x0102_0304,
            stream_id: 0x0a0b_0c0d,
            type_: containerd_shim_protos::ttrpc::proto::MESSAGE_TYPE_RESPONSE,
            flags: 0x5a,
        };
        let mut buf = vec![0xff];
        put_header(&mut buf, &mh);
        assert_eq!(buf[1..], Vec::<u8>::from(mh)[..]);
    }

    #[test]
    fn answers_each_request_and_names_an_unknown_method() {
        let (_gate, g) = channel();
        let (theirs, conn) = serve_pair(g);
        let client = Client::new(theirs.into_raw_fd()).unwrap();
        for i in 0..200u32 {
            let res = call(&client, "Echo", &i.to_be_bytes()).unwrap();
            assert_eq!(res.payload, i.to_be_bytes());
        }
        match call(&client, "Nope", b"") {
            Err(Error::RpcStatus(s)) => {
                assert_eq!(s.code(), Code::INVALID_ARGUMENT);
                assert_eq!(s.message, "/t.T/Nope does not exist");
            }
            other => panic!("unknown method answered {other:?}"),
        }
        match call(&client, "Mute", b"") {
            Err(Error::RpcStatus(s)) => {
                assert_eq!(s.code(), Code::INTERNAL);
                assert!(s.message.contains("answer not encoded"), "{}", s.message);
            }
            other => panic!("a failed handler answered {other:?}"),
        }
        assert_eq!(call(&client, "Echo", b"on").unwrap().payload, b"on");
        // Calls one after another never leave more than READY_MAX threads idle.
        assert!(conn.upgrade().unwrap().ready.load(Ordering::SeqCst) <= READY_MAX);
        drop(client);
        assert!(gone_within_5s(&conn), "threads left");
    }

    #[test]
    fn a_blocked_request_stalls_no_other() {
        let (open, gate) = channel();
        let (theirs, conn) = serve_pair(gate);
        let client = Client::new(theirs.into_raw_fd()).unwrap();
        let blocked: Vec<_> = (0..3u8)
            .map(|i| {
                let client = client.clone();
                std::thread::spawn(move || call(&client, "Gated", &[i]).unwrap().payload)
            })
            .collect();
        // Three requests blocked in their handler (as Waits are), and still the connection
        // answers.
        for i in 0..50u32 {
            let res = call(&client, "Echo", &i.to_le_bytes()).unwrap();
            assert_eq!(res.payload, i.to_le_bytes());
        }
        for _ in 0..3 {
            open.send(()).unwrap();
        }
        let mut got: Vec<_> = blocked.into_iter().map(|t| t.join().unwrap()).collect();
        got.sort();
        assert_eq!(got, [[0], [1], [2]]);
        drop(client);
        assert!(gone_within_5s(&conn), "threads left");
    }

    #[test]
    fn an_oversized_frame_is_refused_and_the_connection_goes_on() {
        let (_gate, g) = channel();
        let (mut theirs, conn) = serve_pair(g);
        // Written by hand: ttrpc's client refuses to send such a frame.
        let len = MESSAGE_LENGTH_MAX + 1;
        let writer = {
            let mut theirs = theirs.try_clone().unwrap();
            std::thread::spawn(move || {
                theirs.write_all(&Vec::<u8>::from(MessageHeader::new_request(7, len as u32)))?;
                theirs.write_all(&vec![0u8; len])
            })
        };
        let (id, res) = receive(&mut theirs);
        writer.join().unwrap().unwrap();
        assert_eq!(id, 7);
        assert_eq!(res.status().code(), Code::RESOURCE_EXHAUSTED);
        assert!(res.status().message.contains("exceed maximum message size"));
        send(&mut theirs, 9, "Echo", b"next");
        let (id, res) = receive(&mut theirs);
        assert_eq!((id, res.payload.as_slice()), (9, &b"next"[..]));
        drop(theirs);
        assert!(gone_within_5s(&conn), "threads left");
    }

    #[test]
    fn a_client_gone_mid_request_leaves_no_thread() {
        let (open, gate) = channel();
        let (mut theirs, conn) = serve_pair(gate);
        send(&mut theirs, 1, "Gated", b"late");
        // The request is queued in the socket ahead of the close: the server reads it first.
        drop(theirs);
        // The reader sees the client gone and cancels, while the handler still runs.
        let start = Instant::now();
        while conn.upgrade().unwrap().cancel.lock().unwrap().is_some() {
            assert!(start.elapsed() < Duration::from_secs(5), "close not seen");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(
            conn.upgrade().is_some(),
            "the busy handler's thread holds it"
        );
        open.send(()).unwrap();
        assert!(gone_within_5s(&conn), "threads left");
    }
}
