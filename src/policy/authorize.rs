//! The permission check: one function of (group grants, endpoint need, body facts).
//!
//! [`judge`] gives a verdict for every item a body asks for (an event type, a property, an
//! attribute, a batch command), naming the grant that allows it or saying why nothing does.
//! The request is allowed when every item is. Table-driven tests cover the whole catalog.

use std::fmt;

use super::body::{Attribute, Command, Facts};
use super::catalog::{Body, Need};
use super::permission::{Grant, Grants};

/// What allowed an item: a grant, and whether it was through its scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allowed {
    pub grant: Grant,
    pub scoped: bool,
}

impl fmt::Display for Allowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.scoped {
            write!(f, "\"{} [...]\" (scope)", self.grant)
        } else {
            write!(f, "\"{}\"", self.grant)
        }
    }
}

/// One item of a body and its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// e.g. `event_type "purchase"`, `commands[2] (customers/events) event_type "view"`.
    pub item: String,
    /// `Err` holds what would have been needed.
    pub result: Result<Allowed, String>,
}

/// Whether `grants` allow `need` without looking at any body. `Need::Body` is allowed here
/// only when the group's unscoped grant makes the body irrelevant.
pub fn allows_without_body(grants: &Grants, need: Need) -> bool {
    match need {
        Need::Nothing => true,
        Need::Reserved => false,
        Need::Grants(mask) => mask.iter().all(|g| grants.has(g)),
        Need::Body(Body::TrackEvent) => grants.has(Grant::EventsSet),
        Need::Body(Body::TrackCustomer) => grants.has(Grant::CustomerPropertiesSet),
        Need::Body(Body::ExportEvents) => grants.has(Grant::EventsGet),
        // Command names and attribute types must always be checked.
        Need::Body(Body::TrackBatch | Body::Attributes) => false,
    }
}

/// Whether some body could be allowed (for `check`'s listing of what a group may call).
pub fn could_allow(grants: &Grants, need: Need) -> bool {
    use Grant::*;
    let any = |g: Grant| grants.has(g) || grants.scoped().iter().any(|(s, _)| *s == g);
    match need {
        Need::Body(Body::TrackEvent) => any(EventsSet) || any(ConsentSet),
        Need::Body(Body::TrackCustomer) => any(CustomerPropertiesSet),
        Need::Body(Body::TrackBatch) => {
            any(EventsSet) || any(ConsentSet) || any(CustomerPropertiesSet)
        }
        Need::Body(Body::Attributes) => [
            CustomerPropertiesGet,
            ConsentGet,
            RecommendationsGet,
            CustomerAttributesGet,
            EventsGet,
        ]
        .into_iter()
        .any(any),
        Need::Body(Body::ExportEvents) => any(EventsGet),
        other => allows_without_body(grants, other),
    }
}

/// A verdict for every item the body asks for.
pub fn judge(grants: &Grants, facts: &Facts) -> Vec<Verdict> {
    let mut out = Vec::new();
    match facts {
        Facts::Event { event_type } => out.push(event_set(grants, "", event_type)),
        Facts::Customer { properties } => customer(grants, "", properties, &mut out),
        Facts::Batch { commands } => {
            for (i, c) in commands.iter().enumerate() {
                match c {
                    Command::Event { event_type } => out.push(event_set(
                        grants,
                        &format!("commands[{i}] (customers/events) "),
                        event_type,
                    )),
                    Command::Customer { properties } => customer(
                        grants,
                        &format!("commands[{i}] (customers) "),
                        properties,
                        &mut out,
                    ),
                    Command::SystemTime => {}
                    Command::Other { name } => out.push(Verdict {
                        item: format!("commands[{i}] {name:?}"),
                        result: Err(
                            "a known command (customers, customers/events, system/time)".into()
                        ),
                    }),
                }
            }
        }
        Facts::Attributes { attributes } => {
            out.extend(attributes.iter().map(|a| attribute(grants, a)));
            if attributes.is_empty() {
                out.push(Verdict {
                    item: "attributes".into(),
                    result: Err("at least one attribute".into()),
                });
            }
        }
        // `Consent: Get` reads consent attributes only, never the event export.
        Facts::ExportEvents { event_types } => {
            out.extend(
                event_types
                    .iter()
                    .map(|t| event(grants, "", t, Grant::EventsGet, None)),
            );
            if event_types.is_empty() {
                out.push(Verdict {
                    item: "event_types".into(),
                    result: Err("at least one event type".into()),
                });
            }
        }
    }
    out
}

