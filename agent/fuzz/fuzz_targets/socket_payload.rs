//! Any bytes a local process writes to the socket API: classifying them never panics, a
//! complete JSON value either becomes a valid event or is refused with a reason, an accepted
//! event survives the transport's JSON round trip, and a probe is never also a result.

#![no_main]

use std::sync::Arc;

use agent::api::events::EventDefaults;
use agent::socket::result::{Payload, classify, is_ping, to_event};
use libfuzzer_sys::fuzz_target;
use proto_spec::ObjectMeta;
use proto_spec::v2::{Entity, Event};

fuzz_target!(|data: &[u8]| {
    let defaults = EventDefaults {
        agent_name: "web-1".into(),
        namespace: "default".into(),
        entity: Arc::new(|| Entity {
            metadata: ObjectMeta::new("default", "web-1"),
            entity_class: "agent".into(),
            ..Default::default()
        }),
    };
    match classify(data) {
        Payload::Complete(value) => match to_event(value, &defaults, 1_700_000_000) {
            Ok(event) => {
                event.validate().expect("an accepted result is a valid event");
                assert_eq!(event.metadata.namespace, "default");
                assert_eq!(event.entity.as_ref().map(|e| e.metadata.name.as_str()), Some("web-1"));
                let json = serde_json::to_vec(&event).expect("events serialize");
                let back: Event = serde_json::from_slice(&json).expect("and read back");
                assert_eq!(back, event);
            }
            Err(reason) => assert!(!reason.is_empty()),
        },
        Payload::Ping => assert!(is_ping(data)),
        Payload::Invalid(reason) => assert!(!reason.is_empty() && !is_ping(data)),
        Payload::Incomplete => {}
    }
});
