//! Properties of the permission check: a scope never allows an item outside it; adding a
//! permission never refuses a request that was allowed.

use proptest::prelude::*;

use super::*;

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "consent", "purchase", "view", "email", "phone", "a", "b",
    ])
    .prop_map(str::to_owned)
}

/// Requests across every kind of need, with bodies built from the same small alphabet.
fn request() -> impl Strategy<Value = (&'static str, String, String)> {
    prop_oneof![
        name().prop_map(|n| (
            "POST",
            "/track/v2/projects/p-1/customers/events".to_owned(),
            format!(r#"{{"event_type":"{n}"}}"#)
        )),
        prop::collection::vec(name(), 0..3).prop_map(|ns| {
            let props: Vec<String> = ns.iter().map(|n| format!(r#""{n}":1"#)).collect();
            (
                "POST",
                "/track/v2/projects/p-1/customers".to_owned(),
                format!(r#"{{"properties":{{{}}}}}"#, props.join(",")),
            )
        }),
        prop::collection::vec(name(), 1..3).prop_map(|ns| {
            let types: Vec<String> = ns.iter().map(|n| format!("\"{n}\"")).collect();
            (
                "POST",
                "/data/v2/projects/p-1/customers/events".to_owned(),
                format!(r#"{{"event_types":[{}]}}"#, types.join(",")),
            )
        }),
        (
            name(),
            prop::sample::select(vec![
                "property",
                "consent",
                "segmentation",
                "recommendation",
                "bogus"
            ])
        )
            .prop_map(|(n, t)| {
                (
                    "POST",
                    "/data/v2/projects/p-1/customers/attributes".to_owned(),
                    format!(
                        r#"{{"attributes":[{{"type":"{t}","property":"{n}","category":"{n}"}}]}}"#
                    ),
                )
            }),
        prop::sample::select(
            TABLE
                .iter()
                .map(|(m, p, b, _)| (*m, p.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        ),
    ]
}

fn permission() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(ALL.to_vec()).prop_map(|g| g.label().to_owned()),
        (
            prop::sample::select(vec![
                "Events: Set",
                "Events: Get",
                "Customer properties: Set",
                "Customer properties: Get"
            ]),
            prop::collection::vec(name(), 1..3)
        )
            .prop_map(|(p, ns)| format!("{p} [{}]", ns.join(", "))),
    ]
}

proptest! {
    #[test]
    fn a_scope_never_allows_an_item_outside_it(scope in prop::collection::vec(name(), 1..4), item in name()) {
        let p = policy(&[&format!("Events: Set [{}]", scope.join(", "))]);
        let body = format!(r#"{{"event_type":"{item}"}}"#);
        let allowed = decide(&p, "POST", "/track/v2/projects/p-1/customers/events", &body).is_ok();
        prop_assert_eq!(allowed, scope.contains(&item));
        let p = policy(&[&format!("Customer properties: Get [{}]", scope.join(", "))]);
        let body = format!(r#"{{"attributes":[{{"type":"property","property":"{item}"}}]}}"#);
        let allowed = decide(&p, "POST", "/data/v2/projects/p-1/customers/attributes", &body).is_ok();
        prop_assert_eq!(allowed, scope.contains(&item));
    }

    #[test]
    fn adding_a_permission_never_refuses_an_allowed_request(
        held in prop::collection::vec(permission(), 0..4),
        extra in permission(),
        (method, path, body) in request(),
    ) {
        let before: Vec<&str> = held.iter().map(String::as_str).collect();
        let mut after = before.clone();
        after.push(&extra);
        if decide(&policy(&before), method, &path, &body).is_ok() {
            prop_assert!(decide(&policy(&after), method, &path, &body).is_ok(), "adding {extra:?} to {before:?} refused {method} {path} {body}");
        }
    }
}