/// The first refused item, as the denial message's reason.
pub fn first_refusal(verdicts: &[Verdict]) -> Option<String> {
    verdicts.iter().find_map(|v| {
        v.result
            .as_ref()
            .err()
            .map(|need| format!("{} is not allowed: it needs {need}", v.item))
    })
}

fn event_set(grants: &Grants, prefix: &str, event_type: &str) -> Verdict {
    event(
        grants,
        prefix,
        event_type,
        Grant::EventsSet,
        Some(Grant::ConsentSet),
    )
}

/// `Consent: Set` is `Events: Set [consent]`; `Consent: Get` allows consent attributes
/// (Bloomreach: Events > "consent" Get), passed as `consent` where it applies.
fn event(
    grants: &Grants,
    prefix: &str,
    event_type: &str,
    right: Grant,
    consent: Option<Grant>,
) -> Verdict {
    let result = scoped(grants, right, event_type)
        .or_else(|| {
            let consent = consent.filter(|c| event_type == "consent" && grants.has(*c))?;
            Some(Allowed {
                grant: consent,
                scoped: false,
            })
        })
        .ok_or_else(|| format!("\"{right} [{event_type}]\""));
    Verdict {
        item: format!("{prefix}event_type {event_type:?}"),
        result,
    }
}

fn customer(grants: &Grants, prefix: &str, properties: &[String], out: &mut Vec<Verdict>) {
    for p in properties {
        let result = scoped(grants, Grant::CustomerPropertiesSet, p)
            .ok_or_else(|| format!("\"Customer properties: Set [{p}]\""));
        out.push(Verdict {
            item: format!("{prefix}property {p:?}"),
            result,
        });
    }
}

fn attribute(grants: &Grants, a: &Attribute) -> Verdict {
    use Grant::*;
    let name = a.name.as_deref();
    let item = match name {
        Some(n) => format!("attribute {} {n:?}", a.kind),
        None => format!("attribute {}", a.kind),
    };
    let plain = |g: Grant| {
        grants
            .has(g)
            .then_some(Allowed {
                grant: g,
                scoped: false,
            })
            .ok_or_else(|| format!("\"{g}\""))
    };
    let result = match (a.kind.as_str(), name) {
        ("property" | "id", Some(n)) => scoped(grants, CustomerPropertiesGet, n)
            .ok_or_else(|| format!("\"Customer properties: Get [{n}]\"")),
        ("property" | "id", None) => Err(format!("a named {} (the body names none)", a.kind)),
        ("consent", _) => {
            return event(grants, "attribute ", "consent", EventsGet, Some(ConsentGet))
                .with_item(item);
        }
        ("recommendation", _) => plain(RecommendationsGet),
        ("segmentation" | "expression" | "aggregate" | "prediction", _) => {
            plain(CustomerAttributesGet)
        }
        (other, _) => Err(format!("a known attribute type ({other:?} is not one)")),
    };
    Verdict { item, result }
}

impl Verdict {
    fn with_item(mut self, item: String) -> Verdict {
        self.item = item;
        self
    }
}

/// The unscoped grant, or a scoped one that lists `name`.
fn scoped(grants: &Grants, grant: Grant, name: &str) -> Option<Allowed> {
    if grants.has(grant) {
        return Some(Allowed {
            grant,
            scoped: false,
        });
    }
    grants
        .scoped()
        .iter()
        .any(|(g, names)| *g == grant && names.iter().any(|n| n == name))
        .then_some(Allowed {
            grant,
            scoped: true,
        })
}
