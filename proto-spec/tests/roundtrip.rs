//! Property tests: decode(encode(x)) == x for the types that cross process boundaries, for
//! the agent transport frames, and for the wrapped file format in both syntaxes.

use std::collections::BTreeMap;

use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;
use proto_spec::v2::*;
use proto_spec::wire::{self, Message};
use proto_spec::wrapped::{self, Resource, Wrapped};
use proto_spec::{ObjectMeta, ResourceReference};

/// Short strings over an alphabet that includes what trips encoders up: quotes, backslashes,
/// YAML indicators, newlines, control and non-ASCII characters, and words YAML would read as
/// something other than a string.
fn text() -> BoxedStrategy<String> {
    prop_oneof![
        "[a-z0-9_.:-]{0,8}",
        "[ -~]{0,10}",
        "\\PC{0,6}",
        "[\\x00-\\x1f\"'\\\\#:&*!|>%@`{}\\[\\],? -]{0,6}",
        prop::sample::select(vec![
            "null",
            "~",
            "true",
            "False",
            "yes",
            "no",
            "on",
            "0",
            "-1",
            "1e3",
            "0x1F",
            ".inf",
            "-.nan",
            "2001-12-14",
            "---",
            "...",
            " lead",
            "trail ",
            "a: b",
            "- x",
        ])
        .prop_map(str::to_string),
    ]
    .boxed()
}

fn texts() -> BoxedStrategy<Vec<String>> {
    vec(text(), 0..3).boxed()
}

fn opt_texts() -> BoxedStrategy<Option<Vec<String>>> {
    option::of(texts()).boxed()
}

fn string_map() -> BoxedStrategy<BTreeMap<String, String>> {
    btree_map(text(), text(), 0..3).boxed()
}

/// Any finite float: JSON has no NaN or infinity.
fn float() -> BoxedStrategy<f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |f| f.is_finite()),
        (-1_000_000i64..1_000_000).prop_map(|i| i as f64),
        Just(1e20),
        Just(-0.0),
    ]
    .boxed()
}

fn meta() -> BoxedStrategy<ObjectMeta> {
    (text(), text(), string_map(), string_map(), text())
        .prop_map(
            |(name, namespace, labels, annotations, created_by)| ObjectMeta {
                name,
                namespace,
                labels,
                annotations,
                created_by,
            },
        )
        .boxed()
}

fn reference() -> BoxedStrategy<ResourceReference> {
    (text(), text(), text())
        .prop_map(|(name, t, api)| ResourceReference::new(api, t, name))
        .boxed()
}

/// Check pipeline references: decoding fills an empty type/api_version with the defaults,
/// so only references that already have them round-trip unchanged.
fn pipeline_ref() -> BoxedStrategy<ResourceReference> {
    text()
        .prop_map(|name| ResourceReference::new("core/v2", "Pipeline", name))
        .boxed()
}

fn secret() -> BoxedStrategy<Secret> {
    (text(), text())
        .prop_map(|(name, secret)| Secret { name, secret })
        .boxed()
}

fn time_range() -> BoxedStrategy<TimeWindowTimeRange> {
    (text(), text())
        .prop_map(|(begin, end)| TimeWindowTimeRange { begin, end })
        .boxed()
}

fn when() -> BoxedStrategy<TimeWindowWhen> {
    (vec(time_range(), 0..2), vec(time_range(), 0..2))
        .prop_map(|(all, monday)| TimeWindowWhen {
            days: TimeWindowDays {
                all,
                monday,
                ..Default::default()
            },
        })
        .boxed()
}

