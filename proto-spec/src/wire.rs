//! The agent transport: one binary WebSocket message per frame, `<type>\n<payload>`.
//!
//! See `PROTOCOL.md` beside this crate for the whole protocol (handshake, versioning, limits).
//! This module only turns frames into typed messages and back: no I/O.

use crate::v2::check::CheckRequest;
use crate::v2::entity_config::EntityConfig;
use crate::v2::event::Event;

/// Version of the transport spoken by this build; sent as `Picket-Protocol-Version`.
/// A peer that does not send it speaks version 1. Version 2 adds `event_ack`.
pub const PROTOCOL_VERSION: u32 = 2;
/// The first version with `event_ack`: the backend acknowledges each `event` once it is
/// durable in the store, and the agent keeps it queued until then.
pub const ACK_VERSION: u32 = 2;

/// Largest frame either side accepts (type, newline and payload). A larger frame closes the
/// session with close code 1009 ("message too big"). Sensu set no limit at all.
pub const MAX_FRAME_BYTES: usize = 1024 * 1024;

/// Longest message type name; a frame whose first line is longer is malformed.
pub const MAX_TYPE_LEN: usize = 64;

pub const TYPE_KEEPALIVE: &str = "keepalive";
pub const TYPE_EVENT: &str = "event";
pub const TYPE_CHECK_REQUEST: &str = "check_request";
pub const TYPE_ENTITY_CONFIG: &str = "entity_config";
pub const TYPE_EVENT_ACK: &str = "event_ack";

/// Handshake headers (HTTP upgrade request, agent to backend).
pub const HEADER_AGENT_NAME: &str = "Sensu-AgentName";
pub const HEADER_NAMESPACE: &str = "Sensu-Namespace";
pub const HEADER_USER: &str = "Sensu-User";
pub const HEADER_SUBSCRIPTIONS: &str = "Sensu-Subscriptions";
pub const HEADER_PROTOCOL_VERSION: &str = "Picket-Protocol-Version";
/// Handshake answer (backend to agent).
pub const HEADER_BACKEND_ID: &str = "Backend-ID";

/// The payload codec. Only JSON is implemented; protobuf (`application/octet-stream`) is
/// reserved for a later version and never chosen by a Picket backend today.
pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_PROTOBUF: &str = "application/octet-stream";

/// WebSocket close codes used by both sides.
pub const CLOSE_NORMAL_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
pub const CLOSE_POLICY_VIOLATION: u16 = 1008;
pub const CLOSE_MESSAGE_TOO_BIG: u16 = 1009;

/// A decoded transport message.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Keepalive(Box<Event>),
    Event(Box<Event>),
    CheckRequest(Box<CheckRequest>),
    EntityConfig(Box<EntityConfig>),
    /// Backend → agent, protocol version 2: the event with this `id` is durable.
    EventAck(Box<EventAck>),
}

/// Payload of `event_ack`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EventAck {
    pub id: uuid::Uuid,
}

/// The protocol version a peer announced in its handshake header (absent or unreadable = 1).
pub fn peer_version(header: Option<&str>) -> u32 {
    header.and_then(|v| v.trim().parse().ok()).unwrap_or(1)
}

impl Message {
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Keepalive(_) => TYPE_KEEPALIVE,
            Message::Event(_) => TYPE_EVENT,
            Message::CheckRequest(_) => TYPE_CHECK_REQUEST,
            Message::EntityConfig(_) => TYPE_ENTITY_CONFIG,
            Message::EventAck(_) => TYPE_EVENT_ACK,
        }
    }
}

/// Why a frame could not be decoded. Every variant ends the session on the receiving side.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("frame has no '\\n' after its message type")]
    MissingSeparator,
    #[error("frame message type is not valid UTF-8 or too long")]
    BadType,
    #[error("unknown message type {0:?}")]
    UnknownType(String),
    #[error("invalid {kind} payload: {reason}")]
    BadPayload { kind: &'static str, reason: String },
}

