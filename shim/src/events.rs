//! Events to containerd, published in order by one thread so no RPC waits on containerd.
//! When containerd restarts, the connection is re-established and the event retried.

use std::sync::mpsc::{channel, Sender};
use std::time::Duration;

use containerd_shim::protos::protobuf::MessageDyn;
use containerd_shim::protos::ttrpc::context::Context;
use containerd_shim::publisher::RemotePublisher;

type Event = (&'static str, Box<dyn MessageDyn>);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct Events {
    tx: Sender<Event>,
}

impl Events {
    /// Starts the publishing thread on an existing connection to `address`.
    pub fn start(publisher: RemotePublisher, address: String, namespace: String) -> Self {
        let (tx, rx) = channel::<Event>();
        let _ = std::thread::Builder::new()
            .name("events".into())
            .spawn(move || {
                let mut publisher = Some(publisher);
                for (topic, event) in rx {
                    publish_with_retry(&mut publisher, &address, &namespace, topic, event);
                }
            });
        Self { tx }
    }

    /// Events that go to `tx` instead of containerd (tests).
    #[cfg(test)]
    pub fn from_sender(tx: Sender<Event>) -> Self {
        Self { tx }
    }

    /// Queues an event; events leave in the order they are queued.
    pub fn send(&self, topic: &'static str, event: impl MessageDyn + 'static) {
        let _ = self.tx.send((topic, Box::new(event)));
    }
}

fn publish_with_retry(
    publisher: &mut Option<RemotePublisher>,
    address: &str,
    namespace: &str,
    topic: &str,
    event: Box<dyn MessageDyn>,
) {
    // A restarting containerd takes a few seconds to listen again.
    for attempt in 0..60 {
        if publisher.is_none() {
            *publisher = RemotePublisher::new(address).ok();
        }
        if let Some(p) = publisher.as_ref() {
            match p.publish(Context::default(), topic, namespace, event.clone_box()) {
                Ok(()) => return,
                Err(e) => {
                    log::warn!("publish {topic} to {address} (attempt {attempt}): {e}");
                    *publisher = None;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    log::error!("dropped event {topic}: containerd at {address} unreachable");
}