fn check_config() -> BoxedStrategy<CheckConfig> {
    let a = (
        text(),
        texts(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        any::<bool>(),
        opt_texts(),
        texts(),
        text(),
        option::of(vec(
            (text(), opt_texts()).prop_map(|(type_, hooks)| HookList { type_, hooks }),
            0..2,
        )),
    );
    let b = (
        any::<bool>(),
        option::of(when()),
        text(),
        any::<i64>(),
        any::<u32>(),
        option::of((opt_texts(), any::<bool>(), any::<u32>()).prop_map(
            |(entity_attributes, splay, splay_coverage)| ProxyRequests {
                entity_attributes,
                splay,
                splay_coverage,
            },
        )),
        any::<bool>(),
        text(),
        opt_texts(),
        opt_texts(),
    );
    let c = (
        meta(),
        any::<i64>(),
        any::<bool>(),
        option::of(vec(secret(), 0..2)),
        vec(
            (text(), text()).prop_map(|(name, value)| MetricTag { name, value }),
            0..2,
        ),
        vec(pipeline_ref(), 0..2),
        vec(
            (
                text(),
                option::of(vec(
                    (text(), text()).prop_map(|(name, value)| MetricThresholdTag { name, value }),
                    0..2,
                )),
                option::of(vec(
                    (text(), text(), any::<u32>())
                        .prop_map(|(min, max, status)| MetricThresholdRule { min, max, status }),
                    0..2,
                )),
                any::<u32>(),
            )
                .prop_map(|(name, tags, thresholds, null_status)| MetricThreshold {
                    name,
                    tags,
                    thresholds,
                    null_status,
                }),
            0..2,
        ),
        vec(
            (text(), text(), opt_texts()).prop_map(|(begin, end, repeat)| TimeWindowRepeated {
                begin,
                end,
                repeat,
            }),
            0..2,
        ),
    );
    (a, b, c)
        .prop_map(
            |(
                (
                    command,
                    handlers,
                    high_flap_threshold,
                    interval,
                    low_flap_threshold,
                    publish,
                    runtime_assets,
                    subscriptions,
                    proxy_entity_name,
                    check_hooks,
                ),
                (
                    stdin,
                    subdue,
                    cron,
                    ttl,
                    timeout,
                    proxy_requests,
                    round_robin,
                    output_metric_format,
                    output_metric_handlers,
                    env_vars,
                ),
                (
                    metadata,
                    max_output_size,
                    discard_output,
                    secrets,
                    output_metric_tags,
                    pipelines,
                    output_metric_thresholds,
                    subdues,
                ),
            )| CheckConfig {
                command,
                handlers,
                high_flap_threshold,
                interval,
                low_flap_threshold,
                publish,
                runtime_assets,
                subscriptions,
                proxy_entity_name,
                check_hooks,
                stdin,
                subdue,
                cron,
                ttl,
                timeout,
                proxy_requests,
                round_robin,
                output_metric_format,
                output_metric_handlers,
                env_vars,
                metadata,
                max_output_size,
                discard_output,
                secrets,
                output_metric_tags,
                pipelines,
                output_metric_thresholds,
                subdues,
                fallback_pipeline: None,
            },
        )
        .boxed()
}

fn hook_config() -> BoxedStrategy<HookConfig> {
    (meta(), text(), any::<u32>(), any::<bool>(), opt_texts())
        .prop_map(
            |(metadata, command, timeout, stdin, runtime_assets)| HookConfig {
                metadata,
                command,
                timeout,
                stdin,
                runtime_assets,
            },
        )
        .boxed()
}

fn check() -> BoxedStrategy<Check> {
    let results = (
        float(),
        any::<i64>(),
        option::of(vec(
            (any::<u32>(), any::<i64>())
                .prop_map(|(status, executed)| CheckHistory { status, executed }),
            0..3,
        )),
        any::<i64>(),
        text(),
        text(),
        any::<u32>(),
        any::<u32>(),
        any::<i64>(),
        any::<i64>(),
        any::<i64>(),
    );
    let more = (
        texts(),
        vec(
            (
                hook_config(),
                float(),
                any::<i64>(),
                any::<i64>(),
                text(),
                any::<i32>(),
            )
                .prop_map(|(config, duration, executed, issued, output, status)| {
                    Hook {
                        config,
                        duration,
                        executed,
                        issued,
                        output,
                        status,
                    }
                }),
            0..2,
        ),
        any::<bool>(),
        text(),
        text(),
    );
    (check_config(), results, more)
        .prop_map(
            |(
                config,
                (
                    duration,
                    executed,
                    history,
                    issued,
                    output,
                    state,
                    status,
                    total_state_change,
                    last_ok,
                    occurrences,
                    occurrences_watermark,
                ),
                (silenced, hooks, is_silenced, scheduler, processed_by),
            )| Check {
                config,
                duration,
                executed,
                history,
                issued,
                output,
                state,
                status,
                total_state_change,
                last_ok,
                occurrences,
                occurrences_watermark,
                silenced,
                hooks,
                is_silenced,
                scheduler,
                processed_by,
            },
        )
        .boxed()
}

fn system() -> BoxedStrategy<System> {
    let a = (text(), text(), text(), text(), text());
    let b = (
        option::of(vec(
            (text(), text(), opt_texts()).prop_map(|(name, mac, addresses)| NetworkInterface {
                name,
                mac,
                addresses,
            }),
            0..2,
        )),
        text(),
        any::<i32>(),
        text(),
        text(),
        text(),
        text(),
        text(),
        option::of(vec(
            text().prop_map(|name| Process {
                name,
                ..Default::default()
            }),
            0..2,
        )),
    );
    (a, b)
        .prop_map(
            |(
                (hostname, os, platform, platform_family, platform_version),
                (
                    interfaces,
                    arch,
                    arm_version,
                    libc_type,
                    vm_system,
                    vm_role,
                    cloud_provider,
                    float_type,
                    processes,
                ),
            )| System {
                hostname,
                os,
                platform,
                platform_family,
                platform_version,
                network: Network { interfaces },
                arch,
                arm_version,
                libc_type,
                vm_system,
                vm_role,
                cloud_provider,
                float_type,
                processes,
            },
        )
        .boxed()
}

fn entity() -> BoxedStrategy<Entity> {
    (
        text(),
        system(),
        opt_texts(),
        any::<i64>(),
        any::<bool>(),
        text(),
        text(),
        texts(),
        meta(),
        text(),
        texts(),
    )
        .prop_map(
            |(
                entity_class,
                system,
                subscriptions,
                last_seen,
                deregister,
                handler,
                user,
                redact,
                metadata,
                sensu_agent_version,
                keepalive_handlers,
            )| Entity {
                entity_class,
                system,
                subscriptions,
                last_seen,
                deregister,
                deregistration: Deregistration { handler },
                user,
                redact,
                metadata,
                sensu_agent_version,
                keepalive_handlers,
            },
        )
        .boxed()
}

fn metrics() -> BoxedStrategy<Metrics> {
    (
        opt_texts(),
        option::of(vec(
            (
                text(),
                float(),
                any::<i64>(),
                option::of(vec(
                    (text(), text()).prop_map(|(name, value)| MetricTag { name, value }),
                    0..2,
                )),
            )
                .prop_map(|(name, value, timestamp, tags)| MetricPoint {
                    name,
                    value,
                    timestamp,
                    tags,
                }),
            0..3,
        )),
    )
        .prop_map(|(handlers, points)| Metrics { handlers, points })
        .boxed()
}

fn event() -> BoxedStrategy<Event> {
    (
        any::<i64>(),
        option::of(entity()),
        option::of(check()),
        option::of(metrics()),
        meta(),
        option::of(any::<u128>().prop_map(uuid::Uuid::from_u128)),
        any::<i64>(),
        option::of(vec(reference(), 0..2)),
    )
        .prop_map(
            |(timestamp, entity, check, metrics, metadata, id, sequence, pipelines)| Event {
                timestamp,
                entity,
                check,
                metrics,
                metadata,
                id,
                sequence,
                pipelines,
            },
        )
        .boxed()
}

/// Events as the agent sends them: entity, check and metrics all present.
fn full_event() -> BoxedStrategy<Event> {
    (event(), entity(), check(), metrics())
        .prop_map(|(mut e, entity, check, metrics)| {
            e.entity = Some(entity);
            e.check = Some(check);
            e.metrics = Some(metrics);
            e
        })
        .boxed()
}

fn asset() -> BoxedStrategy<Asset> {
    (
        text(),
        text(),
        opt_texts(),
        option::of(vec(
            (text(), text(), opt_texts(), option::of(string_map())).prop_map(
                |(url, sha512, filters, headers)| AssetBuild {
                    url,
                    sha512,
                    filters,
                    headers,
                },
            ),
            0..2,
        )),
        meta(),
        option::of(string_map()),
    )
        .prop_map(|(url, sha512, filters, builds, metadata, headers)| Asset {
            url,
            sha512,
            filters,
            builds,
            metadata,
            headers,
        })
        .boxed()
}

fn check_request() -> BoxedStrategy<CheckRequest> {
    (
        option::of(check_config()),
        option::of(vec(asset(), 0..2)),
        option::of(vec(hook_config(), 0..2)),
        any::<i64>(),
        option::of(btree_map(
            text(),
            option::of(vec(asset(), 0..2)).prop_map(|assets| AssetList { assets }),
            0..2,
        )),
        texts(),
    )
        .prop_map(
            |(config, assets, hooks, issued, hook_assets, secrets)| CheckRequest {
                config,
                assets,
                hooks,
                issued,
                hook_assets,
                secrets,
            },
        )
        .boxed()
}

fn entity_config() -> BoxedStrategy<EntityConfig> {
    entity().prop_map(|e| EntityConfig::from_entity(&e)).boxed()
}

fn handler() -> BoxedStrategy<Handler> {
    (
        meta(),
        text(),
        text(),
        text(),
        any::<u32>(),
        option::of((text(), any::<u32>()).prop_map(|(host, port)| HandlerSocket { host, port })),
        opt_texts(),
        opt_texts(),
        opt_texts(),
        opt_texts(),
        option::of(vec(secret(), 0..2)),
    )
        .prop_map(
            |(
                metadata,
                type_,
                mutator,
                command,
                timeout,
                socket,
                handlers,
                filters,
                env_vars,
                runtime_assets,
                secrets,
            )| Handler {
                metadata,
                type_,
                mutator,
                command,
                timeout,
                socket,
                handlers,
                filters,
                env_vars,
                runtime_assets,
                secrets,
            },
        )
        .boxed()
}

fn pipeline() -> BoxedStrategy<Pipeline> {
    (
        meta(),
        option::of(vec(
            (
                text(),
                vec(reference(), 0..2),
                option::of(reference()),
                option::of(reference()),
            )
                .prop_map(|(name, filters, mutator, handler)| PipelineWorkflow {
                    name,
                    filters,
                    mutator,
                    handler,
                }),
            0..2,
        )),
    )
        .prop_map(|(metadata, workflows)| Pipeline {
            metadata,
            workflows,
        })
        .boxed()
}

fn rule() -> BoxedStrategy<Rule> {
    (opt_texts(), opt_texts(), opt_texts())
        .prop_map(|(verbs, resources, resource_names)| Rule {
            verbs,
            resources,
            resource_names,
        })
        .boxed()
}

fn subjects() -> BoxedStrategy<Option<Vec<Subject>>> {
    option::of(vec(
        (text(), text()).prop_map(|(type_, name)| Subject { type_, name }),
        0..2,
    ))
    .boxed()
}

fn role_ref() -> BoxedStrategy<RoleRef> {
    (text(), text())
        .prop_map(|(type_, name)| RoleRef { type_, name })
        .boxed()
}

/// Every wrapped resource kind, with arbitrary contents.
fn resource() -> BoxedStrategy<Resource> {
    prop_oneof![
        text().prop_map(|name| Resource::from(Namespace { name })),
        (option::of(vec(rule(), 0..2)), meta())
            .prop_map(|(rules, metadata)| Resource::from(ClusterRole { rules, metadata })),
        (subjects(), role_ref(), meta()).prop_map(|(subjects, role_ref, metadata)| {
            Resource::from(ClusterRoleBinding {
                subjects,
                role_ref,
                metadata,
            })
        }),
        (text(), text(), texts(), any::<bool>(), text()).prop_map(
            |(username, password, groups, disabled, password_hash)| Resource::from(User {
                username,
                password,
                groups,
                disabled,
                password_hash,
            })
        ),
        (meta(), text(), any::<i64>()).prop_map(|(metadata, username, created_at)| {
            Resource::from(APIKey {
                metadata,
                username,
                created_at,
            })
        }),
        any::<bool>().prop_map(|opt_out| Resource::from(TessenConfig { opt_out })),
        asset().prop_map(Resource::from),
        check_config().prop_map(Resource::from),
        entity().prop_map(Resource::from),
        event().prop_map(Resource::from),
        (meta(), text(), opt_texts(), option::of(when()), opt_texts()).prop_map(
            |(metadata, action, expressions, when, runtime_assets)| {
                Resource::from(EventFilter {
                    metadata,
                    action,
                    expressions,
                    when,
                    runtime_assets,
                })
            }
        ),
        handler().prop_map(Resource::from),
        hook_config().prop_map(Resource::from),
        (
            meta(),
            text(),
            any::<u32>(),
            opt_texts(),
            opt_texts(),
            option::of(vec(secret(), 0..2)),
            text(),
            text()
        )
            .prop_map(
                |(metadata, command, timeout, env_vars, runtime_assets, secrets, type_, eval)| {
                    Resource::from(Mutator {
                        metadata,
                        command,
                        timeout,
                        env_vars,
                        runtime_assets,
                        secrets,
                        type_,
                        eval,
                    })
                }
            ),
        pipeline().prop_map(Resource::from),
        (option::of(vec(rule(), 0..2)), meta())
            .prop_map(|(rules, metadata)| Resource::from(Role { rules, metadata })),
        (subjects(), role_ref(), meta()).prop_map(|(subjects, role_ref, metadata)| {
            Resource::from(RoleBinding {
                subjects,
                role_ref,
                metadata,
            })
        }),
        (
            meta(),
            any::<i64>(),
            any::<bool>(),
            text(),
            text(),
            text(),
            text(),
            any::<i64>(),
            any::<i64>()
        )
            .prop_map(
                |(
                    metadata,
                    expire,
                    expire_on_resolve,
                    creator,
                    check,
                    reason,
                    subscription,
                    begin,
                    expire_at,
                )| Resource::from(Silenced {
                    metadata,
                    expire,
                    expire_on_resolve,
                    creator,
                    check,
                    reason,
                    subscription,
                    begin,
                    expire_at,
                })
            ),
        entity_config().prop_map(Resource::from),
    ]
    .boxed()
}

/// A wrapped document. A type without metadata of its own may carry outer metadata; its
/// name, when set, is the resource's name (decoding makes it so).
fn wrapped_doc() -> BoxedStrategy<Wrapped> {
    (resource(), meta(), any::<bool>())
        .prop_map(|(resource, mut outer, named)| {
            if resource.kind().has_metadata() {
                return Wrapped::from(resource);
            }
            outer.name = if named {
                resource.name().to_string()
            } else {
                String::new()
            };
            Wrapped {
                resource,
                outer_metadata: outer,
            }
        })
        .boxed()
}

fn json_round_trip<T>(x: &T) -> T
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let text = serde_json::to_string(x).expect("encode");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("decode {text}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn event_round_trips(e in full_event()) {
        prop_assert_eq!(json_round_trip(&e), e);
    }

    #[test]
    fn sparse_event_round_trips(e in event()) {
        prop_assert_eq!(json_round_trip(&e), e);
    }

    #[test]
    fn entity_round_trips(e in entity()) {
        prop_assert_eq!(json_round_trip(&e), e);
    }

    #[test]
    fn check_config_round_trips(c in check_config()) {
        prop_assert_eq!(json_round_trip(&c), c);
    }

    #[test]
    fn check_request_round_trips(r in check_request()) {
        prop_assert_eq!(json_round_trip(&r), r);
    }

    #[test]
    fn wire_frames_round_trip(
        msg in prop_oneof![
            full_event().prop_map(|e| Message::Keepalive(Box::new(e))),
            event().prop_map(|e| Message::Event(Box::new(e))),
            check_request().prop_map(|r| Message::CheckRequest(Box::new(r))),
            entity_config().prop_map(|c| Message::EntityConfig(Box::new(c))),
        ]
    ) {
        let frame = wire::encode(&msg);
        let (ty, _) = wire::split(&frame).expect("split");
        prop_assert_eq!(ty, msg.type_name());
        prop_assert_eq!(wire::decode(&frame).expect("decode"), msg);
    }

    #[test]
    fn wrapped_json_round_trips(docs in vec(wrapped_doc(), 1..4)) {
        let text = wrapped::to_json(&docs);
        prop_assert_eq!(wrapped::parse(&text).expect("parse"), docs.clone());
        // Compact documents back to back, with no whitespace between, are a stream too.
        let compact: String = docs.iter().map(Wrapped::to_json).collect();
        prop_assert_eq!(wrapped::parse_json(&compact).expect("parse"), docs);
    }

    #[test]
    fn wrapped_yaml_round_trips(docs in vec(wrapped_doc(), 1..4)) {
        let text = wrapped::to_yaml(&docs);
        let parsed = wrapped::parse(&text);
        prop_assert!(parsed.is_ok(), "{:?}\n{}", parsed, text);
        prop_assert_eq!(parsed.unwrap(), docs);
    }
}
