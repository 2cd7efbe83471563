//! The whole catalog against every permission (table-driven), and properties of scopes.

use http::{HeaderMap, Method};

use super::permission::{self, ALL, Grants};
use super::*;

const P: &str = "p-1";

/// A private group holding exactly `permissions`, reached by a catch-all route.
fn policy(permissions: &[&str]) -> Policy {
    let mut grants = Grants::default();
    for p in permissions {
        grants.add(&permission::parse(p).unwrap());
    }
    let group = Group {
        name: "g".into(),
        access: Access::Private,
        project: P.into(),
        permissions: permissions.iter().map(|s| s.to_string()).collect(),
        grants,
        mode: Mode::Enforce,
    };
    let route = Route {
        group: 0,
        path_prefix: None,
        methods: None,
        headers: Vec::new(),
    };
    Policy {
        groups: vec![group],
        routes: vec![route],
        catalog: catalog::Catalog::builtin(),
    }
}

/// The full decision, body included: `Ok` when forwarded, else the refusal's code.
fn decide(policy: &Policy, method: &str, path: &str, body: &str) -> Result<(), &'static str> {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let d = policy.decide(&method, path, &HeaderMap::new());
    match d.outcome {
        Outcome::Permit(_) => Ok(()),
        Outcome::Refuse(e) => Err(e.code()),
        Outcome::Inspect(pending) => policy
            .inspect(pending, d.endpoint.unwrap(), Ok(body.as_bytes()))
            .result
            .map(|_| ())
            .map_err(|e| e.code()),
    }
}

const ANY: &[&str] = &["*"];