impl FrameError {
    /// The WebSocket close code that reports this error to the peer.
    pub fn close_code(&self) -> u16 {
        match self {
            FrameError::TooLarge { .. } => CLOSE_MESSAGE_TOO_BIG,
            FrameError::UnknownType(_) => CLOSE_UNSUPPORTED_DATA,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

/// Encode a message as one frame (JSON payload).
pub fn encode(msg: &Message) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(msg.type_name().as_bytes());
    out.push(b'\n');
    let res = match msg {
        Message::Keepalive(e) | Message::Event(e) => serde_json::to_writer(&mut out, e),
        Message::CheckRequest(r) => serde_json::to_writer(&mut out, r),
        Message::EntityConfig(c) => serde_json::to_writer(&mut out, c),
        Message::EventAck(a) => serde_json::to_writer(&mut out, a),
    };
    // Serializing these plain data types to a Vec cannot fail (no maps with non-string keys,
    // no I/O).
    res.expect("JSON encoding of a transport message");
    out
}

/// Split a frame into its type and payload without decoding the payload.
pub fn split(frame: &[u8]) -> Result<(&str, &[u8]), FrameError> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge {
            size: frame.len(),
            limit: MAX_FRAME_BYTES,
        });
    }
    let nl = frame
        .iter()
        .take(MAX_TYPE_LEN + 1)
        .position(|b| *b == b'\n')
        // A newline further on means the type is too long; none at all means the frame
        // has no separator, whatever its length.
        .ok_or_else(|| {
            if frame.contains(&b'\n') {
                FrameError::BadType
            } else {
                FrameError::MissingSeparator
            }
        })?;
    let ty = std::str::from_utf8(&frame[..nl]).map_err(|_| FrameError::BadType)?;
    Ok((ty, &frame[nl + 1..]))
}

/// Decode one frame. Pure: bytes in, message or error out.
pub fn decode(frame: &[u8]) -> Result<Message, FrameError> {
    let (ty, payload) = split(frame)?;
    fn json<T: serde::de::DeserializeOwned>(
        kind: &'static str,
        payload: &[u8],
    ) -> Result<Box<T>, FrameError> {
        serde_json::from_slice(payload)
            .map(Box::new)
            .map_err(|e| FrameError::BadPayload {
                kind,
                reason: e.to_string(),
            })
    }
    match ty {
        TYPE_KEEPALIVE => Ok(Message::Keepalive(json(TYPE_KEEPALIVE, payload)?)),
        TYPE_EVENT => Ok(Message::Event(json(TYPE_EVENT, payload)?)),
        TYPE_CHECK_REQUEST => Ok(Message::CheckRequest(json(TYPE_CHECK_REQUEST, payload)?)),
        TYPE_ENTITY_CONFIG => Ok(Message::EntityConfig(json(TYPE_ENTITY_CONFIG, payload)?)),
        TYPE_EVENT_ACK => Ok(Message::EventAck(json(TYPE_EVENT_ACK, payload)?)),
        other => Err(FrameError::UnknownType(
            other.chars().take(MAX_TYPE_LEN).collect(),
        )),
    }
}

#[cfg(test)]
mod ack_tests {
    use super::*;

    #[test]
    fn event_ack_round_trips_and_versions_parse() {
        let id = uuid::Uuid::parse_str("6f1c0a3e-2b7d-4c59-9a55-0d1f2e3c4b5a").unwrap();
        let frame = encode(&Message::EventAck(Box::new(EventAck { id })));
        assert_eq!(
            frame,
            b"event_ack\n{\"id\":\"6f1c0a3e-2b7d-4c59-9a55-0d1f2e3c4b5a\"}".to_vec()
        );
        assert_eq!(
            decode(&frame).unwrap(),
            Message::EventAck(Box::new(EventAck { id }))
        );
        assert!(matches!(
            decode(b"event_ack\n{\"id\":\"nope\"}"),
            Err(FrameError::BadPayload { .. })
        ));
        assert_eq!(peer_version(None), 1);
        assert_eq!(peer_version(Some(" 2 ")), 2);
        assert_eq!(peer_version(Some("x")), 1);
    }
}
