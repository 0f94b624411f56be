//! Malformed agent transport frames: each is refused with the right error and close code.

use proto_spec::v2::{CheckRequest, EntityConfig, Event};
use proto_spec::wire::{self, FrameError, MAX_FRAME_BYTES, MAX_TYPE_LEN, Message};

#[test]
fn frame_without_newline_is_missing_separator() {
    assert_eq!(wire::decode(b"event"), Err(FrameError::MissingSeparator));
    assert_eq!(wire::decode(b""), Err(FrameError::MissingSeparator));
    // No newline anywhere: still a missing separator, however long the frame.
    let long = [b'{'; 4 * MAX_TYPE_LEN];
    assert_eq!(wire::decode(&long), Err(FrameError::MissingSeparator));
    assert_eq!(
        FrameError::MissingSeparator.close_code(),
        wire::CLOSE_PROTOCOL_ERROR
    );
}

#[test]
fn unknown_type_is_named() {
    let err = wire::decode(b"telepathy\n{}").unwrap_err();
    assert_eq!(err, FrameError::UnknownType("telepathy".into()));
    assert_eq!(err.close_code(), wire::CLOSE_UNSUPPORTED_DATA);
    assert_eq!(
        wire::decode(b"\n{}"),
        Err(FrameError::UnknownType(String::new()))
    );
    // Types are case-sensitive, as in Sensu.
    assert_eq!(
        wire::decode(b"Event\n{}"),
        Err(FrameError::UnknownType("Event".into()))
    );
}

#[test]
fn bad_json_payload_names_the_kind() {
    for (frame, kind) in [
        (&b"event\n{"[..], "event"),
        (b"keepalive\nnot json", "keepalive"),
        // serde would read an array as a struct's fields in order (Go refuses it); a scalar
        // is refused by both.
        (b"check_request\n\"x\"", "check_request"),
        (b"entity_config\n", "entity_config"),
        (b"event\n{\"check\": {\"interval\": \"60\"}}", "event"),
        (b"event\n{} trailing", "event"),
    ] {
        match wire::decode(frame) {
            Err(FrameError::BadPayload { kind: k, reason }) => {
                assert_eq!(k, kind, "{reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(frame)),
        }
    }
    let err = wire::decode(b"event\n{").unwrap_err();
    assert_eq!(err.close_code(), wire::CLOSE_PROTOCOL_ERROR);
    assert!(
        err.to_string().starts_with("invalid event payload: "),
        "{err}"
    );
}

#[test]
fn oversized_frame_is_too_large() {
    let mut frame = b"event\n".to_vec();
    frame.resize(MAX_FRAME_BYTES + 1, b' ');
    let err = wire::decode(&frame).unwrap_err();
    assert_eq!(
        err,
        FrameError::TooLarge {
            size: MAX_FRAME_BYTES + 1,
            limit: MAX_FRAME_BYTES
        }
    );
    assert_eq!(err.close_code(), wire::CLOSE_MESSAGE_TOO_BIG);
    // Exactly at the limit is still decoded (and here fails only as JSON).
    frame.truncate(MAX_FRAME_BYTES);
    assert!(matches!(
        wire::decode(&frame),
        Err(FrameError::BadPayload { .. })
    ));
}

#[test]
fn non_utf8_or_overlong_type_is_bad_type() {
    assert_eq!(wire::decode(b"ev\xffent\n{}"), Err(FrameError::BadType));
    assert_eq!(wire::decode(b"\xc3\n{}"), Err(FrameError::BadType));
    let mut long = vec![b'a'; MAX_TYPE_LEN + 1];
    long.extend_from_slice(b"\n{}");
    assert_eq!(wire::decode(&long), Err(FrameError::BadType));
    // A type of exactly the maximum length is read (and unknown).
    let mut max = vec![b'a'; MAX_TYPE_LEN];
    max.extend_from_slice(b"\n{}");
    assert!(matches!(
        wire::decode(&max),
        Err(FrameError::UnknownType(t)) if t.len() == MAX_TYPE_LEN
    ));
    assert_eq!(FrameError::BadType.close_code(), wire::CLOSE_PROTOCOL_ERROR);
}

#[test]
fn minimal_frames_decode() {
    assert_eq!(
        wire::decode(b"event\n{}"),
        Ok(Message::Event(Box::default()))
    );
    assert_eq!(
        wire::decode(b"keepalive\n{\"id\": null}"),
        Ok(Message::Keepalive(Box::<Event>::default()))
    );
    assert_eq!(
        wire::decode(b"check_request\n{}"),
        Ok(Message::CheckRequest(Box::<CheckRequest>::default()))
    );
    assert_eq!(
        wire::decode(b"entity_config\n{\"metadata\": {\"name\": \"not found\"}}"),
        Ok(Message::EntityConfig(Box::new(EntityConfig {
            metadata: proto_spec::ObjectMeta {
                name: "not found".into(),
                ..Default::default()
            },
            ..Default::default()
        })))
    );
    // The frame is exactly `<type>\n<json>`.
    let frame = wire::encode(&Message::Event(Box::default()));
    assert!(frame.starts_with(b"event\n{"));
}