/// Every built-in endpoint with a representative request, and the canonical permissions
/// that allow it on their own ("*": every permission, even none).
const TABLE: &[(&str, &str, &str, &[&str])] = &[
    // Bodies with no item need the category permission all the same.
    (
        "POST",
        "/track/v2/projects/p-1/customers",
        r#"{"customer_ids":{"registered":"a"}}"#,
        &["Customer properties: Set"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[]}"#,
        &[],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/events",
        r#"{"event_types":[]}"#,
        &["Events: Get"],
    ),
    ("GET", "/track/v2/projects/p-1/system/time", "", ANY),
    ("GET", "/data/v2/projects/p-1/consent/categories", "", ANY),
    (
        "POST",
        "/track/v2/projects/p-1/customers/events",
        r#"{"event_type":"purchase"}"#,
        &["Events: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/customers/events",
        r#"{"event_type":"consent"}"#,
        &["Events: Set", "Consent: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/customers",
        r#"{"properties":{"email":"a"}}"#,
        &["Customer properties: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/batch",
        r#"{"commands":[{"name":"system/time"}]}"#,
        &["Events: Set", "Consent: Set", "Customer properties: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/batch",
        r#"{"commands":[{"name":"customers/events","data":{"event_type":"consent"}}]}"#,
        &["Events: Set", "Consent: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/batch",
        r#"{"commands":[{"name":"customers","data":{"properties":{"a":1}}}]}"#,
        &["Customer properties: Set"],
    ),
    (
        "POST",
        "/track/v2/projects/p-1/campaigns/clicks",
        "",
        &["Events: Set"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[{"type":"consent","category":"news"}]}"#,
        &["Events: Get", "Consent: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[{"type":"property","property":"email"}]}"#,
        &["Customer properties: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[{"type":"id","id":"registered"}]}"#,
        &["Customer properties: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[{"type":"recommendation","id":"r"}]}"#,
        &["Recommendations: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/attributes",
        r#"{"attributes":[{"type":"prediction","id":"x"}]}"#,
        &["Customer attributes: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/events",
        r#"{"event_types":["purchase"]}"#,
        &["Events: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/events",
        r#"{"event_types":["consent"]}"#,
        &["Events: Get"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/export-one",
        "",
        &["GDPR: Export customer"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/export",
        "",
        &["GDPR: Export customers"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/anonymize",
        "",
        &["GDPR: Anonymize customer"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/customers/anonymize_bulk",
        "",
        &["GDPR: Anonymize customer"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/analyses/funnel",
        "",
        &["GDPR: Export analyses"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/analyses/report",
        "",
        &["GDPR: Export analyses"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/analyses/segmentation",
        "",
        &["GDPR: Export analyses"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/analyses/retention",
        "",
        &["GDPR: Export analyses"],
    ),
    (
        "GET",
        "/data/v2/projects/p-1/catalogs",
        "",
        &["Catalogs: Get catalog list"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/catalogs",
        "",
        &["Catalogs: Create catalog"],
    ),
    (
        "GET",
        "/data/v2/projects/p-1/catalogs/c",
        "",
        &["Catalogs: Get catalog list"],
    ),
    (
        "PUT",
        "/data/v2/projects/p-1/catalogs/c",
        "",
        &["Catalogs: Update catalog"],
    ),
    (
        "DELETE",
        "/data/v2/projects/p-1/catalogs/c",
        "",
        &["Catalogs: Delete catalog"],
    ),
    (
        "GET",
        "/data/v2/projects/p-1/catalogs/c/items",
        "",
        &["Catalogs: Get catalog item"],
    ),
    (
        "DELETE",
        "/data/v2/projects/p-1/catalogs/c/items",
        "",
        &["Catalogs: Delete catalog item"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/catalogs/c/items/bulk-delete",
        "",
        &["Catalogs: Delete catalog item"],
    ),
    (
        "GET",
        "/data/v2/projects/p-1/catalogs/c/items/i",
        "",
        &["Catalogs: Get catalog item"],
    ),
    (
        "PUT",
        "/data/v2/projects/p-1/catalogs/c/items/i",
        "",
        &["Catalogs: Create or update catalog item"],
    ),
    (
        "DELETE",
        "/data/v2/projects/p-1/catalogs/c/items/i",
        "",
        &["Catalogs: Delete catalog item"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/catalogs/c/items/i/partial-update",
        "",
        &["Catalogs: Create or update catalog item"],
    ),
    (
        "POST",
        "/data/v1/projects/p-1/imports/7/start",
        "",
        &["Imports: Allow trigger imports"],
    ),
    (
        "POST",
        "/data/v2/projects/p-1/imports/7/start",
        "",
        &["Imports: Allow trigger imports"],
    ),
    (
        "POST",
        "/imports/v1/p-1/7/run",
        "",
        &["Imports: Allow trigger imports"],
    ),
    (
        "GET",
        "/imports/v1/p-1",
        "",
        &["Imports: Allow to List Imports"],
    ),
    (
        "POST",
        "/imports/v1/p-1",
        "",
        &["Imports: Allow to Create new Imports"],
    ),
    (
        "GET",
        "/imports/v1/p-1/7",
        "",
        &["Imports: Allow to Read Imports"],
    ),
    (
        "DELETE",
        "/imports/v1/p-1/7",
        "",
        &["Imports: Allow to Delete existing imports"],
    ),
    (
        "POST",
        "/email/v2/projects/p-1/sync",
        "",
        &["Campaigns: Transactional email API"],
    ),
    (
        "POST",
        "/sms/v1/projects/p-1/sync",
        "",
        &["Campaigns: Transactional SMS API"],
    ),
    ("POST", "/data/v2/projects/p-1/access-keys/rotate", "", &[]),
    ("POST", "/data/v2/projects/p-1/access-keys/revoke", "", &[]),
];

#[test]
fn every_permission_against_every_endpoint() {
    let mut checked = 0;
    for grant in ALL {
        let label = grant.label();
        let policy = policy(&[label]);
        for (method, path, body, allowed_by) in TABLE {
            let want = allowed_by == &ANY || allowed_by.contains(&label);
            let got = decide(&policy, method, path, body);
            assert_eq!(
                got.is_ok(),
                want,
                "{label:?} on {method} {path} {body}: {got:?}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, ALL.len() * TABLE.len());
    // And with no permission at all, only the ANY rows pass.
    let none = policy(&[]);
    for (method, path, body, allowed_by) in TABLE {
        assert_eq!(
            decide(&none, method, path, body).is_ok(),
            allowed_by == &ANY,
            "{method} {path}"
        );
    }
}

#[test]
fn every_builtin_endpoint_is_in_the_table() {
    let catalog = catalog::Catalog::builtin();
    for e in catalog.endpoints() {
        let covered = TABLE.iter().any(|(m, path, _, _)| {
            let method = Method::from_bytes(m.as_bytes()).unwrap();
            catalog
                .find(&method, path)
                .is_some_and(|f| std::ptr::eq(f.endpoint, e))
        });
        assert!(covered, "{e} has no row in TABLE");
    }
}

#[test]
fn the_seeds_consent_group() {
    let p = policy(&["Consent: Get + Set"]);
    let events = "/track/v2/projects/p-1/customers/events";
    let attributes = "/data/v2/projects/p-1/customers/attributes";
    assert_eq!(
        decide(
            &p,
            "POST",
            events,
            r#"{"event_type":"consent","properties":{"action":"accept"}}"#
        ),
        Ok(())
    );
    assert_eq!(
        decide(&p, "POST", events, r#"{"event_type":"purchase"}"#),
        Err("permission_denied")
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            attributes,
            r#"{"attributes":[{"type":"consent","category":"newsletter","mode":"valid"}]}"#
        ),
        Ok(())
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            attributes,
            r#"{"attributes":[{"type":"consent","category":"n"},{"type":"property","property":"email"}]}"#
        ),
        Err("permission_denied")
    );
    assert_eq!(
        decide(&p, "POST", events, "not json"),
        Err("permission_denied")
    );
    assert_eq!(
        decide(
            &p,
            "POST",
            "/track/v2/projects/other/customers/events",
            r#"{"event_type":"consent"}"#
        ),
        Err("project_mismatch")
    );
}

#[test]
fn scopes_apply_to_the_rights_written_with_them() {
    let p = policy(&[
        "Events: Get + Set [purchase]",
        "Customer properties: Set [email]",
    ]);
    let track = "/track/v2/projects/p-1/customers/events";
    assert_eq!(
        decide(&p, "POST", track, r#"{"event_type":"purchase"}"#),
        Ok(())
    );
    assert_eq!(
        decide(&p, "POST", track, r#"{"event_type":"view"}"#),
        Err("permission_denied")
    );
    let export = "/data/v2/projects/p-1/customers/events";
    assert_eq!(
        decide(&p, "POST", export, r#"{"event_types":["purchase"]}"#),
        Ok(())
    );
    assert_eq!(
        decide(&p, "POST", export, r#"{"event_types":["purchase","view"]}"#),
        Err("permission_denied")
    );
    let batch = "/track/v2/projects/p-1/batch";
    let ok = r#"{"commands":[{"name":"customers/events","data":{"event_type":"purchase"}},{"name":"customers","data":{"properties":{"email":"x"}}}]}"#;
    assert_eq!(decide(&p, "POST", batch, ok), Ok(()));
    let one_bad = r#"{"commands":[{"name":"customers/events","data":{"event_type":"purchase"}},{"name":"customers","data":{"properties":{"phone":"x"}}}]}"#;
    assert_eq!(decide(&p, "POST", batch, one_bad), Err("permission_denied"));
    let unknown = r#"{"commands":[{"name":"customers/anonymize","data":{}}]}"#;
    assert_eq!(decide(&p, "POST", batch, unknown), Err("permission_denied"));
}

#[test]
fn denial_messages_name_the_item() {
    let p = policy(&["Consent: Set"]);
    let d = p.decide(
        &Method::POST,
        "/track/v2/projects/p-1/customers/events",
        &HeaderMap::new(),
    );
    let Outcome::Inspect(pending) = d.outcome else {
        panic!("expected an inspection")
    };
    let e = p
        .inspect(
            pending,
            d.endpoint.unwrap(),
            Ok(br#"{"event_type":"purchase"}"#),
        )
        .result
        .unwrap_err();
    assert!(
        e.to_string()
            .contains(r#"event_type "purchase" is not allowed: it needs "Events: Set [purchase]""#),
        "{e}"
    );
}

#[test]
fn audit_mode_permits_with_the_refusal_remembered_but_never_reserved() {
    let mut p = policy(&["Consent: Set"]);
    p.groups[0].mode = Mode::Audit;
    let d = p.decide(
        &Method::POST,
        "/data/v2/projects/p-1/customers/anonymize",
        &HeaderMap::new(),
    );
    let Outcome::Permit(permit) = d.outcome else {
        panic!("audit forwards")
    };
    assert_eq!(
        permit.would_deny().map(|e| e.code()),
        Some("permission_denied")
    );
    let d = p.decide(
        &Method::POST,
        "/data/v2/projects/p-1/access-keys/revoke",
        &HeaderMap::new(),
    );
    assert!(matches!(
        d.outcome,
        Outcome::Refuse(ProxyError::Reserved(_))
    ));
    let d = p.decide(
        &Method::POST,
        "/track/v2/projects/p-1/customers/events",
        &HeaderMap::new(),
    );
    let Outcome::Inspect(pending) = d.outcome else {
        panic!()
    };
    let permit = p
        .inspect(pending, d.endpoint.unwrap(), Err(Unreadable::TooLarge(10)))
        .result
        .unwrap();
    assert_eq!(
        permit.would_deny().map(|e| e.code()),
        Some("body_too_large")
    );
}

mod properties;
