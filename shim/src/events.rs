//! Events to containerd, published in order by one thread so no RPC waits on containerd.
//! When containerd restarts, the connection is re-established and the event retried.
//!
//! The connection is closed once no event came for `IDLE`: ttrpc's client keeps a receiver
//! thread that polls its socket every 10 ms for as long as the connection lives (100 wake-ups
//! a second, a shim's whole CPU cost when idle) and a sender thread. The next event connects
//! again (a unix socket connect, well under a millisecond).
//!
//! Each event is encoded when it is queued, with its type URL spelled from the message's name:
//! asking protobuf for the full name goes through its reflection, which builds the descriptors
//! of every proto file the event depends on (descriptor.proto among them) and keeps them for
//! the shim's life — some hundreds of KB per shim for a string we know.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::ttrpc::{self, context::Context};
use containerd_shim_protos::{Client, EventsClient};

/// Protobuf package of the task events (containerd/api/events/task.proto).
const EVENTS_PACKAGE: &str = "containerd.events";

/// How long the connection to containerd stays open after the last event.
const IDLE: Duration = Duration::from_secs(2);

/// A queued event: its topic and the `Any` that carries it.
pub type Event = (&'static str, Any);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: Sender<Event>,
    progress: Arc<Progress>,
}

/// Events queued and events handed on (published or given up), so an exiting shim can wait
/// for the last ones (a TaskDelete is queued just before containerd's Shutdown).
#[derive(Default)]
struct Progress {
    counts: Mutex<(u64, u64)>,
    done: Condvar,
}

impl Progress {
    fn queued(&self) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).0 += 1;
    }

    fn handed_on(&self) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).1 += 1;
        self.done.notify_all();
    }
}

impl Events {
    /// Connects to containerd's ttrpc `address` and starts the publishing thread.
    pub fn start(address: String, namespace: String) -> std::io::Result<Self> {
        let publisher = Publisher::connect(&address).map_err(|e| {
            std::io::Error::other(format!("connect to containerd at {address}: {e}"))
        })?;
        let (tx, rx) = channel::<Event>();
        let progress = Arc::new(Progress::default());
        let thread_progress = progress.clone();
        std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let mut publisher = Some(publisher);
                loop {
                    let next = if publisher.is_some() {
                        rx.recv_timeout(IDLE)
                    } else {
                        rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
                    };
                    match next {
                        Ok((topic, event)) => {
                            publish_with_retry(&mut publisher, &address, &namespace, topic, event);
                            thread_progress.handed_on();
                        }
                        // Idle: close the connection (and its two threads).
                        Err(RecvTimeoutError::Timeout) => publisher = None,
                        Err(RecvTimeoutError::Disconnected) => break,
                    }
                }
            })?;
        Ok(Self { tx, progress })
    }

    /// Events that go to `tx` instead of containerd (tests).
    #[cfg(test)]
    pub fn from_sender(tx: Sender<Event>) -> Self {
        Self {
            tx,
            progress: Default::default(),
        }
    }

    /// Waits (at most `limit`) until every event queued so far has been published.
    pub fn flush(&self, limit: Duration) {
        let counts = self
            .progress
            .counts
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (counts, timeout) = self
            .progress
            .done
            .wait_timeout_while(counts, limit, |(queued, done)| done < queued)
            .unwrap_or_else(|p| p.into_inner());
        if timeout.timed_out() {
            tracing::warn!(
                unpublished = counts.0 - counts.1,
                "shim exits with events not published"
            );
        }
    }

    /// Queues a task event (a message of package `containerd.events`); events leave in the
    /// order they are queued.
    pub fn send<M: Message>(&self, topic: &'static str, event: M) {
        match event.write_to_bytes() {
            Ok(value) => {
                let mut any = Any::new();
                any.type_url = format!("{EVENTS_PACKAGE}.{}", M::NAME);
                any.value = value;
                self.progress.queued();
                let _ = self.tx.send((topic, any));
            }
            Err(e) => tracing::error!(topic, error = %e, "event not encoded"),
        }
    }
}

/// A protobuf timestamp of `at`, for exits, deletes and event envelopes.
pub fn timestamp(at: SystemTime) -> Timestamp {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let mut t = Timestamp::new();
    t.seconds = d.as_secs() as i64;
    t.nanos = d.subsec_nanos() as i32;
    t
}

struct Publisher {
    client: EventsClient,
}

impl Publisher {
    fn connect(address: &str) -> ttrpc::Result<Self> {
        let url = if address.contains("://") {
            address.to_string()
        } else {
            format!("unix://{address}")
        };
        let client = Client::connect(&url)?;
        Ok(Self {
            client: EventsClient::new(client),
        })
    }

    fn publish(&self, topic: &str, namespace: &str, event: Any) -> ttrpc::Result<()> {
        let mut envelope = Envelope::new();
        envelope.topic = topic.into();
        envelope.namespace = namespace.into();
        envelope.timestamp = MessageField::some(timestamp(SystemTime::now()));
        envelope.event = MessageField::some(event);
        let mut req = ForwardRequest::new();
        req.envelope = MessageField::some(envelope);
        self.client.forward(Context::default(), &req).map(drop)
    }
}

fn publish_with_retry(
    publisher: &mut Option<Publisher>,
    address: &str,
    namespace: &str,
    topic: &str,
    event: Any,
) {
    // A restarting containerd takes a few seconds to listen again.
    for attempt in 0..60 {
        if publisher.is_none() {
            *publisher = Publisher::connect(address).ok();
        }
        if let Some(p) = publisher.as_ref() {
            match p.publish(topic, namespace, event.clone()) {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(topic, address, attempt, error = %e, "event not published");
                    *publisher = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    tracing::error!(topic, address, "event dropped: containerd unreachable");
}

#[cfg(test)]
mod tests {
    use super::*;
    use containerd_shim_protos::events::task::TaskExit;
    use containerd_shim_protos::protobuf::MessageFull;

    #[test]
    fn type_urls_match_protobufs_own_names() {
        let (tx, rx) = channel();
        let events = Events::from_sender(tx);
        let exit = TaskExit {
            container_id: "c".into(),
            exit_status: 3,
            ..Default::default()
        };
        events.send("/tasks/exit", exit.clone());
        let (topic, any) = rx.recv().unwrap();
        assert_eq!(topic, "/tasks/exit");
        assert_eq!(any.type_url, TaskExit::descriptor().full_name());
        assert_eq!(TaskExit::parse_from_bytes(&any.value).unwrap(), exit);
    }

    #[test]
    fn flush_waits_for_the_events_queued_before_it() {
        let (tx, rx) = channel();
        let events = Events::from_sender(tx);
        events.send("/tasks/delete", TaskExit::default());
        events.send("/tasks/exit", TaskExit::default());
        let progress = events.progress.clone();
        let publisher = std::thread::spawn(move || {
            for _ in 0..2 {
                rx.recv().unwrap();
                std::thread::sleep(Duration::from_millis(30));
                progress.handed_on();
            }
        });
        let start = std::time::Instant::now();
        events.flush(Duration::from_secs(10));
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(60),
            "returned after {waited:?}"
        );
        assert!(waited < Duration::from_secs(10), "timed out");
        publisher.join().unwrap();
        // Nothing pending: no wait at all.
        let start = std::time::Instant::now();
        events.flush(Duration::from_secs(10));
        assert!(start.elapsed() < Duration::from_secs(1));
    }
}
