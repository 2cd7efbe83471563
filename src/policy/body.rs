//! Body facts: what a JSON body of a body-dependent endpoint asks for (event types,
//! properties, attributes, batch commands). Parsed from the exact bytes that are then
//! forwarded unchanged; anything that is not the documented shape is an error (fail closed).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::catalog::Body;

/// Bloomreach's limit on commands per batch (`bloomreach-api.md` section 11.2).
pub const MAX_BATCH_COMMANDS: usize = 50;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Facts {
    /// Tracking `customers/events`.
    Event {
        event_type: String,
    },
    /// Tracking `customers`: the property names it sets.
    Customer {
        properties: Vec<String>,
    },
    Batch {
        commands: Vec<Command>,
    },
    /// Data `customers/attributes`.
    Attributes {
        attributes: Vec<Attribute>,
    },
    /// Data `customers/events` (export).
    ExportEvents {
        event_types: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Event {
        event_type: String,
    },
    Customer {
        properties: Vec<String>,
    },
    SystemTime,
    /// A command name credgate does not know: always refused.
    Other {
        name: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// `type`: property, id, consent, recommendation, segmentation, expression, ...
    pub kind: String,
    /// The property name, id name or consent category, where the type has one.
    pub name: Option<String>,
}

#[derive(Deserialize)]
struct EventBody {
    event_type: String,
}

#[derive(Deserialize)]
struct CustomerBody {
    #[serde(default)]
    properties: BTreeMap<String, IgnoredAny>,
}

#[derive(Deserialize)]
struct BatchBody {
    commands: Vec<RawCommand>,
}

#[derive(Deserialize)]
struct RawCommand {
    name: String,
    #[serde(default)]
    /// Kept raw and parsed like a top-level body, so duplicate keys are refused here too
    /// (a `Value` would silently keep the last one).
    data: Option<Box<serde_json::value::RawValue>>,
}

#[derive(Deserialize)]
struct AttributesBody {
    attributes: Vec<RawAttribute>,
}

#[derive(Deserialize)]
struct RawAttribute {
    #[serde(rename = "type")]
    kind: String,
    property: Option<String>,
    id: Option<String>,
    category: Option<String>,
}

#[derive(Deserialize)]
struct ExportBody {
    event_types: Vec<String>,
}

/// Parses `bytes` as the body of a `kind` endpoint. The error says what is wrong, for people.
pub fn parse(kind: Body, bytes: &[u8]) -> Result<Facts, String> {
    let wrong =
        |e: serde_json::Error| format!("the body is not the expected JSON ({})", describe(&e));
    Ok(match kind {
        Body::TrackEvent => Facts::Event {
            event_type: serde_json::from_slice::<EventBody>(bytes)
                .map_err(wrong)?
                .event_type,
        },
        Body::TrackCustomer => Facts::Customer {
            properties: properties(serde_json::from_slice(bytes).map_err(wrong)?),
        },
        Body::TrackBatch => {
            let batch: BatchBody = serde_json::from_slice(bytes).map_err(wrong)?;
            if batch.commands.len() > MAX_BATCH_COMMANDS {
                return Err(format!(
                    "a batch holds at most {MAX_BATCH_COMMANDS} commands"
                ));
            }
            let commands = batch
                .commands
                .into_iter()
                .enumerate()
                .map(|(i, c)| command(i, c))
                .collect::<Result<_, _>>()?;
            Facts::Batch { commands }
        }
        Body::Attributes => {
            let body: AttributesBody = serde_json::from_slice(bytes).map_err(wrong)?;
            let attributes = body
                .attributes
                .into_iter()
                .map(|a| {
                    let name = match a.kind.as_str() {
                        "property" => a.property,
                        "id" => a.id,
                        "consent" => a.category,
                        _ => None,
                    };
                    Attribute { kind: a.kind, name }
                })
                .collect();
            Facts::Attributes { attributes }
        }
        Body::ExportEvents => Facts::ExportEvents {
            event_types: serde_json::from_slice::<ExportBody>(bytes)
                .map_err(wrong)?
                .event_types,
        },
    })
}

/// What is wrong, without echoing values of the body (they can be personal data): serde's
/// messages about fields name only the field; any other is reduced to its kind and place.
fn describe(e: &serde_json::Error) -> String {
    let message = e.to_string();
    let about_a_field = ["missing field", "duplicate field", "unknown field"]
        .iter()
        .any(|p| message.starts_with(p));
    if about_a_field {
        return message;
    }
    let kind = match e.classify() {
        serde_json::error::Category::Syntax => "invalid JSON",
        serde_json::error::Category::Eof => "incomplete JSON",
        serde_json::error::Category::Data => "a value of the wrong type",
        serde_json::error::Category::Io => "unreadable",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

fn properties(body: CustomerBody) -> Vec<String> {
    body.properties.into_keys().collect()
}

fn command(i: usize, c: RawCommand) -> Result<Command, String> {
    let data = || {
        c.data
            .as_ref()
            .map(|d| d.get())
            .ok_or_else(|| format!("commands[{i}] has no data"))
    };
    let wrong = |e: serde_json::Error| {
        format!(
            "commands[{i}].data is not the expected JSON ({})",
            describe(&e)
        )
    };
    Ok(match c.name.as_str() {
        "customers/events" => Command::Event {
            event_type: serde_json::from_str::<EventBody>(data()?)
                .map_err(wrong)?
                .event_type,
        },
        "customers" => Command::Customer {
            properties: properties(serde_json::from_str(data()?).map_err(wrong)?),
        },
        "system/time" => Command::SystemTime,
        _ => Command::Other { name: c.name },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_shape() {
        let f = parse(
            Body::TrackEvent,
            br#"{"customer_ids":{"registered":"a"},"event_type":"consent","properties":{"x":1}}"#,
        );
        assert_eq!(
            f,
            Ok(Facts::Event {
                event_type: "consent".into()
            })
        );
        let f = parse(
            Body::TrackCustomer,
            br#"{"customer_ids":{},"properties":{"email":"a","first_name":"b"}}"#,
        );
        assert_eq!(
            f,
            Ok(Facts::Customer {
                properties: vec!["email".into(), "first_name".into()]
            })
        );
        let f = parse(
            Body::TrackBatch,
            br#"{"commands":[{"name":"system/time"},{"name":"customers/events","data":{"event_type":"view"}},{"name":"customers","data":{"properties":{"a":1}}},{"name":"nope","data":{}}]}"#,
        );
        assert_eq!(
            f,
            Ok(Facts::Batch {
                commands: vec![
                    Command::SystemTime,
                    Command::Event {
                        event_type: "view".into()
                    },
                    Command::Customer {
                        properties: vec!["a".into()]
                    },
                    Command::Other {
                        name: "nope".into()
                    },
                ]
            })
        );
        let f = parse(Body::Attributes, br#"{"attributes":[{"type":"consent","category":"news","mode":"valid"},{"type":"property","property":"email"},{"type":"segmentation","id":"s1"}]}"#);
        assert_eq!(
            f,
            Ok(Facts::Attributes {
                attributes: vec![
                    Attribute {
                        kind: "consent".into(),
                        name: Some("news".into())
                    },
                    Attribute {
                        kind: "property".into(),
                        name: Some("email".into())
                    },
                    Attribute {
                        kind: "segmentation".into(),
                        name: None
                    },
                ]
            })
        );
        assert_eq!(
            parse(Body::ExportEvents, br#"{"event_types":["a"]}"#),
            Ok(Facts::ExportEvents {
                event_types: vec!["a".into()]
            })
        );
    }

    #[test]
    fn wrong_shapes_are_errors() {
        for (kind, body) in [
            (Body::TrackEvent, &b"not json"[..]),
            (Body::TrackEvent, br#"{"event_type": 5}"#),
            (Body::TrackEvent, br#"{}"#),
            (Body::TrackEvent, br#"[]"#),
            (Body::TrackCustomer, br#"{"properties": ["email"]}"#),
            (Body::TrackBatch, br#"{"commands": {}}"#),
            (
                Body::TrackBatch,
                br#"{"commands": [{"name": "customers/events"}]}"#,
            ),
            (Body::Attributes, br#"{"attributes": [{"property": "x"}]}"#),
            (Body::ExportEvents, br#"{"customer_ids": {}}"#),
            (Body::TrackEvent, br#"{"event_type":"a"} trailing"#),
        ] {
            assert!(
                parse(kind, body).is_err(),
                "{kind:?} {}",
                String::from_utf8_lossy(body)
            );
        }
        let many = format!(
            r#"{{"commands":[{}]}}"#,
            vec![r#"{"name":"system/time"}"#; 51].join(",")
        );
        assert!(
            parse(Body::TrackBatch, many.as_bytes())
                .unwrap_err()
                .contains("at most 50")
        );
    }

    #[test]
    fn errors_do_not_echo_values() {
        let err = parse(Body::TrackEvent, br#"{"event_type": ["jane@example.com"]}"#).unwrap_err();
        assert!(!err.contains("jane"), "{err}");
        assert!(err.contains("wrong type at line 1"), "{err}");
        let err = parse(
            Body::TrackEvent,
            br#"{"customer_ids": {"email": "jane@example.com"}}"#,
        )
        .unwrap_err();
        assert!(err.contains("missing field `event_type`"), "{err}");
    }

    #[test]
    fn duplicate_keys_cannot_smuggle_an_event_type() {
        let batch = br#"{"commands":[{"name":"customers/events","data":{"event_type":"consent","event_type":"purchase"}}]}"#;
        assert!(parse(Body::TrackBatch, batch).is_err());
        // serde_json refuses duplicate fields in structs, so no "first one checked, last one used".
        assert!(
            parse(
                Body::TrackEvent,
                br#"{"event_type":"consent","event_type":"purchase"}"#
            )
            .is_err()
        );
    }
}
